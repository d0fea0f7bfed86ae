//! Scalar functions the layers evaluate in their accumulator type, written so the row loops
//! around them vectorise: [`exp_in_place`] (a branch-free f32 `exp`, Cephes's polynomial with
//! Cody–Waite range reduction, within 2 ulp of the exact value; f64 uses the standard library),
//! [`erfc`] (libm's, within 1 ulp), and lane-split reductions [`row_max`] / [`row_sum`] whose
//! summation order is fixed (independent of the CPU and the thread count).

use num_traits::Float;

use crate::dtype::{Element, SliceMut};

/// Lanes of the split reductions: one AVX-512 register of f32.
const LANES: usize = 16;

/// `e^x` in f32 without branches: `x = n·ln2 + r` with `|r| <= ln2/2` (ln2 split in two parts,
/// Cody–Waite), `e^r` by Cephes's degree-7 polynomial (`expf.c`), times `2^n` as two exact powers
/// of two (so results in the subnormal range underflow gradually). Within 2 ulp of `e^x` for
/// every finite `x` (measured against f64 in the tests over ±88 and the subnormal tail); `-inf`
/// and `x < -104` give 0, `x > 88.8` and `+inf` give `+inf`, NaN stays NaN.
#[inline(always)]
pub(crate) fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5·2^23: adding and subtracting it rounds to the nearest integer, without `round()`.
    const SHIFTER: f32 = 12_582_912.0;
    let xc = x.clamp(-104.0, 89.0);
    // The integer n sits in the low bits of `t` (|n| < 2^22): read it from the bits, since a
    // float-to-int `as` cast (saturating, NaN to 0) does not vectorise.
    let t = xc * LOG2E + SHIFTER;
    let n_int = t.to_bits() as i32 - SHIFTER.to_bits() as i32;
    let n = t - SHIFTER;
    let r = (xc - n * LN2_HI) - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5; // Cephes: 5.0000001201E-1, which is 0.5 in f32
    let e = p * (r * r) + r + 1.0;
    // n in [-150, 129]: split into two halves in [-75, 65], each a normal power of two.
    let n1 = n_int >> 1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    let y = e * pow2(n1) * pow2(n_int - n1);
    if x.is_nan() {
        x
    } else {
        y
    }
}

/// `xs[i] = e^{xs[i]}`: [`exp_f32`] for f32 (vectorised inside a [`wide`](crate::kernels::wide)
/// loop), the standard library's `exp` otherwise.
#[inline(always)]
pub(crate) fn exp_in_place<A: Element>(xs: &mut [A]) {
    match A::view_mut(xs) {
        SliceMut::F32(s) => s.iter_mut().for_each(|x| *x = exp_f32(*x)),
        SliceMut::F64(s) => s.iter_mut().for_each(|x| *x = x.exp()),
        _ => xs.iter_mut().for_each(|x| *x = x.exp()),
    }
}

/// The complementary error function `1 − erf(x)` (libm's `erfcf` / `erfc`, within 1 ulp):
/// accurate in relative terms where `erfc` is tiny, unlike `1 − erf`.
#[inline]
pub(crate) fn erfc<F: Float>(x: F) -> F {
    if std::mem::size_of::<F>() == 4 {
        F::from(libm::erfcf(x.to_f32().unwrap_or(f32::NAN))).unwrap_or_else(F::nan)
    } else {
        F::from(libm::erfc(x.to_f64().unwrap_or(f64::NAN))).unwrap_or_else(F::nan)
    }
}

/// The largest element of `xs` (`-inf` for an empty slice); NaN elements are skipped (callers
/// let NaN through their later arithmetic instead). Sixteen lanes, combined in a fixed order.
#[inline(always)]
pub(crate) fn row_max<A: Element>(xs: &[A]) -> A {
    let mut m = [A::neg_infinity(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &x) in m.iter_mut().zip(c) {
            *m = if x > *m { x } else { *m };
        }
    }
    for (m, &x) in m.iter_mut().zip(tail) {
        *m = if x > *m { x } else { *m };
    }
    m.into_iter()
        .fold(A::neg_infinity(), |a, b| if b > a { b } else { a })
}

/// `Σ xs` in sixteen lanes, combined in a fixed order (so it vectorises, and the result depends
/// only on the data).
#[inline(always)]
pub(crate) fn row_sum<A: Element>(xs: &[A]) -> A {
    row_sum_by(xs, |x| x)
}

/// `Σ f(xs[i])` as [`row_sum`].
#[inline(always)]
pub(crate) fn row_sum_by<A: Element>(xs: &[A], f: impl Fn(A) -> A) -> A {
    let mut s = [A::zero(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (s, &x) in s.iter_mut().zip(c) {
            *s = *s + f(x);
        }
    }
    for (s, &x) in s.iter_mut().zip(tail) {
        *s = *s + f(x);
    }
    s.into_iter().fold(A::zero(), |a, b| a + b)
}

/// `Σ a[i]·b[i]` as [`row_sum`].
#[inline(always)]
pub(crate) fn row_dot<A: Element>(a: &[A], b: &[A]) -> A {
    let mut s = [A::zero(); LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let (ta, tb) = (ca.remainder(), cb.remainder());
    for (ca, cb) in ca.zip(cb) {
        for ((s, &x), &y) in s.iter_mut().zip(ca).zip(cb) {
            *s = *s + x * y;
        }
    }
    for ((s, &x), &y) in s.iter_mut().zip(ta).zip(tb) {
        *s = *s + x * y;
    }
    s.into_iter().fold(A::zero(), |a, b| a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in f32 ulps between `y` and the exact `e^x` (from f64).
    fn ulps(y: f32, exact: f64) -> f64 {
        let ulp = f64::from(f32::EPSILON) * exact.abs().max(f64::from(f32::MIN_POSITIVE));
        ((f64::from(y) - exact) / ulp).abs()
    }

    #[test]
    fn exp_f32_is_within_2_ulp_everywhere() {
        let mut worst = 0.0f64;
        let mut x = -103.9f32;
        while x < 88.7 {
            let exact = f64::from(x).exp();
            let u = ulps(exp_f32(x), exact);
            // In the subnormal range an ulp is fixed: compare absolutely.
            let ok = if exact < f64::from(f32::MIN_POSITIVE) {
                (f64::from(exp_f32(x)) - exact).abs() <= 1.5 * 2f64.powi(-149)
            } else {
                worst = worst.max(u);
                u <= 2.0
            };
            assert!(ok, "exp({x}) = {} vs {exact}", exp_f32(x));
            x += 0.000_731;
        }
        assert!(worst > 0.0 && worst <= 2.0, "worst {worst}");
        assert_eq!(exp_f32(0.0), 1.0);
        assert_eq!(exp_f32(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_f32(-200.0), 0.0);
        assert_eq!(exp_f32(89.0), f32::INFINITY);
        assert_eq!(exp_f32(f32::INFINITY), f32::INFINITY);
        assert!(exp_f32(f32::NAN).is_nan());
    }

    #[test]
    fn erfc_is_accurate_in_its_tail() {
        // erfc(5) = 1.5374597944280349e-12 (relative accuracy where 1 - erf(5) would be 0 in f32).
        let e = erfc(5.0f32);
        assert!(
            (f64::from(e) / 1.537_459_794_428_035e-12 - 1.0).abs() < 1e-6,
            "{e}"
        );
        assert_eq!(erfc(0.0f64), 1.0);
        assert!((erfc(-3.0f64) - 1.999_977_909_503_001).abs() < 1e-15);
        assert!(erfc(f32::NAN).is_nan());
    }

    #[test]
    fn reductions_cover_every_element_and_skip_nan_in_max() {
        let xs: Vec<f32> = (0..37).map(|i| (i as f32 * 0.7).sin()).collect();
        let m = xs.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
        assert_eq!(row_max(&xs), m);
        assert!((row_sum(&xs) - xs.iter().sum::<f32>()).abs() < 1e-5);
        let dot: f32 = xs.iter().map(|x| x * x).sum();
        assert!((row_dot(&xs, &xs) - dot).abs() < 1e-5);
        assert_eq!(row_sum_by(&xs, |x| x * 0.0 + 1.0), 37.0);
        assert_eq!(row_max::<f32>(&[]), f32::NEG_INFINITY);
        assert_eq!(row_max(&[f32::NAN, 1.0]), 1.0);
    }
}
