//! Optimizer updates alone, per optimizer and policy. Run: `cargo bench --bench optimizers`.
//!
//! Rows are `optimizer_step/<optimizer>/<policy>/<rows>x<cols>`: one `step` over a
//! `Dense` kernel and bias with gradients already set (the element-wise update, the repack of
//! the cached packed kernel, and for 16-bit variables the conversions). Throughput is in
//! elements updated per second. Inputs are deterministic.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use mixprec::optimizers::Optimizer;
use mixprec::prelude::*;

const SHAPES: [(usize, usize); 2] = [(1024, 1024), (4096, 1024)];

/// A layer with a gradient on every variable and its packed kernel cached (as after a forward).
fn layer<P: Policy>(rows: usize, cols: usize) -> Dense<P> {
    let mut d = Dense::<P>::new(rows, cols).with_seed(3);
    struct Grads;
    impl mixprec::module::ParamVisitorMut for Grads {
        fn visit<Q: Policy>(&mut self, p: &mut mixprec::param::Param<Q>) {
            let shape = p.value().shape().to_vec();
            let g: Vec<f32> = (0..p.len())
                .map(|i| ((i * 7919) % 1000) as f32 / 5e5 - 1e-3)
                .collect();
            p.set_grad(Tensor::from_vec(shape, g).expect("shape").cast())
                .expect("gradient shape");
        }
    }
    d.visit_params_mut(&mut Grads);
    let x = Tensor::<f32>::from_vec(vec![1, rows], vec![0.5; rows]).expect("shape");
    black_box(d.call(&x));
    d
}

fn bench_one<P: Policy, O: Optimizer>(c: &mut Criterion, name: &str, make: impl Fn() -> O) {
    let mut group = c.benchmark_group("optimizer_step");
    group.sample_size(20);
    for (r, k) in SHAPES {
        let mut d = layer::<P>(r, k);
        let mut opt = make();
        group.throughput(Throughput::Elements((r * k + k) as u64));
        let id = BenchmarkId::new(format!("{name}/{}", P::NAME), format!("{r}x{k}"));
        group.bench_function(id, |bench| {
            bench.iter(|| black_box(opt.step(&mut d).expect("finite step")))
        });
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_one::<F32, _>(c, "adam", || Adam::new(1e-3));
    bench_one::<MixedBf16, _>(c, "adam", || Adam::new(1e-3));
    bench_one::<Bf16, _>(c, "adam", || Adam::new(1e-3));
    bench_one::<MixedBf16, _>(c, "sgd_momentum", || {
        Sgd::new(1e-2).with_momentum(0.9).expect("valid momentum")
    });
}

criterion_group!(optimizer_benches, benches);
criterion_main!(optimizer_benches);
