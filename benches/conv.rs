//! Conv2D forward and backward per policy at Keras's typical CNN block: input 32×32×64, 64
//! filters, 3×3, "same", batch 32. Run: `cargo bench --bench conv`.
//!
//! Rows are `conv2d_forward/<policy>/...` (inference: im2col, the packed product, the fused
//! bias pass) and `conv2d_backward/<policy>/...` (the backward pass alone after an untimed
//! training forward: the shared activation-gradient pass, dW, db, dcols and col2im); throughput
//! is in FLOP (forward 2·rows·taps·filters, backward twice that), so the policies' ratios to
//! float32 come from one run.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixprec::layers::{Conv2D, Conv2DConfig, Padding};
use mixprec::prelude::*;

const BATCH: usize = 32;
const SIDE: usize = 32;
const IN: usize = 64;
const FILTERS: usize = 64;

fn input<P: Policy>() -> Tensor<P::Compute> {
    let data: Vec<f32> = (0..BATCH * SIDE * SIDE * IN)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_vec(vec![BATCH, SIDE, SIDE, IN], data)
        .expect("shape matches")
        .cast()
}

fn bench_policy<P: Policy>(c: &mut Criterion) {
    let mut conv: Conv2D<P> = Conv2DConfig::new(FILTERS, (3, 3))
        .padding(Padding::Same)
        .activation(Activation::Relu)
        .seed(1)
        .init(IN)
        .unwrap();
    let x = input::<P>();
    let flop = (2 * BATCH * SIDE * SIDE * 9 * IN * FILTERS) as u64;
    let shape = format!("{BATCH}x{SIDE}x{SIDE}x{IN}-{FILTERS}f3x3same");

    let mut group = c.benchmark_group("conv2d_forward");
    group.sample_size(10);
    group.throughput(Throughput::Elements(flop));
    group.bench_with_input(BenchmarkId::new(P::NAME, &shape), &x, |b, x| {
        b.iter(|| black_box(conv.forward(x).expect("shape fits")))
    });
    group.finish();

    let mut group = c.benchmark_group("conv2d_backward");
    group.sample_size(10);
    group.throughput(Throughput::Elements(2 * flop));
    let dy: Tensor<P::Compute> = conv.forward(&x).expect("shape fits");
    group.bench_function(BenchmarkId::new(P::NAME, &shape), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                conv.train_forward(x.clone()).expect("shape fits");
                // As benches/pytorch_reference.py times `y.backward(dy)`: `dy` is made before
                // the clock starts and the gradient is freed after it stops.
                let dy = dy.clone();
                let start = Instant::now();
                let dx = black_box(conv.backward(dy, true).expect("saved"));
                total += start.elapsed();
                drop(dx);
            }
            total
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_policy::<F32>(c);
    bench_policy::<MixedBf16>(c);
    bench_policy::<MixedF16>(c);
    bench_policy::<Bf16>(c);
}

criterion_group!(conv, benches);
criterion_main!(conv);
