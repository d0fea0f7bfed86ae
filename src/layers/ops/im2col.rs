//! The two reshuffles that turn a 2-D convolution into the matrix products every layer shares:
//!
//! - [`im2col`]: the NHWC input as the `rows × taps` matrix of its windows (row = output
//!   position `(n, oy, ox)`, column = tap `(ky, kx, c)`, the row-major order of a Keras kernel
//!   `[kh, kw, in, filters]`), zeros where a tap falls in the padding. Values are copied, not
//!   rounded: each window row is `kh·kw` contiguous channel runs.
//! - [`col2im`]: the gradient of that matrix (in the accumulator type) summed back onto the
//!   input positions each window read, as a gather per input row in a fixed tap order (so the
//!   sums do not depend on the thread count), rounded once to the compute type.
//!
//! Both run in parallel over rows of the image (one task per output or input row).

use std::cell::RefCell;
use std::ops::Range;

use rayon::prelude::*;

use super::window::Window2d;
use crate::dtype::{cast_slice, Element, VecOf};

/// Output rows per parallel task of [`im2col`].
const ROWS_PER_TASK: usize = 16;

/// Output rows per block of a blocked convolution product: the window matrix of one block is
/// about 4 MiB of `T` (mostly still in cache when the product packs what [`im2col`] wrote, and
/// enough rows to keep both cores busy on the kernel's parallel blocks), a multiple of 128 rows
/// (the AMX kernel's parallel blocks), at least 128. Measured on the Conv2D bench (32 × 32×32×64,
/// 576 taps), MixedBf16 forward: 1 MiB blocks 12.5 ms, 2 MiB 10.2, 4 MiB 8.6, 8 MiB 7.7, the
/// whole matrix at once (page faults of a fresh 37 MiB pack per call) 52; F32 28–31 ms at 1–4
/// MiB, 22 at 8 MiB (one run each, another build running).
pub(crate) fn block_rows<T>(taps: usize) -> usize {
    let rows = (1 << 22) / (taps.max(1) * std::mem::size_of::<T>().max(1));
    (rows / 128).max(1) * 128
}

/// Writes the windows of output rows `rows` of `x` (an NHWC tensor of `g`'s shape) into `out`
/// (`rows.len() × taps`; its old values are overwritten, never read).
pub(crate) fn im2col<T: Element>(x: &[T], g: &Window2d, rows: Range<usize>, out: &mut [T]) {
    let (h, w, c) = (g.h, g.w, g.channels);
    let taps = g.taps();
    debug_assert_eq!(out.len(), rows.len() * taps);
    debug_assert_eq!(x.len(), g.batch * h.input * w.input * c);
    if out.is_empty() {
        return;
    }
    out.par_chunks_mut(ROWS_PER_TASK * taps)
        .enumerate()
        .for_each(|(t, task)| {
            for (i, window) in task.chunks_exact_mut(taps).enumerate() {
                let row = rows.start + t * ROWS_PER_TASK + i;
                let (img, pos) = (row / (h.output * w.output), row % (h.output * w.output));
                let (oy, ox) = (pos / w.output, pos % w.output);
                for ky in 0..h.kernel {
                    let iy = h.source(oy, ky);
                    for kx in 0..w.kernel {
                        let dst = &mut window[(ky * w.kernel + kx) * c..][..c];
                        match (iy, w.source(ox, kx)) {
                            (Some(iy), Some(ix)) => dst.copy_from_slice(
                                &x[((img * h.input + iy) * w.input + ix) * c..][..c],
                            ),
                            _ => dst.fill(T::default()),
                        }
                    }
                }
            }
        });
}

/// The input gradient of images `images` from the gradient of their window matrix rows,
/// `dcols` (in `C`'s accumulator type), into `dx` (those images' `height · width · channels`
/// elements each): each input element is the sum, over the windows and taps that read it (in a
/// fixed order), of their gradients, rounded once to `C`.
pub(crate) fn col2im<C: Element>(
    dcols: &[C::Acc],
    g: &Window2d,
    images: Range<usize>,
    dx: &mut [C],
) {
    let (h, w, c) = (g.h, g.w, g.channels);
    let taps = g.taps();
    debug_assert_eq!(dcols.len(), images.len() * h.output * w.output * taps);
    let row_len = w.input * c;
    debug_assert_eq!(dx.len(), images.len() * h.input * row_len);
    if dx.is_empty() {
        return;
    }
    dx.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(row, out)| {
            let (n, iy) = (row / h.input, row % h.input);
            let mut acc = vec![C::Acc::default(); row_len];
            for (oy, ky) in h.readers(iy) {
                let out_row = (n * h.output + oy) * w.output;
                for (ix, px) in acc.chunks_exact_mut(c).enumerate() {
                    for (ox, kx) in w.readers(ix) {
                        let src = &dcols[(out_row + ox) * taps + (ky * w.kernel + kx) * c..][..c];
                        px.iter_mut().zip(src).for_each(|(a, &d)| *a = *a + d);
                    }
                }
            }
            cast_slice(&acc, out);
        });
}

thread_local! {
    /// The im2col matrix of inference passes, kept per thread between calls (in the element type
    /// of the last pass), so repeated inference neither allocates nor faults in a new buffer.
    static INFER_COLS: RefCell<Option<VecOf>> = const { RefCell::new(None) };
}

/// Runs `f` with the thread's reused im2col buffer for element type `T` (a new one when the
/// last pass on this thread used another type). Its old values are overwritten by [`im2col`].
pub(crate) fn with_infer_cols<T: Element, R>(f: impl FnOnce(&mut Vec<T>) -> R) -> R {
    let held = INFER_COLS.with(|c| c.borrow_mut().take());
    let mut buf = held
        .and_then(|v| T::from_vec_of(v).ok())
        .unwrap_or_default();
    let out = f(&mut buf);
    INFER_COLS.with(|c| *c.borrow_mut() = Some(T::into_vec_of(buf)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::ops::window::Padding;

    /// A 1×3×3×2 input, 2×2 window, stride 1, "same" (pad 0 before, 1 after): each row is the
    /// window's taps in (ky, kx, c) order, zeros past the edge.
    #[test]
    fn windows_in_keras_kernel_order() {
        let x: Vec<f32> = (1..=18).map(|v| v as f32).collect();
        let g = Window2d::new("t", &[1, 3, 3, 2], Some(2), [(2, 1, 1); 2], Padding::Same).unwrap();
        let mut cols = vec![99.0; 9 * 8]; // stale contents are overwritten
        im2col(&x, &g, 0..9, &mut cols);
        let mut tail = vec![99.0; 2 * 8];
        im2col(&x, &g, 7..9, &mut tail);
        assert_eq!(tail, cols[7 * 8..]);
        assert_eq!(&cols[..8], &[1.0, 2.0, 3.0, 4.0, 7.0, 8.0, 9.0, 10.0]);
        // Output (0, 2): the right column is padding.
        assert_eq!(&cols[16..24], &[5.0, 6.0, 0.0, 0.0, 11.0, 12.0, 0.0, 0.0]);
        // Output (2, 2): only the top-left tap is inside.
        assert_eq!(&cols[64..], &[17.0, 18.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    /// col2im is im2col's adjoint: <im2col(x), d> = <x, col2im(d)> for exact small integers.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        for (shape, args, p) in [
            ([2, 5, 4, 3], [(3, 2, 1), (2, 1, 1)], Padding::Same),
            ([1, 7, 7, 2], [(3, 1, 2), (3, 2, 1)], Padding::Valid),
            ([1, 3, 2, 1], [(5, 1, 1), (4, 3, 1)], Padding::Same),
        ] {
            let g = Window2d::new("t", &shape, None, args, p).unwrap();
            let n: usize = shape.iter().product();
            let x: Vec<f64> = (0..n).map(|i| ((i * 7) % 11) as f64 - 5.0).collect();
            let mut cols = vec![0.0; g.output_rows() * g.taps()];
            im2col(&x, &g, 0..g.output_rows(), &mut cols);
            let d: Vec<f64> = (0..cols.len())
                .map(|i| ((i * 5) % 13) as f64 - 6.0)
                .collect();
            let mut dx = vec![0.0; n];
            col2im::<f64>(&d, &g, 0..shape[0], &mut dx);
            let lhs: f64 = cols.iter().zip(&d).map(|(a, b)| a * b).sum();
            let rhs: f64 = x.iter().zip(&dx).map(|(a, b)| a * b).sum();
            assert_eq!(lhs, rhs, "{shape:?} {args:?} {p}");
        }
    }

    #[test]
    fn inference_buffer_is_reused_per_type() {
        let p = with_infer_cols::<f32, _>(|b| {
            b.resize(1000, 0.0);
            b.as_ptr() as usize
        });
        assert_eq!(with_infer_cols::<f32, _>(|b| b.as_ptr() as usize), p);
        assert_eq!(with_infer_cols::<f64, _>(|b| b.capacity()), 0);
    }
}
