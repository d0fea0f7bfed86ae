//! Packing for the AVX-512 FMA kernel ([`super::fma`]), in safe Rust but for one transpose
//! (`pack::transpose_cols_f32`, AVX-512, for f32 panels of a transposed view): A into f32 strips of
//! [`MR`] rows (`[p][r]`), B into panels of [`NR`] columns (`[p][j]`) in f32 or f16, converting
//! while packing through the vectorized slice casts ([`crate::dtype::cast_slice`]). Everything
//! outside the matrix is zero. Row-major and transposed views read contiguous runs; any other
//! stride goes element by element.

use rayon::prelude::*;

use super::blocked::{MR, NR};
use super::fma::Panels;
use super::MatRef;
use crate::dtype::{cast_slice, Element};
use crate::kernels::aligned::AlignedVec;

/// Below this many elements, pack on the calling thread.
const PAR_MIN: usize = 1 << 16;
/// Fewest B panels per packing task.
const GROUP: usize = 4;

pub(super) fn for_each_chunk<E: Send>(
    data: &mut [E],
    len: usize,
    f: impl Fn(usize, &mut [E]) + Sync,
) {
    if len == 0 {
        return;
    }
    if data.len() >= PAR_MIN {
        data.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, d)| f(i, d));
    } else {
        data.chunks_mut(len).enumerate().for_each(|(i, d)| f(i, d));
    }
}

thread_local! {
    /// The A strips of this thread's last product, reused by the next: a fresh buffer of a
    /// megabyte or more per call page-faults on every call once glibc has returned the freed
    /// heap top to the OS (measured: 5% of a 256x1024x1024 f32 Dense forward).
    static STRIPS: std::cell::RefCell<AlignedVec<f32>> =
        std::cell::RefCell::new(AlignedVec::zeroed(0));
}

/// Runs `f` on A (`m × k`, any strides) packed as f32 strips of `k × MR`, in this thread's
/// reused strip buffer (see [`pack_a_strips`]).
pub(super) fn with_a_strips<T: Element, R>(a: MatRef<'_, T>, f: impl FnOnce(&[f32]) -> R) -> R {
    let len = a.rows.div_ceil(MR) * a.cols * MR;
    let mut buf = STRIPS.with(|s| s.take());
    if buf.len() < len {
        buf = AlignedVec::zeroed(len);
    }
    fill_a_strips(a, &mut buf[..len]);
    let out = f(&buf[..len]);
    STRIPS.with(|s| *s.borrow_mut() = buf);
    out
}

/// A (`m × k`, any strides) as f32 strips of `k × MR`, in a new buffer.
#[cfg(test)]
pub(super) fn pack_a_strips<T: Element>(a: MatRef<'_, T>) -> AlignedVec<f32> {
    let mut data = AlignedVec::zeroed(a.rows.div_ceil(MR) * a.cols * MR);
    fill_a_strips(a, &mut data);
    data
}

/// Writes every element of `data` (`m.div_ceil(MR)` strips of `k × MR`): A's elements, and
/// zeros in the rows of the last strip past `m` (the buffer may hold an earlier product's).
fn fill_a_strips<T: Element>(a: MatRef<'_, T>, data: &mut [f32]) {
    let (m, k) = (a.rows, a.cols);
    for_each_chunk(data, k * MR, |s, strip| {
        let rows = (m - s * MR).min(MR);
        if rows < MR {
            strip.fill(0.0);
        }
        if a.col_stride == 1 {
            let mut row = vec![0f32; k];
            for r in 0..rows {
                cast_slice(&a.data[(s * MR + r) * a.row_stride..][..k], &mut row);
                for (p, &x) in row.iter().enumerate() {
                    strip[p * MR + r] = x;
                }
            }
        } else if a.row_stride == 1 {
            for p in 0..k {
                let src = &a.data[p * a.col_stride + s * MR..][..rows];
                cast_slice(src, &mut strip[p * MR..][..rows]);
            }
        } else {
            for r in 0..rows {
                for p in 0..k {
                    strip[p * MR + r] = a.at(s * MR + r, p).as_f32();
                }
            }
        }
    });
}

/// B (`k × n`, any strides) as panels of `k × NR` in `E`, each element rounded to `E`.
pub(super) fn pack_b_panels<T: Element, E: Element>(b: MatRef<'_, T>) -> Panels<E> {
    let (k, n) = (b.rows, b.cols);
    let strips = n.div_ceil(NR);
    let mut data = AlignedVec::zeroed(strips * k * NR);
    let group = strips.div_ceil(2 * rayon::current_num_threads()).max(GROUP);
    for_each_chunk(&mut data, group * k * NR, |g, chunk| {
        fill_panels(b, g * group, chunk)
    });
    Panels { data, strips }
}

/// B (`k × n`, f32, any strides) as f32 panels holding each element rounded to `R` (and widened
/// back, exactly): the cached weight of a policy that computes in `R` on f32 panels (MixedF16).
pub(super) fn pack_b_panels_rounded<R: Element>(b: MatRef<'_, f32>) -> Panels<f32> {
    let (k, n) = (b.rows, b.cols);
    let strips = n.div_ceil(NR);
    let mut data = AlignedVec::zeroed(strips * k * NR);
    let group = strips.div_ceil(2 * rayon::current_num_threads()).max(GROUP);
    for_each_chunk(&mut data, group * k * NR, |g, chunk| {
        fill_panels_rounded::<R>(b, g * group, chunk)
    });
    Panels { data, strips }
}

/// [`fill_panels`] of an f32 B into f32 panels, each element rounded to `R` on the way. A
/// row-major B is rounded row by row (each row cast to `R` and back, in L1); other views go
/// through a rounded copy of the chunk.
pub(super) fn fill_panels_rounded<R: Element>(b: MatRef<'_, f32>, s0: usize, chunk: &mut [f32]) {
    let (k, n) = (b.rows, b.cols);
    let group = chunk.len() / (k * NR).max(1);
    let c0 = s0 * NR;
    let width = n.saturating_sub(c0).min(group * NR);
    if k == 0 || width == 0 {
        return;
    }
    if b.col_stride == 1 {
        let (mut narrow, mut row) = (vec![R::default(); width], vec![0f32; width]);
        for p in 0..k {
            cast_slice(&b.data[p * b.row_stride + c0..][..width], &mut narrow);
            cast_slice(&narrow, &mut row);
            for (ls, seg) in row.chunks(NR).enumerate() {
                chunk[(ls * k + p) * NR..][..seg.len()].copy_from_slice(seg);
            }
        }
    } else {
        // The rounded copy's zeros land on the padding, which is zero anyway.
        let mut rounded = vec![R::default(); chunk.len()];
        fill_panels::<f32, R>(b, s0, &mut rounded);
        cast_slice(&rounded, chunk);
    }
}

/// Fills `chunk` with panels `s0..` of B (`chunk.len() / (k·NR)` of them), each element rounded
/// to `E`. Writes every element that lies inside B; the zero padding beyond B's last column is
/// left as it is (zero in a fresh buffer, and never written by a repack).
pub(super) fn fill_panels<T: Element, E: Element>(b: MatRef<'_, T>, s0: usize, chunk: &mut [E]) {
    let (k, n) = (b.rows, b.cols);
    if k == 0 {
        return;
    }
    let group = chunk.len() / (k * NR);
    let c0 = s0 * NR;
    let width = n.saturating_sub(c0).min(group * NR);
    if width == 0 {
        return;
    }
    if b.col_stride == 1 {
        // One conversion per row for the whole group, then a copy into each panel.
        let mut row = vec![E::default(); width];
        for p in 0..k {
            cast_slice(&b.data[p * b.row_stride + c0..][..width], &mut row);
            for (ls, seg) in row.chunks(NR).enumerate() {
                chunk[(ls * k + p) * NR..][..seg.len()].copy_from_slice(seg);
            }
        }
    } else if b.row_stride == 1 {
        #[cfg(target_arch = "x86_64")]
        if let (true, Some(src), Some(dst)) = (
            crate::kernels::selected().pack() == crate::kernels::KernelChoice::Avx512,
            f32::from_view(T::view(b.data)),
            f32::from_view_mut(E::view_mut(chunk)),
        ) {
            for ls in 0..group {
                let (j0, jn) = (ls * NR, width.saturating_sub(ls * NR).min(NR));
                if jn == 0 {
                    break;
                }
                let panel = &mut dst[ls * k * NR..][..k * NR];
                let cols = &src[(c0 + j0) * b.col_stride..];
                // SAFETY: the selection point chose the AVX-512 packers, which it does only when
                // it detected AVX-512F; the function bounds-checks its slices.
                unsafe { super::pack::transpose_cols_f32(cols, b.col_stride, jn, k, panel, NR) };
            }
            return;
        }
        // Transposed view: column j of B is a contiguous run of k. f32 to f32 above transposes
        // 16 × 16 blocks in registers; otherwise through a tile of PB k-values × NR columns that
        // stays in L1, so every panel row is written whole. (Scattering one column at a time
        // touched a new cache line per element: a 32 × 1024 f32 block took 44 µs; the tile 14 µs,
        // the registers 5.4 µs.)
        const PB: usize = 16;
        let mut tile = [[E::default(); NR]; PB];
        let mut run = [E::default(); PB];
        for ls in 0..group {
            let (j0, jn) = (ls * NR, width.saturating_sub(ls * NR).min(NR));
            if jn == 0 {
                break;
            }
            for p0 in (0..k).step_by(PB) {
                let pn = PB.min(k - p0);
                for jj in 0..jn {
                    let src = &b.data[(c0 + j0 + jj) * b.col_stride + p0..][..pn];
                    let src = match E::from_view(T::view(src)) {
                        Some(same) => same,
                        None => {
                            cast_slice(src, &mut run[..pn]);
                            &run[..pn]
                        }
                    };
                    for (row, &x) in tile.iter_mut().zip(src) {
                        row[jj] = x;
                    }
                }
                for (dp, row) in tile.iter().enumerate().take(pn) {
                    chunk[(ls * k + p0 + dp) * NR..][..jn].copy_from_slice(&row[..jn]);
                }
            }
        }
    } else {
        for p in 0..k {
            for j in 0..width {
                let x = E::from_f32_rne(b.at(p, c0 + j).as_f32());
                chunk[((j / NR) * k + p) * NR + j % NR] = x;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::f16;

    #[test]
    fn panels_match_for_row_major_and_transposed_views() {
        let (k, n) = (5, 70);
        let b: Vec<f32> = (0..k * n).map(|i| i as f32 * 0.5).collect();
        let t: Vec<f32> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
        let row: Panels<f16> = pack_b_panels(MatRef::row_major(&b, k, n));
        let tr: Panels<f16> = pack_b_panels(MatRef::row_major(&t, n, k).t());
        assert_eq!(row.strips, 3);
        assert_eq!(row.data, tr.data);
        // B[4][69] sits in panel 2, row 4, column 5; column 6 of that panel is padding.
        assert_eq!(row.data[(2 * k + 4) * NR + 5], f16::from_f32(b[4 * n + 69]));
        assert_eq!(row.data[(2 * k + 4) * NR + 6], f16::ZERO);
    }

    #[test]
    fn a_strips_match_for_row_major_and_transposed_views() {
        let (m, k) = (14, 3);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32).collect();
        let t: Vec<f32> = (0..k * m).map(|i| a[(i % m) * k + i / m]).collect();
        let row = pack_a_strips(MatRef::row_major(&a, m, k));
        let tr = pack_a_strips(MatRef::row_major(&t, k, m).t());
        assert_eq!(row, tr);
        assert_eq!(row[(k + 2) * MR + 1], a[13 * k + 2]); // strip 1, p = 2, row 13
        assert_eq!(row[(k + 2) * MR + 2], 0.0);
    }

    #[test]
    fn reused_strips_hold_zeros_past_the_last_row() {
        // A product of 16 rows of NaN, then one of 14 rows on the same thread: the reused
        // buffer's padding rows are zeros again, not the earlier NaN.
        let k = 3;
        let nan = vec![f32::NAN; 16 * k];
        with_a_strips(MatRef::row_major(&nan, 16, k), |_| ());
        let a: Vec<f32> = (0..14 * k).map(|i| i as f32).collect();
        let fresh = pack_a_strips(MatRef::row_major(&a, 14, k));
        with_a_strips(MatRef::row_major(&a, 14, k), |reused| {
            assert_eq!(reused, &fresh[..])
        });
        assert!(fresh.iter().all(|x| x.is_finite()));
    }
}
