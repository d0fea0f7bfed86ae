//! Conv2D's training side: the [`Layer`] impl. The training pass keeps the window matrix, or
//! after an implicit product the input (and the output for a non-linear activation). Backward
//! is the shared activation-gradient pass and `db = Σ dz`, then:
//!
//! - `dW`: on the AMX tiles from the input and `dz` (`implicit::weight_grad`) after an implicit
//!   product, otherwise `colsᵀ·dz` on the window matrix (written block by block from the input
//!   when only the input was kept);
//! - `dx`: the implicit product of `dz` with the flipped kernel for strides of 1
//!   (`implicit::input_grad`), otherwise `dcols = dz·Wᵀ` on the cached transposed packed kernel
//!   gathered back onto the input.

use super::{implicit, Conv2D, ConvSaved};
use crate::dtype::max_abs;
use crate::error::{fmt_shape, Error, Result};
use crate::kernels::{gemm, gemm_packed, MatRef};
use crate::layers::ops::fused::{pre_activation_grad, sum_bound, PreActivationGrad};
use crate::layers::ops::im2col::{block_rows, col2im, im2col};
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::ops::window::Window2d;
use crate::layers::ops::workspace::AccOf;
use crate::layers::{Activation, Layer};
use crate::policy::Policy;
use crate::tensor::Tensor;

impl<P: Policy> Layer for Conv2D<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let g = self.window(x.shape())?;
        let mut cols = self.cols.take();
        let mut acc = self.scratch.forward.take();
        let (y, implicit) = self.product(x.as_slice(), &g, &mut cols, true, &mut acc);
        self.scratch.forward.restore(acc);
        let keep_y = self.args.activation != Activation::Linear;
        let max_abs_x = max_abs(x.as_slice());
        let (cols, input) = if implicit {
            self.cols.restore(cols); // the padded input: a buffer for backward's blocks
            (Vec::new(), Some(x.into_vec()))
        } else {
            (cols, None)
        };
        self.saved.save(ConvSaved {
            cols,
            input,
            y: keep_y.then(|| y.clone()),
            window: g,
            max_abs_x,
        });
        Ok(Tensor::from_parts(g.output_shape(self.filters()), y))
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let saved = self.saved.take("Conv2D")?;
        let g = saved.window;
        let (rows, taps, n) = (g.output_rows(), g.taps(), self.filters());
        let out_shape = g.output_shape(n);
        if dy.shape() != out_shape {
            if saved.input.is_none() {
                self.cols.restore(saved.cols);
            }
            return Err(Error::shape(
                "conv2d output gradient",
                fmt_shape(&out_shape),
                dy.shape(),
            ));
        }
        let PreActivationGrad {
            mut dz,
            max_abs: mz,
            col_sums,
        } = pre_activation_grad(
            dy.into_vec(),
            saved.y.as_deref(),
            n,
            self.args.activation,
            self.bias.is_some(),
        );
        // The bounds of Dense: each of the `rows` terms of dW is at most max|x|·max|dz| (padding
        // taps are zeros), each of db's at most max|dz|.
        let bound = sum_bound(rows, saved.max_abs_x * mz);
        // dW: on the tiles from the input and dz where the kernels have that path (after an
        // implicit forward product), otherwise from the window matrix.
        let mut buf = match saved.input {
            Some(_) => self.cols.take(),
            None => saved.cols,
        };
        let input = saved.input.as_deref();
        self.kernel.write_grad::<AccOf<P>>(bound, |dw| {
            let tiles = input.is_some_and(|x| implicit::weight_grad(x, &g, &dz, n, &mut buf, dw));
            if !tiles {
                window_matrix_dw(&g, &dz, n, input, &mut buf, dw);
            }
        });
        if let (Some(b), Some(sums)) = (&mut self.bias, col_sums) {
            b.write_grad::<AccOf<P>>(sum_bound(rows, mz), |db| db.copy_from_slice(&sums));
        }
        if !need_input_grad {
            self.cols.restore(buf);
            return Ok(None);
        }
        let in_shape = vec![g.batch, g.h.input, g.w.input, g.channels];
        if let Some(dx) = implicit::input_grad(&mut dz, &g, self.kernel.compute(), n, &mut buf) {
            self.cols.restore(buf);
            return Ok(Some(Tensor::from_parts(in_shape, dx)));
        }
        self.cols.restore(buf);
        // dcols = dz·Wᵀ in f32 (the reused accumulator, overwritten), gathered onto the input
        // and rounded once, for groups of whole images of about 4 MiB of dcols each (the
        // gather of an image reads only its own windows, still in cache).
        let per_image = g.h.output * g.w.output;
        let in_image = g.h.input * g.w.input * g.channels;
        let mut dx = vec![P::Compute::default(); g.batch * in_image];
        if per_image > 0 && !dx.is_empty() {
            let images = (block_rows::<AccOf<P>>(taps) / per_image).max(1);
            let mut dcols = self.scratch.backward.take();
            dcols.resize(
                images.min(g.batch) * per_image * taps,
                AccOf::<P>::default(),
            );
            let wt = self.kernel.packed(true);
            for first in (0..g.batch).step_by(images) {
                let last = (first + images).min(g.batch);
                let (r0, r1) = (first * per_image, last * per_image);
                let d = &mut dcols[..(r1 - r0) * taps];
                gemm_packed(
                    MatRef::row_major(&dz[r0 * n..r1 * n], r1 - r0, n),
                    wt,
                    d,
                    false,
                );
                col2im::<P::Compute>(
                    d,
                    &g,
                    first..last,
                    &mut dx[first * in_image..last * in_image],
                );
            }
            self.scratch.backward.restore(dcols);
        }
        Ok(Some(Tensor::from_parts(in_shape, dx)))
    }

    saved_slot!();

    fn output_dim(&self, input: usize) -> Option<usize> {
        (input == self.input_channels()).then_some(self.filters())
    }

    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        self.compute_output_shape(input).ok()
    }
}

/// `dw` (`taps × n`) `= colsᵀ·dz`, formed as `(dzᵀ·cols)ᵀ` summed over the forward pass's blocks
/// of rows: each block of the long matrix `cols` (about 4 MiB) is the row-major right operand,
/// packed by rows from cache into a small buffer, and `dz`'s block the transposed view. `buf`
/// holds the whole window matrix, or with the `input` given (after an implicit forward
/// product) it is the reused buffer into which the window matrix is written a block at a time.
fn window_matrix_dw<T: crate::dtype::Element>(
    g: &Window2d,
    dz: &[T],
    n: usize,
    input: Option<&[T]>,
    buf: &mut Vec<T>,
    dw: &mut [T::Acc],
) {
    let (rows, taps) = (g.output_rows(), g.taps());
    let mut dw_t = vec![T::Acc::default(); n * taps];
    let block = block_rows::<T>(taps);
    for start in (0..rows).step_by(block) {
        let end = (start + block).min(rows);
        let dz_b = MatRef::row_major(&dz[start * n..end * n], end - start, n);
        let cols_b = match input {
            Some(x) => {
                buf.resize((end - start) * taps, T::default());
                im2col(x, g, start..end, buf);
                &buf[..]
            }
            None => &buf[start * taps..end * taps],
        };
        gemm(
            dz_b.t(),
            MatRef::row_major(cols_b, end - start, taps),
            &mut dw_t,
            start > 0,
        );
    }
    for (j, row) in dw_t.chunks_exact(taps).enumerate() {
        for (t, &v) in row.iter().enumerate() {
            dw[t * n + j] = v;
        }
    }
}
