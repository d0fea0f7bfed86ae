//! Run: `cargo bench --bench gemm` (add `-- 'bf16'` to filter; `MIXPREC_KERNEL=portable` to force
//! the portable paths). Throughput is reported in elements/s where one element is one FLOP
//! (2·m·k·n per product), so "Gelem/s" reads as GFLOP/s.
//!
//! Each shape `(m, k, n)` is a Dense forward `x[m×k] · W[k×n]`. Names: `<policy-dtype>/<what>`:
//! - `f32/sgemm`: the F32 policy, straight to matrixmultiply.
//! - `f32/packed`: f32 with the weight pre-packed (AVX-512 FMA panels where present).
//! - `bf16/packed`: MixedBf16 with the weight pre-packed once ([`PackedB`], the cached path).
//! - `bf16/pack_from_f32+gemm`: MixedBf16 packing its f32 variable on every call (no cache).
//! - `bf16/gemm`: bf16 operands, packed inside every call.
//! - `f16/packed`, `f16/gemm`: the same for f16.
//!
//! `MIXPREC_BENCH_CLOCK=cpu` measures process CPU time (all threads, Linux only) instead of wall
//! time: on a shared machine, where other jobs steal the cores, ratios of CPU time stay
//! meaningful (throughputs then read as GFLOP per CPU-second).

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use half::{bf16, f16};
use mixprec::kernels::{gemm, gemm_packed, pack_b, pack_b_from_f32, MatRef};
use std::hint::black_box;
use std::time::Duration;

const SHAPES: [(usize, usize, usize); 3] =
    [(256, 1024, 1024), (1024, 1024, 1024), (64, 4096, 4096)];

fn values(len: usize, seed: u32) -> Vec<f32> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s % 2001) as f32 / 1000.0 - 1.0
        })
        .collect()
}

/// Process CPU time, all threads (Linux `/proc/self/stat` utime + stime, in ticks of 1/100 s),
/// formatted like wall time. Read without `unsafe` (the crate keeps `unsafe` in `src/kernels/`);
/// the 10 ms resolution is why CPU-time runs use flat sampling with long samples.
struct CpuTime;

impl CpuTime {
    fn now() -> Duration {
        let stat = std::fs::read_to_string("/proc/self/stat").expect("read /proc/self/stat");
        let after_comm = &stat[stat.rfind(')').expect("stat has (comm)") + 1..];
        let ticks: u64 = after_comm
            .split_whitespace()
            .skip(11) // fields 3..=13; 14 is utime and 15 is stime
            .take(2)
            .map(|f| f.parse::<u64>().expect("numeric utime/stime"))
            .sum();
        Duration::from_millis(ticks * 10)
    }
}

impl Measurement for CpuTime {
    type Intermediate = Duration;
    type Value = Duration;
    fn start(&self) -> Duration {
        CpuTime::now()
    }
    fn end(&self, start: Duration) -> Duration {
        CpuTime::now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        WallTime.formatter()
    }
}

fn gemm_shapes<M: Measurement>(c: &mut Criterion<M>, mode: SamplingMode, time: Duration) {
    for (m, k, n) in SHAPES {
        let mut g = c.benchmark_group(format!("gemm_{m}x{k}x{n}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .sampling_mode(mode)
            .measurement_time(time)
            .throughput(Throughput::Elements((2 * m * k * n) as u64));
        let (x32, w32) = (values(m * k, 1), values(k * n, 2));
        let xb: Vec<bf16> = x32.iter().map(|&v| bf16::from_f32(v)).collect();
        let wb: Vec<bf16> = w32.iter().map(|&v| bf16::from_f32(v)).collect();
        let xh: Vec<f16> = x32.iter().map(|&v| f16::from_f32(v)).collect();
        let wh: Vec<f16> = w32.iter().map(|&v| f16::from_f32(v)).collect();
        let mut out = vec![0f32; m * n];
        let id = |name: &str| BenchmarkId::new(name, format!("{m}x{k}x{n}"));
        g.bench_function(id("f32/sgemm"), |bch| {
            let (x, w) = (MatRef::row_major(&x32, m, k), MatRef::row_major(&w32, k, n));
            bch.iter(|| gemm(x, w, black_box(&mut out), false))
        });
        let p32 = pack_b(MatRef::row_major(&w32, k, n));
        g.bench_function(id("f32/packed"), |bch| {
            let x = MatRef::row_major(&x32, m, k);
            bch.iter(|| gemm_packed(x, &p32, black_box(&mut out), false))
        });
        let pb = pack_b_from_f32::<bf16>(MatRef::row_major(&w32, k, n));
        g.bench_function(id("bf16/packed"), |bch| {
            let x = MatRef::row_major(&xb, m, k);
            bch.iter(|| gemm_packed(x, &pb, black_box(&mut out), false))
        });
        g.bench_function(id("bf16/pack_from_f32+gemm"), |bch| {
            let (x, w) = (MatRef::row_major(&xb, m, k), MatRef::row_major(&w32, k, n));
            bch.iter(|| gemm_packed(x, &pack_b_from_f32::<bf16>(w), black_box(&mut out), false))
        });
        g.bench_function(id("bf16/gemm"), |bch| {
            let (x, w) = (MatRef::row_major(&xb, m, k), MatRef::row_major(&wb, k, n));
            bch.iter(|| gemm(x, w, black_box(&mut out), false))
        });
        let ph = pack_b(MatRef::row_major(&wh, k, n));
        g.bench_function(id("f16/packed"), |bch| {
            let x = MatRef::row_major(&xh, m, k);
            bch.iter(|| gemm_packed(x, &ph, black_box(&mut out), false))
        });
        g.bench_function(id("f16/gemm"), |bch| {
            let (x, w) = (MatRef::row_major(&xh, m, k), MatRef::row_major(&wh, k, n));
            bch.iter(|| gemm(x, w, black_box(&mut out), false))
        });
        g.finish();
    }
}

fn main() {
    if std::env::var("MIXPREC_BENCH_CLOCK").as_deref() == Ok("cpu") {
        let mut c = Criterion::default()
            .with_measurement(CpuTime)
            .configure_from_args();
        gemm_shapes(&mut c, SamplingMode::Flat, Duration::from_secs(6));
    } else {
        let mut c = Criterion::default().configure_from_args();
        gemm_shapes(&mut c, SamplingMode::Auto, Duration::from_secs(3));
    }
    Criterion::default().configure_from_args().final_summary();
}
