//! Runs one Dense layer under every Keras policy and compares each with an f64 reference.
//! Run: `cargo run --release --example policies [policy ...]`
//!
//! The policy names come from the command line (or all six), are parsed at run time, and reach
//! the monomorphized `Dense<P>` through `with_policy!`: no `dyn` anywhere in the math.

use std::time::Instant;

use mixprec::prelude::*;

const BATCH: usize = 256;
const IN: usize = 512;
const OUT: usize = 512;

struct Row {
    policy: DTypePolicy,
    max_rel_err: f64,
    variable_bytes: usize,
    millis: f64,
}

fn run<P: Policy>(x: &Tensor<f32>, reference: &[f64]) -> Row {
    let dense = DenseConfig::new(OUT)
        .seed(42)
        .init::<P>(IN)
        .unwrap()
        .with_activation(Activation::Relu);
    let xc: Tensor<P::Compute> = x.cast();
    let start = Instant::now();
    let y = dense.forward(&xc).expect("shape");
    let millis = start.elapsed().as_secs_f64() * 1e3;
    let scale = reference.iter().fold(0f64, |m, v| m.max(v.abs()));
    let max_rel_err = y
        .to_f64_vec()
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs() / scale)
        .fold(0.0, f64::max);
    Row {
        policy: P::RUNTIME,
        max_rel_err,
        variable_bytes: dense.variable_bytes(),
        millis,
    }
}

fn main() -> std::process::ExitCode {
    match run_all() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_all() -> Result<()> {
    let policies: Vec<DTypePolicy> = match std::env::args().skip(1).collect::<Vec<_>>() {
        names if names.is_empty() => DTypePolicy::ALL.to_vec(),
        names => names.iter().map(|n| n.parse()).collect::<Result<_, _>>()?,
    };
    let data = (0..BATCH * IN)
        .map(|i| ((i * 7919) % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    let x = Tensor::from_vec(vec![BATCH, IN], data)?;
    // The f64 reference: same seed, so the same initial kernel, computed in float64.
    let reference = DenseConfig::new(OUT)
        .seed(42)
        .init::<F64>(IN)?
        .with_activation(Activation::Relu)
        .call(&x)?
        .to_f64_vec();

    println!("Dense {IN} -> {OUT} (relu), batch {BATCH}, against a float64 reference\n");
    println!(
        "{:<16} {:>8} {:>10} {:>14} {:>10}",
        "policy", "compute", "variables", "max rel error", "time"
    );
    for policy in policies {
        let row = mixprec::with_policy!(policy, P => run::<P>(&x, &reference));
        println!(
            "{:<16} {:>8} {:>8} kB {:>14.2e} {:>7.2} ms",
            row.policy.name(),
            row.policy.compute_dtype().name(),
            row.variable_bytes / 1024,
            row.max_rel_err,
            row.millis,
        );
    }
    println!(
        "\nErrors track each compute type's unit roundoff: bf16 2^-8 = 3.9e-3, f16 2^-11 = 4.9e-4."
    );
    Ok(())
}
