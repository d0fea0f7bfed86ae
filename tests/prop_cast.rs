//! Bulk casts (`dtype::cast_slice`, `cast_to_vec`, `Tensor::cast`) against a correctly rounded
//! f64 reference (`common::Format::round`): every 16-bit pattern exhaustively, hand-picked
//! ties, specials, subnormals and overflow, and proptest over arbitrary f32 and f64 inputs.

mod common;

use common::{Format, BF16, F16, F32};
use mixprec::dtype::{cast_slice, cast_to_vec};
use mixprec::{bf16, f16, Element, Tensor};
use proptest::prelude::*;

/// Same value, bit for bit (so `-0.0` differs from `0.0`), any NaN equal to any NaN.
fn same(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()
}

/// Casts `src` with `cast_slice` and checks every element against `format.round`.
fn check_against_reference<T: Element, U: Element>(src: &[T], format: Format) {
    let mut dst = vec![U::default(); src.len()];
    cast_slice(src, &mut dst);
    for (i, (s, d)) in src.iter().zip(&dst).enumerate() {
        let want = format.round(s.as_f64());
        assert!(
            same(d.as_f64(), want),
            "{:?} → {:?}, element {i}: {:e} gave {:e}, want {want:e}",
            T::DTYPE,
            U::DTYPE,
            s.as_f64(),
            d.as_f64()
        );
    }
}

/// The value of f16 bits, decoded by hand: `(-1)^s · 2^(e-15) · 1.m` (normal) or
/// `2^-14 · 0.m` (subnormal).
fn decode_f16(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let e = i32::from((bits >> 10) & 0x1f);
    let m = f64::from(bits & 0x3ff);
    sign * match e {
        0 => m * 2f64.powi(-24),
        31 if m == 0.0 => f64::INFINITY,
        31 => f64::NAN,
        _ => (1.0 + m / 1024.0) * 2f64.powi(e - 15),
    }
}

/// The value of bf16 bits: the top half of an f32.
fn decode_bf16(bits: u16) -> f64 {
    let sign = if bits >> 15 == 1 { -1.0 } else { 1.0 };
    let e = i32::from((bits >> 7) & 0xff);
    let m = f64::from(bits & 0x7f);
    sign * match e {
        0 => m * 2f64.powi(-133),
        255 if m == 0.0 => f64::INFINITY,
        255 => f64::NAN,
        _ => (1.0 + m / 128.0) * 2f64.powi(e - 127),
    }
}

fn all_f16() -> Vec<f16> {
    (0..=u16::MAX).map(f16::from_bits).collect()
}

fn all_bf16() -> Vec<bf16> {
    (0..=u16::MAX).map(bf16::from_bits).collect()
}

// ---------------------------------------------------------------------------------------------
// Exhaustive: all 65536 patterns of each 16-bit type
// ---------------------------------------------------------------------------------------------

#[test]
fn f16_every_bit_pattern_widens_exactly_and_round_trips() {
    let src = all_f16();
    let wide: Vec<f32> = cast_to_vec(&src);
    for (s, w) in src.iter().zip(&wide) {
        assert!(
            same(f64::from(*w), decode_f16(s.to_bits())),
            "{:#06x}",
            s.to_bits()
        );
    }
    let back: Vec<f16> = cast_to_vec(&wide);
    for (s, b) in src.iter().zip(&back) {
        if s.is_nan() {
            assert!(b.is_nan(), "NaN {:#06x} came back as {b}", s.to_bits());
        } else {
            assert_eq!(s.to_bits(), b.to_bits());
        }
    }
    // The same through Tensor::cast, with a shape.
    let t = Tensor::from_vec(vec![256, 256], src.clone()).unwrap();
    let back = t.cast::<f32>().cast::<f16>();
    assert_eq!(back.shape(), &[256, 256]);
    let kept = |a: &f16, b: &f16| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    assert!(src.iter().zip(back.as_slice()).all(|(a, b)| kept(a, b)));
}

#[test]
fn bf16_every_bit_pattern_widens_exactly_and_round_trips() {
    let src = all_bf16();
    let wide: Vec<f32> = cast_to_vec(&src);
    for (s, w) in src.iter().zip(&wide) {
        assert!(
            same(f64::from(*w), decode_bf16(s.to_bits())),
            "{:#06x}",
            s.to_bits()
        );
    }
    let back: Vec<bf16> = cast_to_vec(&wide);
    for (s, b) in src.iter().zip(&back) {
        if s.is_nan() {
            assert!(b.is_nan(), "NaN {:#06x} came back as {b}", s.to_bits());
        } else {
            assert_eq!(s.to_bits(), b.to_bits());
        }
    }
    let t = Tensor::from_vec(vec![65536], src.clone()).unwrap();
    let back = t.cast::<f32>().cast::<bf16>();
    let kept = |a: &bf16, b: &bf16| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits();
    assert!(src.iter().zip(back.as_slice()).all(|(a, b)| kept(a, b)));
}

#[test]
fn every_16_bit_pattern_round_trips_through_f64() {
    let h = all_f16();
    let back: Vec<f16> = cast_to_vec(&cast_to_vec::<f16, f64>(&h));
    assert!(h
        .iter()
        .zip(&back)
        .all(|(a, b)| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()));
    let b16 = all_bf16();
    let back: Vec<bf16> = cast_to_vec(&cast_to_vec::<bf16, f64>(&b16));
    assert!(b16
        .iter()
        .zip(&back)
        .all(|(a, b)| (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits()));
}

#[test]
fn f16_to_bf16_and_back_round_once_for_every_pattern() {
    // Both directions go through f32 in chunks of 512; 65536 elements cross many chunk edges.
    check_against_reference::<f16, bf16>(&all_f16(), BF16);
    check_against_reference::<bf16, f16>(&all_bf16(), F16);
}

// ---------------------------------------------------------------------------------------------
// Hand-picked cases
// ---------------------------------------------------------------------------------------------

/// `(m + 1/2)·ulp` for significands `m` of binade `e`: halfway between two neighbours, it must go
/// to the even one, `m` (m even) or `m + 1` (m odd).
fn ties_in_binade(p: i32, e: i32) -> Vec<(f64, f64)> {
    let ulp = 2f64.powi(e - (p - 1));
    let first = 1i64 << (p - 1);
    let last = (1i64 << p) - 1;
    [first, first + 1, first + 2, first + 3, last - 1, last]
        .into_iter()
        .map(|m| {
            let tie = (m as f64 + 0.5) * ulp;
            let even = if m % 2 == 0 { m } else { m + 1 };
            (tie, even as f64 * ulp)
        })
        .collect()
}

fn check_ties<U: Element>(p: i32, exponents: &[i32], max_finite: f64) {
    for &e in exponents {
        for (tie, want) in ties_in_binade(p, e) {
            let want = if want > max_finite {
                f64::INFINITY
            } else {
                want
            };
            for sign in [1.0, -1.0] {
                let from_f32: Vec<U> = cast_to_vec(&[(sign * tie) as f32]);
                let from_f64: Vec<U> = cast_to_vec(&[sign * tie]);
                assert_eq!(from_f32[0].as_f64(), sign * want, "f32 tie {tie:e} (2^{e})");
                assert_eq!(from_f64[0].as_f64(), sign * want, "f64 tie {tie:e} (2^{e})");
            }
        }
    }
}

#[test]
fn f16_ties_go_to_even_at_several_exponents() {
    // -14: lowest normal binade; 15: the top one, where the last tie rounds up to inf.
    check_ties::<f16>(11, &[-14, -7, -1, 0, 1, 8, 15], F16.max_finite());
    // Subnormal ties: (m + 1/2)·2^-24.
    let cases = [
        (0.5, 0.0),
        (1.5, 2.0),
        (2.5, 2.0),
        (1022.5, 1022.0),
        (1023.5, 1024.0),
    ];
    for (tie, want) in cases {
        let v: Vec<f16> = cast_to_vec(&[(tie * 2f64.powi(-24)) as f32]);
        assert_eq!(v[0].to_f64(), want * 2f64.powi(-24), "{tie}·2^-24");
    }
}

#[test]
fn bf16_ties_go_to_even_at_several_exponents() {
    check_ties::<bf16>(8, &[-126, -60, -1, 0, 1, 64, 127], BF16.max_finite());
    let cases = [
        (0.5, 0.0),
        (1.5, 2.0),
        (2.5, 2.0),
        (126.5, 126.0),
        (127.5, 128.0),
    ];
    for (tie, want) in cases {
        let v: Vec<bf16> = cast_to_vec(&[(tie * 2f64.powi(-133)) as f32]);
        assert_eq!(v[0].to_f64(), want * 2f64.powi(-133), "{tie}·2^-133");
    }
}

#[test]
fn nan_stays_nan_in_every_direction() {
    let f32_nans = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001), // signaling, payload only in the low bits
        f32::from_bits(0xff80_0001),
        f32::from_bits(0x7fc0_0000),
        f32::from_bits(0x7fff_ffff),
    ];
    assert!(cast_to_vec::<f32, f16>(&f32_nans)
        .iter()
        .all(|v| v.is_nan()));
    assert!(cast_to_vec::<f32, bf16>(&f32_nans)
        .iter()
        .all(|v| v.is_nan()));
    let f64_nans = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001),
        f64::from_bits(0x7ff8_0000_0000_0000),
    ];
    assert!(cast_to_vec::<f64, f16>(&f64_nans)
        .iter()
        .all(|v| v.is_nan()));
    assert!(cast_to_vec::<f64, bf16>(&f64_nans)
        .iter()
        .all(|v| v.is_nan()));
    assert!(cast_to_vec::<f64, f32>(&f64_nans)
        .iter()
        .all(|v| v.is_nan()));
    let h = [f16::NAN, f16::from_bits(0x7c01), f16::from_bits(0xfc01)];
    assert!(cast_to_vec::<f16, bf16>(&h).iter().all(|v| v.is_nan()));
    assert!(cast_to_vec::<f16, f64>(&h).iter().all(|v| v.is_nan()));
    let b = [bf16::NAN, bf16::from_bits(0x7f81), bf16::from_bits(0xff81)];
    assert!(cast_to_vec::<bf16, f16>(&b).iter().all(|v| v.is_nan()));
    assert!(cast_to_vec::<bf16, f64>(&b).iter().all(|v| v.is_nan()));
}

#[test]
fn infinities_survive_every_direction() {
    for sign in [1.0f64, -1.0] {
        let inf = sign * f64::INFINITY;
        assert_eq!(cast_to_vec::<f64, f16>(&[inf])[0].to_f64(), inf);
        assert_eq!(cast_to_vec::<f64, bf16>(&[inf])[0].to_f64(), inf);
        assert_eq!(cast_to_vec::<f32, f16>(&[inf as f32])[0].to_f64(), inf);
        assert_eq!(cast_to_vec::<f32, bf16>(&[inf as f32])[0].to_f64(), inf);
        let h = cast_to_vec::<f64, f16>(&[inf]);
        assert_eq!(cast_to_vec::<f16, bf16>(&h)[0].to_f64(), inf);
        assert_eq!(cast_to_vec::<f16, f32>(&h)[0] as f64, inf);
        let b = cast_to_vec::<f64, bf16>(&[inf]);
        assert_eq!(cast_to_vec::<bf16, f16>(&b)[0].to_f64(), inf);
        assert_eq!(cast_to_vec::<bf16, f64>(&b)[0], inf);
    }
}

#[test]
fn f16_overflow_rounds_to_inf_exactly_past_the_halfway_point() {
    // 65504 is f16::MAX; the next step would be 65536, so 65520 is the tie, and it goes to the
    // even neighbour, which is 65536: out of range, hence inf.
    let src32 = [
        65519.0f32,
        65520.0,
        -65519.0,
        -65520.0,
        65519.996,
        1e10,
        f32::MAX,
    ];
    let got: Vec<f64> = cast_to_vec::<f32, f16>(&src32)
        .iter()
        .map(|v| v.to_f64())
        .collect();
    let inf = f64::INFINITY;
    assert_eq!(got, vec![65504.0, inf, -65504.0, -inf, 65504.0, inf, inf]);
    let src64 = [
        65_519.999_999_999,
        65520.0,
        65_520.000_000_001,
        -65520.0,
        1e300,
    ];
    let got: Vec<f64> = cast_to_vec::<f64, f16>(&src64)
        .iter()
        .map(|v| v.to_f64())
        .collect();
    assert_eq!(got, vec![65504.0, inf, inf, -inf, inf]);
    // bf16 to f16 overflows too (bf16 reaches 3.4e38).
    let b = [bf16::from_f32(65536.0), bf16::from_f32(65280.0)];
    let got: Vec<f64> = cast_to_vec::<bf16, f16>(&b)
        .iter()
        .map(|v| v.to_f64())
        .collect();
    assert_eq!(got, vec![inf, 65280.0]);
}

#[test]
fn bf16_overflow_rounds_to_inf_past_the_halfway_point() {
    // bf16::MAX is (2 − 2^-7)·2^127; the halfway point to 2^128 is (2 − 2^-8)·2^127, f32
    // bits 0x7f7f_8000.
    let tie = f32::from_bits(0x7f7f_8000);
    let below = f32::from_bits(0x7f7f_7fff);
    let got: Vec<bf16> = cast_to_vec(&[tie, below, f32::MAX]);
    assert_eq!(got, vec![bf16::INFINITY, bf16::MAX, bf16::INFINITY]);
    let got: Vec<bf16> = cast_to_vec(&[f64::from(tie), f64::from(below), 1e39]);
    assert_eq!(got, vec![bf16::INFINITY, bf16::MAX, bf16::INFINITY]);
}

#[test]
fn subnormals_convert_exactly_and_round_correctly() {
    // f16 subnormals: k·2^-24. Widening is exact (also covered exhaustively above).
    let tiny = f16::from_bits(1);
    assert_eq!(cast_to_vec::<f16, f32>(&[tiny])[0], 2f32.powi(-24));
    assert_eq!(cast_to_vec::<f16, f64>(&[tiny])[0], 2f64.powi(-24));
    // Narrowing into the subnormal range: half the smallest subnormal is a tie to 0; anything
    // above it rounds up; the largest subnormal plus half a step rounds to the smallest normal.
    let s = 2f32.powi(-24);
    let src = [
        s / 2.0,
        s / 2.0 * 1.0001,
        s * 0.75,
        s * 3.0,
        1023.0 * s + s / 2.0,
        -s / 2.0,
    ];
    let got: Vec<f64> = cast_to_vec::<f32, f16>(&src)
        .iter()
        .map(|v| v.to_f64())
        .collect();
    let sd = f64::from(s);
    assert_eq!(got, vec![0.0, sd, sd, 3.0 * sd, 1024.0 * sd, -0.0]);
    assert!(got[5].is_sign_negative(), "-tiny rounds to -0");
    // bf16 subnormals sit in f32's subnormal range: k·2^-133.
    let tiny = bf16::from_bits(1);
    assert_eq!(cast_to_vec::<bf16, f32>(&[tiny])[0], 2f32.powi(-133));
    let s = 2f32.powi(-133);
    let src = [
        s / 2.0,
        s * 0.75,
        f32::from_bits(1),
        s * 3.0,
        f32::MIN_POSITIVE,
    ];
    let got: Vec<f64> = cast_to_vec::<f32, bf16>(&src)
        .iter()
        .map(|v| v.to_f64())
        .collect();
    let sd = f64::from(s);
    assert_eq!(got, vec![0.0, sd, 0.0, 3.0 * sd, 2f64.powi(-126)]);
    // From f64: values below f32's range still round correctly into bf16, and to zero in f16.
    let got: Vec<bf16> = cast_to_vec(&[2f64.powi(-133) * 0.75, 1e-300]);
    assert_eq!(got, vec![bf16::from_bits(1), bf16::ZERO]);
    let got: Vec<f16> = cast_to_vec(&[2f64.powi(-24) * 0.75, 1e-300, 5e-324]);
    assert_eq!(got, vec![f16::from_bits(1), f16::ZERO, f16::ZERO]);
}

#[test]
fn f64_to_16_bit_rounds_once_not_through_f32() {
    // Just above a tie: f32 would round the excess away, leaving a tie that goes to even (down).
    // One correct rounding goes up.
    let above_bf16 = 1.0 + 2f64.powi(-8) + 2f64.powi(-40);
    let above_f16 = 1.0 + 2f64.powi(-11) + 2f64.powi(-40);
    assert_eq!(
        f64::from(above_bf16 as f32),
        1.0 + 2f64.powi(-8),
        "f32 makes it a tie"
    );
    assert_eq!(
        cast_to_vec::<f64, bf16>(&[above_bf16])[0].to_f64(),
        1.0 + 2f64.powi(-7)
    );
    assert_eq!(
        cast_to_vec::<f64, f16>(&[above_f16])[0].to_f64(),
        1.0 + 2f64.powi(-10)
    );
    // Just below a tie whose even neighbour is above: one rounding goes down.
    let below_bf16 = 1.0 + 3.0 * 2f64.powi(-8) - 2f64.powi(-40);
    let below_f16 = 1.0 + 3.0 * 2f64.powi(-11) - 2f64.powi(-40);
    assert_eq!(
        cast_to_vec::<f64, bf16>(&[below_bf16])[0].to_f64(),
        1.0 + 2f64.powi(-7)
    );
    assert_eq!(
        cast_to_vec::<f64, f16>(&[below_f16])[0].to_f64(),
        1.0 + 2f64.powi(-10)
    );
    // The same near overflow: just below f16's halfway point stays finite.
    let below_inf = 65520.0 - 2f64.powi(-30);
    assert_eq!(cast_to_vec::<f64, f16>(&[below_inf])[0].to_f64(), 65504.0);
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

/// A value within one f32 ulp of the midpoint of two adjacent f16 values: the cases where a
/// rounding mistake shows.
fn near_f16_tie() -> impl Strategy<Value = f32> {
    (0u16..0x7bff, -1i32..=1, any::<bool>()).prop_map(|(bits, step, neg)| {
        let lo = f16::from_bits(bits).to_f32();
        let hi = f16::from_bits(bits + 1).to_f32();
        let mid = (lo + hi) / 2.0; // exact: one more bit than f16 has
        let v = f32::from_bits((mid.to_bits() as i64 + i64::from(step)) as u32);
        if neg {
            -v
        } else {
            v
        }
    })
}

/// The same for bf16.
fn near_bf16_tie() -> impl Strategy<Value = f32> {
    (0u16..0x7f7f, -1i32..=1).prop_map(|(bits, step)| {
        let lo = bf16::from_bits(bits).to_f32();
        let hi = bf16::from_bits(bits + 1).to_f32();
        let mid = (lo + hi) / 2.0;
        f32::from_bits((mid.to_bits() as i64 + i64::from(step)) as u32)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    // Lengths up to 70 cross the SIMD kernels' block sizes and leave scalar tails.
    #[test]
    fn prop_f32_to_16_bit_is_correctly_rounded(
        v in prop::collection::vec(prop::num::f32::ANY, 0..70),
    ) {
        check_against_reference::<f32, f16>(&v, F16);
        check_against_reference::<f32, bf16>(&v, BF16);
    }

    #[test]
    fn prop_f32_near_ties_are_correctly_rounded(
        h in prop::collection::vec(near_f16_tie(), 1..40),
        b in prop::collection::vec(near_bf16_tie(), 1..40),
    ) {
        check_against_reference::<f32, f16>(&h, F16);
        check_against_reference::<f32, bf16>(&b, BF16);
    }

    #[test]
    fn prop_f64_to_narrower_is_correctly_rounded(
        v in prop::collection::vec(prop::num::f64::ANY, 0..40),
    ) {
        check_against_reference::<f64, f16>(&v, F16);
        check_against_reference::<f64, bf16>(&v, BF16);
        check_against_reference::<f64, f32>(&v, F32);
    }

    #[test]
    fn prop_f64_near_16_bit_ties_round_once(
        mid in near_f16_tie(),
        offset in -2.0f64..2.0,
    ) {
        // An f64 within 2^-30 relative of an f16 midpoint: f32 cannot tell it from the tie.
        let x = f64::from(mid) * (1.0 + offset * 2f64.powi(-30));
        check_against_reference::<f64, f16>(&[x], F16);
        check_against_reference::<f64, bf16>(&[x], BF16);
    }

    #[test]
    fn prop_widening_is_exact_and_narrowing_back_is_identity(
        v in prop::collection::vec(prop::num::f32::NORMAL | prop::num::f32::SUBNORMAL, 0..70),
    ) {
        let narrow = cast_to_vec::<f32, f16>(&v);
        let wide: Vec<f64> = cast_to_vec(&narrow);
        let back: Vec<f16> = cast_to_vec(&wide);
        prop_assert!(narrow.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
        let narrow = cast_to_vec::<f32, bf16>(&v);
        let wide: Vec<f32> = cast_to_vec(&narrow);
        let back: Vec<bf16> = cast_to_vec(&wide);
        prop_assert!(narrow.iter().zip(&back).all(|(a, b)| a.to_bits() == b.to_bits()));
    }
}
