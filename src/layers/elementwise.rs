//! [`activation_layer!`]: the struct, [`Module`](crate::Module) and [`Layer`] impls shared by the
//! activation layers ([`ReLU`](super::ReLU), [`GELU`](super::GELU), [`Sigmoid`](super::Sigmoid),
//! [`Tanh`](super::Tanh)). Each is an [`Activation`] applied element-wise: widened to the
//! accumulator type (f32; f64 for `F64`), applied, rounded once to the compute type, in one
//! parallel pass ([`activation_round`]). The training pass saves the output (or, for GELU, the
//! input), and the backward pass is Dense's `dz = dy ⊙ activation'` pass
//! ([`pre_activation_grad`]), formed in the accumulator type and rounded once.

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::layers::ops::fused::{activation_round, pre_activation_grad};
use crate::layers::Activation;
use crate::tensor::Tensor;

/// `activation(x)` with `x`'s shape (any shape, rank 0 included).
pub(crate) fn forward<C: Element>(x: &Tensor<C>, activation: Activation) -> Tensor<C> {
    Tensor::from_parts(
        x.shape().to_vec(),
        activation_round(x.as_slice(), activation),
    )
}

/// What the training pass keeps: the output, or the input when the derivative needs it.
pub(crate) fn to_save<C: Element>(
    x: Tensor<C>,
    y: &Tensor<C>,
    activation: Activation,
) -> Tensor<C> {
    if activation.derivative_needs_input() {
        x
    } else {
        y.clone()
    }
}

/// `dx = dy ⊙ activation'(saved)`, rounded once.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] (naming `layer`) when `dy` does not have the saved tensor's shape.
pub(crate) fn backward<C: Element>(
    layer: &'static str,
    saved: &Tensor<C>,
    dy: Tensor<C>,
    activation: Activation,
) -> Result<Tensor<C>> {
    if dy.shape() != saved.shape() {
        let expected = crate::error::fmt_shape(saved.shape());
        return Err(Error::shape(layer, expected, dy.shape()));
    }
    if dy.is_empty() {
        return Ok(dy);
    }
    let shape = dy.shape().to_vec();
    let n = shape.last().copied().unwrap_or(1);
    let g = pre_activation_grad(dy.into_vec(), Some(saved.as_slice()), n, activation, false);
    Ok(Tensor::from_parts(shape, g.dz))
}

/// Defines an activation layer `$name<P>` holding `activation: Activation`: the struct (with
/// the given docs), `Clone`/`Debug`/`PartialEq`, `forward`/`call`, `Module` and `Layer`. The
/// caller writes its constructors.
macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone)]
        pub struct $name<P: $crate::policy::Policy = $crate::policy::DefaultPolicy> {
            activation: $crate::layers::Activation,
            saved: $crate::layers::ops::saved::Saved<
                $crate::tensor::Tensor<<P as $crate::policy::Policy>::Compute>,
            >,
            _policy: ::std::marker::PhantomData<P>,
        }

        impl<P: $crate::policy::Policy> PartialEq for $name<P> {
            /// Equal activations; saved activations are transient.
            fn eq(&self, other: &Self) -> bool {
                self.activation == other.activation
            }
        }

        impl<P: $crate::policy::Policy> $name<P> {
            fn with(activation: $crate::layers::Activation) -> Self {
                $name {
                    activation,
                    saved: Default::default(),
                    _policy: ::std::marker::PhantomData,
                }
            }

            fn to_policy_of<Q: $crate::policy::Policy>(&self) -> $name<Q> {
                $name::with(self.activation)
            }

            /// The activation applied, element-wise, to `x` in the compute type (any shape).
            pub fn forward(
                &self,
                x: &$crate::tensor::Tensor<P::Compute>,
            ) -> $crate::tensor::Tensor<P::Compute> {
                $crate::layers::elementwise::forward(x, self.activation)
            }

            /// Keras's `layer(x)`: casts `x` (any float type) to the compute type, then
            /// [`forward`](Self::forward).
            pub fn call<T: $crate::Element>(
                &self,
                x: &$crate::tensor::Tensor<T>,
            ) -> $crate::tensor::Tensor<P::Compute> {
                self.forward(&x.cast_ref::<P::Compute>())
            }
        }

        $crate::layers::ops::stateless::impl_stateless_module!($name);

        impl<P: $crate::policy::Policy> $crate::layers::Layer for $name<P> {
            type Input = P::Compute;
            type Output = P::Compute;

            fn infer(
                &self,
                x: &$crate::tensor::Tensor<P::Compute>,
            ) -> $crate::Result<$crate::tensor::Tensor<P::Compute>> {
                Ok(self.forward(x))
            }

            fn train_forward(
                &mut self,
                x: $crate::tensor::Tensor<P::Compute>,
            ) -> $crate::Result<$crate::tensor::Tensor<P::Compute>> {
                let y = self.forward(&x);
                let keep = $crate::layers::elementwise::to_save(x, &y, self.activation);
                self.saved.save(keep);
                Ok(y)
            }

            fn backward(
                &mut self,
                dy: $crate::tensor::Tensor<P::Compute>,
                need_input_grad: bool,
            ) -> $crate::Result<Option<$crate::tensor::Tensor<P::Compute>>> {
                let saved = self.saved.take(stringify!($name))?;
                let dx = $crate::layers::elementwise::backward(
                    concat!(stringify!($name), " output gradient"),
                    &saved,
                    dy,
                    self.activation,
                )?;
                Ok(need_input_grad.then_some(dx))
            }

            $crate::layers::ops::saved::saved_slot!();

            fn output_dim(&self, input: usize) -> Option<usize> {
                Some(input)
            }
        }
    };
}

pub(crate) use activation_layer;
