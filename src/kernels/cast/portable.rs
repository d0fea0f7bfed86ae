//! The portable casts: the reference every SIMD cast is tested against, bit for bit.
//!
//! f16 uses `half`'s slice conversions (vectorized with F16C where present). bf16 uses the same
//! rounding as `half::bf16::from_f32`, written as a branch-free loop the compiler vectorizes (half
//! converts bf16 slices with a scalar loop that does not).

use half::{bf16, f16, slice::HalfFloatSliceExt};

/// `dst[i] = src[i] as f32` (exact).
///
/// # Panics
///
/// If the lengths differ.
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    src.convert_to_f32_slice(dst);
}

/// `dst[i] = round_to_nearest_even(src[i])`; beyond ±65504 (after rounding) gives ±inf.
///
/// # Panics
///
/// If the lengths differ.
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    dst.convert_from_f32_slice(src);
}

/// `dst[i] = src[i] as f32` (exact: a 16-bit shift).
///
/// # Panics
///
/// If the lengths differ.
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32: lengths differ");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = f32::from_bits((s.to_bits() as u32) << 16);
    }
}

/// `dst[i] = round_to_nearest_even(src[i])`; NaN gives a quiet NaN with the same sign.
///
/// # Panics
///
/// If the lengths differ.
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_bf16: lengths differ");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = bf16::from_bits(f32_to_bf16_bits(*s));
    }
}

/// One f32 to bf16 bits, round to nearest even, branch-free so loops over it vectorize.
#[inline(always)]
pub(crate) fn f32_to_bf16_bits(x: f32) -> u16 {
    let b = x.to_bits();
    // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; it carries into the
    // exponent correctly, and turns f32::MAX-range values into inf as it should.
    let rounded = b.wrapping_add(0x7fff + ((b >> 16) & 1)) >> 16;
    // NaN: keep the top bits and force the quiet bit, so a NaN never rounds to inf.
    let nan = (b >> 16) | 0x0040;
    let is_nan = (b & 0x7fff_ffff) > 0x7f80_0000;
    (if is_nan { nan } else { rounded }) as u16
}
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_to_bf16_matches_half_on_a_sweep_of_bit_patterns() {
        // Walk the f32 space (every 4099th pattern, which hits all exponents and rounding cases)
        // and compare with half's scalar conversion.
        let mut bits = 0u32;
        loop {
            let x = f32::from_bits(bits);
            let ours = bf16::from_bits(f32_to_bf16_bits(x));
            let theirs = bf16::from_f32(x);
            if x.is_nan() {
                assert!(ours.is_nan(), "{bits:#x}");
                assert_eq!(ours.is_sign_negative(), x.is_sign_negative());
            } else {
                assert_eq!(ours.to_bits(), theirs.to_bits(), "{bits:#x}");
            }
            match bits.checked_add(4099) {
                Some(b) => bits = b,
                None => break,
            }
        }
    }

    #[test]
    fn f32_to_bf16_ties_go_to_even() {
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: even is 1.
        assert_eq!(f32_to_bf16_bits(1.0 + 2f32.powi(-8)), bf16::ONE.to_bits());
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: even is 1 + 2^-6.
        let x = 1.0 + 3.0 * 2f32.powi(-8);
        assert_eq!(
            bf16::from_bits(f32_to_bf16_bits(x)).to_f32(),
            1.0 + 2f32.powi(-6)
        );
    }

    #[test]
    fn f32_to_bf16_keeps_nan_and_inf() {
        // A NaN whose payload sits only in the low 16 bits must not become inf.
        let sneaky = f32::from_bits(0x7f80_0001);
        assert!(bf16::from_bits(f32_to_bf16_bits(sneaky)).is_nan());
        assert_eq!(f32_to_bf16_bits(f32::INFINITY), bf16::INFINITY.to_bits());
        assert_eq!(
            f32_to_bf16_bits(f32::NEG_INFINITY),
            bf16::NEG_INFINITY.to_bits()
        );
        assert_eq!(f32_to_bf16_bits(f32::MAX), bf16::INFINITY.to_bits());
    }
}
