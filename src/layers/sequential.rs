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

/// A stack of layers of one type whose depth is chosen at run time (`Vec<Dense<P>>` for an MLP
/// read from a command line). Each layer's output type must equal its input type, which holds for
/// every built-in layer (both are `P::Compute`). Variables are named by position.
impl<L: Module> Module for Vec<L> {
    type Policy = L::Policy;
    type At<Q: Policy> = Vec<L::At<Q>>;

    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param<Self::Policy>)) {
        for (i, l) in self.iter().enumerate() {
            l.visit_params(&join_name(prefix, &i.to_string()), f);
        }
    }

    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param<Self::Policy>)) {
        self.iter_mut().for_each(|l| l.visit_params_mut(f));
    }

    fn to_policy<Q: Policy>(&self) -> Self::At<Q> {
        self.iter().map(|l| l.to_policy::<Q>()).collect()
    }
}

impl<L: Layer<Output = <L as Layer>::Input>> Layer for Vec<L> {
    type Input = L::Input;
    type Output = L::Output;

    fn infer(&self, x: &Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
        let Some((first, rest)) = self.split_first() else {
            return Ok(x.clone());
        };
        rest.iter().try_fold(first.infer(x)?, |h, l| l.infer(&h))
    }

    fn train_forward(&mut self, x: Tensor<Self::Input>) -> Result<Tensor<Self::Output>> {
        self.iter_mut().try_fold(x, |h, l| l.train_forward(h))
    }

    fn backward(
        &mut self,
        dy: Tensor<Self::Output>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<Self::Input>>> {
        let mut d = Some(dy);
        for (i, l) in self.iter_mut().enumerate().rev() {
            let dy = d
                .take()
                .expect("every layer but the first returns its input gradient");
            d = l.backward(dy, i > 0 || need_input_grad)?;
        }
        Ok(d)
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
}

#[cfg(test)]
mod tests {
    use crate::layers::{Activation, Dense, Layer};
    use crate::module::Module;
    use crate::policy::MixedBf16;
    use crate::tensor::Tensor;
    use half::bf16;

    #[test]
    fn vec_stack_matches_tuple_stack() {
        let a = Dense::<MixedBf16>::new(3, 5)
            .with_seed(1)
            .with_activation(Activation::Relu);
        let b = Dense::<MixedBf16>::new(5, 2).with_seed(2);
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
