//! Run: `cargo bench --bench layers`. LayerNormalization and Softmax at 4096 × 1024, forward and
//! backward, per policy, beside the memory-bound limit of the same bytes: a plain parallel f32
//! pass reading the input and writing the output (a scaled copy; for backward, which reads two
//! tensors, `a·s + b`), into an existing buffer and (`scaled_copy_new_vec`) into a new vector as
//! a layer returns one, whose page faults are part of the pass. The goal is each layer
//! within 1.5x of that pass.

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use mixprec::layers::{Layer, LayerNormalization, Softmax};
use mixprec::policy::{Bf16, ComputeOf, MixedBf16, MixedF16, Policy, F16, F32, F64};
use mixprec::{Element, Tensor};
use rayon::prelude::*;
use std::hint::black_box;
use std::time::Duration;

const ROWS: usize = 4096;
const N: usize = 1024;

fn input<P: Policy>(salt: f32) -> Tensor<ComputeOf<P>> {
    let v: Vec<f32> = (0..ROWS * N)
        .map(|i| ((i as f32 + salt) * 0.37).sin() * 4.0)
        .collect();
    Tensor::from_vec(vec![ROWS, N], v).unwrap().cast()
}

/// The f32 passes over `bytes` bytes in and out: the memory-bound limit.
fn memory_bound(c: &mut Criterion, bytes: usize) {
    let n = bytes / 4;
    let (a, b) = (vec![1.5f32; n], vec![0.5f32; n]);
    let mut out = vec![0f32; n];
    let mut g = c.benchmark_group("memory_bound");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(2 * bytes as u64));
    let chunk = 1 << 15;
    g.bench_function(BenchmarkId::new("scaled_copy", bytes), |x| {
        x.iter(|| {
            black_box(&mut out)
                .par_chunks_mut(chunk)
                .zip(a.par_chunks(chunk))
                .for_each(|(o, a)| o.iter_mut().zip(a).for_each(|(o, &a)| *o = a * 0.5));
        })
    });
    // Into a new vector, as a layer returns one: its pages are faulted in by the pass.
    g.bench_function(BenchmarkId::new("scaled_copy_new_vec", bytes), |x| {
        x.iter(|| {
            a.par_iter()
                .with_min_len(chunk)
                .map(|&a| a * 0.5)
                .collect::<Vec<f32>>()
        })
    });
    g.bench_function(BenchmarkId::new("axpy", bytes), |x| {
        x.iter(|| {
            black_box(&mut out)
                .par_chunks_mut(chunk)
                .zip(a.par_chunks(chunk).zip(b.par_chunks(chunk)))
                .for_each(|(o, (a, b))| {
                    o.iter_mut()
                        .zip(a.iter().zip(b))
                        .for_each(|(o, (&a, &b))| *o = a * 0.5 + b)
                });
        })
    });
    g.finish();
}

fn layers<P: Policy>(c: &mut Criterion) {
    let x = input::<P>(0.0);
    let dy = input::<P>(1.0);
    let bytes = ROWS * N * <ComputeOf<P> as Element>::DTYPE.size_of();
    let mut g = c.benchmark_group(format!("layers_{ROWS}x{N}"));
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Bytes(2 * bytes as u64));
    let ln = LayerNormalization::<P>::new(N);
    g.bench_function(BenchmarkId::new("layer_norm_forward", P::NAME), |b| {
        b.iter(|| ln.forward(black_box(&x)).unwrap())
    });
    let sm = Softmax::<P>::new();
    g.bench_function(BenchmarkId::new("softmax_forward", P::NAME), |b| {
        b.iter(|| sm.forward(black_box(&x)).unwrap())
    });
    // Backward reads two tensors and writes one; the forward pass that saves is not timed.
    g.throughput(Throughput::Bytes(3 * bytes as u64));
    g.bench_function(BenchmarkId::new("layer_norm_backward", P::NAME), |b| {
        b.iter_batched(
            || {
                let mut l = ln.clone();
                l.train_forward(x.clone()).unwrap();
                (l, dy.clone())
            },
            |(mut l, dy)| l.backward(dy, true).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.bench_function(BenchmarkId::new("softmax_backward", P::NAME), |b| {
        b.iter_batched(
            || {
                let mut l = sm.clone();
                l.train_forward(x.clone()).unwrap();
                (l, dy.clone())
            },
            |(mut l, dy)| l.backward(dy, true).unwrap(),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn all(c: &mut Criterion) {
    memory_bound(c, ROWS * N * 2);
    memory_bound(c, ROWS * N * 4);
    layers::<F32>(c);
    layers::<MixedBf16>(c);
    layers::<MixedF16>(c);
    layers::<Bf16>(c);
    layers::<F16>(c);
    layers::<F64>(c);
}

criterion_group!(benches, all);
criterion_main!(benches);
