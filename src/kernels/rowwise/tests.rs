//! The AVX-512 exponential against f64, and the wrappers' refusals. The kernels' outputs are
//! compared with the portable rows in the layers' tests (`layers::softmax`,
//! `layers::layer_norm`), and against f64 references through the layers everywhere else.

use std::arch::x86_64::*;

use half::bf16;

use super::avx512::{exp_lanes, exp_with, EXP_POLY};
use super::*;
use crate::kernels::kernels_for;

fn have_avx512() -> bool {
    kernels_for(KernelChoice::Auto).elementwise() == KernelChoice::Avx512
}

/// The kernel's `e^x` for each of 16 inputs, with the polynomial `poly`.
fn exp16(xs: &[f32; 16], poly: &[f32]) -> [f32; 16] {
    let mut out = [0f32; 16];
    // SAFETY: called only when `have_avx512`; both arrays are 16 lanes.
    unsafe {
        let v = exp_with(_mm512_loadu_ps(xs.as_ptr()), poly);
        _mm512_storeu_ps(out.as_mut_ptr(), v);
    }
    out
}

/// The largest error of the kernel's `e^x` in f32 ulps over a sweep of the finite range
/// (infinite when a subnormal result is more than 1.5 of its fixed ulps off).
fn worst_ulps(poly: &[f32]) -> f64 {
    let mut worst = 0.0f64;
    let mut xs = [0f32; 16];
    let mut x = -103.9f32;
    while x < 88.7 {
        for (j, v) in xs.iter_mut().enumerate() {
            *v = x + j as f32 * 0.000_731;
        }
        for (&x, y) in xs.iter().zip(exp16(&xs, poly)) {
            let exact = f64::from(x).exp();
            if exact < f64::from(f32::MIN_POSITIVE) {
                // A subnormal result: an ulp is fixed there, so at most 1.5 of them, absolutely.
                if (f64::from(y) - exact).abs() > 1.5 * 2f64.powi(-149) {
                    return f64::INFINITY;
                }
            } else {
                let ulp = f64::from(f32::EPSILON) * exact;
                worst = worst.max((f64::from(y) - exact).abs() / ulp);
            }
        }
        x += 16.0 * 0.000_731;
    }
    worst
}

#[test]
fn the_kernel_exp_is_within_2_ulp_and_the_bound_catches_a_dropped_term() {
    if !have_avx512() {
        return;
    }
    let worst = worst_ulps(&EXP_POLY);
    assert!(worst > 0.0 && worst <= 2.0, "worst {worst} ulp");
    // A wrong coefficient (the degree-6 term lost): a plausible slip the same check rejects.
    let mut wrong = EXP_POLY;
    wrong[1] = 0.0;
    let w = worst_ulps(&wrong);
    assert!(w > 2.0, "{w} {worst}");
}

#[test]
fn the_kernel_exp_handles_the_special_values_on_purpose() {
    if !have_avx512() {
        return;
    }
    let mut xs = [0f32; 16];
    let specials = [
        0.0,
        f32::NEG_INFINITY,
        -200.0,
        89.0,
        f32::INFINITY,
        f32::NAN,
        1.0,
    ];
    xs[..specials.len()].copy_from_slice(&specials);
    // SAFETY: AVX-512 checked above.
    let y = {
        let mut out = [0f32; 16];
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), exp_lanes(_mm512_loadu_ps(xs.as_ptr()))) };
        out
    };
    assert_eq!(&y[..5], &[1.0, 0.0, 0.0, f32::INFINITY, f32::INFINITY]);
    assert!(y[5].is_nan());
    assert!((f64::from(y[6]) - std::f64::consts::E).abs() <= f64::from(f32::EPSILON) * 3.0);
}

#[test]
fn the_wrappers_refuse_what_they_have_no_kernel_for() {
    let x = vec![bf16::ONE; 20];
    let mut out = vec![0f32; 20];
    let mut buf = Vec::new();
    let auto = kernels_for(KernelChoice::Auto);
    // Mixed types, and the portable ceiling: nothing runs.
    assert!(!softmax_row(
        auto,
        SliceRef::Bf16(&x),
        SliceMut::F32(&mut out),
        &mut buf
    ));
    let mut same = vec![bf16::ZERO; 20];
    let portable = kernels_for(KernelChoice::Portable);
    assert!(!softmax_row(
        portable,
        SliceRef::Bf16(&x),
        SliceMut::Bf16(&mut same),
        &mut buf
    ));
    assert_eq!(same, vec![bf16::ZERO; 20]);
    let short = [1f32; 3];
    let norm = NormRow {
        gamma: Some(&short),
        beta: None,
        epsilon: 1e-3,
    };
    let r = layer_norm_row(
        auto,
        SliceRef::Bf16(&x),
        SliceMut::Bf16(&mut same),
        &mut buf,
        norm,
    );
    assert!(r.is_none(), "a γ shorter than the row is refused");
    assert_eq!(
        softmax_row(
            auto,
            SliceRef::Bf16(&x),
            SliceMut::Bf16(&mut same),
            &mut buf
        ),
        have_avx512()
    );
}

/// Rows whose softmax and scaled normalisation have subnormal outputs (`e^{-88}` and a `γ` of
/// `1e-39`), a NaN row, and lengths that leave a single vector and a masked tail after the pairs.
#[test]
fn the_bf16_instruction_rounding_gives_the_integer_bits_subnormals_included() {
    let auto = kernels_for(KernelChoice::Auto);
    if !have_avx512() || !auto.pack_bf16_native() {
        return;
    }
    let mut subnormal = 0;
    for (n, salt) in [(1000usize, 0usize), (64, 1), (48, 2), (7, 3)] {
        let mut x: Vec<bf16> = (0..n)
            .map(|j| bf16::from_f32(-(((j * 7 + salt) % 100) as f32) * 0.95))
            .collect();
        if salt == 2 {
            x[5] = bf16::NAN;
        }
        let gamma: Vec<f32> = (0..n)
            .map(|j| if j % 2 == 0 { 1e-39 } else { 1.5 })
            .collect();
        let norm = NormRow {
            gamma: Some(&gamma),
            beta: None,
            epsilon: 1e-3,
        };
        let (mut a, mut b, mut buf) = (vec![bf16::ZERO; n], vec![bf16::ZERO; n], vec![0f32; n]);
        // SAFETY: AVX-512 and AVX512-BF16 checked above; every slice is `n` long.
        unsafe {
            super::avx512::softmax_row(&x, &mut a, &mut buf);
            super::avx512::softmax_row_bf16ne(&x, &mut b, &mut buf);
        }
        // The first element whose bits differ, if any.
        let differ = |a: &[bf16], b: &[bf16]| {
            let i = a
                .iter()
                .zip(b)
                .position(|(x, y)| x.to_bits() != y.to_bits());
            i.map(|i| (i, a[i], b[i]))
        };
        assert_eq!(differ(&a, &b), None, "softmax, n = {n}");
        subnormal += b.iter().filter(|e| e.to_f32().is_subnormal()).count();
        // SAFETY: as above; γ is as long as the row.
        let (sa, sb) = unsafe {
            (
                super::avx512::layer_norm_row(&x, &mut a, &mut buf, norm),
                super::avx512::layer_norm_row_bf16ne(&x, &mut b, &mut buf, norm),
            )
        };
        assert_eq!(differ(&a, &b), None, "layer norm, n = {n}");
        assert_eq!(format!("{sa:?}"), format!("{sb:?}"));
        subnormal += b.iter().filter(|e| e.to_f32().is_subnormal()).count();
    }
    // The instruction alone would have flushed these to zero: the fallback ran.
    assert!(subnormal > 100, "{subnormal} subnormal outputs");
}
