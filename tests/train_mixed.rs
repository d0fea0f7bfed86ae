//! Mixed precision against float32 during training: gradients and weights stay close, f16
//! gradients underflow without loss scaling and survive with it, and activations saved for the
//! backward pass take half the bytes.

use mixprec::losses::{Loss, Targets};
use mixprec::prelude::*;
use proptest::prelude::*;

type Mlp<P> = (Dense<P>, Dense<P>, Dense<P>);

fn mlp<P: Policy>(seed: u64) -> Mlp<P> {
    (
        Dense::<P>::new(16, 32)
            .with_seed(seed)
            .with_activation(Activation::Relu),
        Dense::<P>::new(32, 32)
            .with_seed(seed + 1)
            .with_activation(Activation::Tanh),
        Dense::<P>::new(32, 4).with_seed(seed + 2),
    )
}

fn weights<M: Module>(m: &M) -> Vec<f64> {
    let mut out = Vec::new();
    m.visit_params("", &mut |_, p| out.extend(p.value().to_f64_vec()));
    out
}

fn norm(v: impl Iterator<Item = f64>) -> f64 {
    v.map(|x| x * x).sum::<f64>().sqrt()
}

/// Trains `steps` full-batch SGD steps and returns the weights.
fn train<P: Policy, O: mixprec::optimizers::OptimizerFor<P>>(
    model: &mut Mlp<P>,
    opt: &mut O,
    data: &Dataset,
    steps: usize,
) -> Vec<f64> {
    let options = FitOptions {
        epochs: steps,
        batch_size: data.len(),
        shuffle: false,
        ..Default::default()
    };
    fit(model, opt, data, &options).unwrap();
    weights(model)
}

fn data(seed: u64) -> Dataset {
    let x: Vec<f32> = (0..64 * 16)
        .map(|i| (((i as u64 * 2654435761 + seed) % 1000) as f32 / 500.0) - 1.0)
        .collect();
    let labels = (0..64).map(|i| ((i as u64 + seed) % 4) as u32).collect();
    Dataset::classification(Tensor::from_vec(vec![64, 16], x).unwrap(), labels, 4).unwrap()
}

/// Relative error of the total weight change of a mixed run against the f32 run:
/// `‖ΔW_mixed − ΔW_f32‖ / ‖ΔW_f32‖`.
fn update_error<P: Policy>(seed: u64, steps: usize) -> f64 {
    let d = data(seed);
    let start = weights(&mlp::<F32>(seed));
    let f32_run = train(&mut mlp::<F32>(seed), &mut Sgd::new(0.05), &d, steps);
    let mixed = train(
        &mut mlp::<P>(seed),
        &mut LossScaleOptimizer::new(Sgd::new(0.05)),
        &d,
        steps,
    );
    let diff = norm(mixed.iter().zip(&f32_run).map(|(a, b)| a - b));
    let change = norm(f32_run.iter().zip(&start).map(|(a, b)| a - b));
    diff / change
}

// The bound: each step's gradient passes through about 2L + 2 = 8 roundings of relative size u
// (L = 3 layers: the forward output of each layer, and dz and dx of each layer in backward, plus
// the input cast); over a few steps the errors add rather than compound because the learning rate
// is small. We allow 4x headroom for conditioning: ‖ΔW_mixed − ΔW_f32‖ ≤ 32·u·‖ΔW_f32‖.
const C: f64 = 32.0;

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    #[test]
    fn prop_mixed_bf16_training_tracks_f32(seed in 0u64..1000) {
        let err = update_error::<MixedBf16>(seed, 5);
        prop_assert!(err <= C * 2f64.powi(-8), "relative update error {err:e}");
    }

    #[test]
    fn prop_mixed_f16_training_tracks_f32(seed in 0u64..1000) {
        let err = update_error::<MixedF16>(seed, 5);
        prop_assert!(err <= C * 2f64.powi(-11), "relative update error {err:e}");
    }
}

/// A deep sigmoid stack: every layer multiplies the gradient by at most 1/4 · ‖W‖.
fn deep<P: Policy>() -> Vec<Dense<P>> {
    (0..10)
        .map(|i| {
            Dense::<P>::new(16, 16)
                .with_seed(100 + i)
                .with_activation(Activation::Sigmoid)
        })
        .collect()
}

/// First-layer kernel gradient of the deep stack for one MSE step with the given loss scale.
fn first_layer_grad<P: Policy>(scale: f32) -> Vec<f64> {
    let mut layers = deep::<P>();
    let x: Vec<f32> = (0..64 * 16)
        .map(|i| ((i * 37) % 100) as f32 / 100.0)
        .collect();
    let mut h: Tensor<P::Compute> = Tensor::from_vec(vec![64, 16], x).unwrap().cast();
    for l in &mut layers {
        h = l.train_forward(h).unwrap();
    }
    let targets: Vec<f32> = (0..64 * 16).map(|i| (i % 2) as f32).collect();
    let out = Loss::MeanSquaredError
        .loss_and_grad(&h, Targets::Values(&targets), scale)
        .unwrap();
    let mut d = out.grad;
    for (i, l) in layers.iter_mut().enumerate().rev() {
        if let Some(dx) = l.backward(d.clone(), i > 0).unwrap() {
            d = dx;
        }
    }
    layers[0]
        .kernel_param()
        .grad()
        .unwrap()
        .to_f64_vec()
        .iter()
        .map(|g| g / f64::from(scale))
        .collect()
}

#[test]
fn f16_first_layer_gradient_underflows_without_loss_scaling() {
    let reference = first_layer_grad::<F32>(1.0);
    let largest = reference.iter().fold(0f64, |m, g| m.max(g.abs()));
    assert!(
        largest > 0.0 && largest < 6e-8,
        "the f32 gradient {largest:e} must be below f16's smallest subnormal"
    );
    let unscaled = first_layer_grad::<MixedF16>(1.0);
    assert!(
        unscaled.iter().all(|&g| g == 0.0),
        "without scaling every f16 gradient is zero"
    );
    let scaled = first_layer_grad::<MixedF16>(32768.0);
    assert!(
        scaled.iter().any(|&g| g != 0.0),
        "with scaling the gradient survives"
    );
    let err =
        norm(scaled.iter().zip(&reference).map(|(a, b)| a - b)) / norm(reference.iter().copied());
    assert!(err < 0.1, "scaled f16 gradient within 10% of f32: {err}");
}

#[test]
fn mixed_policies_save_half_the_activation_bytes() {
    fn saved<P: Policy>() -> (usize, usize) {
        let mut m = (
            Dense::<P>::new(784, 1024).with_activation(Activation::Relu),
            Dense::<P>::new(1024, 1024).with_activation(Activation::Relu),
            Dense::<P>::new(1024, 10),
        );
        let x: Tensor<P::Compute> = Tensor::zeros(vec![256, 784]).unwrap();
        m.train_forward(x).unwrap();
        (m.saved_bytes(), m.variable_bytes())
    }
    let (f32_act, f32_var) = saved::<F32>();
    let (bf16_act, bf16_var) = saved::<MixedBf16>();
    let (f16_act, _) = saved::<MixedF16>();
    assert!(
        bf16_act as f64 <= 0.55 * f32_act as f64,
        "{bf16_act} vs {f32_act}"
    );
    assert!(
        f16_act as f64 <= 0.55 * f32_act as f64,
        "{f16_act} vs {f32_act}"
    );
    assert_eq!(bf16_var, f32_var, "mixed policies keep f32 master weights");
    println!("activation bytes per batch: float32 {f32_act}, mixed_bfloat16 {bf16_act}, mixed_float16 {f16_act}; variable bytes {f32_var}");
}

#[test]
fn update_error_is_of_the_order_of_unit_roundoff() {
    // The bound above is not vacuous: the measured error is within a small factor of u, and an
    // f32 run compared with itself shows no error at all.
    let bf16 = update_error::<MixedBf16>(7, 5) / 2f64.powi(-8);
    let f16 = update_error::<MixedF16>(7, 5) / 2f64.powi(-11);
    println!(
        "relative update error in units of u: mixed_bfloat16 {bf16:.2}, mixed_float16 {f16:.2}"
    );
    assert!(
        bf16 > 0.1 && f16 > 0.1,
        "mixed runs must differ from f32 by about u"
    );
    assert_eq!(update_error::<F32>(7, 5), 0.0);
}
