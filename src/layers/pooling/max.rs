//! [`MaxPooling2D`]: the largest value of each window, per channel; backward routes each
//! output's gradient to the input element it came from.

use std::marker::PhantomData;

use rayon::prelude::*;

use super::{
    for_each_output_row, pool2d_common, scatter_per_image, stateless_module, Pool2DConfig,
};
use crate::dtype::Element;
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::ops::saved::{Saved, SavedBytes};
use crate::layers::ops::window::Window2d;
use crate::layers::Layer;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

/// Keras's `MaxPooling2D` (channels last): `[batch, h, w, c]` → `[batch, out_h, out_w, c]`,
/// each output the maximum of its window (see [`Pool2DConfig`] for the sizes). Under
/// `padding="same"` the padding never wins (it is not a value). The output is one of the
/// inputs, so nothing is rounded.
///
/// Backward sends each output's gradient to the input element that was the maximum: the first
/// one in the window (row-major order) on ties. A window holding NaN outputs NaN (the first
/// NaN wins over every number, as a NaN should stay visible) and that NaN takes the gradient.
/// Overlapping windows (strides below the pool size) add their gradients in f32 (f64 for
/// `F64`), rounded once.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::MaxPooling2D;
/// let pool = MaxPooling2D::<F32>::new(); // 2×2, strides 2, "valid"
/// let x = Tensor::from_vec(vec![1, 2, 2, 1], vec![1.0f32, 4.0, 3.0, 2.0])?;
/// assert_eq!(pool.forward(&x)?.as_slice(), &[4.0]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct MaxPooling2D<P: Policy = DefaultPolicy> {
    args: Pool2DConfig,
    saved: Saved<MaxSaved>,
    _policy: PhantomData<P>,
}

stateless_module!(MaxPooling2D);
pool2d_common!(MaxPooling2D, "max_pooling2d input");

/// The flat input index of each output's maximum, and the window.
#[derive(Debug, Clone)]
struct MaxSaved {
    arg: Vec<usize>,
    window: Window2d,
}

impl SavedBytes for MaxSaved {
    fn saved_bytes(&self) -> usize {
        self.arg.len() * std::mem::size_of::<usize>()
    }
}

impl<P: Policy> MaxPooling2D<P> {
    /// The pooled `x` (`[batch, h, w, c]`, compute type).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not 4-D; [`Error::InvalidArgument`] when under
    /// `padding="valid"` the window is larger than the input, naming both.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let g = self.args.window(Self::INPUT, x.shape())?;
        let mut y = vec![P::Compute::default(); g.output_rows() * g.channels];
        for_each_output_row(&mut y, &g, |r, out| max_row(x.as_slice(), &g, r, out, None));
        Ok(Tensor::from_parts(g.output_shape(g.channels), y))
    }
}

/// One output row `r = (n, oy)`: each output the window's maximum, and (when `arg` is given)
/// the flat input index it came from.
fn max_row<T: Element>(
    x: &[T],
    g: &Window2d,
    r: usize,
    out: &mut [T],
    mut arg: Option<&mut [usize]>,
) {
    let (h, w, c) = (g.h, g.w, g.channels);
    let (n, oy) = (r / h.output, r % h.output);
    for ox in 0..w.output {
        let (best, mut idx) = (
            &mut out[ox * c..][..c],
            arg.as_deref_mut().map(|a| &mut a[ox * c..][..c]),
        );
        let mut first = true;
        for iy in (0..h.kernel).filter_map(|ky| h.source(oy, ky)) {
            for ix in (0..w.kernel).filter_map(|kx| w.source(ox, kx)) {
                let base = ((n * h.input + iy) * w.input + ix) * c;
                let run = &x[base..][..c];
                for ch in 0..c {
                    let v = run[ch];
                    let b = best[ch];
                    if first || v > b || (v.is_nan() && !b.is_nan()) {
                        best[ch] = v;
                        if let Some(idx) = idx.as_deref_mut() {
                            idx[ch] = base + ch;
                        }
                    }
                }
                first = false;
            }
        }
    }
}

impl<P: Policy> Layer for MaxPooling2D<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let g = self.args.window(Self::INPUT, x.shape())?;
        let len = g.output_rows() * g.channels;
        let (mut y, mut arg) = (vec![P::Compute::default(); len], vec![0usize; len]);
        let row_len = g.w.output * g.channels;
        if len > 0 {
            y.par_chunks_mut(row_len)
                .zip(arg.par_chunks_mut(row_len))
                .enumerate()
                .for_each(|(r, (out, a))| max_row(x.as_slice(), &g, r, out, Some(a)));
        }
        self.saved.save(MaxSaved { arg, window: g });
        Ok(Tensor::from_parts(g.output_shape(g.channels), y))
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let MaxSaved { arg, window: g } = self.saved.take("MaxPooling2D")?;
        let out_shape = g.output_shape(g.channels);
        if dy.shape() != out_shape {
            return Err(Error::shape(
                "max_pooling2d output gradient",
                fmt_shape(&out_shape),
                dy.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let (in_len, out_len) = (
            g.h.input * g.w.input * g.channels,
            g.h.output * g.w.output * g.channels,
        );
        let dx = scatter_per_image::<P::Compute>(dy.as_slice(), &g, |n, dy, dx| {
            for (&a, &d) in arg[n * out_len..][..out_len].iter().zip(dy) {
                dx[a - n * in_len] = dx[a - n * in_len] + d;
            }
        });
        let in_shape = vec![g.batch, g.h.input, g.w.input, g.channels];
        Ok(Some(Tensor::from_parts(in_shape, dx)))
    }

    saved_slot!();

    fn output_dim(&self, input: usize) -> Option<usize> {
        Some(input)
    }

    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        self.compute_output_shape(input).ok()
    }
}
