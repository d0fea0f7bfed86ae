// `widen` emits f32 whatever the policy, but `out` takes the compute type: the stack does not
// connect, and the error points at `out`.
use std::marker::PhantomData;

use mixprec::param::Param;
use mixprec::prelude::*;

/// Widens the compute type to f32.
struct Widen<P: Policy>(PhantomData<P>);

impl<P: Policy> Module for Widen<P> {
    type Policy = P;
    type At<Q: Policy> = Widen<Q>;
    fn visit_params(&self, _: &str, _: &mut dyn FnMut(&str, &Param<P>)) {}
    fn visit_params_mut(&mut self, _: &mut dyn FnMut(&mut Param<P>)) {}
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

fn main() {}
