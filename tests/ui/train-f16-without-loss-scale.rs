// Training a model that computes in float16 with a plain optimizer must not compile:
// float16 gradients underflow without loss scaling.
use mixprec::prelude::*;

fn main() {
    let mut model = Dense::<MixedF16>::new(4, 2);
    let data = Dataset::classification(Tensor::zeros(vec![1, 4]).unwrap(), vec![0], 2).unwrap();
    let mut opt = Adam::new(1e-3);
    let _ = fit(&mut model, &mut opt, &data, &FitOptions::default());
}
