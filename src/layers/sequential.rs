//! Sequential stacks without a struct: a tuple of layers `(A, B, C)` is itself a [`Layer`] and a
//! [`Module`], running its elements in order. The compiler checks the types between neighbours:
//! `(A, B)` is a layer only when `B::Input == A::Output`. Variables are named by position
//! (`0.kernel`, `1.bias`).
//!
//! ```
//! use mixprec::prelude::*;
//! let mlp = (
//!     Dense::<MixedBf16>::new(4, 8).with_activation(Activation::Relu),
//!     Dense::<MixedBf16>::new(8, 3),
//! );
//! assert_eq!(mlp.param_names(), ["0.kernel", "0.bias", "1.kernel", "1.bias"]);
//! let x: Tensor<bf16> = Tensor::zeros(vec![2, 4])?;
//! assert_eq!(mlp.infer(&x)?.shape(), &[2, 3]);
//! # Ok::<(), mixprec::Error>(())
//! ```

use crate::error::Result;
use crate::layers::Layer;
use crate::module::{join_name, Module};
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;

macro_rules! tuple_layer {
    (
        first: $A:ident $a:tt,
        rest: [$($T:ident $t:tt),+],
        pairs: [$($Prev:ident => $Next:ident),+],
        last: $Z:ident $z:tt,
        back: [$($r:tt)+]
    ) => {
        impl<$A: Module, $($T: Module<Policy = $A::Policy>),+> Module for ($A, $($T),+) {
            type Policy = $A::Policy;
            type At<Q: Policy> = ($A::At<Q>, $($T::At<Q>),+);

            fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param<Self::Policy>)) {
                self.$a.visit_params(&join_name(prefix, stringify!($a)), f);
                $(self.$t.visit_params(&join_name(prefix, stringify!($t)), f);)+
            }

            fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param<Self::Policy>)) {
                self.$a.visit_params_mut(f);
                $(self.$t.visit_params_mut(f);)+
            }

            fn to_policy<Q: Policy>(&self) -> Self::At<Q> {
                (self.$a.to_policy::<Q>(), $(self.$t.to_policy::<Q>()),+)
            }
        }

        impl<$A: Layer, $($T: Layer + Module<Policy = $A::Policy>),+> Layer for ($A, $($T),+)
        where
            $($Next: Layer<Input = <$Prev as Layer>::Output>),+
        {
            type Input = $A::Input;
            type Output = $Z::Output;

            fn infer(&self, x: &Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
                let x = self.$a.infer(x)?;
                $(let x = self.$t.infer(&x)?;)+
                Ok(x)
            }

            fn train_forward(&mut self, x: Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
                let x = self.$a.train_forward(x)?;
                $(let x = self.$t.train_forward(x)?;)+
                Ok(x)
            }

            fn backward(
                &mut self,
                dy: Tensor<Self::Output>,
                need_input_grad: bool,
            ) -> Result<Option<Tensor<Self::Input>>> {
                let d = dy;
                $(let d = self.$r.backward(d, true)?.expect("asked for the input gradient");)+
                self.$a.backward(d, need_input_grad)
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
        }
    };
}

tuple_layer!(first: A 0, rest: [B 1], pairs: [A => B], last: B 1, back: [1]);
tuple_layer!(first: A 0, rest: [B 1, C 2], pairs: [A => B, B => C], last: C 2, back: [2 1]);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3], pairs: [A => B, B => C, C => D], last: D 3, back: [3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4],
    pairs: [A => B, B => C, C => D, D => E], last: E 4, back: [4 3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4, F 5],
    pairs: [A => B, B => C, C => D, D => E, E => F], last: F 5, back: [5 4 3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4, F 5, G 6],
    pairs: [A => B, B => C, C => D, D => E, E => F, F => G], last: G 6, back: [6 5 4 3 2 1]
);
tuple_layer!(
    first: A 0, rest: [B 1, C 2, D 3, E 4, F 5, G 6, H 7],
    pairs: [A => B, B => C, C => D, D => E, E => F, F => G, G => H], last: H 7,
    back: [7 6 5 4 3 2 1]
);
