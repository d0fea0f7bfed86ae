//! [`Dense`]: `y = activation(x·W + b)`, Keras's `Dense` with its policy as a type parameter,
//! built from a [`DenseConfig`]; its training side is in `dense/train.rs`, its run-time form
//! ([`AnyDense`]) in `dense/any.rs`, and the machinery it shares with other layers in
//! `layers/ops/`.

use std::marker::PhantomData;

use crate::dtype::{cast_cow, Element};
use crate::error::{fmt_shape, Error, Result};
use crate::kernels::MatRef;
use crate::layers::ops::fused::gemm_bias_activation;
use crate::layers::ops::saved::{InputOutput, Saved};
use crate::layers::ops::workspace::{with_infer_acc, AccOf, Scratch};
use crate::layers::Activation;
use crate::param::Param;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;
use crate::Module;

mod any;
mod config;
#[cfg(test)]
mod tests;
mod train;

pub use any::{AnyDense, DenseFamily};
pub use config::DenseConfig;

/// A densely connected layer: `y = activation(x·W + b)`.
///
/// - `kernel` `W`: shape `[input_dim, units]`, stored in `P::Variable`, initialised Glorot
///   uniform `U(-k, k)` with `k = sqrt(6 / (input_dim + units))` (Keras's default; other
///   initialisers and seeds through [`DenseConfig`]).
/// - `bias` `b`: shape `[units]`, stored in `P::Variable`, initialised to zeros; optional.
/// - Forward: `x` and the variables are read in `P::Compute`; products are summed in
///   `<P::Compute as Element>::Acc` (f32; f64 for `F64`) together with the bias and the
///   activation, and the result is rounded once to `P::Compute`.
/// - Backward: `dW = xᵀ·dz` and `db = Σ dz` accumulated in f32 from compute-type operands and
///   stored in `P::Variable`; `dx = dz·Wᵀ` rounded once to `P::Compute`. The training pass saves
///   `x` and, for a non-linear activation, `y`, both in the compute type.
///
/// Two entry points compute: [`forward`](Self::forward) takes the compute type and nothing
/// else (a typed refusal of implicit casts), [`call`](Self::call) casts any float input first,
/// as Keras's `layer(x)`. The [`Layer`](crate::layers::Layer) impl is the training interface.
///
/// ```
/// use mixprec::prelude::*;
/// let w = Tensor::from_vec(vec![2, 3], vec![1.0f32, 0.0, -1.0, 0.5, 2.0, 0.0])?;
/// let b = Tensor::from_vec(vec![3], vec![0.0f32, 1.0, 0.0])?;
/// let dense = Dense::<MixedBf16>::from_weights(w, Some(b))?.with_activation(Activation::Relu);
/// let x = Tensor::from_vec(vec![1, 2], vec![bf16::from_f32(2.0), bf16::from_f32(4.0)])?;
/// assert_eq!(dense.forward(&x)?.to_f64_vec(), vec![4.0, 9.0, 0.0]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Dense<P: Policy = DefaultPolicy> {
    #[module(param)]
    kernel: Param<P>,
    #[module(param)]
    bias: Option<Param<P>>,
    #[module(skip)]
    activation: Activation,
    #[module(reset)]
    saved: Saved<InputOutput<P::Compute>>,
    #[module(reset)]
    scratch: Scratch<P>,
    #[module(reset)]
    _policy: PhantomData<P>,
}

impl<P: Policy> PartialEq for Dense<P> {
    /// Equal variables and activation; saved activations and gradients are transient.
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel
            && self.bias == other.bias
            && self.activation == other.activation
    }
}

impl<P: Policy> Dense<P> {
    /// A layer mapping `input_dim` features to `units`: `DenseConfig::new(units)` (Glorot-uniform
    /// kernel from [`DEFAULT_SEED`](crate::layers::DEFAULT_SEED), zero bias, linear activation).
    ///
    /// # Panics
    ///
    /// If `input_dim` or `units` is zero, or their product overflows; [`try_new`](Self::try_new)
    /// returns that as an error instead.
    pub fn new(input_dim: usize, units: usize) -> Self {
        Self::try_new(input_dim, units).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), with bad sizes as an error: `DenseConfig::new(units).init(input_dim)`.
    ///
    /// # Errors
    ///
    /// As [`DenseConfig::init`].
    pub fn try_new(input_dim: usize, units: usize) -> Result<Self> {
        DenseConfig::new(units).init(input_dim)
    }

    /// A layer from its variables (already in `P::Variable`) and activation.
    fn from_params(kernel: Param<P>, bias: Option<Param<P>>, activation: Activation) -> Self {
        Dense {
            kernel,
            bias,
            activation,
            saved: Saved::default(),
            scratch: Scratch::default(),
            _policy: PhantomData,
        }
    }

    fn zero_bias(units: usize) -> Param<P> {
        Param::new(Tensor::from_parts(
            vec![units],
            vec![P::Variable::default(); units],
        ))
    }

    /// A layer with the given weights, cast to `P::Variable` (rounded to nearest-even), and a
    /// linear activation.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] if `kernel` is not `[input_dim, units]` with both at least 1, or
    /// `bias` is not `[units]`.
    pub fn from_weights(kernel: Tensor<f32>, bias: Option<Tensor<f32>>) -> Result<Self> {
        let units = match *kernel.shape() {
            [i, u] if i > 0 && u > 0 => u,
            _ => {
                let expected = "[input_dim, units] with both >= 1".to_string();
                return Err(Error::shape("kernel", expected, kernel.shape()));
            }
        };
        if let Some(b) = &bias {
            if b.shape() != [units] {
                return Err(Error::shape("bias", fmt_shape(&[units]), b.shape()));
            }
        }
        Ok(Self::from_params(
            Param::new(kernel.into_cast()),
            bias.map(|b| Param::new(b.into_cast())),
            Activation::Linear,
        ))
    }

    /// Sets the activation (Keras's `activation=`).
    pub fn with_activation(self, activation: Activation) -> Self {
        Dense { activation, ..self }
    }

    /// Drops the bias (Keras's `use_bias=False`) or adds a zero one.
    pub fn with_bias(self, use_bias: bool) -> Self {
        let units = self.units();
        let bias = match (use_bias, self.bias) {
            (true, Some(b)) => Some(b),
            (true, None) => Some(Self::zero_bias(units)),
            (false, _) => None,
        };
        Dense { bias, ..self }
    }

    /// Input features.
    pub fn input_dim(&self) -> usize {
        self.kernel.shape()[0]
    }

    /// Output features.
    pub fn units(&self) -> usize {
        self.kernel.shape()[1]
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The kernel, `[input_dim, units]`, in the variable type.
    pub fn kernel(&self) -> &Tensor<P::Variable> {
        self.kernel.value()
    }

    /// The bias, `[units]`, in the variable type.
    pub fn bias(&self) -> Option<&Tensor<P::Variable>> {
        self.bias.as_ref().map(Param::value)
    }

    /// The kernel variable (value, gradient, compute copy).
    pub fn kernel_param(&self) -> &Param<P> {
        &self.kernel
    }

    /// The bias variable.
    pub fn bias_param(&self) -> Option<&Param<P>> {
        self.bias.as_ref()
    }

    /// `activation(x·W + b)` for `x` of shape `[.., input_dim]` in the compute type; the result
    /// has shape `[.., units]`. Strict: another element type does not compile (use
    /// [`call`](Self::call) to cast).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., input_dim]` (the message names both).
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let rows = self.check_input(x.shape())?;
        let y = with_infer_acc::<P::Compute, _>(|acc| self.forward_out(x.as_slice(), rows, acc));
        Ok(self.output(x.shape(), y))
    }

    /// Keras's `layer(x)`: casts `x` (any float type) to the compute type, then
    /// [`forward`](Self::forward). A cast to the same type is free (no copy).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., input_dim]`.
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        let rows = self.check_input(x.shape())?;
        let xc = cast_cow::<T, P::Compute>(x.as_slice());
        let y = with_infer_acc::<P::Compute, _>(|acc| self.forward_out(&xc, rows, acc));
        Ok(self.output(x.shape(), y))
    }

    /// Checks `[.., input_dim]` and returns the number of rows.
    fn check_input(&self, shape: &[usize]) -> Result<usize> {
        match shape.split_last() {
            Some((&last, lead)) if last == self.input_dim() => Ok(lead.iter().product()),
            _ => Err(Error::shape(
                "dense input",
                format!("[.., {}]", self.input_dim()),
                shape,
            )),
        }
    }

    /// The output values under the input's leading dimensions.
    fn output(&self, in_shape: &[usize], y: Vec<P::Compute>) -> Tensor<P::Compute> {
        let mut shape = in_shape.to_vec();
        *shape.last_mut().expect("checked: rank >= 1") = self.units();
        Tensor::from_parts(shape, y)
    }

    /// `activation(x·W + b)`, `rows × units`, in the compute type, summed in `acc` (see
    /// [`gemm_bias_activation`]) with the kernel packed once for the selected matrix kernel and
    /// cached until it changes.
    fn forward_out(
        &self,
        x: &[P::Compute],
        rows: usize,
        acc: &mut Vec<AccOf<P>>,
    ) -> Vec<P::Compute> {
        gemm_bias_activation(
            MatRef::row_major(x, rows, self.input_dim()),
            self.kernel.packed(false),
            self.bias.as_ref().map(Param::compute),
            self.activation,
            acc,
        )
    }
}
