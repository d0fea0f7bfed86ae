//! Packing for the `vdpbf16ps` kernel ([`super::dpbf16`]), in safe Rust: both operands are cut
//! into **k-pairs**, two bf16 values of consecutive k in one 32-bit word (the even k in the low
//! half), which is the operand layout of `vdpbf16ps`.
//!
//! - B (`k × n`) goes into panels of [`NR`] = 32 columns, `k.div_ceil(2)` pair-rows each
//!   ([`PairPanels`]: panel `s` holds `(B[2q][32s+j], B[2q+1][32s+j])` at word `[q][j]`);
//! - A (`m × k`) into strips of [`MR`] = 12 rows, pair-major (word `[q][r]`), so each step
//!   broadcasts one word per row.
//!
//! Every element is rounded to bf16 (nearest, ties to even) on the way, through the vectorized
//! slice casts ([`cast_slice`]); everything outside the matrix, including the missing odd k of
//! the last pair, is zero. Row-major and transposed views read contiguous runs; any other stride
//! goes element by element.

use half::bf16;

use super::blocked::{MR, NR};
use super::panels::for_each_chunk;
use super::MatRef;
use crate::dtype::{cast_slice, Element};
use crate::kernels::aligned::AlignedVec;

/// B packed into panels of [`NR`] columns of k-pairs (`kq × NR` words each, zero-padded).
#[derive(Debug, Clone)]
pub(super) struct PairPanels {
    pub data: AlignedVec<u32>,
    pub strips: usize,
    /// Pair-rows per panel: `k.div_ceil(2)`.
    pub kq: usize,
}

/// The word of a k-pair: `lo` (even k) in the low half, as `vdpbf16ps` reads it.
#[inline(always)]
fn pair(lo: bf16, hi: bf16) -> u32 {
    u32::from(lo.to_bits()) | (u32::from(hi.to_bits()) << 16)
}

/// B (`k × n`, any strides, any element type) as k-pair panels, each element rounded to bf16.
pub(super) fn pack_b_pairs<T: Element>(b: MatRef<'_, T>) -> PairPanels {
    let (kq, strips) = (b.rows.div_ceil(2), b.cols.div_ceil(NR));
    let mut data = AlignedVec::zeroed(strips * kq * NR);
    let group = strips.div_ceil(2 * rayon::current_num_threads()).max(4);
    for_each_chunk(&mut data, group * kq * NR, |g, chunk| {
        fill_pairs(b, g * group, chunk)
    });
    PairPanels { data, strips, kq }
}

/// Fills `chunk` with panels `s0..` of B (`chunk.len() / (kq·NR)` of them), each element rounded
/// to bf16. Writes every word that holds an element of B (the odd half of the last pair-row as
/// zero when k is odd); the padding beyond B's last column is left as it is (zero in a fresh
/// buffer, and never written by a repack).
pub(super) fn fill_pairs<T: Element>(b: MatRef<'_, T>, s0: usize, chunk: &mut [u32]) {
    let (k, n) = (b.rows, b.cols);
    let kq = k.div_ceil(2);
    if kq == 0 {
        return;
    }
    let group = chunk.len() / (kq * NR);
    let c0 = s0 * NR;
    let width = n.saturating_sub(c0).min(group * NR);
    if width == 0 {
        return;
    }
    let at = |q: usize, j: usize| (((j / NR) * kq + q) * NR) + j % NR;
    if b.col_stride == 1 {
        // Two rows of the group rounded at a time, then interleaved into each panel's pair-row.
        let (mut lo, mut hi) = (vec![bf16::ZERO; width], vec![bf16::ZERO; width]);
        for q in 0..kq {
            cast_slice(&b.data[2 * q * b.row_stride + c0..][..width], &mut lo);
            if 2 * q + 1 < k {
                cast_slice(&b.data[(2 * q + 1) * b.row_stride + c0..][..width], &mut hi);
            } else {
                hi.fill(bf16::ZERO);
            }
            for (ls, (l, h)) in lo.chunks(NR).zip(hi.chunks(NR)).enumerate() {
                let row = &mut chunk[(ls * kq + q) * NR..][..l.len()];
                for ((w, &l), &h) in row.iter_mut().zip(l).zip(h) {
                    *w = pair(l, h);
                }
            }
        }
    } else if b.row_stride == 1 {
        // Transposed view: column j is a contiguous run of k, already in pairs.
        let mut col = vec![bf16::ZERO; 2 * kq];
        for j in 0..width {
            cast_slice(&b.data[(c0 + j) * b.col_stride..][..k], &mut col[..k]);
            for (q, p) in col.chunks_exact(2).enumerate() {
                chunk[at(q, j)] = pair(p[0], p[1]);
            }
        }
    } else {
        let get = |p: usize, j: usize| {
            if p < k {
                bf16::from_f32_rne(b.at(p, c0 + j).as_f32())
            } else {
                bf16::ZERO
            }
        };
        for q in 0..kq {
            for j in 0..width {
                chunk[at(q, j)] = pair(get(2 * q, j), get(2 * q + 1, j));
            }
        }
    }
}

thread_local! {
    /// The A pair strips of this thread's last product, reused by the next (a fresh buffer of a
    /// megabyte or more page-faults on every call; see `panels.rs`).
    static STRIPS: std::cell::RefCell<AlignedVec<u32>> =
        std::cell::RefCell::new(AlignedVec::zeroed(0));
}

/// Runs `f` on A (`m × k`, any strides) packed as k-pair strips of `kq × MR` words, in this
/// thread's reused strip buffer.
pub(super) fn with_a_pairs<T: Element, R>(a: MatRef<'_, T>, f: impl FnOnce(&[u32]) -> R) -> R {
    let len = a.rows.div_ceil(MR) * a.cols.div_ceil(2) * MR;
    let mut buf = STRIPS.with(|s| s.take());
    if buf.len() < len {
        buf = AlignedVec::zeroed(len);
    }
    fill_a_pairs(a, &mut buf[..len]);
    let out = f(&buf[..len]);
    STRIPS.with(|s| *s.borrow_mut() = buf);
    out
}

/// Writes every word of `data` (`m.div_ceil(MR)` strips of `kq × MR`): A's k-pairs, and zeros
/// in the rows past `m` and the missing odd k (the buffer may hold an earlier product's).
fn fill_a_pairs<T: Element>(a: MatRef<'_, T>, data: &mut [u32]) {
    let (m, k) = (a.rows, a.cols);
    let kq = k.div_ceil(2);
    for_each_chunk(data, kq * MR, |s, strip| {
        let rows = (m - s * MR).min(MR);
        if rows < MR {
            strip.fill(0);
        }
        if a.col_stride == 1 {
            let mut row = vec![bf16::ZERO; 2 * kq];
            for r in 0..rows {
                cast_slice(&a.data[(s * MR + r) * a.row_stride..][..k], &mut row[..k]);
                for (q, p) in row.chunks_exact(2).enumerate() {
                    strip[q * MR + r] = pair(p[0], p[1]);
                }
            }
        } else if a.row_stride == 1 {
            let (mut lo, mut hi) = ([bf16::ZERO; MR], [bf16::ZERO; MR]);
            for q in 0..kq {
                cast_slice(
                    &a.data[2 * q * a.col_stride + s * MR..][..rows],
                    &mut lo[..rows],
                );
                if 2 * q + 1 < k {
                    let src = &a.data[(2 * q + 1) * a.col_stride + s * MR..][..rows];
                    cast_slice(src, &mut hi[..rows]);
                } else {
                    hi.fill(bf16::ZERO);
                }
                for r in 0..rows {
                    strip[q * MR + r] = pair(lo[r], hi[r]);
                }
            }
        } else {
            let get = |r: usize, p: usize| {
                if p < k {
                    bf16::from_f32_rne(a.at(s * MR + r, p).as_f32())
                } else {
                    bf16::ZERO
                }
            };
            for q in 0..kq {
                for r in 0..rows {
                    strip[q * MR + r] = pair(get(r, 2 * q), get(r, 2 * q + 1));
                }
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pair_panels_match_for_row_major_and_transposed_views_with_odd_k() {
        let (k, n) = (5, 70);
        let b: Vec<f32> = (0..k * n).map(|i| i as f32 * 0.5).collect();
        let t: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let row = pack_b_pairs(MatRef::row_major(&b, k, n));
        let tr = pack_b_pairs(MatRef::row_major(&t, n, k).t());
        assert_eq!((row.strips, row.kq), (3, 3));
        assert_eq!(row.data, tr.data);
        // B[4][69]: panel 2, pair-row 2, column 5, low half; its high half is the missing k = 5.
        let w = row.data[(2 * 3 + 2) * NR + 5];
        assert_eq!(w, u32::from(bf16::from_f32(b[4 * n + 69]).to_bits()));
        // B[2][3], B[3][3]: panel 0, pair-row 1, column 3.
        let w = row.data[NR + 3];
        assert_eq!(w >> 16, u32::from(bf16::from_f32(b[3 * n + 3]).to_bits()));
        assert_eq!(
            w & 0xffff,
            u32::from(bf16::from_f32(b[2 * n + 3]).to_bits())
        );
        assert_eq!(row.data[(2 * 3 + 2) * NR + 6], 0, "padding column");
    }

    #[test]
    fn a_pairs_match_for_every_view_and_reused_strips_are_cleared() {
        let (m, k) = (14, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 + 1.0).collect();
        let t: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let wide: Vec<f32> = (0..m * 2 * k)
            .map(|i| a[(i / (2 * k)) * k + (i % (2 * k)) / 2])
            .collect();
        // A first product of 24 rows of NaN leaves NaN in the reused buffer.
        let nan = vec![f32::NAN; 24 * 4];
        with_a_pairs(MatRef::row_major(&nan, 24, 4), |_| ());
        let views = [
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&t, k, m).t(),
            MatRef {
                data: &wide[..],
                rows: m,
                cols: k,
                row_stride: 2 * k,
                col_stride: 2,
            },
        ];
        let packed: Vec<Vec<u32>> = views
            .iter()
            .map(|&v| with_a_pairs(v, |p| p.to_vec()))
            .collect();
        assert_eq!(packed[0], packed[1]);
        assert_eq!(packed[0], packed[2]);
        let (kq, p) = (2, &packed[0]);
        assert_eq!(p.len(), 2 * kq * MR);
        // Row 13 (strip 1, row 1): pair 0 is (A[13][0], A[13][1]); pair 1 is (A[13][2], 0).
        let bits = |x: f32| u32::from(bf16::from_f32(x).to_bits());
        assert_eq!(p[kq * MR + 1], bits(a[39]) | bits(a[40]) << 16);
        assert_eq!(p[(kq + 1) * MR + 1], bits(a[41]));
        assert_eq!(p[(kq + 1) * MR + 2], 0, "row past m");
    }
}
