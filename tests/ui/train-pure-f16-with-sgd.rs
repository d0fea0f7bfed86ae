// The pure float16 policy needs loss scaling as much as mixed_float16 does.
use mixprec::prelude::*;

fn main() {
    let mut model = (Dense::<F16>::new(4, 8), Dense::<F16>::new(8, 2));
    let data = Dataset::classification(Tensor::zeros(vec![1, 4]).unwrap(), vec![0], 2).unwrap();
    let _ = fit(&mut model, &mut Sgd::new(0.1), &data, &FitOptions::default());
}
