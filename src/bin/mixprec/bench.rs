//! `mixprec bench`: Dense forward and backward throughput per policy, measured side by side in one
//! run (each policy right after float32 on the same shape), reported as GFLOP/s and as a ratio to
//! float32. Criterion benches (`cargo bench`) are the careful measurement; this is the quick look.

use crate::output::outln;
use std::hint::black_box;
use std::time::{Duration, Instant};

use mixprec::layers::Layer;
use mixprec::policy::Policy;
use mixprec::prelude::*;

use crate::cli::BenchArgs;

/// Seconds per call of forward and of backward (the faster of two timing rounds each).
struct Timing {
    forward: f64,
    backward: f64,
}

struct Measure {
    shape: (usize, usize, usize),
    budget: Duration,
}

impl PolicyVisitor for Measure {
    type Output = Result<Timing>;

    fn visit<P: Policy>(self) -> Result<Timing> {
        let (b, i, o) = self.shape;
        let mut dense = DenseConfig::new(o).seed(1).init::<P>(i)?;
        let x: Tensor<P::Compute> = Tensor::from_vec(vec![b, i], input(b * i)?)?.cast();
        let dy: Tensor<P::Compute> = Tensor::from_vec(vec![b, o], input(b * o)?)?.cast();
        let forward = time(self.budget, || black_box(dense.forward(&x)).map(drop))?;
        let backward = time(self.budget, || {
            dense.train_forward(x.clone())?;
            black_box(dense.backward(dy.clone(), true)).map(drop)
        })? - forward;
        Ok(Timing {
            forward,
            backward: backward.max(1e-9),
        })
    }
}

/// Bytes one measurement of `(b, i, o)` needs, roughly: the f32 inputs `x` and `dy` and their
/// compute-type copies, the saved input, the output and its accumulator, `dx`, and per kernel
/// element its value, gradient, compute copy and two packed copies.
pub fn bytes_needed((b, i, o): (usize, usize, usize)) -> u128 {
    let (b, i, o) = (b as u128, i as u128, o as u128);
    4 * (4 * b * i + 5 * b * o) + 20 * (i * o + o)
}

/// `n` deterministic inputs in [-1, 1), or an error if the memory cannot be had.
fn input(n: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|e| Error::Io {
        path: format!("memory for {n} bench inputs"),
        source: std::io::Error::new(std::io::ErrorKind::OutOfMemory, e),
    })?;
    v.extend((0..n).map(|k| ((k * 7919) % 1000) as f32 / 500.0 - 1.0));
    Ok(v)
}

/// Best time per call over two rounds of at least `budget / 2` each.
fn time(budget: Duration, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    f()?; // warm up: caches, packed weights, thread pool
    let mut best = f64::MAX;
    for _ in 0..2 {
        let (start, mut calls) = (Instant::now(), 0u32);
        while calls == 0 || start.elapsed() < budget / 2 {
            f()?;
            calls += 1;
        }
        best = best.min(start.elapsed().as_secs_f64() / f64::from(calls));
    }
    Ok(best)
}

/// `mixprec bench`.
pub fn bench(args: &BenchArgs) -> Result<()> {
    // --seconds is checked to be in (0, 3600] by its parser; this is the guard behind it.
    let budget = match Duration::try_from_secs_f32(args.seconds) {
        Ok(d) if d.as_secs_f32() <= crate::limits::MAX_SECONDS => d,
        _ => {
            return Err(Error::InvalidArgument {
                what: "--seconds",
                found: args.seconds.to_string(),
                expected: "a number of seconds in (0, 3600]",
            })
        }
    };
    let mut policies = vec![DTypePolicy::Float32];
    policies.extend(
        args.policies
            .iter()
            .copied()
            .filter(|&p| p != DTypePolicy::Float32),
    );
    outln!("Dense forward (2·b·i·o flop) and backward (dX and dW, 4·b·i·o flop), best of 2 rounds of {:.2} s\n", args.seconds / 2.0);
    outln!(
        "{:<16} {:<16} {:>12} {:>8} {:>12} {:>8}",
        "shape",
        "policy",
        "fwd GFLOP/s",
        "vs f32",
        "bwd GFLOP/s",
        "vs f32"
    );
    for &(b, i, o) in &args.shapes {
        let flop = (2 * b * i * o) as f64;
        let mut reference: Option<Timing> = None;
        for &policy in &policies {
            let t = policy.visit(Measure {
                shape: (b, i, o),
                budget,
            })?;
            let r = reference.get_or_insert(Timing {
                forward: t.forward,
                backward: t.backward,
            });
            outln!(
                "{:<16} {:<16} {:>12.1} {:>7.2}x {:>12.1} {:>7.2}x",
                format!("{b}x{i}x{o}"),
                policy.name(),
                flop / t.forward / 1e9,
                r.forward / t.forward,
                2.0 * flop / t.backward / 1e9,
                r.backward / t.backward,
            );
        }
    }
    Ok(())
}
