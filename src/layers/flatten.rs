//! [`Flatten`]: `[batch, d₁, …]` → `[batch, d₁·…]`, a reshape without a copy in training.

use std::marker::PhantomData;

use crate::dtype::Element;
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::saved::Saved;
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::pooling::{stateless_module, Geometry};
use crate::layers::Layer;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

/// The arguments of Keras's `Flatten`: none besides `data_format`, which is always
/// `"channels_last"` here (so the elements keep their row-major order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(
    feature = "serde",
    serde(try_from = "crate::layers::pooling::wire::KerasFlatten")
)]
#[non_exhaustive]
pub struct FlattenConfig {}

impl FlattenConfig {
    /// Keras's defaults.
    pub const fn new() -> Self {
        FlattenConfig {}
    }
}

/// Keras's `Flatten`: `[batch, d₁, …, d_k]` → `[batch, d₁·…·d_k]` (a 1-D `[batch]` becomes
/// `[batch, 1]`, as in Keras). The elements are not touched: [`train_forward`] and backward
/// only change the shape (no copy); [`forward`](Self::forward) borrows its input, so it copies
/// once.
///
/// [`Layer::output_dim`] is `None`: the flat width depends on every dimension, not only the
/// last.
///
/// [`train_forward`]: Layer::train_forward
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::Flatten;
/// let mut flat = Flatten::<F32>::new();
/// let y = flat.train_forward(Tensor::zeros(vec![2, 3, 4, 5])?)?;
/// assert_eq!(y.shape(), &[2, 60]);
/// let dx = flat.backward(y, true)?.unwrap();
/// assert_eq!(dx.shape(), &[2, 3, 4, 5]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Flatten<P: Policy = DefaultPolicy> {
    args: FlattenConfig,
    saved: Saved<Geometry<Vec<usize>>>,
    _policy: PhantomData<P>,
}

stateless_module!(Flatten);

impl<P: Policy> Default for Flatten<P> {
    fn default() -> Self {
        Self::new()
    }
}

impl<P: Policy> Flatten<P> {
    /// The layer.
    pub fn new() -> Self {
        Flatten {
            args: FlattenConfig::new(),
            saved: Saved::default(),
            _policy: PhantomData,
        }
    }

    /// Keras's `compute_output_shape`: `[batch, product of the rest]`.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] for a 0-D input (there is no batch dimension).
    pub fn compute_output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        match input_shape.split_first() {
            Some((&n, rest)) => Ok(vec![n, rest.iter().product()]),
            None => Err(Error::shape(
                "flatten input",
                "[batch, ..]".into(),
                input_shape,
            )),
        }
    }

    /// `x` with its dimensions after the first multiplied into one (a copy of `x`).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] for a 0-D input.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let shape = self.compute_output_shape(x.shape())?;
        Ok(Tensor::from_parts(shape, x.as_slice().to_vec()))
    }

    /// [`forward`](Self::forward) of an owned `x`: only the shape changes (no copy).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] for a 0-D input.
    pub fn forward_owned(&self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let shape = self.compute_output_shape(x.shape())?;
        Ok(Tensor::from_parts(shape, x.into_vec()))
    }

    /// Keras's `layer(x)`: casts `x` to the compute type, then flattens it.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward).
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        let shape = self.compute_output_shape(x.shape())?;
        Ok(Tensor::from_parts(shape, x.cast::<P::Compute>().into_vec()))
    }
}

impl<P: Policy> Layer for Flatten<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let shape = self.compute_output_shape(x.shape())?;
        self.saved.save(Geometry(x.shape().to_vec()));
        Ok(Tensor::from_parts(shape, x.into_vec()))
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let Geometry(in_shape) = self.saved.take("Flatten")?;
        let out_shape = self.compute_output_shape(&in_shape)?;
        if dy.shape() != out_shape {
            return Err(Error::shape(
                "flatten output gradient",
                fmt_shape(&out_shape),
                dy.shape(),
            ));
        }
        Ok(need_input_grad.then(|| Tensor::from_parts(in_shape, dy.into_vec())))
    }

    saved_slot!();

    fn output_dim(&self, _input: usize) -> Option<usize> {
        None
    }

    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        self.compute_output_shape(input).ok()
    }
}
