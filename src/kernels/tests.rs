//! Every kernel path this CPU has against the portable path and an f64 reference. These reach
//! the paths explicitly (`gemm_with`, `pack_b_with`, the portable casts), which are not public,
//! so they live inside the crate.
//!
//! Paths this CPU lacks are skipped with a printed reason. `MIXPREC_KERNEL=portable cargo test`
//! runs the dispatching functions on the portable path; the `*_with` functions still reach each
//! path explicitly.

mod casts;
mod gemm_paths;
mod prop_gemm;
mod values;

use super::{kernels_for, KernelChoice, MatRef};
use crate::{DType, Element};

/// f32's unit roundoff, 2^-24.
const U32: f64 = 1.0 / 16_777_216.0;
/// f64's unit roundoff, 2^-53.
const U64: f64 = 1.0 / 9_007_199_254_740_992.0;

/// γ_k = k·u / (1 - k·u): the worst-case relative error of a k-term sum accumulated with unit
/// roundoff `u` (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    ku / (1.0 - ku)
}

/// The kernel paths this CPU can run, portable first; prints why a path is skipped.
fn kernel_paths() -> Vec<KernelChoice> {
    let cpu = kernels_for(KernelChoice::Auto);
    let mut v = vec![KernelChoice::Portable];
    if cpu.gemm(DType::Float16) == KernelChoice::Avx512 {
        v.push(KernelChoice::Avx512);
    } else {
        eprintln!("skip avx512 paths: CPU lacks AVX-512 F/BW/VL/DQ");
    }
    if cpu.gemm(DType::BFloat16) == KernelChoice::Amx {
        v.push(KernelChoice::Amx);
    } else {
        eprintln!("skip amx path: CPU lacks AMX-BF16 or the OS refused the tile state");
    }
    v
}

/// `C0 + A·B` in f64 per element, with the magnitude `|c0| + Σ|a||b|` that scales its
/// accumulation bound (row-major `m × n`).
fn gemm_reference<T: Element>(a: MatRef<'_, T>, b: MatRef<'_, T>, c0: &[f32]) -> Vec<(f64, f64)> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut out = Vec::with_capacity(m * n);
    for i in 0..m {
        for j in 0..n {
            let (mut exact, mut mag) = (c0[i * n + j] as f64, c0[i * n + j].abs() as f64);
            for p in 0..k {
                let prod = a.at(i, p).as_f64() * b.at(p, j).as_f64();
                exact += prod;
                mag += prod.abs();
            }
            out.push((exact, mag));
        }
    }
    out
}
