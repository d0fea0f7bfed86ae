//! Sequential stacks without a struct: a tuple of layers `(A, B, C)` is itself a [`Layer`] and a
//! [`Module`], running its elements in order. Variables are named by position (`0.kernel`,
//! `1.bias`).
//!
//! Neighbours may have different policies. As in Keras, the consumer casts: when `B::Input` is
//! not `A::Output`, `A`'s output is converted once to `B`'s input type (and `B`'s input gradient
//! once back to `A`'s output type in the backward pass); when the types are equal nothing is
//! copied. The stack needs loss scaling if any element does.
//!
//! ```
//! use mixprec::prelude::*;
//! // A bfloat16 body with a float32 head, Keras's advice for mixed precision.
//! let mlp = (
//!     Dense::<MixedBf16>::new(4, 8).with_activation(Activation::Relu),
//!     Dense::<F32>::new(8, 3),
//! );
//! assert_eq!(mlp.param_names(), ["0.kernel", "0.bias", "1.kernel", "1.bias"]);
//! let x: Tensor<bf16> = Tensor::zeros(vec![2, 4])?;
//! let y: Tensor<f32> = mlp.infer(&x)?;
//! assert_eq!(y.shape(), &[2, 3]);
//! # Ok::<(), mixprec::Error>(())
//! ```

use crate::error::Result;
use crate::layers::Layer;
use crate::module::{join_name, Module, ParamVisitor, ParamVisitorMut};
use crate::policy::{LossScaleBit, Policy};
use crate::tensor::Tensor;

/// The OR of the parts' loss-scale bits.
macro_rules! or_bits {
    ($A:ident) => { <$A as Module>::NeedsLossScale };
    ($A:ident $($T:ident)+) => {
        <<$A as Module>::NeedsLossScale as LossScaleBit>::Or<or_bits!($($T)+)>
    };
}

macro_rules! tuple_layer {
    (
        first: $A:ident $a:tt,
        rest: [$($T:ident $t:tt),+],
        last: $Z:ident $z:tt,
        back: [$($r:tt)+]
    ) => {
        impl<$A: Module, $($T: Module),+> Module for ($A, $($T),+) {
            type NeedsLossScale = or_bits!($A $($T)+);
            type At<Q: Policy> = ($A::At<Q>, $($T::At<Q>),+);

            fn visit_params<V: ParamVisitor>(&self, prefix: &str, v: &mut V) {
                self.$a.visit_params(&join_name(prefix, stringify!($a)), v);
                $(self.$t.visit_params(&join_name(prefix, stringify!($t)), v);)+
            }

            fn visit_params_mut<V: ParamVisitorMut>(&mut self, v: &mut V) {
                self.$a.visit_params_mut(v);
                $(self.$t.visit_params_mut(v);)+
            }

            fn to_policy<Q: Policy>(&self) -> Self::At<Q> {
                (self.$a.to_policy::<Q>(), $(self.$t.to_policy::<Q>()),+)
            }

            fn needs_loss_scale(&self) -> bool {
                self.$a.needs_loss_scale() $(|| self.$t.needs_loss_scale())+
            }
        }

        impl<$A: Layer, $($T: Layer),+> Layer for ($A, $($T),+) {
            type Input = $A::Input;
            type Output = $Z::Output;

            fn infer(&self, x: &Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
                let x = self.$a.infer(x)?;
                $(let x = self.$t.infer(&x.cast_ref())?;)+
                Ok(x)
            }

            fn train_forward(&mut self, x: Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
                let x = self.$a.train_forward(x)?;
                $(let x = self.$t.train_forward(x.into_cast())?;)+
                Ok(x)
            }

            fn backward(
                &mut self,
                dy: Tensor<Self::Output>,
                need_input_grad: bool,
            ) -> Result<Option<Tensor<Self::Input>>> {
                let d = dy;
                $(
                    let d = self
                        .$r
                        .backward(d.into_cast(), true)?
                        .expect("asked for the input gradient");
                )+
                self.$a.backward(d.into_cast(), need_input_grad)
            }

            fn saved_bytes(&self) -> usize {
                self.$a.saved_bytes() $(+ self.$t.saved_bytes())+
            }

            fn clear_saved(&mut self) {
                self.$a.clear_saved();
                $(self.$t.clear_saved();)+
            }

            fn output_dim(&self, input: usize) -> Option<usize> {
                let d = self.$a.output_dim(input)?;
                $(let d = self.$t.output_dim(d)?;)+
                Some(d)
            }

            fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
                let s = self.$a.output_shape(input)?;
                $(let s = self.$t.output_shape(&s)?;)+
                Some(s)
            }
        }
    };
}

tuple_layer!(first: A 0, rest: [B 1], last: B 1, back: [1]);
tuple_layer!(first: A 0, rest: [B 1, C 2], last: C 2, back: [2 1]);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3], last: D 3, back: [3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4],
    last: E 4, back: [4 3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4, F 5],
    last: F 5, back: [5 4 3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4, F 5, G 6],
    last: G 6, back: [6 5 4 3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4, F 5, G 6, H 7],
    last: H 7,
    back: [7 6 5 4 3 2 1]
);

/// A stack of layers of one type whose depth is chosen at run time (`Vec<Dense<P>>` for an MLP
/// read from a command line). Each layer's output is cast to the next one's input type (no copy
/// when they are equal, as for every built-in layer, whose input and output are both
/// `P::Compute`). Variables are named by position.
impl<L: Module> Module for Vec<L> {
    type NeedsLossScale = L::NeedsLossScale;
    type At<Q: Policy> = Vec<L::At<Q>>;

    fn visit_params<V: ParamVisitor>(&self, prefix: &str, v: &mut V) {
        for (i, l) in self.iter().enumerate() {
            l.visit_params(&join_name(prefix, &i.to_string()), v);
        }
    }

    fn visit_params_mut<V: ParamVisitorMut>(&mut self, v: &mut V) {
        self.iter_mut().for_each(|l| l.visit_params_mut(v));
    }

    fn to_policy<Q: Policy>(&self) -> Self::At<Q> {
        self.iter().map(|l| l.to_policy::<Q>()).collect()
    }

    /// Whether some element needs loss scaling (an empty stack computes nothing).
    fn needs_loss_scale(&self) -> bool {
        self.iter().any(Module::needs_loss_scale)
    }
}

impl<L: Layer> Layer for Vec<L> {
    type Input = L::Input;
    type Output = L::Output;

    fn infer(&self, x: &Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
        let Some((first, rest)) = self.split_first() else {
            return Ok(x.cast());
        };
        rest.iter()
            .try_fold(first.infer(x)?, |h, l| l.infer(&h.cast_ref()))
    }

    fn train_forward(&mut self, x: Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
        let Some((first, rest)) = self.split_first_mut() else {
            return Ok(x.into_cast());
        };
        rest.iter_mut().try_fold(first.train_forward(x)?, |h, l| {
            l.train_forward(h.into_cast())
        })
    }

    fn backward(
        &mut self,
        dy: Tensor<Self::Output>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<Self::Input>>> {
        let Some((first, rest)) = self.split_first_mut() else {
            return Ok(need_input_grad.then(|| dy.into_cast()));
        };
        let mut d = dy;
        for l in rest.iter_mut().rev() {
            d = l
                .backward(d, true)?
                .expect("asked for the input gradient")
                .into_cast();
        }
        first.backward(d, need_input_grad)
    }

    fn saved_bytes(&self) -> usize {
        self.iter().map(Layer::saved_bytes).sum()
    }

    fn clear_saved(&mut self) {
        self.iter_mut().for_each(Layer::clear_saved);
    }

    fn output_dim(&self, input: usize) -> Option<usize> {
        self.iter().try_fold(input, |d, l| l.output_dim(d))
    }

    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        self.iter()
            .try_fold(input.to_vec(), |s, l| l.output_shape(&s))
    }
}

#[cfg(test)]
mod tests {
    use crate::layers::{Activation, DenseConfig, Layer};
    use crate::module::Module;
    use crate::policy::MixedBf16;
    use crate::tensor::Tensor;
    use half::bf16;

    #[test]
    fn output_shape_follows_rank_changes() {
        use crate::layers::{Conv2DConfig, Dense, Flatten, MaxPooling2D};
        use crate::policy::F32;
        let cnn = (
            Conv2DConfig::new(4, (3, 3)).init::<F32>(1).unwrap(),
            MaxPooling2D::<F32>::new(),
            Flatten::<F32>::new(),
            Dense::<F32>::new(36, 10),
        );
        // 8x8x1, valid 3x3: 6x6x4; pooled 3x3x4 = 36 features.
        assert_eq!(cnn.output_shape(&[2, 8, 8, 1]), Some(vec![2, 10]));
        assert_eq!(cnn.output_shape(&[2, 64]), None, "rows are not images");
        assert_eq!(cnn.output_dim(1), None, "widths alone cannot say");
        let stack = vec![Dense::<F32>::new(3, 5), Dense::<F32>::new(5, 2)];
        assert_eq!(stack.output_shape(&[7, 4, 3]), Some(vec![7, 4, 2]));
        assert_eq!(stack.output_shape(&[7, 4]), None);
    }

    #[test]
    fn vec_stack_matches_tuple_stack() {
        let a = DenseConfig::new(5)
            .seed(1)
            .init::<MixedBf16>(3)
            .unwrap()
            .with_activation(Activation::Relu);
        let b = DenseConfig::new(2).seed(2).init::<MixedBf16>(5).unwrap();
        let mut tuple = (a.clone(), b.clone());
        let mut vec = vec![a, b];
        assert_eq!(vec.param_names(), tuple.param_names());
        let x: Tensor<bf16> = Tensor::from_vec(vec![2, 3], vec![0.5f32, -1.0, 2.0, 1.0, 0.0, -0.5])
            .unwrap()
            .cast();
        assert_eq!(vec.infer(&x).unwrap(), tuple.infer(&x).unwrap());
        let y = vec.train_forward(x.clone()).unwrap();
        tuple.train_forward(x).unwrap();
        let dx_vec = vec.backward(y.clone(), true).unwrap();
        let dx_tuple = tuple.backward(y, true).unwrap();
        assert_eq!(dx_vec, dx_tuple);
        assert_eq!(vec[0].kernel_param().grad(), tuple.0.kernel_param().grad());
    }
}
