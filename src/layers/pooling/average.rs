//! [`AveragePooling2D`]: the mean of each window, per channel, over the window's elements that
//! lie inside the input.

use std::marker::PhantomData;

use super::{
    for_each_output_row, pool2d_common, scatter_per_image, stateless_module, Geometry, Pool2DConfig,
};
use crate::dtype::{cast_slice, Element};
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::saved::Saved;
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::ops::window::Window2d;
use crate::layers::ops::workspace::AccOf;
use crate::layers::Layer;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

/// Keras's `AveragePooling2D` (channels last): `[batch, h, w, c]` → `[batch, out_h, out_w, c]`,
/// each output the mean of its window (sizes as [`Pool2DConfig`]). Under `padding="same"` a
/// window at the edge averages only the elements inside the input (as Keras and TensorFlow
/// do: the padding is not counted). The sum and the division are in f32 (f64 for `F64`), with
/// one rounding to the compute type; backward gives each element of a window `dy / count`,
/// summed over overlapping windows in f32 and rounded once.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::{AveragePooling2D, Padding, Pool2DConfig};
/// let x = Tensor::from_vec(vec![1, 1, 3, 1], vec![1.0f32, 2.0, 6.0])?;
/// let same = Pool2DConfig::new().pool_size((1, 2)).padding(Padding::Same);
/// let pool: AveragePooling2D<F32> = same.average_pooling()?;
/// assert_eq!(pool.forward(&x)?.as_slice(), &[1.5, 6.0]); // the last window holds only 6
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct AveragePooling2D<P: Policy = DefaultPolicy> {
    args: Pool2DConfig,
    saved: Saved<Geometry<Window2d>>,
    _policy: PhantomData<P>,
}

stateless_module!(AveragePooling2D);
pool2d_common!(AveragePooling2D, "average_pooling2d input");

/// The number of the window's taps inside the input along one axis.
fn inside(a: &crate::layers::ops::window::Axis, o: usize) -> usize {
    (0..a.kernel).filter(|&k| a.source(o, k).is_some()).count()
}

impl<P: Policy> AveragePooling2D<P> {
    /// The pooled `x` (`[batch, h, w, c]`, compute type).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not 4-D; [`Error::InvalidArgument`] when under
    /// `padding="valid"` the window is larger than the input, naming both.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let g = self.args.window(Self::INPUT, x.shape())?;
        Ok(Tensor::from_parts(
            g.output_shape(g.channels),
            average(x.as_slice(), &g),
        ))
    }
}

/// The window means of `x`, summed and divided in the accumulator type, rounded once.
fn average<T: Element>(x: &[T], g: &Window2d) -> Vec<T> {
    let (h, w, c) = (g.h, g.w, g.channels);
    let mut y = vec![T::default(); g.output_rows() * c];
    for_each_output_row(&mut y, g, |r, out| {
        let (n, oy) = (r / h.output, r % h.output);
        let (mut sum, mut run) = (vec![T::Acc::default(); c], vec![T::Acc::default(); c]);
        let rows = inside(&h, oy);
        for ox in 0..w.output {
            sum.iter_mut().for_each(|s| *s = T::Acc::default());
            for iy in (0..h.kernel).filter_map(|ky| h.source(oy, ky)) {
                for ix in (0..w.kernel).filter_map(|kx| w.source(ox, kx)) {
                    cast_slice(&x[((n * h.input + iy) * w.input + ix) * c..][..c], &mut run);
                    sum.iter_mut().zip(&run).for_each(|(s, &v)| *s = *s + v);
                }
            }
            let count = T::Acc::from_f64_rne((rows * inside(&w, ox)) as f64);
            sum.iter_mut().for_each(|s| *s = *s / count);
            cast_slice(&sum, &mut out[ox * c..][..c]);
        }
    });
    y
}

impl<P: Policy> Layer for AveragePooling2D<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let g = self.args.window(Self::INPUT, x.shape())?;
        let y = average(x.as_slice(), &g);
        self.saved.save(Geometry(g));
        Ok(Tensor::from_parts(g.output_shape(g.channels), y))
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let Geometry(g) = self.saved.take("AveragePooling2D")?;
        let out_shape = g.output_shape(g.channels);
        if dy.shape() != out_shape {
            return Err(Error::shape(
                "average_pooling2d output gradient",
                fmt_shape(&out_shape),
                dy.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let (h, w, c) = (g.h, g.w, g.channels);
        let dx = scatter_per_image::<P::Compute>(dy.as_slice(), &g, |_, dy, dx| {
            for oy in 0..h.output {
                let rows = inside(&h, oy);
                for ox in 0..w.output {
                    let count = AccOf::<P>::from_f64_rne((rows * inside(&w, ox)) as f64);
                    let d = &dy[(oy * w.output + ox) * c..][..c];
                    for iy in (0..h.kernel).filter_map(|ky| h.source(oy, ky)) {
                        for ix in (0..w.kernel).filter_map(|kx| w.source(ox, kx)) {
                            let px = &mut dx[(iy * w.input + ix) * c..][..c];
                            px.iter_mut().zip(d).for_each(|(a, &d)| *a = *a + d / count);
                        }
                    }
                }
            }
        });
        let in_shape = vec![g.batch, h.input, w.input, c];
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
