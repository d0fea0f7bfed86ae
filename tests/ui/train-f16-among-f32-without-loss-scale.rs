// One float16-compute layer among float32 ones makes the whole model need loss scaling (Keras
// would not wrap the optimizer here, since the model's policy is float32, and the f16 layer's
// small gradients would underflow): a plain optimizer must not compile.
use mixprec::prelude::*;

fn main() {
    let mut model = (
        Dense::<F32>::new(4, 8),
        Dense::<MixedF16>::new(8, 8),
        Dense::<F32>::new(8, 2),
    );
    let data = Dataset::classification(Tensor::zeros(vec![1, 4]).unwrap(), vec![0], 2).unwrap();
    let mut opt = Adam::new(1e-3);
    let _ = fit(&mut model, &mut opt, &data, &FitOptions::default());
}
