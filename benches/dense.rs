//! Dense forward per policy. Run: `cargo bench --bench dense`
//! (one shape: `cargo bench --bench dense -- 256x1024x1024`).
//!
//! Rows are `dense_forward/<policy>/<batch>x<in>x<out>`; throughput is in FLOP (2·b·i·o per call).
//! Besides the full forward pass, `cast/<policy>/...` times the conversions the pass does (input
//! and kernel to the compute type, output back), so their share of the forward time can be read
//! off the same run.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixprec::dtype::{cast_slice, Element};
use mixprec::prelude::*;

const SHAPES: [(usize, usize, usize); 2] = [(256, 1024, 1024), (1024, 1024, 1024)];

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
        let dense = Dense::<P>::new(i, o).with_seed(1);
        let x = input::<P>(b, i);
        group.throughput(Throughput::Elements((2 * b * i * o) as u64));
        let id = BenchmarkId::new(P::NAME, format!("{b}x{i}x{o}"));
        group.bench_with_input(id, &x, |bench, x| {
            bench.iter(|| black_box(dense.forward(x)))
        });
    }
    group.finish();
}

/// The conversions a forward pass of `P` performs, timed alone: kernel Variable→Compute, and the
/// f32 accumulator → Compute output (the portable gemm also widens both operands to f32).
fn bench_casts<P: Policy>(c: &mut Criterion) {
    let mut group = c.benchmark_group("cast");
    group.sample_size(10);
    for (b, i, o) in SHAPES {
        let kernel = vec![P::Variable::from_f32_rne(0.5); i * o];
        let acc = vec![0.25f32; b * o];
        let x = vec![P::Compute::from_f32_rne(0.5); b * i];
        let id = BenchmarkId::new(P::NAME, format!("{b}x{i}x{o}"));
        group.bench_function(id, |bench| {
            let mut kc = vec![P::Compute::default(); i * o];
            let mut y = vec![P::Compute::default(); b * o];
            let mut widened = vec![0f32; b * i + i * o];
            bench.iter(|| {
                cast_slice(&kernel, &mut kc);
                cast_slice(&x, &mut widened[..b * i]);
                cast_slice(&kc, &mut widened[b * i..]);
                cast_slice(&acc, &mut y);
                black_box((&kc, &y, &widened));
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
