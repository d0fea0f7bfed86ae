//! Training gives the same bits whatever the size of rayon's pool: the kernels split work into
//! fixed blocks, sums are added in a fixed order, and [`train_on_batch`]'s polling pool threads
//! (which also run inside other parallel loops of the step) neither change a result nor hang.

use mixprec::losses::{Loss, Targets};
use mixprec::optimizers::Adam;
use mixprec::prelude::*;
use mixprec::train::train_on_batch;

/// The variables' bits after six Adam steps of a 3-layer MLP, on a pool of `threads` threads.
fn trained_bits<P: Policy>(threads: usize) -> Vec<u64> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("a pool");
    pool.install(|| {
        // Large enough that the products and element-wise passes run in parallel.
        let mut model = (
            Dense::<P>::new(192, 256)
                .with_seed(1)
                .with_activation(Activation::Relu),
            Dense::<P>::new(256, 256)
                .with_seed(2)
                .with_activation(Activation::Tanh),
            Dense::<P>::new(256, 10).with_seed(3),
        );
        let mut opt = AutoOptimizer::for_model(&model, Adam::new(1e-3));
        let batch = 160;
        let x: Vec<f32> = (0..batch * 192)
            .map(|i| ((i * 7919) % 1001) as f32 / 500.0 - 1.0)
            .collect();
        let x = Tensor::from_vec(vec![batch, 192], x).expect("shape");
        let labels: Vec<u32> = (0..batch as u32).map(|i| (i * 7) % 10).collect();
        let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
        for _ in 0..6 {
            train_on_batch(
                &mut model,
                &mut opt,
                x.clone(),
                Targets::Classes(&labels),
                loss,
            )
            .expect("a step");
        }
        let weights = model.get_weights();
        weights
            .iter()
            .flat_map(|w| w.as_slice().iter().map(|v| v.to_bits()))
            .collect()
    })
}

fn same_bits_on_every_pool<P: Policy>() {
    let one = trained_bits::<P>(1);
    assert!(one.iter().any(|&b| f64::from_bits(b) != 0.0));
    for threads in [2, 3, 5] {
        let many = trained_bits::<P>(threads);
        let first = one.iter().zip(&many).position(|(a, b)| a != b);
        assert_eq!(first, None, "{} on {threads} threads", P::NAME);
    }
}

#[test]
fn float32_training_is_the_same_on_every_pool_size() {
    same_bits_on_every_pool::<F32>();
}

#[test]
fn mixed_bfloat16_training_is_the_same_on_every_pool_size() {
    same_bits_on_every_pool::<MixedBf16>();
}

#[test]
fn mixed_float16_training_is_the_same_on_every_pool_size() {
    same_bits_on_every_pool::<MixedF16>();
}
