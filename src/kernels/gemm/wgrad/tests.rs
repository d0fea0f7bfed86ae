//! The tile kernel gradient against an f64 sum over the windows, with the bound of an f32 sum of
//! `K` products (`K` the padded pixel count, every product exact): `|got − Σ| ≤ γ_K · Σ|terms|`,
//! `γ_K = K·u / (1 − K·u)`, `u = 2⁻²⁴`. The inputs are normal bf16 values, so the tiles' flush
//! of subnormals does not enter. A shifted tap and a dropped row of pixels both leave the bound.

use half::bf16;

use super::*;

use crate::kernels::gemm::implicit::tests::values;

/// `(batch, in_h, in_w, channels, filters, (kh, kw), (sh, sw), (dh, dw), (ph, pw))`: the
/// output size is Keras's for a window that may reach `pad` zeros past each side.
type Case = (
    usize,
    usize,
    usize,
    usize,
    usize,
    (usize, usize),
    (usize, usize),
    (usize, usize),
    (usize, usize),
);

fn geometry(case: Case) -> WeightGradConv {
    let (batch, in_h, in_w, channels, filters, kernel, stride, dilation, pad) = case;
    let out = |input: usize, k: usize, s: usize, d: usize, p: usize| {
        (input + 2 * p - (k - 1) * d - 1) / s + 1
    };
    WeightGradConv {
        batch,
        in_h,
        in_w,
        channels,
        filters,
        out_h: out(in_h, kernel.0, stride.0, dilation.0, pad.0),
        out_w: out(in_w, kernel.1, stride.1, dilation.1, pad.1),
        kernel,
        stride,
        dilation,
        pad,
    }
}

/// `(Σ x·dz, Σ |x·dz|)` in f64 for every kernel element, over the windows of `g`, with the
/// input column read `shift` pixels to the right (0: the right sum) and pixel rows whose output
/// row is `drop` left out.
fn reference(
    g: &WeightGradConv,
    x: &[bf16],
    dz: &[bf16],
    shift: usize,
    drop: Option<usize>,
) -> Vec<(f64, f64)> {
    let (kh, kw) = g.kernel;
    let (c, n) = (g.channels, g.filters);
    let mut out = vec![(0.0, 0.0); g.taps() * n];
    for img in 0..g.batch {
        for oy in (0..g.out_h).filter(|&oy| Some(oy) != drop) {
            for ox in 0..g.out_w {
                let d = &dz[((img * g.out_h + oy) * g.out_w + ox) * n..][..n];
                for t in 0..kh * kw {
                    let y = (oy * g.stride.0 + t / kw * g.dilation.0).checked_sub(g.pad.0);
                    let col = ox * g.stride.1 + t % kw * g.dilation.1 + shift;
                    let Some(y) = y.filter(|&y| y < g.in_h) else {
                        continue;
                    };
                    let Some(xc) = col.checked_sub(g.pad.1).filter(|&i| i < g.in_w) else {
                        continue;
                    };
                    let px = &x[((img * g.in_h + y) * g.in_w + xc) * c..][..c];
                    for (ci, &xv) in px.iter().enumerate() {
                        for (f, &dv) in d.iter().enumerate() {
                            let p = f64::from(xv) * f64::from(dv);
                            let e = &mut out[(t * c + ci) * n + f];
                            e.0 += p;
                            e.1 += p.abs();
                        }
                    }
                }
            }
        }
    }
    out
}

/// The tile gradient of a case, or `None` without AMX tiles.
fn tiles(g: &WeightGradConv, x: &[bf16], dz: &[bf16]) -> Option<Vec<f32>> {
    if !wgrad_ready::<bf16>(g.channels) {
        eprintln!("no AMX tiles here: the tile kernel gradient does not run");
        return None;
    }
    let mut out = vec![f32::NAN; g.taps() * g.filters];
    let mut work = vec![bf16::from_f32(7.0); 1 << 21]; // stale values must not matter
    assert!(conv_weight_grad(x, g, dz, &mut work, &mut out));
    Some(out)
}

/// The largest `|got − Σ| / (γ_K · Σ|terms|)` over the kernel (below 1: within the bound).
fn worst(g: &WeightGradConv, got: &[f32], want: &[(f64, f64)]) -> f64 {
    let k = (g.batch * g.out_h * g.out_w_pad()) as f64;
    let u = f64::powi(2.0, -24);
    let gamma = k * u / (1.0 - k * u);
    got.iter()
        .zip(want)
        .map(|(&v, &(s, a))| {
            let err = (f64::from(v) - s).abs();
            if err == 0.0 {
                0.0
            } else {
                err / (gamma * a)
            }
        })
        .fold(0.0, f64::max)
}

fn inputs(g: &WeightGradConv) -> (Vec<bf16>, Vec<bf16>) {
    let x = values(g.batch * g.in_h * g.in_w * g.channels, 3);
    let dz = values(g.batch * g.out_h * g.out_w * g.filters, 11);
    (x, dz)
}

#[test]
fn the_tile_kernel_gradient_is_within_the_f32_bound_of_the_f64_sum() {
    let cases: [Case; 10] = [
        // At least one image per part: on `vdpbf16ps` each task lays out its own images, here
        // 9 images of 6 output rows in 8 parts of 7 rows, so parts straddle images.
        (9, 6, 32, 32, 32, (3, 3), (1, 1), (1, 1), (1, 1)),
        (8, 5, 20, 16, 24, (3, 3), (2, 1), (1, 1), (1, 1)), // and a stride, a row tail
        (2, 16, 32, 64, 64, (3, 3), (1, 1), (1, 1), (1, 1)), // "same", a row of one chunk
        (1, 7, 9, 32, 16, (3, 3), (1, 1), (1, 1), (0, 0)),  // a row shorter than a chunk
        (2, 12, 41, 16, 48, (3, 2), (1, 1), (1, 1), (1, 0)), // 16 channels, a row tail
        (1, 11, 40, 96, 70, (3, 3), (2, 2), (1, 1), (1, 1)), // strides, filters past 64
        (1, 13, 37, 32, 32, (3, 3), (1, 1), (2, 3), (2, 3)), // dilation with its padding
        (3, 5, 5, 16, 33, (1, 1), (1, 1), (1, 1), (0, 0)),  // one A group: a phantom pair
        (1, 9, 70, 48, 40, (5, 4), (2, 3), (1, 2), (2, 3)), // everything at once
        (1, 3, 3, 32, 16, (3, 3), (1, 1), (1, 1), (0, 0)),  // one output pixel
    ];
    for case in cases {
        let g = geometry(case);
        let (x, dz) = inputs(&g);
        let Some(got) = tiles(&g, &x, &dz) else {
            return;
        };
        let w = worst(&g, &got, &reference(&g, &x, &dz, 0, None));
        assert!(w <= 1.0, "{case:?}: error {w} times the bound");
    }
}

/// The bound sees the bugs a wrong offset or a short loop would make.
#[test]
fn a_shifted_tap_or_a_dropped_row_leaves_the_bound() {
    let g = geometry((1, 10, 32, 32, 32, (3, 3), (1, 1), (1, 1), (1, 1)));
    let (x, dz) = inputs(&g);
    let Some(got) = tiles(&g, &x, &dz) else {
        return;
    };
    assert!(worst(&g, &got, &reference(&g, &x, &dz, 0, None)) <= 1.0);
    assert!(worst(&g, &got, &reference(&g, &x, &dz, 1, None)) > 1.0);
    assert!(worst(&g, &got, &reference(&g, &x, &dz, 0, Some(9))) > 1.0);
}

/// An infinity and a NaN in the input reach the elements whose windows read them, as in the
/// f64 sum (rows of 32 output pixels: no zero `dz` pads them); with a padded row the kernel
/// declines rather than make a NaN of a padding zero times the infinity.
#[test]
fn specials_reach_the_kernel_elements_that_read_them() {
    let g = geometry((1, 6, 32, 16, 32, (3, 3), (1, 1), (1, 1), (1, 1)));
    let (mut x, dz) = inputs(&g);
    x[(2 * 32 + 31) * 16 + 3] = bf16::INFINITY;
    x[(5 * 32) * 16 + 9] = bf16::NAN;
    let Some(got) = tiles(&g, &x, &dz) else {
        return;
    };
    let want = reference(&g, &x, &dz, 0, None);
    for (i, (&v, &(s, _))) in got.iter().zip(&want).enumerate() {
        let same = (v.is_nan() && s.is_nan()) || (s.is_infinite() && f64::from(v) == s);
        assert!(
            same || (v.is_finite() && s.is_finite()),
            "element {i}: {v} vs {s}"
        );
    }
    assert!(got.iter().any(|v| v.is_nan()) && got.iter().any(|v| v.is_finite()));
    let narrow = geometry((1, 6, 30, 16, 32, (3, 3), (1, 1), (1, 1), (1, 1)));
    let (mut x, dz) = inputs(&narrow);
    x[5] = bf16::INFINITY;
    let mut out = vec![0f32; narrow.taps() * 32];
    assert!(!conv_weight_grad(
        &x,
        &narrow,
        &dz,
        &mut Vec::new(),
        &mut out
    ));
}

/// Other types and channel counts, and layouts far larger than the window matrix, are left to
/// the caller.
#[test]
fn it_declines_what_it_does_not_run() {
    assert!(!wgrad_ready::<f32>(32));
    assert!(!wgrad_ready::<bf16>(8));
    assert!(!wgrad_ready::<bf16>(0));
    // A column of one pixel per row: its rows padded to 32 pixels dwarf the window matrix.
    let wide = geometry((1, 256, 1, 16, 16, (1, 1), (1, 1), (1, 1), (0, 0)));
    let (x, dz) = inputs(&wide);
    let mut out = vec![0f32; wide.taps() * 16];
    assert!(!conv_weight_grad(&x, &wide, &dz, &mut Vec::new(), &mut out));
}

/// The AVX-512 layouts equal the portable loops' bit for bit, stale contents overwritten, for
/// channel counts of one and several registers, row tails, filter tails and strides.
#[test]
fn the_avx512_layouts_equal_the_portable_ones() {
    if !layout::simd_available() {
        eprintln!("no AVX-512 here: the register layouts do not run");
        return;
    }
    let cases: [Case; 5] = [
        (2, 16, 32, 64, 64, (3, 3), (1, 1), (1, 1), (1, 1)),
        (2, 12, 41, 16, 48, (3, 2), (1, 1), (1, 1), (1, 0)),
        (1, 11, 40, 96, 70, (3, 3), (2, 2), (1, 1), (1, 1)),
        (1, 9, 70, 48, 40, (5, 4), (2, 3), (1, 2), (2, 3)),
        (3, 5, 5, 16, 33, (1, 1), (1, 1), (1, 1), (0, 0)),
    ];
    for case in cases {
        let g = geometry(case);
        let (x, dz) = inputs(&g);
        let (x, dz): (&[u16], &[u16]) = (x.reinterpret_cast(), dz.reinterpret_cast());
        let (x_len, dz_len) = g.work_lens();
        let run = |simd: bool, stale: u16| {
            let (mut xp, mut dzt) = (vec![stale; x_len], vec![stale; dz_len]);
            layout::pairs(x, &g, &mut xp, simd, Run::Parallel);
            layout::filter_major(dz, &g, &mut dzt, simd, Run::Parallel);
            (xp, dzt)
        };
        let want = run(false, 0);
        let got = run(true, 0x7fc0);
        assert!(want.0 == got.0, "{case:?}: pair copies differ");
        assert!(want.1 == got.1, "{case:?}: filter-major dz differs");
    }
}
