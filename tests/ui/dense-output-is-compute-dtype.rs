// `forward` returns the compute type: a `Dense<MixedF16>` gives `Tensor<f16>`, not the f32 its
// variables are stored in.
use mixprec::prelude::*;

fn main() {
    let dense = Dense::<MixedF16>::new(4, 2);
    let x: Tensor<f16> = Tensor::zeros(vec![1, 4]).unwrap();
    let _y: Tensor<f32> = dense.forward(&x).unwrap();
}
