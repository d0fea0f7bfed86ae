//! BatchNormalization: finite differences in f64 through the batch statistics (and a mutated
//! gradient that ignores them, rejected), seeded property tests against an f64 reference with
//! bounds from unit roundoff for the six policies (and a wrong kernel, Bessel's variance,
//! rejected), the f32 island, Keras's moving-statistics formula by hand, inference on the
//! moving statistics (Keras surface: batch_norm_keras.rs).

#[macro_use]
mod common;

use common::{gamma, SplitMix};
use mixprec::layers::{BatchNormalization, BatchNormalizationConfig, Layer};
use mixprec::policy::{ComputeOf, Policy, F32, F64};
use mixprec::{DType, Element, Module, Tensor};

fn input(rows: usize, n: usize, seed: u64) -> Vec<f32> {
    SplitMix(seed).vec(rows * n, -2.0, 2.0)
}

/// A layer in `P` with seeded gamma and beta (moving statistics as initialised).
fn layer<P: Policy>(n: usize, seed: u64) -> BatchNormalization<P> {
    let mut bn = BatchNormalization::<P>::new(n);
    let mut r = SplitMix(seed ^ 0x5eed);
    let mut w = bn.get_weights();
    w[0] = Tensor::from_vec(
        vec![n],
        r.vec(n, 0.5, 2.0).iter().map(|&v| v as f64).collect(),
    )
    .unwrap();
    w[1] = Tensor::from_vec(
        vec![n],
        r.vec(n, -1.0, 1.0).iter().map(|&v| v as f64).collect(),
    )
    .unwrap();
    bn.set_weights(&w).unwrap();
    bn
}

/// Σ c ⊙ train_forward(x) on a copy (training mode: batch statistics).
fn loss(bn: &BatchNormalization<F64>, x: &[f64], shape: &[usize], c: &[f64]) -> f64 {
    let y = bn
        .clone()
        .train_forward(Tensor::from_vec(shape.to_vec(), x.to_vec()).unwrap())
        .unwrap();
    y.as_slice().iter().zip(c).map(|(y, c)| y * c).sum()
}

fn max_rel_err(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).abs() / (1.0 + b.abs()))
        .fold(0.0, f64::max)
}

/// The input, gamma and beta gradients of the backward pass and of central differences.
fn fd_case(shape: &[usize]) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
    let n = *shape.last().unwrap();
    let bn = layer::<F64>(n, 7);
    let len: usize = shape.iter().product();
    let x: Vec<f64> = input(len / n, n, 3).iter().map(|&v| v as f64).collect();
    let c: Vec<f64> = (0..len)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0)
        .collect();
    let mut l = bn.clone();
    l.train_forward(Tensor::from_vec(shape.to_vec(), x.clone()).unwrap())
        .unwrap();
    let dx = l
        .backward(Tensor::from_vec(shape.to_vec(), c.clone()).unwrap(), true)
        .unwrap()
        .unwrap();
    let mut analytic = dx.into_vec();
    analytic.extend(l.gamma().unwrap().grad().unwrap().as_slice());
    analytic.extend(l.beta().unwrap().grad().unwrap().as_slice());
    let h = 1e-6;
    let mut numeric = Vec::new();
    for i in 0..len {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp[i] += h;
        xm[i] -= h;
        numeric.push((loss(&bn, &xp, shape, &c) - loss(&bn, &xm, shape, &c)) / (2.0 * h));
    }
    for v in 0..2 {
        for i in 0..n {
            let at = |d: f64| {
                let mut b = bn.clone();
                let mut w = b.get_weights();
                w[v].as_mut_slice()[i] += d;
                b.set_weights(&w).unwrap();
                loss(&b, &x, shape, &c)
            };
            numeric.push((at(h) - at(-h)) / (2.0 * h));
        }
    }
    (analytic, numeric, x, c)
}

#[test]
fn finite_differences_in_f64_through_the_batch_statistics() {
    for shape in [vec![5, 3], vec![2, 2, 3, 4]] {
        let (analytic, numeric, _, _) = fd_case(&shape);
        let err = max_rel_err(&analytic, &numeric);
        assert!(err < 1e-6, "{shape:?}: max relative error {err}");
    }
}

#[test]
fn finite_differences_reject_a_gradient_that_treats_the_statistics_as_constants() {
    let (shape, n) = (vec![5, 3], 3);
    let (analytic, numeric, x, c) = fd_case(&shape);
    // The plausible bug: dx = γ·r·dy, no terms through μ and σ².
    let bn = layer::<F64>(n, 7);
    let g = bn.gamma().unwrap().value().as_slice().to_vec();
    let rows = x.len() / n;
    let mut wrong = analytic.clone();
    for j in 0..n {
        let col: Vec<f64> = (0..rows).map(|r| x[r * n + j]).collect();
        let mean = col.iter().sum::<f64>() / rows as f64;
        let var = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / rows as f64;
        for r in 0..rows {
            wrong[r * n + j] = g[j] * c[r * n + j] / (var + 1e-3).sqrt();
        }
    }
    assert!(max_rel_err(&analytic, &numeric) < 1e-6);
    let err = max_rel_err(&wrong, &numeric);
    assert!(err > 1e-2, "the mutated gradient passed: {err}");
}

/// The f64 reference on the compute-type input: per-feature mean and (biased, or Bessel's)
/// variance, then `(x − μ)/√(σ² + ε)·γ + β` with the variables as stored.
fn reference(x: &[f64], n: usize, g: &[f64], b: &[f64], bessel: bool) -> (Vec<f64>, Vec<f64>) {
    let rows = x.len() / n;
    let (mut y, mut scale) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    for j in 0..n {
        let col: Vec<f64> = (0..rows).map(|r| x[r * n + j]).collect();
        let mean = col.iter().sum::<f64>() / rows as f64;
        let ss = col.iter().map(|v| (v - mean).powi(2)).sum::<f64>();
        let var = ss / (rows - usize::from(bessel)) as f64;
        let r = 1.0 / (var + 1e-3).sqrt();
        for i in 0..rows {
            y[i * n + j] = (x[i * n + j] - mean) * r * g[j] + b[j];
            // What the accumulator's errors scale with: |γ|·(|x̂| + max|x|·r) + |β|.
            scale[i * n + j] =
                g[j].abs() * ((x[i * n + j] - mean).abs() * r + 2.0 * r) + b[j].abs();
        }
    }
    (y, scale)
}

/// Largest `|y − ref| / bound` over a seeded case: ≤ 1 passes.
fn violation<P: Policy>(rows: usize, n: usize, seed: u64, bessel: bool) -> f64 {
    let mut bn = layer::<P>(n, seed);
    let x: Tensor<ComputeOf<P>> = Tensor::from_vec(vec![rows, n], input(rows, n, seed))
        .unwrap()
        .cast();
    let w = bn.get_weights();
    let y = bn.train_forward(x.clone()).unwrap().to_f64_vec();
    let (r, scale) = reference(&x.to_f64_vec(), n, w[0].as_slice(), w[1].as_slice(), bessel);
    let u_c = <ComputeOf<P> as Element>::UNIT_ROUNDOFF;
    let u_acc = <<ComputeOf<P> as Element>::Acc as Element>::UNIT_ROUNDOFF;
    let e = gamma(3 * rows + 20, u_acc);
    y.iter()
        .zip(&r)
        .zip(&scale)
        .map(|((y, r), s)| (y - r).abs() / (u_c * r.abs() * (1.0 + e) + e * s + 1e-300))
        .fold(0.0, f64::max)
}

fn matches_f64_reference<P: Policy>() {
    for seed in 0..24u64 {
        let (rows, n) = (1 + (seed as usize * 5) % 17, 1 + (seed as usize * 3) % 9);
        let v = violation::<P>(rows.max(2), n, seed, false);
        assert!(v <= 1.0, "{} seed {seed}: {v} of the bound", P::NAME);
    }
    // A wrong kernel, Bessel's variance (what Keras uses for neither statistic): rejected.
    let v = violation::<P>(8, 4, 1, true);
    assert!(v > 1.0, "{}: Bessel's variance passed ({v})", P::NAME);
}
for_each_policy!(matches_f64_reference; ref_f32, ref_f64, ref_f16, ref_bf16, ref_mf16, ref_mbf16);

/// The 16-bit output is the F32 layer's output on the rounded input, rounded once.
fn f32_island<P: Policy>() {
    let (rows, n) = (12, 5);
    let mut bn = layer::<P>(n, 11);
    let mut bf = BatchNormalization::<F32>::new(n);
    bf.set_weights(&bn.get_weights()).unwrap();
    let x: Tensor<ComputeOf<P>> = Tensor::from_vec(vec![rows, n], input(rows, n, 11))
        .unwrap()
        .cast();
    let y = bn.train_forward(x.clone()).unwrap().to_f64_vec();
    let yf: Tensor<ComputeOf<P>> = bf.train_forward(x.cast()).unwrap().cast();
    let u = <ComputeOf<P> as Element>::UNIT_ROUNDOFF;
    for (a, b) in y.iter().zip(yf.to_f64_vec()) {
        assert!(
            (a - b).abs() <= 2.0 * u * b.abs(),
            "{}: {a} vs {b}",
            P::NAME
        );
    }
    if P::NAME != "float64" {
        assert_eq!(
            bn.get_weights()[2],
            bf.get_weights()[2],
            "the same f32 statistics"
        );
    }
}
#[test]
fn island_f32() {
    f32_island::<F32>();
}
#[test]
fn island_f16() {
    f32_island::<mixprec::policy::F16>();
}
#[test]
fn island_bf16() {
    f32_island::<mixprec::policy::Bf16>();
}
#[test]
fn island_mf16() {
    f32_island::<mixprec::policy::MixedF16>();
}
#[test]
fn island_mbf16() {
    f32_island::<mixprec::policy::MixedBf16>();
}

#[test]
fn moving_statistics_follow_keras_formula_in_f32() {
    let mut bn = BatchNormalizationConfig::new()
        .momentum(0.9)
        .init::<mixprec::policy::Bf16>(2)
        .unwrap();
    let rows: [[f32; 2]; 3] = [[1.0, -2.0], [2.0, 0.5], [4.0, 3.0]];
    let x: Vec<f32> = rows.iter().flatten().copied().collect();
    let (mut mm, mut mv) = ([0.0f32; 2], [1.0f32; 2]);
    for _ in 0..2 {
        bn.train_forward(Tensor::from_vec(vec![3, 2], x.clone()).unwrap().cast())
            .unwrap();
        for j in 0..2 {
            let mean = rows.iter().map(|r| r[j]).sum::<f32>() / 3.0;
            let var = rows
                .iter()
                .map(|r| (r[j] - mean) * (r[j] - mean))
                .sum::<f32>()
                / 3.0;
            mm[j] = mm[j] * 0.9f32 + mean * (1.0f64 - 0.9) as f32;
            mv[j] = mv[j] * 0.9f32 + var * (1.0f64 - 0.9) as f32;
        }
    }
    assert_eq!(bn.moving_mean().value().as_slice(), &mm);
    assert_eq!(bn.moving_variance().value().as_slice(), &mv);
    let v = bn.variables();
    assert_eq!(
        (v[2].dtype, v[2].trainable, v[0].dtype),
        (DType::Float32, false, DType::BFloat16)
    );
    // In f32 the average of a bf16 layer does not stall: 300 steps towards 1.0.
    let mut bn = mixprec::layers::BatchNormalization::<mixprec::policy::Bf16>::new(1);
    for _ in 0..300 {
        bn.train_forward(
            Tensor::from_vec(vec![2, 1], vec![0.5f32, 1.5])
                .unwrap()
                .cast(),
        )
        .unwrap();
    }
    let want = 1.0 - 0.99f64.powi(300);
    assert!((bn.moving_mean().value().as_slice()[0] as f64 - want).abs() < 1e-4);
}

#[test]
fn inference_uses_the_moving_statistics() {
    let mut bn = BatchNormalization::<F64>::new(2);
    let mut w = bn.get_weights();
    w[0] = Tensor::from_vec(vec![2], vec![2.0, 1.0]).unwrap();
    w[1] = Tensor::from_vec(vec![2], vec![0.5, 0.0]).unwrap();
    w[2] = Tensor::from_vec(vec![2], vec![1.0, -1.0]).unwrap();
    w[3] = Tensor::from_vec(vec![2], vec![4.0, 0.25]).unwrap();
    bn.set_weights(&w).unwrap();
    let x = Tensor::from_vec(vec![1, 2], vec![3.0, 0.0]).unwrap();
    let y = bn.infer(&x).unwrap().into_vec();
    assert_eq!(y[0], (3.0 - 1.0) / (4.0f64 + 1e-3).sqrt() * 2.0 + 0.5);
    assert_eq!(y[1], (0.0 + 1.0) / (0.25f64 + 1e-3).sqrt());
    assert_eq!(bn.get_weights(), w, "inference changes nothing");
}
