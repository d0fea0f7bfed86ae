//! One training step ([`train_on_batch`]: forward, backward, Adam) of an MLP 784-1024-1024-10 at batch 256, per
//! policy. Run: `cargo bench --bench train_step`.
//!
//! Rows are `train_step/<policy>/784-1024-1024-10x256`; throughput is in samples. The f16 policies
//! train through `LossScaleOptimizer` (what `AutoOptimizer` picks), as they must.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixprec::losses::{Loss, Targets};
use mixprec::optimizers::Adam;
use mixprec::prelude::*;

const BATCH: usize = 256;

fn bench_policy<P: Policy>(c: &mut Criterion) {
    let mut group = c.benchmark_group("train_step");
    group.sample_size(10);
    group.throughput(Throughput::Elements(BATCH as u64));
    let mut model = (
        Dense::<P>::new(784, 1024)
            .with_seed(1)
            .with_activation(Activation::Relu),
        Dense::<P>::new(1024, 1024)
            .with_seed(2)
            .with_activation(Activation::Relu),
        Dense::<P>::new(1024, 10).with_seed(3),
    );
    let mut opt = AutoOptimizer::for_model(&model, Adam::new(1e-3));
    let x: Vec<f32> = (0..BATCH * 784)
        .map(|i| ((i * 7919) % 256) as f32 / 255.0)
        .collect();
    let x: Tensor<P::Compute> = Tensor::from_vec(vec![BATCH, 784], x).expect("shape").cast();
    let labels: Vec<u32> = (0..BATCH as u32).map(|i| i % 10).collect();
    let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
    group.bench_function(
        BenchmarkId::new(P::NAME, format!("784-1024-1024-10x{BATCH}")),
        |b| {
            b.iter(|| {
                let step = train_on_batch(
                    &mut model,
                    &mut opt,
                    x.clone(),
                    Targets::Classes(&labels),
                    loss,
                );
                black_box(step.expect("shapes fit"))
            })
        },
    );
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_policy::<F32>(c);
    bench_policy::<MixedBf16>(c);
    bench_policy::<MixedF16>(c);
}

criterion_group!(train_step, benches);
criterion_main!(train_step);
