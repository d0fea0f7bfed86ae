//! Dense forward per policy. Run: `cargo bench --bench dense`
//! (one shape: `cargo bench --bench dense -- 256x1024x1024`).
//!
//! Rows are `dense_forward/<policy>/<batch>x<in>x<out>`; throughput is in FLOP (2·b·i·o per call).
//! Besides the full forward pass, `cast/<policy>/per_call/...` and `cast/<policy>/per_update/...`
//! time the conversions around the product (see `bench_casts`), so their share of the forward
//! time can be read off the same run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixprec::dtype::cast_slice;
use mixprec::kernels::{pack_b_from, MatRef};
use mixprec::prelude::*;

const SHAPES: [(usize, usize, usize); 3] =
    [(256, 1024, 1024), (1024, 1024, 1024), (64, 4096, 4096)];

fn input<P: Policy>(batch: usize, inp: usize) -> Tensor<P::Compute> {
    let data: Vec<f32> = (0..batch * inp)
        .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
        .collect();
    Tensor::from_vec(vec![batch, inp], data)
        .expect("shape matches")
        .cast()
}

fn bench_policy<P: Policy>(c: &mut Criterion) {
    let mut group = c.benchmark_group("dense_forward");
    group.sample_size(10);
    for (b, i, o) in SHAPES {
        let dense = DenseConfig::new(o).seed(1).init::<P>(i).unwrap();
        let x = input::<P>(b, i);
        group.throughput(Throughput::Elements((2 * b * i * o) as u64));
        let id = BenchmarkId::new(P::NAME, format!("{b}x{i}x{o}"));
        group.bench_with_input(id, &x, |bench, x| {
            bench.iter(|| black_box(dense.forward(x)))
        });
    }
    group.finish();
}

/// The conversions around the product, timed alone so their share of the forward time can be
/// read off the same run: `per_call` is what every forward pays once the packed kernel is cached
/// (the f32 accumulator rounded to the compute type); `per_update` is what the first forward
/// after an optimizer step pays (the f32 kernel rounded and packed for the matrix kernel).
fn bench_casts<P: Policy>(c: &mut Criterion) {
    let mut group = c.benchmark_group("cast");
    group.sample_size(10);
    for (b, i, o) in SHAPES {
        let acc = vec![0.25f32; b * o];
        let id = BenchmarkId::new(format!("{}/per_call", P::NAME), format!("{b}x{i}x{o}"));
        group.bench_function(id, |bench| {
            let mut y = vec![P::Compute::default(); b * o];
            bench.iter(|| {
                cast_slice(&acc, &mut y);
                black_box(&y);
            })
        });
        let kernel: Vec<f32> = (0..i * o).map(|k| (k % 17) as f32 / 17.0).collect();
        let id = BenchmarkId::new(format!("{}/per_update", P::NAME), format!("{b}x{i}x{o}"));
        group.bench_function(id, |bench| {
            bench.iter(|| {
                black_box(pack_b_from::<f32, P::Compute>(MatRef::row_major(
                    &kernel, i, o,
                )))
            })
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_policy::<F32>(c);
    bench_policy::<MixedBf16>(c);
    bench_policy::<MixedF16>(c);
    bench_casts::<MixedBf16>(c);
    bench_casts::<MixedF16>(c);
}

criterion_group!(dense, benches);
criterion_main!(dense);
