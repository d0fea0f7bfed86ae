//! Run: `cargo bench --bench cast`. Slice casts of 1 Mi elements: mixprec's dispatching casts
//! (`cast_slice`, AVX-512 where present), the portable ones, and `half`'s own conversions (a
//! scalar loop for bf16). Throughput in elements/s.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16, slice::HalfFloatSliceExt};
use mixprec::dtype::cast_slice;
// Not API: the portable casts are reachable only for this comparison.
use mixprec::kernels::__bench::portable;
use std::hint::black_box;
use std::time::Duration;

const LEN: usize = 1 << 20;

fn casts(c: &mut Criterion) {
    let src: Vec<f32> = (0..LEN).map(|i| (i as f32 * 0.37).sin() * 1e3).collect();
    let mut g = c.benchmark_group("cast");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(LEN as u64));
    let id = |what: &str, who: &str| BenchmarkId::new(what, who);
    let mut b = vec![bf16::ZERO; LEN];
    g.bench_function(id("f32_to_bf16", "mixprec"), |x| {
        x.iter(|| cast_slice(&src, black_box(&mut b)))
    });
    g.bench_function(id("f32_to_bf16", "portable"), |x| {
        x.iter(|| portable::f32_to_bf16(&src, black_box(&mut b)))
    });
    g.bench_function(id("f32_to_bf16", "half"), |x| {
        x.iter(|| black_box(&mut b).convert_from_f32_slice(&src))
    });
    let mut back = vec![0f32; LEN];
    g.bench_function(id("bf16_to_f32", "mixprec"), |x| {
        x.iter(|| cast_slice(&b, black_box(&mut back)))
    });
    g.bench_function(id("bf16_to_f32", "portable"), |x| {
        x.iter(|| portable::bf16_to_f32(&b, black_box(&mut back)))
    });
    g.bench_function(id("bf16_to_f32", "half"), |x| {
        x.iter(|| b.convert_to_f32_slice(black_box(&mut back)))
    });
    let mut h = vec![f16::ZERO; LEN];
    g.bench_function(id("f32_to_f16", "mixprec"), |x| {
        x.iter(|| cast_slice(&src, black_box(&mut h)))
    });
    g.bench_function(id("f32_to_f16", "half"), |x| {
        x.iter(|| black_box(&mut h).convert_from_f32_slice(&src))
    });
    g.bench_function(id("f16_to_f32", "mixprec"), |x| {
        x.iter(|| cast_slice(&h, black_box(&mut back)))
    });
    g.bench_function(id("f16_to_f32", "half"), |x| {
        x.iter(|| h.convert_to_f32_slice(black_box(&mut back)))
    });
    g.finish();
}

criterion_group!(benches, casts);
criterion_main!(benches);
