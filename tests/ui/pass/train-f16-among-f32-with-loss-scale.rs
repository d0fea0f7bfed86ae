// The model of `train-f16-among-f32-without-loss-scale.rs` trains with `LossScaleOptimizer`
// (or `AutoOptimizer`, which picks it for this model).
use mixprec::prelude::*;

fn main() {
    let mut model = (
        Dense::<F32>::new(4, 8),
        Dense::<MixedF16>::new(8, 8),
        Dense::<F32>::new(8, 2),
    );
    let data = Dataset::classification(Tensor::zeros(vec![2, 4]).unwrap(), vec![0, 1], 2).unwrap();
    let options = FitOptions {
        epochs: 1,
        ..FitOptions::default()
    };
    let mut opt = LossScaleOptimizer::new(Adam::new(1e-3));
    fit(&mut model, &mut opt, &data, &options).unwrap();
    let mut auto = AutoOptimizer::for_model(&model, Adam::new(1e-3));
    assert!(auto.scales_loss());
    fit(&mut model, &mut auto, &data, &options).unwrap();
}
