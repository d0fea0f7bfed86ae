//! AVX-512 packing of a row-major B (f32 or bf16 source) into the pairwise VNNI tile layout of
//! [`super`]: for each pair of rows `p, p + 1` and each 16-column strip, one 512-bit store of
//! sixteen words `bf16(B[p][j]) | bf16(B[p + 1][j]) << 16`. f32 is rounded with the same integer
//! code as the casts ([`crate::kernels::cast`]), so packing from f32 equals rounding first.
//!
//! Reached only through the packers of [`super`], which ask the selection point first.

use std::arch::x86_64::*;

use half::bf16;

use super::{A_CHUNK, B_CHUNK, KCHUNK, STRIP};
use crate::kernels::cast::round_bf16_lanes;

/// Lanes `0..w` set (`w <= 16`).
#[inline]
fn mask(w: usize) -> __mmask16 {
    (((1u32 << w) - 1) & 0xffff) as __mmask16
}

macro_rules! pack_rows {
    ($(#[$doc:meta])* $name:ident, $t:ty, $words:ident, $features:literal) => {
        $(#[$doc])*
        ///
        /// `src` is `k × n` with row pitch `rs`; `group` receives strips `s0..` (each `kc`
        /// chunks of [`B_CHUNK`] words), already zeroed.
        ///
        /// # Safety
        ///
        /// The CPU must support the features named by `#[target_feature]` (AVX-512 F, BW and VL,
        /// and BF16 for the `bf16ne` variant). (Every slice access is bounds-checked.)
        #[target_feature(enable = $features)]
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
                    let hi: &[$t] = if p + 1 < k {
                        &src[(p + 1) * rs + col0..][..w]
                    } else {
                        &[]
                    };
                    let word = $words(lo, hi);
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

/// Two rows of up to 16 f32 (zero beyond each slice) as k-pair words
/// `bf16(lo[j]) | bf16(hi[j]) << 16`, rounded with the integer code of the casts.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn words_f32(lo: &[f32], hi: &[f32]) -> __m512i {
    _mm512_or_si512(load_f32(lo), _mm512_slli_epi32::<16>(load_f32(hi)))
}

/// Two rows of up to 16 bf16 (zero beyond each slice) as k-pair words.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn words_bf16(lo: &[bf16], hi: &[bf16]) -> __m512i {
    _mm512_or_si512(load_bf16(lo), _mm512_slli_epi32::<16>(load_bf16(hi)))
}

pack_rows!(
    /// Packs f32 rows, rounding to bf16 (nearest, ties to even, NaN quiet).
    pack_b_rows_f32_avx512,
    f32,
    words_f32,
    "avx512f,avx512bw,avx512vl"
);
pack_rows!(
    /// Packs bf16 rows.
    pack_b_rows_bf16_avx512,
    bf16,
    words_bf16,
    "avx512f,avx512bw,avx512vl"
);

/// Transposes a 16 × 16 matrix of 32-bit words held as 16 rows: `out[j][i] = r[i][j]`.
#[inline]
#[target_feature(enable = "avx512f")]
fn transpose16(r: &[__m512i; 16]) -> [__m512i; 16] {
    let mut t = [_mm512_setzero_si512(); 16];
    for m in 0..8 {
        t[2 * m] = _mm512_unpacklo_epi32(r[2 * m], r[2 * m + 1]);
        t[2 * m + 1] = _mm512_unpackhi_epi32(r[2 * m], r[2 * m + 1]);
    }
    // u[4g + c], 128-bit lane L: column 4L + c, rows 4g..4g + 4.
    let mut u = [_mm512_setzero_si512(); 16];
    for g in 0..4 {
        u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    let mut out = [_mm512_setzero_si512(); 16];
    for c in 0..4 {
        let x = _mm512_shuffle_i32x4::<0x44>(u[c], u[4 + c]);
        let y = _mm512_shuffle_i32x4::<0xee>(u[c], u[4 + c]);
        let x2 = _mm512_shuffle_i32x4::<0x44>(u[8 + c], u[12 + c]);
        let y2 = _mm512_shuffle_i32x4::<0xee>(u[8 + c], u[12 + c]);
        out[c] = _mm512_shuffle_i32x4::<0x88>(x, x2);
        out[4 + c] = _mm512_shuffle_i32x4::<0xdd>(x, x2);
        out[8 + c] = _mm512_shuffle_i32x4::<0x88>(y, y2);
        out[12 + c] = _mm512_shuffle_i32x4::<0xdd>(y, y2);
    }
    out
}

/// Up to 32 consecutive bf16 along k (zero beyond the slice): 16 k-pair words.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pairs_bf16(s: &[bf16]) -> __m512i {
    let k: __mmask32 = if s.len() >= 32 {
        !0
    } else {
        (1u32 << s.len()) - 1
    };
    // SAFETY: the mask covers exactly s.len() <= 32 elements of s.
    unsafe { _mm512_maskz_loadu_epi16(k, s.as_ptr() as *const i16) }
}

/// Up to 32 consecutive f32 along k (zero beyond the slice), rounded: 16 k-pair words.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn pairs_f32(s: &[f32]) -> __m512i {
    let (lo, hi) = s.split_at(s.len().min(16));
    let lo = _mm512_cvtepi32_epi16(load_f32(lo));
    let hi = _mm512_cvtepi32_epi16(load_f32(&hi[..hi.len().min(16)]));
    _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lo), hi)
}

macro_rules! pack_cols {
    ($(#[$doc:meta])* $name:ident, $t:ty, $pairs:ident, $features:literal) => {
        $(#[$doc])*
        ///
        /// `src` holds B's columns contiguously (B = Wᵀ of a row-major W): `B[p][j]` is
        /// `src[j * cs + p]`, `k × n`. `group` receives strips `s0..`, already zeroed. Each tile
        /// is sixteen column runs of 32 k values, transposed in registers.
        ///
        /// # Safety
        ///
        /// The CPU must support the features named by `#[target_feature]` (AVX-512 F, BW and VL, and
        /// BF16 for the `bf16ne` variant). (Every slice access is bounds-checked.)
        #[target_feature(enable = $features)]
        #[allow(clippy::too_many_arguments)] // the shape of a strided matrix and a strip range
        pub(in crate::kernels::gemm) unsafe fn $name(
            src: &[$t],
            cs: usize,
            k: usize,
            n: usize,
            s0: usize,
            kc: usize,
            group: &mut [u32],
        ) {
            let strips = group.len() / (kc * B_CHUNK);
            for ls in 0..strips {
                let col0 = (s0 + ls) * STRIP;
                if col0 >= n {
                    break;
                }
                let w = (n - col0).min(STRIP);
                for c in 0..kc {
                    let (p0, kn) = (c * KCHUNK, (k - c * KCHUNK).min(KCHUNK));
                    let mut cols = [_mm512_setzero_si512(); 16];
                    for (j, col) in cols.iter_mut().enumerate().take(w) {
                        *col = $pairs(&src[(col0 + j) * cs + p0..][..kn]);
                    }
                    let rows = transpose16(&cols);
                    let dst = &mut group[(ls * kc + c) * B_CHUNK..][..B_CHUNK];
                    for (q, row) in rows.iter().enumerate() {
                        let d = &mut dst[q * STRIP..][..STRIP];
                        // SAFETY: d holds exactly 16 u32.
                        unsafe { _mm512_storeu_si512(d.as_mut_ptr() as *mut __m512i, *row) };
                    }
                }
            }
        }
    };
}

pack_cols!(
    /// Packs a transposed f32 view, rounding to bf16 (nearest, ties to even, NaN quiet).
    pack_b_cols_f32_avx512,
    f32,
    pairs_f32,
    "avx512f,avx512bw,avx512vl"
);
pack_cols!(
    /// Packs a transposed bf16 view.
    pack_b_cols_bf16_avx512,
    bf16,
    pairs_bf16,
    "avx512f,avx512bw,avx512vl"
);

macro_rules! pack_a_cols {
    ($(#[$doc:meta])* $name:ident, $t:ty, $load:ident) => {
        $(#[$doc])*
        ///
        /// A is the transpose of a row-major `X` with row pitch `rs` (`A[i][p]` is
        /// `src[p * rs + i]`), `m × k`; `strip` receives A's strip `s` (rows `16s..`, which must
        /// start inside A), all its chunks, padding included. For each 32-wide k chunk the
        /// sixteen k-pair words of the strip's columns (as for the VNNI B layout) are transposed
        /// in registers into the tile's sixteen rows of 32 consecutive k values.
        ///
        /// # Safety
        ///
        /// The CPU must support AVX-512 F, BW and VL. (Every slice access is bounds-checked.)
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(in crate::kernels::gemm) unsafe fn $name(
            src: &[$t],
            rs: usize,
            m: usize,
            k: usize,
            s: usize,
            strip: &mut [u16],
        ) {
            let col0 = s * STRIP;
            let w = (m - col0).min(STRIP);
            let kc = strip.len() / A_CHUNK;
            for c in 0..kc {
                let mut words = [_mm512_setzero_si512(); 16];
                for (q, word) in words.iter_mut().enumerate() {
                    let p = c * KCHUNK + 2 * q;
                    if p >= k {
                        break;
                    }
                    let lo = $load(&src[p * rs + col0..][..w]);
                    let hi = if p + 1 < k {
                        $load(&src[(p + 1) * rs + col0..][..w])
                    } else {
                        _mm512_setzero_si512()
                    };
                    *word = _mm512_or_si512(lo, _mm512_slli_epi32::<16>(hi));
                }
                let rows = transpose16(&words);
                let dst = &mut strip[c * A_CHUNK..][..A_CHUNK];
                for (r, row) in rows.iter().enumerate() {
                    let d = &mut dst[r * KCHUNK..][..KCHUNK];
                    // SAFETY: d holds exactly 32 u16 (64 bytes).
                    unsafe { _mm512_storeu_si512(d.as_mut_ptr() as *mut __m512i, *row) };
                }
            }
        }
    };
}

pack_a_cols!(
    /// Packs one strip of a transposed f32 A, rounding to bf16 (nearest, ties to even).
    pack_a_cols_f32_avx512,
    f32,
    load_f32
);
pack_a_cols!(
    /// Packs one strip of a transposed bf16 A.
    pack_a_cols_bf16_avx512,
    bf16,
    load_bf16
);

/// Two rows of up to 16 f32 (zero beyond each slice), rounded to bf16 by `vcvtne2ps2bf16`
/// and interleaved into k-pair words `bf16(lo[j]) | bf16(hi[j]) << 16`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn words_f32_bf16ne(lo: &[f32], hi: &[f32]) -> __m512i {
    // SAFETY: each mask covers exactly the slice's <= 16 elements.
    let (l, h) = unsafe {
        (
            _mm512_maskz_loadu_ps(mask(lo.len()), lo.as_ptr()),
            _mm512_maskz_loadu_ps(mask(hi.len()), hi.as_ptr()),
        )
    };
    // Lower 16 words: bf16(l), upper 16: bf16(h); then word 2j = l[j], word 2j + 1 = h[j].
    // SAFETY: both are 512-bit vectors of plain bits.
    let packed: __m512i = unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(h, l)) };
    let idx = _mm512_set_epi16(
        31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20, 4,
        19, 3, 18, 2, 17, 1, 16, 0,
    );
    _mm512_permutexvar_epi16(idx, packed)
}

pack_rows!(
    /// [`pack_b_rows_f32_avx512`] with the rounding done by AVX512-BF16's `vcvtne2ps2bf16`:
    /// the same bits for every f32 except subnormals, which become zero of the same sign (the
    /// AMX tiles read subnormal bf16 as zero, so the products do not change).
    pack_b_rows_f32_bf16ne,
    f32,
    words_f32_bf16ne,
    "avx512f,avx512bw,avx512vl,avx512bf16"
);

/// [`pack_b_rows_f32_bf16ne`] for a block of rows whose strips live in separate pieces (the
/// optimizer's repacking of one row block): `pieces[s]` receives strip `s`'s chunks for these
/// `k` rows. Rows are read once, in order, each pair feeding every strip.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW, VL and BF16. (Every slice access is bounds-checked.)
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
pub(in crate::kernels::gemm) unsafe fn pack_b_rows_f32_pieces_bf16ne(
    src: &[f32],
    rs: usize,
    k: usize,
    n: usize,
    pieces: &mut [&mut [u32]],
) {
    for p in (0..k).step_by(2) {
        let off = (p / KCHUNK) * B_CHUNK + ((p % KCHUNK) / 2) * STRIP;
        let lo_row = &src[p * rs..][..n];
        let hi_row: &[f32] = if p + 1 < k {
            &src[(p + 1) * rs..][..n]
        } else {
            &[]
        };
        for (s, piece) in pieces.iter_mut().enumerate() {
            let col0 = s * STRIP;
            if col0 >= n {
                break;
            }
            let w = (n - col0).min(STRIP);
            let hi = if hi_row.is_empty() {
                hi_row
            } else {
                &hi_row[col0..col0 + w]
            };
            let word = words_f32_bf16ne(&lo_row[col0..col0 + w], hi);
            let dst = &mut piece[off..off + STRIP];
            // SAFETY: dst holds exactly 16 u32.
            unsafe { _mm512_storeu_si512(dst.as_mut_ptr() as *mut __m512i, word) };
        }
    }
}

/// Up to 32 consecutive f32 along k (zero beyond the slice), rounded by `vcvtne2ps2bf16`: 16
/// k-pair words (subnormals become signed zero, as in [`pack_b_rows_f32_bf16ne`]).
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
fn pairs_f32_bf16ne(s: &[f32]) -> __m512i {
    let (lo, hi) = s.split_at(s.len().min(16));
    let hi = &hi[..hi.len().min(16)];
    // SAFETY: each mask covers exactly the slice's <= 16 elements.
    let (l, h) = unsafe {
        (
            _mm512_maskz_loadu_ps(mask(lo.len()), lo.as_ptr()),
            _mm512_maskz_loadu_ps(mask(hi.len()), hi.as_ptr()),
        )
    };
    // SAFETY: both are 512-bit vectors of plain bits.
    unsafe { std::mem::transmute(_mm512_cvtne2ps_pbh(h, l)) }
}

pack_cols!(
    /// Packs a transposed f32 view, rounding with AVX512-BF16's `vcvtne2ps2bf16` (subnormals
    /// become signed zero, as in [`pack_b_rows_f32_bf16ne`]); the CPU must also support BF16.
    pack_b_cols_f32_bf16ne,
    f32,
    pairs_f32_bf16ne,
    "avx512f,avx512bw,avx512vl,avx512bf16"
);

/// Transposes f32 columns into rows of FMA panels: `dst[p * pitch + j] = src[j * cs + p]` for
/// `j < cols`, `p < k` (B = Wᵀ of a row-major W: column j of B is row j of W). Works in 16 × 16
/// blocks transposed in registers; lanes beyond `cols` are not written.
///
/// # Safety
///
/// The CPU must support AVX-512 F. (Every slice access is bounds-checked.)
#[target_feature(enable = "avx512f")]
pub(in crate::kernels::gemm) unsafe fn transpose_cols_f32(
    src: &[f32],
    cs: usize,
    cols: usize,
    k: usize,
    dst: &mut [f32],
    pitch: usize,
) {
    for j0 in (0..cols).step_by(16) {
        let w = (cols - j0).min(16);
        for p0 in (0..k).step_by(16) {
            let pn = (k - p0).min(16);
            let mut rows = [_mm512_setzero_si512(); 16];
            for (r, row) in rows.iter_mut().enumerate().take(w) {
                let s = &src[(j0 + r) * cs + p0..][..pn];
                // SAFETY: the mask covers exactly s.len() <= 16 elements of s.
                *row = unsafe { _mm512_maskz_loadu_epi32(mask(pn), s.as_ptr() as *const i32) };
            }
            let t = transpose16(&rows);
            for (dp, row) in t.iter().enumerate().take(pn) {
                let d = &mut dst[(p0 + dp) * pitch + j0..][..w];
                // SAFETY: the mask covers exactly d.len() <= 16 elements of d.
                unsafe { _mm512_mask_storeu_epi32(d.as_mut_ptr() as *mut i32, mask(w), *row) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX512-BF16 packers give the integer packers' bits for every f32 but subnormals,
    /// which become zero of the same sign.
    #[test]
    fn bf16ne_packing_matches_integer_rounding_except_subnormals() {
        // What the selection point allows this CPU (not this process: these call the packers
        // directly).
        let cpu = crate::kernels::kernels_for(crate::kernels::KernelChoice::Auto);
        if !cpu.pack_bf16_native() {
            eprintln!("skip: CPU lacks AVX-512 BF16");
            return;
        }
        let specials = [
            0x7fc0_0001u32,
            0xff80_0000,
            0x0000_0001,
            0x8070_0000,
            0x3f80_8000,
        ];
        // 64 rows x 16 columns of bit patterns: a sweep of every exponent with several
        // mantissas (ties, odd/even), and the specials above.
        let bits: Vec<u32> = (0..64 * 16u32)
            .map(|i| match i % 97 {
                0..=4 => specials[(i % 97) as usize],
                _ => (i.wrapping_mul(2_654_435_761) & 0x807f_ffff) | ((i % 256) << 23),
            })
            .collect();
        let w: Vec<f32> = bits.iter().map(|&b| f32::from_bits(b)).collect();
        let (k, n, kc) = (64, 16, 2);
        let expected = |x: f32| -> u16 {
            if x.is_subnormal() {
                (x.to_bits() >> 16) as u16 & 0x8000
            } else {
                crate::kernels::cast::f32_to_bf16_bits(x)
            }
        };
        let (mut a, mut b) = (vec![0u32; kc * B_CHUNK], vec![0u32; kc * B_CHUNK]);
        // SAFETY: the selection point found AVX-512 F/BW/VL and BF16 (checked above).
        unsafe {
            pack_b_rows_f32_avx512(&w, n, k, n, 0, kc, &mut a);
            pack_b_rows_f32_bf16ne(&w, n, k, n, 0, kc, &mut b);
        }
        // Transposed view of the same matrix (B = Wᵀ with W = w as 16 × 64): column j of B is
        // row j of that W.
        let mut c = vec![0u32; kc * B_CHUNK];
        let wt: Vec<f32> = (0..n * k).map(|i| w[(i % k) * n + i / k]).collect();
        // SAFETY: as above.
        unsafe { pack_b_cols_f32_bf16ne(&wt, k, k, n, 0, kc, &mut c) };
        for p in 0..k {
            for j in 0..n {
                let slot = (p / KCHUNK) * B_CHUNK + ((p % KCHUNK) / 2) * STRIP + j;
                let shift = 16 * (p % 2);
                let (ai, bi, ci) = (a[slot] >> shift, b[slot] >> shift, c[slot] >> shift);
                let x = w[p * n + j];
                assert_eq!(
                    bi as u16,
                    expected(x),
                    "rows, {x:e} ({:#010x})",
                    x.to_bits()
                );
                assert_eq!(ci as u16, expected(x), "cols, {x:e}");
                if !x.is_subnormal() {
                    assert_eq!(ai as u16, bi as u16, "{x:e}");
                }
            }
        }
    }

    #[test]
    fn transpose16_transposes() {
        let cpu = crate::kernels::kernels_for(crate::kernels::KernelChoice::Auto);
        if cpu.pack() != crate::kernels::KernelChoice::Avx512 {
            eprintln!("skip: CPU lacks AVX-512");
            return;
        }
        let m: Vec<u32> = (0..256).collect();
        let mut r = [[0u32; 16]; 16];
        // SAFETY: the selection point found AVX-512 (checked above); arrays are 64 bytes each.
        unsafe {
            let rows: [__m512i; 16] =
                std::array::from_fn(|i| _mm512_loadu_si512(m[16 * i..].as_ptr() as *const __m512i));
            let t = transpose16(&rows);
            for (i, row) in r.iter_mut().enumerate() {
                _mm512_storeu_si512(row.as_mut_ptr() as *mut __m512i, t[i]);
            }
        }
        for (i, row) in r.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                assert_eq!(x, (16 * j + i) as u32, "({i}, {j})");
            }
        }
    }
}
