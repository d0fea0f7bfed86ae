//! Bulk casts between the 16-bit types and f32: round to nearest, ties to even; NaN stays NaN
//! (quiet, sign kept); overflow gives ±inf; subnormals are kept (never flushed).
//!
//! Each function checks lengths, then runs the AVX-512 version (`avx512.rs`, when the selection
//! point picked it, [`Kernels::cast`](super::Kernels::cast)) or the [`portable`] one. Both
//! compute the same bits: the AVX-512 bf16 code is the portable integer rounding written in
//! 512-bit lanes (not `vcvtneps2bf16`, which flushes subnormals), and the f16 code uses the same
//! hardware conversion that `half` uses through F16C.

#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512;
pub mod portable;

use half::{bf16, f16};

#[cfg(target_arch = "x86_64")]
pub(crate) use avx512::round_bf16_lanes;
pub(crate) use portable::f32_to_bf16_bits;

/// True when the selection point picked the AVX-512 casts, which it does only when it detected
/// AVX-512 F/BW/VL/DQ.
#[cfg(target_arch = "x86_64")]
fn simd() -> bool {
    super::selected().cast() == super::KernelChoice::Avx512
}

/// `dst[i] = src[i] as f32` (exact).
///
/// # Panics
///
/// If the lengths differ (callers check first).
pub fn f16_to_f32(src: &[f16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "f16_to_f32: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: `simd` says the selection point proved AVX-512 F/BW/VL; the lengths are equal.
        return unsafe { avx512::f16_to_f32_avx512(src, dst) };
    }
    portable::f16_to_f32(src, dst)
}

/// `dst[i] = round_to_nearest_even(src[i])`; beyond ±65504 (after rounding) gives ±inf.
///
/// # Panics
///
/// If the lengths differ (callers check first).
pub fn f32_to_f16(src: &[f32], dst: &mut [f16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_f16: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: `simd` says the selection point proved AVX-512 F/BW/VL; the lengths are equal.
        return unsafe { avx512::f32_to_f16_avx512(src, dst) };
    }
    portable::f32_to_f16(src, dst)
}

/// `dst[i] = src[i] as f32` (exact: a 16-bit shift).
///
/// # Panics
///
/// If the lengths differ (callers check first).
pub fn bf16_to_f32(src: &[bf16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "bf16_to_f32: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: `simd` says the selection point proved AVX-512 F/BW/VL; the lengths are equal.
        return unsafe { avx512::bf16_to_f32_avx512(src, dst) };
    }
    portable::bf16_to_f32(src, dst)
}

/// `dst[i] = round_to_nearest_even(src[i])`; NaN gives a quiet NaN with the same sign.
///
/// # Panics
///
/// If the lengths differ (callers check first).
pub fn f32_to_bf16(src: &[f32], dst: &mut [bf16]) {
    assert_eq!(src.len(), dst.len(), "f32_to_bf16: lengths differ");
    #[cfg(target_arch = "x86_64")]
    if simd() {
        // SAFETY: `simd` says the selection point proved AVX-512 F/BW/VL; the lengths are equal.
        return unsafe { avx512::f32_to_bf16_avx512(src, dst) };
    }
    portable::f32_to_bf16(src, dst)
}
