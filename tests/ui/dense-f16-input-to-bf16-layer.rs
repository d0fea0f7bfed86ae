// Both are 16-bit, but f16 and bf16 are different types: a `Dense<MixedBf16>` does not take f16.
use mixprec::prelude::*;

fn main() {
    let dense = Dense::<MixedBf16>::new(4, 2);
    let x: Tensor<f16> = Tensor::zeros(vec![1, 4]).unwrap();
    let _y: Tensor<bf16> = dense.forward(&x).unwrap();
}
