//! [`GlobalAveragePooling2D`]: the mean over the height and width of each image, per channel.

use std::marker::PhantomData;

use rayon::prelude::*;

use super::{stateless_module, Geometry};
use crate::dtype::{cast_slice, Element};
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::saved::Saved;
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::ops::workspace::AccOf;
use crate::layers::Layer;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

/// The arguments of Keras's `GlobalAveragePooling2D` (channels last).
///
/// | field | default |
/// | --- | --- |
/// | `keepdims` | `false`: the output is `[batch, c]`; `true` keeps `[batch, 1, 1, c]` |
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "super::wire::KerasGlobalPool"))]
#[non_exhaustive]
pub struct GlobalPooling2DConfig {
    /// Keep the two spatial dimensions (as 1).
    pub keepdims: bool,
}

impl GlobalPooling2DConfig {
    /// Keras's defaults (`keepdims=False`).
    pub const fn new() -> Self {
        GlobalPooling2DConfig { keepdims: false }
    }

    /// Sets `keepdims`.
    pub const fn keepdims(self, keepdims: bool) -> Self {
        GlobalPooling2DConfig { keepdims }
    }

    /// A [`GlobalAveragePooling2D`] under policy `P`.
    pub fn average_pooling<P: Policy>(&self) -> GlobalAveragePooling2D<P> {
        GlobalAveragePooling2D {
            args: *self,
            saved: Saved::default(),
            _policy: PhantomData,
        }
    }
}

/// Keras's `GlobalAveragePooling2D` (channels last): `[batch, h, w, c]` → `[batch, c]` (or
/// `[batch, 1, 1, c]` with `keepdims`), the mean over `h · w` positions summed and divided in
/// f32 (f64 for `F64`), rounded once to the compute type. An image with no positions
/// (`h · w = 0`) has a NaN mean, as in Keras. Backward gives every position `dy / (h · w)`,
/// rounded once.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::GlobalAveragePooling2D;
/// let gap = GlobalAveragePooling2D::<MixedBf16>::new();
/// let x = Tensor::from_vec(vec![1, 2, 1, 2], vec![1.0f32, 10.0, 2.0, 20.0])?;
/// assert_eq!(gap.call(&x)?.to_f64_vec(), vec![1.5, 15.0]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GlobalAveragePooling2D<P: Policy = DefaultPolicy> {
    args: GlobalPooling2DConfig,
    saved: Saved<Geometry<[usize; 4]>>,
    _policy: PhantomData<P>,
}

stateless_module!(GlobalAveragePooling2D);

impl<P: Policy> Default for GlobalAveragePooling2D<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Policy> GlobalAveragePooling2D<P> {
    /// Keras's defaults (`keepdims=False`).
    pub fn new() -> Self {
        GlobalPooling2DConfig::new().average_pooling()
    }

    /// The arguments.
    pub fn config(&self) -> GlobalPooling2DConfig {
        self.args
    }

    /// `[n, h, w, c]` of a 4-D input.
    fn dims(shape: &[usize]) -> Result<[usize; 4]> {
        match *shape {
            [n, h, w, c] => Ok([n, h, w, c]),
            _ => Err(Error::shape(
                "global_average_pooling2d input",
                "[batch, height, width, channels] (NHWC)".into(),
                shape,
            )),
        }
    }

    fn output_shape(&self, [n, _, _, c]: [usize; 4]) -> Vec<usize> {
        if self.args.keepdims {
            vec![n, 1, 1, c]
        } else {
            vec![n, c]
        }
    }

    /// Keras's `compute_output_shape`.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward).
    pub fn compute_output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.output_shape(Self::dims(input_shape)?))
    }

    /// The per-image channel means of `x` (`[batch, h, w, c]`, compute type).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not 4-D.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let d = Self::dims(x.shape())?;
        let [_, h, w, c] = d;
        let mut y = vec![P::Compute::default(); d[0] * c];
        if c > 0 {
            let hw = h * w;
            let count = AccOf::<P>::from_f64_rne(hw as f64);
            y.par_chunks_mut(c).enumerate().for_each(|(n, out)| {
                let (mut sum, mut run) = (
                    vec![AccOf::<P>::default(); c],
                    vec![AccOf::<P>::default(); c],
                );
                for px in x.as_slice()[n * hw * c..][..hw * c].chunks_exact(c) {
                    cast_slice(px, &mut run);
                    sum.iter_mut().zip(&run).for_each(|(s, &v)| *s = *s + v);
                }
                sum.iter_mut().for_each(|s| *s = *s / count);
                cast_slice(&sum, out);
            });
        }
        Ok(Tensor::from_parts(self.output_shape(d), y))
    }

    /// Keras's `layer(x)`: casts `x` to the compute type (free when equal), then
    /// [`forward`](Self::forward).
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward).
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        self.forward(&x.cast_ref::<P::Compute>())
    }
}

impl<P: Policy> Layer for GlobalAveragePooling2D<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let y = self.forward(&x)?;
        self.saved.save(Geometry(Self::dims(x.shape())?));
        Ok(y)
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let Geometry(d) = self.saved.take("GlobalAveragePooling2D")?;
        let out_shape = self.output_shape(d);
        if dy.shape() != out_shape {
            return Err(Error::shape(
                "global_average_pooling2d output gradient",
                fmt_shape(&out_shape),
                dy.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let [n, h, w, c] = d;
        let hw = h * w;
        let count = AccOf::<P>::from_f64_rne(hw as f64);
        let mut dx = vec![P::Compute::default(); n * hw * c];
        if !dx.is_empty() {
            dx.par_chunks_mut(hw * c).enumerate().for_each(|(i, out)| {
                let mut g = vec![AccOf::<P>::default(); c];
                cast_slice(&dy.as_slice()[i * c..][..c], &mut g);
                g.iter_mut().for_each(|v| *v = *v / count);
                let mut r = vec![P::Compute::default(); c];
                cast_slice(&g, &mut r);
                out.chunks_exact_mut(c)
                    .for_each(|px| px.copy_from_slice(&r));
            });
        }
        Ok(Some(Tensor::from_parts(d.to_vec(), dx)))
    }

    saved_slot!();

    fn output_dim(&self, input: usize) -> Option<usize> {
        Some(input)
    }

    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        self.compute_output_shape(input).ok()
    }
}
