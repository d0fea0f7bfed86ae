//! AVX-512 slice casts, 16 elements per step, the tail done with masked loads and stores.
//!
//! - bf16 -> f32: zero-extend to 32 bits and shift left 16 (exact).
//! - f32 -> bf16: the portable integer rounding (`b + 0x7fff + lsb) >> 16`, NaN forced quiet) in
//!   512-bit lanes, so the bits equal the portable path's, subnormals included.
//!   (`vcvtneps2bf16` is not used: it flushes subnormal inputs to zero.)
//! - f16 <-> f32: `vcvtph2ps` / `vcvtps2ph` with round-to-nearest-even, the instructions `half`
//!   itself uses through F16C (same results, twice the lanes).
//!
//! Reached only through the safe wrappers in [`super`], which check the lengths and the CPU.

use std::arch::x86_64::*;

use half::{bf16, f16};

/// `f32 -> bf16` bits in the low 16 bits of each 32-bit lane (round to nearest even, NaN quiet).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(crate) fn round_bf16_lanes(b: __m512i) -> __m512i {
    let lsb = _mm512_and_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(1));
    let bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
    let rounded = _mm512_srli_epi32::<16>(_mm512_add_epi32(b, bias));
    let nan = _mm512_or_si512(_mm512_srli_epi32::<16>(b), _mm512_set1_epi32(0x40));
    let abs = _mm512_and_si512(b, _mm512_set1_epi32(0x7fff_ffff));
    let is_nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f80_0000));
    _mm512_mask_blend_epi32(is_nan, rounded, nan)
}

/// Mask of the first `n` (< 16) lanes.
#[inline]
fn tail_mask(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// `dst[i] = src[i] as f32`.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, and `src.len() == dst.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn bf16_to_f32_avx512(src: &[bf16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr() as *const u16, dst.as_mut_ptr() as *mut i32);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so 16 u16 at s+i and 16 i32 at d+i are inside the slices.
        unsafe {
            let h = _mm256_loadu_si256(s.add(i) as *const __m256i);
            let w = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_storeu_si512(d.add(i) as *mut __m512i, w);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: the masked load and store touch only the n - i lanes left inside the slices.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(k, s.add(i) as *const i16);
            let w = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_mask_storeu_epi32(d.add(i), k, w);
        }
    }
}

/// `dst[i] = round_to_nearest_even(src[i])`, bit-identical to the portable path.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, and `src.len() == dst.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(in crate::kernels) unsafe fn f32_to_bf16_avx512(src: &[f32], dst: &mut [bf16]) {
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr() as *const i32, dst.as_mut_ptr() as *mut i16);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so 16 i32 at s+i and 16 u16 at d+i are inside the slices.
        unsafe {
            let b = _mm512_loadu_si512(s.add(i) as *const __m512i);
            let h = _mm512_cvtepi32_epi16(round_bf16_lanes(b));
            _mm256_storeu_si256(d.add(i) as *mut __m256i, h);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: the masked load and store touch only the n - i lanes left inside the slices.
        unsafe {
            let b = _mm512_maskz_loadu_epi32(k, s.add(i));
            let h = _mm512_cvtepi32_epi16(round_bf16_lanes(b));
            _mm256_mask_storeu_epi16(d.add(i), k, h);
        }
    }
}

/// `dst[i] = src[i] as f32`.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, and `src.len() == dst.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn f16_to_f32_avx512(src: &[f16], dst: &mut [f32]) {
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr() as *const i16, dst.as_mut_ptr());
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so 16 f16 at s+i and 16 f32 at d+i are inside the slices.
        unsafe {
            let h = _mm256_loadu_si256(s.add(i) as *const __m256i);
            _mm512_storeu_ps(d.add(i), _mm512_cvtph_ps(h));
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: the masked load and store touch only the n - i lanes left inside the slices.
        unsafe {
            let h = _mm256_maskz_loadu_epi16(k, s.add(i));
            _mm512_mask_storeu_ps(d.add(i), k, _mm512_cvtph_ps(h));
        }
    }
}

/// `dst[i] = round_to_nearest_even(src[i])` (`vcvtps2ph`, rounding from the immediate).
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW and VL, and `src.len() == dst.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub(super) unsafe fn f32_to_f16_avx512(src: &[f32], dst: &mut [f16]) {
    const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
    let n = src.len().min(dst.len());
    let (s, d) = (src.as_ptr(), dst.as_mut_ptr() as *mut i16);
    let mut i = 0;
    while i + 16 <= n {
        // SAFETY: i + 16 <= n, so 16 f32 at s+i and 16 f16 at d+i are inside the slices.
        unsafe {
            let h = _mm512_cvtps_ph::<RNE>(_mm512_loadu_ps(s.add(i)));
            _mm256_storeu_si256(d.add(i) as *mut __m256i, h);
        }
        i += 16;
    }
    if i < n {
        let k = tail_mask(n - i);
        // SAFETY: the masked load and store touch only the n - i lanes left inside the slices.
        unsafe {
            let h = _mm512_cvtps_ph::<RNE>(_mm512_maskz_loadu_ps(k, s.add(i)));
            _mm256_mask_storeu_epi16(d.add(i), k, h);
        }
    }
}
