//! AVX-512 packing of a row-major B (f32 or bf16 source) into the pairwise VNNI tile layout of
//! [`super`]: for each pair of rows `p, p + 1` and each 16-column strip, one 512-bit store of
//! sixteen words `bf16(B[p][j]) | bf16(B[p + 1][j]) << 16`. f32 is rounded with the same integer
//! code as the casts ([`crate::kernels::cast`]), so packing from f32 equals rounding first.
//!
//! Reached only through [`super::pack_b_vnni`], which checks the CPU.

use std::arch::x86_64::*;

use half::bf16;

use super::{B_CHUNK, KCHUNK, STRIP};
use crate::kernels::cast::round_bf16_lanes;

/// Lanes `0..w` set (`w <= 16`).
#[inline]
fn mask(w: usize) -> __mmask16 {
    (((1u32 << w) - 1) & 0xffff) as __mmask16
}

macro_rules! pack_rows {
    ($(#[$doc:meta])* $name:ident, $t:ty, $load:ident) => {
        $(#[$doc])*
        ///
        /// `src` is `k × n` with row pitch `rs`; `group` receives strips `s0..` (each `kc`
        /// chunks of [`B_CHUNK`] words), already zeroed.
        ///
        /// # Safety
        ///
        /// The CPU must support AVX-512 F, BW and VL. (Every slice access is bounds-checked.)
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        #[allow(clippy::too_many_arguments)] // the shape of a strided matrix and a strip range
        pub(in crate::kernels::gemm) unsafe fn $name(
            src: &[$t],
            rs: usize,
            k: usize,
            n: usize,
            s0: usize,
            kc: usize,
            group: &mut [u32],
        ) {
            let strips = group.len() / (kc * B_CHUNK);
            for p in (0..k).step_by(2) {
                let chunk = (p / KCHUNK) * B_CHUNK + ((p % KCHUNK) / 2) * STRIP;
                for ls in 0..strips {
                    let col0 = (s0 + ls) * STRIP;
                    if col0 >= n {
                        break;
                    }
                    let w = (n - col0).min(STRIP);
                    let lo = &src[p * rs + col0..][..w];
                    let vlo = $load(lo);
                    let vhi = if p + 1 < k {
                        $load(&src[(p + 1) * rs + col0..][..w])
                    } else {
                        _mm512_setzero_si512()
                    };
                    let word = _mm512_or_si512(vlo, _mm512_slli_epi32::<16>(vhi));
                    let dst = &mut group[ls * kc * B_CHUNK + chunk..][..STRIP];
                    // SAFETY: dst holds exactly 16 u32.
                    unsafe { _mm512_storeu_si512(dst.as_mut_ptr() as *mut __m512i, word) };
                }
            }
        }
    };
}

/// Up to 16 f32 (zero beyond the slice) rounded to bf16 bits in the low half of each lane.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn load_f32(s: &[f32]) -> __m512i {
    // SAFETY: the mask covers exactly s.len() <= 16 elements of s.
    let v = unsafe { _mm512_maskz_loadu_epi32(mask(s.len()), s.as_ptr() as *const i32) };
    round_bf16_lanes(v)
}

/// Up to 16 bf16 (zero beyond the slice), zero-extended into 32-bit lanes.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn load_bf16(s: &[bf16]) -> __m512i {
    // SAFETY: the mask covers exactly s.len() <= 16 elements of s.
    let v = unsafe { _mm256_maskz_loadu_epi16(mask(s.len()), s.as_ptr() as *const i16) };
    _mm512_cvtepu16_epi32(v)
}

pack_rows!(
    /// Packs f32 rows, rounding to bf16 (nearest, ties to even, NaN quiet).
    pack_b_rows_f32_avx512,
    f32,
    load_f32
);
pack_rows!(
    /// Packs bf16 rows.
    pack_b_rows_bf16_avx512,
    bf16,
    load_bf16
);
