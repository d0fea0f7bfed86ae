//! The implicit input gradient against an f64 sum over the windows that read each input
//! element (the adjoint of the forward window, through `Axis::readers`), with the bound of an
//! f32 sum of `kh·kw·filters` terms rounded once to bf16; and wrong gradients (the kernel not
//! flipped, one kernel row dropped) that the bound rejects. The forward product's bits are
//! tested in `kernels/gemm/implicit`.

use half::bf16;

use super::*;
use crate::layers::ops::window::Padding;

fn values(n: usize, salt: usize) -> Vec<bf16> {
    (0..n)
        .map(|i| bf16::from_f32(((i * 7919 + salt * 104_729) % 2001) as f32 / 1000.0 - 1.0))
        .collect()
}

/// `(dx, Σ|terms|)` in f64 for `dz` and `w` (`[kh, kw, c, f]`); `unflipped` reads the kernel
/// unflipped and `drop_row` leaves kernel row `kh - 1` out: the bugs the bound must see.
fn reference(
    dz: &[bf16],
    w: &[bf16],
    g: &Window2d,
    f: usize,
    unflipped: bool,
    drop_row: bool,
) -> (Vec<f64>, Vec<f64>) {
    let (h, wd, c) = (g.h, g.w, g.channels);
    let len = g.batch * h.input * wd.input * c;
    let (mut dx, mut mag) = (vec![0.0; len], vec![0.0; len]);
    for img in 0..g.batch {
        for iy in 0..h.input {
            for ix in 0..wd.input {
                for (oy, ky) in h.readers(iy) {
                    for (ox, kx) in wd.readers(ix) {
                        if drop_row && ky == h.kernel - 1 {
                            continue;
                        }
                        let (ry, rx) = if unflipped {
                            (h.kernel - 1 - ky, wd.kernel - 1 - kx)
                        } else {
                            (ky, kx)
                        };
                        let d = &dz[((img * h.output + oy) * wd.output + ox) * f..][..f];
                        for ci in 0..c {
                            let at = ((img * h.input + iy) * wd.input + ix) * c + ci;
                            let wrow = &w[((ry * wd.kernel + rx) * c + ci) * f..][..f];
                            for (a, b) in d.iter().zip(wrow) {
                                dx[at] += a.to_f64() * b.to_f64();
                                mag[at] += (a.to_f64() * b.to_f64()).abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, mag)
}

/// The first element outside `|got - dx| <= 2^-8·|dx| + γ_k·Σ|terms|`, k = kh·kw·f.
fn violation(got: &[bf16], (dx, mag): &(Vec<f64>, Vec<f64>), k: usize) -> Option<usize> {
    let u32 = f64::from(f32::EPSILON) / 2.0;
    let gamma = k as f64 * u32 / (1.0 - k as f64 * u32);
    (0..got.len()).find(|&i| {
        (got[i].to_f64() - dx[i]).abs() > dx[i].abs() / 256.0 + gamma * mag[i] * (1.0 + 1.0 / 256.0)
    })
}

#[test]
fn the_implicit_input_gradient_is_within_the_bf16_bound() {
    // (shape, (kernel, dilation) per axis, padding, filters)
    let cases = [
        ([2, 16, 32, 32], [(3, 1, 1), (3, 1, 1)], Padding::Same, 64),
        ([1, 9, 21, 64], [(3, 1, 2), (2, 1, 1)], Padding::Same, 32),
        ([1, 10, 12, 32], [(3, 1, 1), (5, 1, 2)], Padding::Valid, 32),
        ([2, 6, 7, 48], [(1, 1, 1), (1, 1, 1)], Padding::Same, 32),
    ];
    for (shape, args, padding, f) in cases {
        let g = Window2d::new("t", &shape, None, args, padding).unwrap();
        let (kh, kw, c) = (g.h.kernel, g.w.kernel, g.channels);
        let dz = values(g.output_rows() * f, 1);
        let w = values(kh * kw * c * f, 2);
        // `buf` has stale contents; dx is written into dz's allocation when that fits (the
        // first case), over dz's values.
        let mut buf = vec![bf16::ONE; 5];
        let mut given = dz.clone();
        let Some(got) = input_grad(&mut given, &g, &w, f, &mut buf) else {
            eprintln!("no AMX tiles here: the implicit input gradient does not run");
            return;
        };
        let reused = (got.len()..=2 * got.len()).contains(&dz.len());
        assert_eq!(given.is_empty(), reused, "{shape:?}: dz's buffer reused");
        let k = kh * kw * f;
        let right = reference(&dz, &w, &g, f, false, false);
        assert_eq!(got.len(), right.0.len());
        if let Some(i) = violation(&got, &right, k) {
            panic!(
                "{shape:?} {args:?} {padding}: dx[{i}] = {} not {}",
                got[i], right.0[i]
            );
        }
        if kh > 1 {
            let unflipped = reference(&dz, &w, &g, f, true, false);
            assert!(
                violation(&got, &unflipped, k).is_some(),
                "unflipped kernel passed"
            );
            let dropped = reference(&dz, &w, &g, f, false, true);
            assert!(
                violation(&got, &dropped, k).is_some(),
                "a dropped kernel row passed"
            );
        }
    }
}

/// Strides other than 1, and filters the implicit product cannot take as channels (not a
/// multiple of 32 on the tiles, odd on k-pairs), are left to the window-matrix path.
#[test]
fn strides_and_odd_filters_decline() {
    let g = Window2d::new("t", &[1, 8, 8, 32], None, [(3, 2, 1); 2], Padding::Same).unwrap();
    let mut buf = Vec::new();
    let dz = values(g.output_rows() * 32, 1);
    let w = values(9 * 32 * 32, 2);
    assert!(input_grad(&mut dz.clone(), &g, &w, 32, &mut buf).is_none());
    let g = Window2d::new("t", &[1, 8, 8, 32], None, [(3, 1, 1); 2], Padding::Same).unwrap();
    // 16 filters: not a multiple of 32 for the tiles; 15: odd, for k-pairs too.
    let amx = crate::kernels::selected().gemm(DType::BFloat16) == KernelChoice::Amx;
    let filters = if amx { 16 } else { 15 };
    let mut dz = values(g.output_rows() * filters, 1);
    let w = &w[..9 * 32 * filters];
    assert!(input_grad(&mut dz, &g, w, filters, &mut buf).is_none());
    assert_eq!(dz.len(), g.output_rows() * filters, "dz kept on None");
}

/// A `Conv2D<MixedBf16>` training step's kernel gradient (f32, from the tiles after an implicit
/// forward product) within the bound of an f32 sum of `K` exact products of an f64 sum over the
/// window matrix (`K` the output pixels with each row padded to 32), for Keras's paddings and
/// strides; the same sum with the last output row's pixels left out leaves the bound.
#[test]
fn the_layers_tile_kernel_gradient_is_within_the_f32_bound() {
    use crate::layers::ops::im2col::im2col;
    use crate::layers::{Conv2DConfig, Layer};
    use crate::policy::MixedBf16;
    use crate::tensor::Tensor;
    let cases = [
        ([2, 8, 32, 32], (3, 3), (1, 1), Padding::Same, 64),
        ([1, 9, 20, 64], (2, 3), (2, 2), Padding::Same, 40),
        ([1, 7, 33, 32], (3, 1), (1, 2), Padding::Valid, 32),
    ];
    for (shape, kernel, strides, padding, f) in cases {
        let mut conv: crate::layers::Conv2D<MixedBf16> = Conv2DConfig::new(f, kernel)
            .strides(strides)
            .padding(padding)
            .use_bias(false)
            .seed(3)
            .init(shape[3])
            .unwrap();
        if !implicit_ready(conv.kernel.packed(false), shape[3]) {
            eprintln!("no AMX tiles here: the tile kernel gradient does not run");
            return;
        }
        let x = values(shape.iter().product(), 1);
        let y = conv
            .train_forward(Tensor::from_vec(shape.to_vec(), x.clone()).unwrap())
            .unwrap();
        let dz = values(y.len(), 2);
        let dy = Tensor::from_vec(y.shape().to_vec(), dz.clone()).unwrap();
        conv.backward(dy, false).unwrap();
        let got = conv.kernel_param().grad().unwrap().as_slice().to_vec();
        let g = Window2d::new(
            "t",
            &shape,
            None,
            [(kernel.0, strides.0, 1), (kernel.1, strides.1, 1)],
            padding,
        )
        .unwrap();
        let (rows, taps) = (g.output_rows(), g.taps());
        let mut cols = vec![bf16::ZERO; rows * taps];
        im2col(&x, &g, 0..rows, &mut cols);
        let k = (g.batch * g.h.output * g.w.output.next_multiple_of(32)) as f64;
        let u = f64::from(f32::EPSILON) / 2.0;
        let gamma = k * u / (1.0 - k * u);
        let last_row = |r: usize| (r / g.w.output) % g.h.output == g.h.output - 1;
        let outside = |skip_last: bool| {
            (0..taps * f).any(|i| {
                let (t, j) = (i / f, i % f);
                let (mut sum, mut mag) = (0.0, 0.0);
                for r in (0..rows).filter(|&r| !(skip_last && last_row(r))) {
                    let p = cols[r * taps + t].to_f64() * dz[r * f + j].to_f64();
                    sum += p;
                    mag += p.abs();
                }
                (f64::from(got[i]) - sum).abs() > gamma * mag
            })
        };
        assert!(
            !outside(false),
            "{shape:?} {kernel:?} {strides:?} {padding}"
        );
        assert!(outside(true), "a dropped row passed");
    }
}

/// The forward product with its epilogue fused into the tile stores has the bits of the f32
/// sums ([`conv_implicit`], itself bit-identical to the window-matrix product) through the
/// separate bias, activation and rounding pass, for every activation, with and without a bias,
/// at widths and row counts that leave edge blocks.
#[test]
fn the_fused_forward_has_the_bits_of_sums_then_the_fused_pass() {
    use crate::kernels::gemm::{conv_implicit, pack_b_with};
    use crate::kernels::KernelChoice;
    use crate::layers::ops::fused::{bias_activation_block, bias_activation_round};
    use crate::layers::Activation;
    let g = Window2d::new("t", &[2, 7, 37, 32], None, [(3, 1, 1); 2], Padding::Same).unwrap();
    for f in [32, 48] {
        let w = values(g.taps() * f, 2);
        let packed = pack_b_with(KernelChoice::Amx, MatRef::row_major(&w, g.taps(), f));
        let x = values(g.batch * 7 * 37 * 32, 1);
        let bias: Vec<f32> = (0..f).map(|j| j as f32 / 7.0 - 3.0).collect();
        let acts = [
            Activation::Linear,
            Activation::Relu,
            Activation::Gelu,
            Activation::Sigmoid,
        ];
        for (act, b) in acts
            .into_iter()
            .flat_map(|a| [(a, None), (a, Some(&bias[..]))])
        {
            let epilogue = |col: usize, block: &mut [f32], width: usize| {
                bias_activation_block(
                    block,
                    (col, width, crate::kernels::gemm::BLOCK_PITCH),
                    b,
                    act,
                )
            };
            let mut buf = Vec::new();
            let Some(got) = forward(&x, &g, &packed, &mut buf, &epilogue) else {
                eprintln!("no AMX tiles here: the fused forward does not run");
                return;
            };
            let at = buf.as_ptr().align_offset(64).min(64);
            let ig = ImplicitConv {
                batch: 2,
                in_h: 9,
                in_w: 39,
                channels: 32,
                out_h: 7,
                out_w: 37,
                kernel: (3, 3),
                stride: (1, 1),
                dilation: (1, 1),
            };
            let mut sums = vec![0f32; g.output_rows() * f];
            assert!(conv_implicit(&buf[at..], &ig, &packed, &mut sums));
            let want: Vec<bf16> = bias_activation_round(&mut sums, f, b, act);
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same && got.len() == want.len(),
                "{act:?}, bias {}",
                b.is_some()
            );
        }
    }
}
