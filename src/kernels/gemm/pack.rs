//! Packing operands into the AMX-BF16 tile layouts (safe Rust; the kernel is in [`super::amx`]).
//!
//! Both layouts cut the operand into *strips* of 16 rows of A or 16 columns of B, and each strip
//! into *chunks* of 32 along k; one chunk is one 1 KiB tile (16 rows of 64 bytes), stored
//! contiguously so `tileloadd` reads it with a 64-byte stride:
//!
//! - A: strip `s`, chunk `c` holds `A[16s + r][32c + t]` at `[r][t]` (16 × 32 bf16).
//! - B, the pairwise VNNI layout: strip `s`, chunk `c` holds, at `[q][j]`, the 32-bit word
//!   `B[32c + 2q][16s + j]` (low half) | `B[32c + 2q + 1][16s + j]` (high half): k-pairs
//!   interleaved (16 pair-rows × 16 columns × 2 bf16).
//!
//! Everything outside the matrix is zero, and the strip count is rounded up to even, so the
//! 2×2-tile kernel never needs an edge case; k is padded to a multiple of 32 with zeros on both
//! sides, which adds exact zeros. Strided and transposed views are packed directly (the transpose
//! of a row-major matrix reads contiguous runs along the other axis); nothing else is copied.

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub(super) use avx512::transpose_cols_f32;

use half::bf16;
use rayon::prelude::*;

use super::MatRef;
use crate::kernels::aligned::AlignedVec;
use crate::kernels::cast::f32_to_bf16_bits;
use crate::kernels::select::selected;
use crate::kernels::KernelChoice;

/// Rows of A (and columns of B) per strip.
pub(super) const STRIP: usize = 16;
/// k per chunk (bf16 elements per 64-byte tile row).
pub(super) const KCHUNK: usize = 32;
/// 16-bit elements of A per chunk, 32-bit words of B per chunk.
pub(super) const A_CHUNK: usize = STRIP * KCHUNK;
/// 32-bit words per B chunk (16 pair-rows × 16 columns).
pub(super) const B_CHUNK: usize = (KCHUNK / 2) * STRIP;
/// Fewest B strips per packing task.
const GROUP: usize = 8;
/// Below this many elements, pack on the calling thread.
const PAR_MIN: usize = 1 << 16;

/// A source element that rounds to bf16 bits: bf16 itself (exact) or f32 (nearest, ties even).
pub(super) trait ToBf16Bits: Copy + Send + Sync {
    /// The bf16 bit pattern.
    fn bf16_bits(self) -> u16;

    /// Packs strips `s0..` of a row-major `b` into `group` with AVX-512 (see [`avx512`]).
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512 F, BW and VL.
    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_rows_avx512(b: MatRef<'_, Self>, s0: usize, kc: usize, group: &mut [u32]);

    /// Packs strips `s0..` of a transposed `b` (row stride 1) into `group` with AVX-512.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512 F, BW and VL.
    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_cols_avx512(b: MatRef<'_, Self>, s0: usize, kc: usize, group: &mut [u32]);

    /// Packs strip `s` of a transposed `a` (row stride 1) into `strip` with AVX-512.
    ///
    /// # Safety
    ///
    /// The CPU must support AVX-512 F, BW and VL.
    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_a_cols_avx512(a: MatRef<'_, Self>, s: usize, strip: &mut [u16]);
}

impl ToBf16Bits for bf16 {
    #[inline(always)]
    fn bf16_bits(self) -> u16 {
        self.to_bits()
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_rows_avx512(b: MatRef<'_, Self>, s0: usize, kc: usize, group: &mut [u32]) {
        let (d, rs, k, n) = (b.data, b.row_stride, b.rows, b.cols);
        // SAFETY: forwarded contract (the CPU supports AVX-512 F/BW/VL).
        unsafe { avx512::pack_b_rows_bf16_avx512(d, rs, k, n, s0, kc, group) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_cols_avx512(b: MatRef<'_, Self>, s0: usize, kc: usize, group: &mut [u32]) {
        let (d, cs, k, n) = (b.data, b.col_stride, b.rows, b.cols);
        // SAFETY: forwarded contract (the CPU supports AVX-512 F/BW/VL).
        unsafe { avx512::pack_b_cols_bf16_avx512(d, cs, k, n, s0, kc, group) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_a_cols_avx512(a: MatRef<'_, Self>, s: usize, strip: &mut [u16]) {
        let (d, cs, m, k) = (a.data, a.col_stride, a.rows, a.cols);
        // SAFETY: forwarded contract (the CPU supports AVX-512 F/BW/VL).
        unsafe { avx512::pack_a_cols_bf16_avx512(d, cs, m, k, s, strip) }
    }
}

impl ToBf16Bits for f32 {
    #[inline(always)]
    fn bf16_bits(self) -> u16 {
        f32_to_bf16_bits(self)
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_rows_avx512(b: MatRef<'_, Self>, s0: usize, kc: usize, group: &mut [u32]) {
        let (d, rs, k, n) = (b.data, b.row_stride, b.rows, b.cols);
        if selected().pack_bf16_native() {
            // SAFETY: AVX-512 F/BW/VL (forwarded contract) and BF16 (the selection point chose
            // `vcvtne2ps2bf16`, which it does only when it detected AVX512-BF16).
            return unsafe { avx512::pack_b_rows_f32_bf16ne(d, rs, k, n, s0, kc, group) };
        }
        // SAFETY: forwarded contract (the CPU supports AVX-512 F/BW/VL).
        unsafe { avx512::pack_b_rows_f32_avx512(d, rs, k, n, s0, kc, group) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_cols_avx512(b: MatRef<'_, Self>, s0: usize, kc: usize, group: &mut [u32]) {
        let (d, cs, k, n) = (b.data, b.col_stride, b.rows, b.cols);
        if selected().pack_bf16_native() {
            // SAFETY: AVX-512 F/BW/VL (forwarded contract) and BF16 (the selection point chose
            // `vcvtne2ps2bf16`, which it does only when it detected AVX512-BF16).
            return unsafe { avx512::pack_b_cols_f32_bf16ne(d, cs, k, n, s0, kc, group) };
        }
        // SAFETY: forwarded contract (the CPU supports AVX-512 F/BW/VL).
        unsafe { avx512::pack_b_cols_f32_avx512(d, cs, k, n, s0, kc, group) }
    }

    #[cfg(target_arch = "x86_64")]
    unsafe fn pack_a_cols_avx512(a: MatRef<'_, Self>, s: usize, strip: &mut [u16]) {
        let (d, cs, m, k) = (a.data, a.col_stride, a.rows, a.cols);
        // SAFETY: forwarded contract (the CPU supports AVX-512 F/BW/VL).
        unsafe { avx512::pack_a_cols_f32_avx512(d, cs, m, k, s, strip) }
    }
}

/// Strips for `len` rows (A) or columns (B): rounded up to an even number.
pub(super) fn strips_for(len: usize) -> usize {
    2 * len.div_ceil(2 * STRIP)
}

/// A in the tile layout: `strips × kc` chunks of [`A_CHUNK`] bf16 bits.
#[derive(Debug, Clone)]
pub(super) struct PackedA {
    pub data: AlignedVec<u16>,
    pub strips: usize,
    pub kc: usize,
}

/// B in the VNNI tile layout: `strips × kc` chunks of [`B_CHUNK`] words.
#[derive(Debug, Clone)]
pub(super) struct PackedVnni {
    pub data: AlignedVec<u32>,
    pub strips: usize,
    pub kc: usize,
}

/// Runs `f(strip_index, strip)` over the strips of `data`, in parallel when it is large.
fn for_each_strip<E: Send>(data: &mut [E], strip_len: usize, f: impl Fn(usize, &mut [E]) + Sync) {
    if data.len() >= PAR_MIN && strip_len > 0 {
        data.par_chunks_mut(strip_len)
            .enumerate()
            .for_each(|(s, d)| f(s, d));
    } else if strip_len > 0 {
        data.chunks_mut(strip_len)
            .enumerate()
            .for_each(|(s, d)| f(s, d));
    }
}

/// Packs A (`m × k`) into the tile layout.
pub(super) fn pack_a<S: ToBf16Bits>(a: MatRef<'_, S>) -> PackedA {
    let (m, k) = (a.rows, a.cols);
    let (strips, kc) = (strips_for(m), k.div_ceil(KCHUNK));
    let mut data = AlignedVec::zeroed(strips * kc * A_CHUNK);
    for_each_strip(&mut data, kc * A_CHUNK, |s, strip| {
        let rows = m.saturating_sub(s * STRIP).min(STRIP);
        if rows == 0 {
            return; // a padding strip: all zeros
        }
        if a.col_stride == 1 {
            // Row-major A: each row of the strip is a contiguous run of k elements, copied
            // one 32-wide chunk at a time.
            for r in 0..rows {
                let row = &a.data[(s * STRIP + r) * a.row_stride..][..k];
                for (c, seg) in row.chunks(KCHUNK).enumerate() {
                    let dst = &mut strip[c * A_CHUNK + r * KCHUNK..][..seg.len()];
                    dst.iter_mut()
                        .zip(seg)
                        .for_each(|(d, x)| *d = x.bf16_bits());
                }
            }
        } else if a.row_stride == 1 {
            // Transposed view: for each p, the strip's rows are contiguous.
            #[cfg(target_arch = "x86_64")]
            if selected().pack() == KernelChoice::Avx512 {
                // SAFETY: the selection point chose the AVX-512 packers, which it does only when
                // it detected AVX-512 F/BW/VL; the strip starts inside A.
                return unsafe { S::pack_a_cols_avx512(a, s, strip) };
            }
            for p in 0..k {
                let start = s * STRIP + p * a.col_stride;
                let base = (p / KCHUNK) * A_CHUNK + p % KCHUNK;
                for (r, x) in a.data[start..start + rows].iter().enumerate() {
                    strip[base + r * KCHUNK] = x.bf16_bits();
                }
            }
        } else {
            for r in 0..rows {
                for p in 0..k {
                    let x = a.at(s * STRIP + r, p);
                    strip[(p / KCHUNK) * A_CHUNK + r * KCHUNK + p % KCHUNK] = x.bf16_bits();
                }
            }
        }
    });
    PackedA { data, strips, kc }
}

/// Index of `B[p][16s + j]`'s 32-bit word within strip `s`, and its shift (0 low, 16 high).
#[inline(always)]
fn vnni_slot(p: usize, j: usize) -> (usize, u32) {
    let q = (p % KCHUNK) / 2;
    ((p / KCHUNK) * B_CHUNK + q * STRIP + j, 16 * (p as u32 & 1))
}

/// Packs B (`k × n`) into the pairwise VNNI tile layout, rounding each element to bf16.
pub(super) fn pack_b_vnni<S: ToBf16Bits>(b: MatRef<'_, S>) -> PackedVnni {
    let (k, n) = (b.rows, b.cols);
    let (strips, kc) = (strips_for(n), k.div_ceil(KCHUNK));
    let mut data = AlignedVec::zeroed(strips * kc * B_CHUNK);
    let strip_len = kc * B_CHUNK;
    // About two tasks per thread, of at least GROUP strips each, so a row-major B is read in long
    // runs (a task reads 16·group contiguous elements of each row).
    let group = strips.div_ceil(2 * rayon::current_num_threads()).max(GROUP);
    for_each_strip(&mut data, group * strip_len, |g, chunk| {
        fill_vnni(b, g * group, kc, chunk)
    });
    PackedVnni { data, strips, kc }
}

/// Fills per-strip `pieces` (each `kc` chunks of strip `s`, for the `k` rows of `b`) of a
/// row-major f32 `b`'s VNNI layout: [`fill_vnni`] strip by strip, or in one row-order pass with
/// AVX512-BF16 (a hot 32 × 1024 block: 5.1 µs strip by strip, 2.8 µs in one pass).
pub(super) fn fill_vnni_pieces(b: MatRef<'_, f32>, kc: usize, pieces: &mut [&mut [u32]]) {
    #[cfg(target_arch = "x86_64")]
    if selected().pack_bf16_native() && b.col_stride == 1 {
        let (d, rs, k, n) = (b.data, b.row_stride, b.rows, b.cols);
        // SAFETY: the selection point chose `vcvtne2ps2bf16` for packing, which it does only
        // when it detected AVX-512 F/BW/VL and AVX512-BF16.
        return unsafe { avx512::pack_b_rows_f32_pieces_bf16ne(d, rs, k, n, pieces) };
    }
    for (s, piece) in pieces.iter_mut().enumerate() {
        fill_vnni(b, s, kc, piece);
    }
}

/// Fills `group` with strips `s0..` of B's VNNI layout (`group.len() / (kc·B_CHUNK)` strips of
/// `kc` chunks). Writes every word that holds part of B; words that hold none are left as they
/// are: padding strips beyond B's last column, pair rows at or beyond `k` in the last chunk, and
/// (portable path) the columns beyond B's last in the last strip. Those are zero in a buffer from
/// `AlignedVec::zeroed` and nothing ever writes them non-zero, which is what lets a repack
/// write only B's own words into a used buffer.
pub(super) fn fill_vnni<S: ToBf16Bits>(b: MatRef<'_, S>, s0: usize, kc: usize, group: &mut [u32]) {
    let simd = cfg!(target_arch = "x86_64") && selected().pack() == KernelChoice::Avx512;
    #[cfg(target_arch = "x86_64")]
    if simd && b.col_stride == 1 {
        // SAFETY: the selection point chose the AVX-512 packers, which it does only when it
        // detected AVX-512 F/BW/VL.
        return unsafe { S::pack_rows_avx512(b, s0, kc, group) };
    } else if simd && b.row_stride == 1 {
        // SAFETY: as above.
        return unsafe { S::pack_cols_avx512(b, s0, kc, group) };
    }
    let _ = simd;
    for (ls, strip) in group.chunks_mut(kc * B_CHUNK).enumerate() {
        if b.col_stride != 1 {
            strip.fill(0); // the strided paths below OR the halves in
        }
        pack_b_strip(b, s0 + ls, strip);
    }
}

/// Packs strip `s` of B (portable).
fn pack_b_strip<S: ToBf16Bits>(b: MatRef<'_, S>, s: usize, strip: &mut [u32]) {
    let (k, n) = (b.rows, b.cols);
    let cols = n.saturating_sub(s * STRIP).min(STRIP);
    if cols == 0 {
        return; // a padding strip: all zeros
    }
    if b.col_stride == 1 {
        // Row-major B: rows p and p + 1 of the strip are contiguous runs of `cols`.
        let mut p = 0;
        while p < k {
            let lo = &b.data[p * b.row_stride + s * STRIP..][..cols];
            let (slot, _) = vnni_slot(p, 0);
            let out = &mut strip[slot..slot + cols];
            if p + 1 < k {
                let hi = &b.data[(p + 1) * b.row_stride + s * STRIP..][..cols];
                for ((o, l), h) in out.iter_mut().zip(lo).zip(hi) {
                    *o = l.bf16_bits() as u32 | (h.bf16_bits() as u32) << 16;
                }
            } else {
                for (o, l) in out.iter_mut().zip(lo) {
                    *o = l.bf16_bits() as u32;
                }
            }
            p += 2;
        }
    } else if b.row_stride == 1 {
        // Transposed view (B = Wᵀ, W row-major): column j is a contiguous run of k.
        for j in 0..cols {
            let start = (s * STRIP + j) * b.col_stride;
            for (p, x) in b.data[start..start + k].iter().enumerate() {
                let (slot, shift) = vnni_slot(p, j);
                strip[slot] |= (x.bf16_bits() as u32) << shift;
            }
        }
    } else {
        for p in 0..k {
            for j in 0..cols {
                let (slot, shift) = vnni_slot(p, j);
                strip[slot] |= (b.at(p, s * STRIP + j).bf16_bits() as u32) << shift;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bf(x: f32) -> bf16 {
        bf16::from_f32(x)
    }

    #[test]
    fn pack_a_places_rows_and_k_chunks_and_pads_with_zero() {
        let (m, k) = (17, 33);
        let a: Vec<bf16> = (0..m * k).map(|i| bf((i + 1) as f32)).collect();
        let row = pack_a(MatRef::row_major(&a, m, k));
        let at = MatRef::row_major(&a, m, k).t();
        // The same matrix through a transposed view of its transpose (strides (1, m)).
        let t: Vec<bf16> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let tr = pack_a(MatRef::row_major(&t, k, m).t());
        assert_eq!((row.strips, row.kc), (2, 2));
        assert_eq!(row.data, tr.data);
        let get = |i: usize, p: usize| {
            let (s, r) = (i / STRIP, i % STRIP);
            row.data[(s * row.kc + p / KCHUNK) * A_CHUNK + r * KCHUNK + p % KCHUNK]
        };
        assert_eq!(get(16, 32), at.at(32, 16).to_bits());
        assert_eq!(get(5, 7), a[5 * k + 7].to_bits());
        assert_eq!(get(17 % 16 + 16, 0), 0, "row 17 is padding");
        assert_eq!(get(3, 40), 0, "k beyond 33 is padding");
    }

    #[test]
    fn pack_b_interleaves_k_pairs_and_matches_for_every_view() {
        let (k, n) = (35, 19);
        let b: Vec<f32> = (0..k * n).map(|i| (i + 1) as f32).collect();
        let row = pack_b_vnni(MatRef::row_major(&b, k, n));
        let t: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let tr = pack_b_vnni(MatRef::row_major(&t, n, k).t());
        assert_eq!((row.strips, row.kc), (2, 2));
        assert_eq!(row.data, tr.data);
        let word = |p: usize, j: usize| {
            let (s, jj) = (j / STRIP, j % STRIP);
            let (slot, shift) = vnni_slot(p, jj);
            (row.data[s * row.kc * B_CHUNK + slot] >> shift) as u16
        };
        for (p, j) in [(0, 0), (1, 0), (2, 5), (33, 18), (34, 17)] {
            assert_eq!(word(p, j), bf(b[p * n + j]).to_bits(), "({p}, {j})");
        }
        assert_eq!(word(35, 3), 0);
        assert_eq!(word(3, 20), 0);
    }
}
