// `widen` emits f32 whatever the policy, and `out` takes the compute type: the derived stack casts
// between them (Keras's autocast: the consumer casts), so this compiles and runs.
use std::marker::PhantomData;

use mixprec::module::{ParamVisitor, ParamVisitorMut};
use mixprec::prelude::*;

/// Widens the compute type to f32.
struct Widen<P: Policy>(PhantomData<P>);

impl<P: Policy> Module for Widen<P> {
    type NeedsLossScale = P::NeedsLossScale;
    type At<Q: Policy> = Widen<Q>;
    fn visit_params<V: ParamVisitor>(&self, _: &str, _: &mut V) {}
    fn visit_params_mut<V: ParamVisitorMut>(&mut self, _: &mut V) {}
    fn to_policy<Q: Policy>(&self) -> Widen<Q> {
        Widen(PhantomData)
    }
}

impl<P: Policy> Layer for Widen<P> {
    type Input = ComputeOf<P>;
    type Output = f32;
    fn infer(&self, x: &Tensor<ComputeOf<P>>) -> Result<Tensor<f32>> {
        Ok(x.cast())
    }
    fn train_forward(&mut self, x: Tensor<ComputeOf<P>>) -> Result<Tensor<f32>> {
        Ok(x.into_cast())
    }
    fn backward(&mut self, dy: Tensor<f32>, _: bool) -> Result<Option<Tensor<ComputeOf<P>>>> {
        Ok(Some(dy.into_cast()))
    }
    fn saved_bytes(&self) -> usize {
        0
    }
    fn clear_saved(&mut self) {}
    fn output_dim(&self, input: usize) -> Option<usize> {
        Some(input)
    }
}

#[derive(Module)]
struct Mlp<P: Policy> {
    hidden: Dense<P>,
    widen: Widen<P>,
    out: Dense<P>,
}

fn main() {
    let mlp = Mlp::<MixedBf16> {
        hidden: Dense::new(3, 4),
        widen: Widen(PhantomData),
        out: Dense::new(4, 2),
    };
    let x: Tensor<bf16> = Tensor::zeros(vec![1, 3]).unwrap();
    let y: Tensor<bf16> = mlp.infer(&x).unwrap();
    assert_eq!(y.shape(), &[1, 2]);
}
