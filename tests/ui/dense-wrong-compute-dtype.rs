// A `Dense<MixedBf16>` computes in bf16: `forward` takes `&Tensor<bf16>`, and an f32 tensor must
// be cast first (`x.cast()`, or Keras-style `call`).
use mixprec::prelude::*;

fn main() {
    let dense = Dense::<MixedBf16>::new(4, 2);
    let x: Tensor<f32> = Tensor::zeros(vec![1, 4]).unwrap();
    let _y = dense.forward(&x);
}
