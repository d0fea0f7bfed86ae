//! Layers. Each takes its policy as a type parameter (`Dense<MixedBf16>`), stores its variables in
//! `P::Variable`, and computes in `P::Compute` with products accumulated in f32.
//!
//! - [`Dense`] (`layers/dense.rs`): `y = activation(x·W + b)`, built from a [`DenseConfig`]
//!   (Keras's arguments) with an [`Initializer`] per variable.
//! - [`Activation`]: applied in the accumulator type before the one rounding to `P::Compute`.
//! - [`AnyDense`]: a `Dense` whose policy was chosen at run time.
//!
//! Each layer has one pair of entry points for inference, `forward` (the compute type only) and
//! `call` (casts any float input first, as Keras's `layer(x)`), and the [`Layer`] trait for
//! training. The machinery layers share (accumulator workspaces, the fused element-wise passes,
//! saved activations) is in `layers/ops/`.

mod conv2d;
mod dense;
mod dispatch;
mod flatten;
pub(crate) mod ops;
mod pooling;
mod sequential;

pub use crate::init::{Initializer, DEFAULT_SEED};
pub use conv2d::{Conv2D, Conv2DConfig};
pub use dense::{AnyDense, Dense, DenseConfig, DenseFamily};
pub use dispatch::{ByPolicy, FamilyBuilder, FamilyVisitor, PolicyFamily};
pub use flatten::{Flatten, FlattenConfig};
pub use ops::window::Padding;
pub use pooling::{
    AveragePooling2D, GlobalAveragePooling2D, GlobalPooling2DConfig, MaxPooling2D, Pool2DConfig,
};

use std::fmt;
use std::str::FromStr;

use num_traits::Float;

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::module::Module;
use crate::tensor::Tensor;

/// The compute side of a layer or model: an inference pass, a training pass that saves what the
/// backward pass needs, and the backward pass that stores the variables' gradients.
///
/// Tensors between layers are typed. In a stack `(A, B)` (a tuple, a `Vec`, a derived struct),
/// `A`'s output is cast to `B::Input` when the two differ, as Keras's `Layer.__call__` casts its
/// inputs to the layer's compute type: a `Dense<MixedBf16>` (emits `bf16`) feeds a `Dense<F32>`
/// (takes `f32`), and the gradient flows back through the cast. A layer's own typed entry point
/// (`Dense::forward`) takes only its compute type, for code that wants no implicit cast.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a layer (it does not implement `Layer`)",
    label = "not a layer",
    note = "in a `#[derive(Module)]` struct, every field without an attribute is a layer; mark configuration `#[module(skip)]` and transient state `#[module(reset)]`"
)]
pub trait Layer: Module {
    /// The element type of the input tensor (the compute type for the built-in layers).
    type Input: Element;
    /// The element type of the output tensor.
    type Output: Element;

    /// The inference pass: saves nothing.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` does not fit the layer.
    fn infer(&self, x: &Tensor<Self::Input>) -> Result<Tensor<Self::Output>>;

    /// The training pass: like [`infer`](Self::infer), and keeps (in the compute type) what
    /// [`backward`](Self::backward) needs. Takes `x` by value, so saving it costs no copy.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` does not fit the layer.
    fn train_forward(&mut self, x: Tensor<Self::Input>) -> Result<Tensor<Self::Output>>;

    /// The backward pass for the last [`train_forward`](Self::train_forward): stores every
    /// variable's gradient (accumulated in f32, held in the variable type), drops the saved
    /// activations, and returns the input's gradient when `need_input_grad` is true.
    ///
    /// # Errors
    ///
    /// [`Error::BackwardWithoutForward`] when there is no saved forward pass;
    /// [`Error::ShapeMismatch`] when `dy` does not have the output's shape.
    fn backward(
        &mut self,
        dy: Tensor<Self::Output>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<Self::Input>>>;

    /// Bytes of activations currently saved for the backward pass.
    fn saved_bytes(&self) -> usize;

    /// Drops any saved activations (after an aborted step).
    fn clear_saved(&mut self);

    /// The width of the output's last dimension for an input whose last dimension is `input`,
    /// or `None` when `input` does not fit.
    fn output_dim(&self, input: usize) -> Option<usize>;
}

/// An element-wise activation, applied to the f32 (f64 for `F64`) accumulator before the output
/// is rounded to the compute type, so it costs no extra rounding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// `x` (Keras `"linear"`, the default).
    #[default]
    Linear,
    /// `max(x, 0)`; NaN stays NaN.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// All activations.
    pub const ALL: [Activation; 4] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    /// Keras's name.
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// The activation of one value.
    #[inline]
    pub fn apply<F: Float>(self, x: F) -> F {
        match self {
            Activation::Linear => x,
            // `x > 0 ? x : 0` would turn NaN into 0; keep NaN visible.
            Activation::Relu => {
                if x < F::zero() {
                    F::zero()
                } else {
                    x
                }
            }
            Activation::Sigmoid => F::one() / (F::one() + (-x).exp()),
            Activation::Tanh => x.tanh(),
        }
    }

    /// The derivative, written in terms of the activation's output `y` (so the backward pass
    /// needs only the saved output): relu `y > 0`, sigmoid `y(1 - y)`, tanh `1 - y²`.
    /// NaN in gives NaN out.
    #[inline]
    pub fn derivative_from_output<F: Float>(self, y: F) -> F {
        match self {
            Activation::Linear => F::one(),
            Activation::Relu => {
                if y > F::zero() {
                    F::one()
                } else if y.is_nan() {
                    y
                } else {
                    F::zero()
                }
            }
            Activation::Sigmoid => y * (F::one() - y),
            Activation::Tanh => F::one() - y * y,
        }
    }

    /// Applies the activation in place.
    pub fn apply_slice<F: Float>(self, xs: &mut [F]) {
        if self != Activation::Linear {
            xs.iter_mut().for_each(|x| *x = self.apply(*x));
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                what: "activation",
                found: format!("{s:?}"),
                expected: "one of: linear, relu, sigmoid, tanh",
            })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Activation {
    /// Keras's name (`"relu"`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Activation {
    /// Keras's name (`"relu"`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_keeps_nan() {
        assert!(Activation::Relu.apply(f32::NAN).is_nan());
        assert_eq!(Activation::Relu.apply(-2.0f32), 0.0);
        assert_eq!(Activation::Relu.apply(3.0f32), 3.0);
    }

    #[test]
    fn activation_names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        }
        assert!("Relu".parse::<Activation>().is_err());
    }
}
