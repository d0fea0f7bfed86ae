//! Layers. Each takes its policy as a type parameter (`Dense<MixedBf16>`), stores its variables in
//! `P::Variable`, and computes in `P::Compute` with products accumulated in f32.
//!
//! - [`Dense`] (`layers/dense.rs`): `y = activation(x·W + b)`, built from a [`DenseConfig`]
//!   (Keras's arguments) with an [`Initializer`] per variable.
//! - [`Activation`]: applied in the accumulator type before the one rounding to `P::Compute`.
//! - [`AnyDense`]: a `Dense` whose policy was chosen at run time.
//! - [`Softmax`] (`layers/softmax.rs`, [`SoftmaxConfig`]): over the last axis, with a mask; f32
//!   inside whatever the policy.
//! - [`BatchNormalization`] (`layers/batch_norm.rs`, [`BatchNormalizationConfig`]): batch
//!   statistics over every axis but the last in f32, moving statistics as non-trainable f32
//!   variables.
//! - [`LayerNormalization`] (`layers/layer_norm.rs`, [`LayerNormalizationConfig`]): statistics
//!   and normalisation in f32, `gamma`/`beta` in the variable type.
//! - [`ReLU`], [`GELU`], [`Sigmoid`], [`Tanh`] (`layers/{relu,gelu,sigmoid,tanh}.rs`, over
//!   `layers/elementwise.rs`): an [`Activation`] as a layer.
//! - [`Conv2D`], [`MaxPooling2D`], [`AveragePooling2D`], [`GlobalAveragePooling2D`], [`Flatten`]:
//!   the NHWC image layers (`layers/{conv2d,pooling,flatten}.rs`).
//! - [`Embedding`] (`layers/embedding.rs`, [`EmbeddingConfig`]): a table looked up by index,
//!   its gradient added sparsely in f32.
//! - [`Dropout`] (`layers/dropout.rs`): seeded, reproducible from the seed and the step.
//! - [`Residual`] and [`Add`] (`layers/residual.rs`): skip connections, cast and rounded once at
//!   the join.
//!
//! Each layer has one pair of entry points for inference, `forward` (the compute type only) and
//! `call` (casts any float input first, as Keras's `layer(x)`), and the [`Layer`] trait for
//! training. The machinery layers share (accumulator workspaces, the fused element-wise passes,
//! saved activations) is in `layers/ops/`.

mod activation;
mod batch_norm;
mod conv2d;
mod dense;
mod dispatch;
mod dropout;
pub(crate) mod elementwise;
mod embedding;
mod flatten;
mod gelu;
mod layer_norm;
pub(crate) mod ops;
mod pooling;
mod relu;
mod residual;
mod sequential;
mod sigmoid;
mod softmax;
mod tanh;

pub use crate::init::{Initializer, DEFAULT_SEED};
pub use activation::Activation;
pub use batch_norm::{BatchNormalization, BatchNormalizationConfig};
pub use conv2d::{Conv2D, Conv2DConfig};
pub use dense::{AnyDense, Dense, DenseConfig, DenseFamily};
pub use dispatch::{ByPolicy, FamilyBuilder, FamilyVisitor, PolicyFamily};
pub use dropout::{Dropout, DropoutConfig};
pub use embedding::{Embedding, EmbeddingConfig};
pub use flatten::{Flatten, FlattenConfig};
pub use gelu::GELU;
pub use layer_norm::{LayerNormalization, LayerNormalizationConfig};
pub use ops::window::Padding;
pub use pooling::{
    AveragePooling2D, GlobalAveragePooling2D, GlobalPooling2DConfig, MaxPooling2D, Pool2DConfig,
};
pub use relu::ReLU;
pub use residual::{Add, Residual};
pub use sigmoid::Sigmoid;
pub use softmax::{Softmax, SoftmaxConfig};
pub use tanh::Tanh;

use crate::dtype::Element;
use crate::error::Result;
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
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `x` does not fit the layer.
    fn infer(&self, x: &Tensor<Self::Input>) -> Result<Tensor<Self::Output>>;

    /// The training pass: like [`infer`](Self::infer), and keeps (in the compute type) what
    /// [`backward`](Self::backward) needs. Takes `x` by value, so saving it costs no copy.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `x` does not fit the layer.
    fn train_forward(&mut self, x: Tensor<Self::Input>) -> Result<Tensor<Self::Output>>;

    /// The backward pass for the last [`train_forward`](Self::train_forward): stores every
    /// variable's gradient (accumulated in f32, held in the variable type), drops the saved
    /// activations, and returns the input's gradient when `need_input_grad` is true.
    ///
    /// # Errors
    ///
    /// [`Error::BackwardWithoutForward`](crate::Error::BackwardWithoutForward) when there is no saved forward pass;
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `dy` does not have the output's shape.
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

    /// The output's shape for an input of shape `input` (Keras's `compute_output_shape`), or
    /// `None` when it does not fit. By default `input` with its last dimension mapped by
    /// [`output_dim`](Self::output_dim); the layers that change the rank or more than the last
    /// dimension ([`Flatten`], [`Embedding`], the image layers) and stacks override it, so `fit`
    /// can check a model whose widths alone do not say what it returns.
    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        let (&last, lead) = input.split_last()?;
        let mut shape = lead.to_vec();
        shape.push(self.output_dim(last)?);
        Some(shape)
    }
}
