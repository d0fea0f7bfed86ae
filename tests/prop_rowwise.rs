//! Softmax, LayerNormalization and the activation layers against f64 references, for all six
//! policies, with bounds from the compute and accumulator types' unit roundoffs; wrong kernels
//! that each bound rejects (no max subtraction, a missing mean term, double rounding); the f32
//! island (16-bit outputs equal the f32 layer's on the rounded input, rounded once); and
//! Keras's defaults.

#[macro_use]
mod common;

use common::*;
use mixprec::layers::{
    Activation, Layer, LayerNormalization, LayerNormalizationConfig, ReLU, Sigmoid, Softmax,
    SoftmaxConfig, Tanh, GELU,
};
use mixprec::policy::{ComputeOf, Policy, F32};
use mixprec::{f16, Element, Module, Tensor};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

const CASES: u32 = 64;

fn config(cases: u32) -> Config {
    Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    }
}

/// A `[rows, n]` problem: values in `(-2^e, 2^e)` as f32, and per-feature gamma and beta.
#[derive(Debug, Clone)]
struct RowCase {
    rows: usize,
    n: usize,
    x: Vec<f32>,
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

fn row_case(max_exp: i32) -> impl Strategy<Value = RowCase> {
    (1usize..=5, 1usize..=40)
        .prop_flat_map(move |(rows, n)| {
            (
                Just(rows),
                Just(n),
                prop::collection::vec(scalar(max_exp), rows * n),
                prop::collection::vec(scalar(1), n),
                prop::collection::vec(scalar(1), n),
            )
        })
        .prop_map(|(rows, n, x, gamma, beta)| RowCase {
            rows,
            n,
            x,
            gamma,
            beta,
        })
}

fn x_of<P: Policy>(c: &RowCase) -> Tensor<ComputeOf<P>> {
    Tensor::from_vec(vec![c.rows, c.n], c.x.clone())
        .unwrap()
        .cast()
}

/// The first element outside `bound(i)`, described.
fn violation(y: &[f64], y_ref: &[f64], bound: impl Fn(usize) -> f64) -> Option<String> {
    (0..y.len()).find_map(|i| {
        let (err, b) = ((y[i] - y_ref[i]).abs(), bound(i));
        (err.is_nan() || err > b).then(|| {
            format!(
                "element {i}: y = {}, y_ref = {}, error {err:e} > {b:e}",
                y[i], y_ref[i]
            )
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Softmax
// ---------------------------------------------------------------------------------------------

/// The f64 softmax of each row of `x` (compute-type values widened), and the per-element bound
/// of a layer computing in `C` (accumulator `C::Acc`): with `d_j = x_j − max` and `W = Σ y_k|d_k|`,
/// each `e^{d_j}` is within `(|d_j| + 3)·u_A` relative (the rounding of `d_j`, amplified by
/// `|d_j|`, and exp's 2 ulp), the sum within `(W + n + 3)·u_A`, the division one more `u_A`;
/// then one rounding to `C`: `u·|y| + η_C`. Doubled in the `u_A` part to cover the f64
/// reference's own error (same terms in `u64 <= u_A`), plus `n·η_A` for underflowing terms.
fn softmax_reference<C: Element>(x: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let (u, ua) = (C::UNIT_ROUNDOFF, <C::Acc as Element>::UNIT_ROUNDOFF);
    let (mut y, mut bound) = (Vec::new(), Vec::new());
    for row in x.chunks(n) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|&v| (v - m).exp()).collect();
        let s: f64 = e.iter().sum();
        let w: f64 = row
            .iter()
            .zip(&e)
            .map(|(&v, &e)| e / s * (v - m).abs())
            .sum();
        for (&v, &e) in row.iter().zip(&e) {
            let yj = e / s;
            let rel = 2.0 * ((v - m).abs() + w + n as f64 + 7.0) * ua;
            y.push(yj);
            bound.push(u * yj + (1.0 + u) * rel * yj + eta::<C>() + n as f64 * eta::<C::Acc>());
        }
    }
    (y, bound)
}

fn softmax_matches_f64_reference<P: Policy>() {
    TestRunner::new(config(CASES))
        .run(&row_case(4), |c| {
            let x = x_of::<P>(&c);
            let y = Softmax::<P>::new().forward(&x).unwrap();
            prop_assert_eq!(y.shape(), &[c.rows, c.n]);
            let (r, b) = softmax_reference::<ComputeOf<P>>(&x.to_f64_vec(), c.n);
            match violation(&y.to_f64_vec(), &r, |i| b[i]) {
                None => Ok(()),
                Some(m) => Err(TestCaseError::fail(m)),
            }
        })
        .unwrap_or_else(|e| panic!("{}: {e}", P::NAME));
}

for_each_policy!(softmax_matches_f64_reference;
    f32_softmax, f64_softmax, f16_softmax, bf16_softmax, mixed_f16_softmax, mixed_bf16_softmax);

/// A softmax that skips the max subtraction and works in f16 overflows on logits past
/// ln 65504 ≈ 11.1: the bound rejects it; the layer under MixedF16 stays within it.
#[test]
fn softmax_bound_rejects_no_max_subtraction_in_f16() {
    let xs = [12.0f32, 0.0, -3.0, 11.5];
    let x: Tensor<f16> = Tensor::from_vec(vec![1, 4], xs.to_vec()).unwrap().cast();
    let xw = x.to_f64_vec();
    let (r, b) = softmax_reference::<f16>(&xw, 4);
    let e: Vec<f16> = xw.iter().map(|&v| f16::from_f64_rne(v.exp())).collect();
    let s = e.iter().fold(f16::ZERO, |s, &v| s + v);
    let wrong: Vec<f64> = e.iter().map(|&v| (v / s).to_f64()).collect();
    assert!(violation(&wrong, &r, |i| b[i]).is_some(), "{wrong:?}");
    let y = Softmax::<mixprec::policy::MixedF16>::new()
        .forward(&x)
        .unwrap();
    assert_eq!(violation(&y.to_f64_vec(), &r, |i| b[i]), None);
}

/// Rounding each `e^{d}` and the sum to bf16 before dividing (rounding twice or more) breaks the
/// bound on a seeded batch; one rounding of the exact result does not.
#[test]
fn softmax_bound_rejects_double_rounding() {
    let mut rng = SplitMix(7);
    let (rows, n) = (16, 24);
    let x: Vec<f64> = rng
        .vec(rows * n, -4.0, 4.0)
        .iter()
        .map(|&v| mixprec::bf16::from_f32(v).to_f64())
        .collect();
    let (r, b) = softmax_reference::<mixprec::bf16>(&x, n);
    let round = |v: f64| mixprec::bf16::from_f64_rne(v).to_f64();
    let mut wrong = Vec::new();
    for row in x.chunks(n) {
        let m = row.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = row.iter().map(|&v| round((v - m).exp())).collect();
        let s = round(e.iter().sum());
        wrong.extend(e.iter().map(|&e| round(e / s)));
    }
    assert!(violation(&wrong, &r, |i| b[i]).is_some());
    let once: Vec<f64> = r.iter().map(|&v| round(v)).collect();
    assert_eq!(violation(&once, &r, |i| b[i]), None);
}

// ---------------------------------------------------------------------------------------------
// LayerNormalization
// ---------------------------------------------------------------------------------------------

/// A layer of width `c.n` with the case's gamma and beta, rounded to `P::Variable`.
fn layer_norm<P: Policy>(c: &RowCase) -> LayerNormalization<P> {
    let mut ln = LayerNormalization::<P>::new(c.n);
    let w =
        |v: &[f32]| Tensor::from_vec(vec![c.n], v.iter().map(|&x| f64::from(x)).collect()).unwrap();
    ln.set_weights(&[w(&c.gamma), w(&c.beta)]).unwrap();
    ln
}

/// The f64 layer normalisation of `x` (with the layer's gamma, beta and epsilon as its
/// accumulator holds it), and the bound for a layer computing in `C`: with `x̂ = (x − μ)·r`,
/// the mean is within `γ_n(u_A)·mean|x|`, `x − μ` one more `u_A`, the variance
/// `(n + 4)·u_A` relative, `r = 1/√(σ² + ε)` `(n/2 + 4)·u_A`; the products with `γ` and the add
/// of `β` two more `u_A`; then one rounding to `C`. Doubled in the `u_A` part for the
/// reference's own error.
fn layer_norm_reference<C: Element>(
    x: &[f64],
    n: usize,
    gamma: &[f64],
    beta: &[f64],
    eps: f64,
) -> (Vec<f64>, Vec<f64>) {
    let (u, ua) = (C::UNIT_ROUNDOFF, <C::Acc as Element>::UNIT_ROUNDOFF);
    let nf = n as f64;
    let (mut y, mut bound) = (Vec::new(), Vec::new());
    for row in x.chunks(n) {
        let mean = row.iter().sum::<f64>() / nf;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / nf;
        let r = 1.0 / (var + eps).sqrt();
        let mean_abs = row.iter().map(|v| v.abs()).sum::<f64>() / nf;
        for j in 0..n {
            let xhat = (row[j] - mean) * r;
            let yj = xhat * gamma[j] + beta[j];
            let acc = ((2.0 * nf + 12.0) * ua * xhat.abs()
                + common::gamma(n + 1, ua) * mean_abs * r)
                * gamma[j].abs()
                + 2.0 * ua * (yj.abs() + beta[j].abs());
            y.push(yj);
            bound.push(u * yj.abs() + (1.0 + u) * 2.0 * acc + eta::<C>());
        }
    }
    (y, bound)
}

/// The reference for `ln` on `x`, from the layer's own variables.
fn ln_reference<P: Policy>(
    ln: &LayerNormalization<P>,
    x: &[f64],
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let w = ln.get_weights();
    // epsilon as the accumulator type holds it (1e-3 is not an f32).
    let eps = <ComputeOf<P> as Element>::Acc::from_f64_rne(ln.epsilon()).as_f64();
    layer_norm_reference::<ComputeOf<P>>(x, n, w[0].as_slice(), w[1].as_slice(), eps)
}

fn layer_norm_matches_f64_reference<P: Policy>() {
    TestRunner::new(config(CASES))
        .run(&row_case(6), |c| {
            let ln = layer_norm::<P>(&c);
            let x = x_of::<P>(&c);
            let y = ln.forward(&x).unwrap();
            let (r, b) = ln_reference(&ln, &x.to_f64_vec(), c.n);
            match violation(&y.to_f64_vec(), &r, |i| b[i]) {
                None => Ok(()),
                Some(m) => Err(TestCaseError::fail(m)),
            }
        })
        .unwrap_or_else(|e| panic!("{}: {e}", P::NAME));
}

for_each_policy!(layer_norm_matches_f64_reference;
    f32_layer_norm, f64_layer_norm, f16_layer_norm, bf16_layer_norm, mixed_f16_layer_norm,
    mixed_bf16_layer_norm);

/// A seeded bf16 batch with a large common offset, where a wrong kernel shows.
fn offset_batch() -> (Vec<f64>, usize, Vec<f64>, Vec<f64>) {
    let mut rng = SplitMix(11);
    let n = 32;
    let x = rng
        .vec(8 * n, 60.0, 68.0)
        .iter()
        .map(|&v| mixprec::bf16::from_f32(v).to_f64())
        .collect();
    let bf = |v: Vec<f32>| {
        v.iter()
            .map(|&v| mixprec::bf16::from_f32(v).to_f64())
            .collect()
    };
    (x, n, bf(rng.vec(n, 0.5, 2.0)), bf(rng.vec(n, -1.0, 1.0)))
}

/// Forgetting to subtract the mean, or rounding `x̂` to bf16 before the scale and offset, breaks
/// the bound; the layer under MixedBf16 (and one rounding of the reference) do not.
#[test]
fn layer_norm_bound_rejects_missing_mean_and_double_rounding() {
    let (x, n, g, be) = offset_batch();
    let eps = f64::from(1e-3f32);
    let (r, b) = layer_norm_reference::<mixprec::bf16>(&x, n, &g, &be, eps);
    let round = |v: f64| mixprec::bf16::from_f64_rne(v).to_f64();
    let (mut no_mean, mut twice) = (Vec::new(), Vec::new());
    for row in x.chunks(n) {
        let mean = row.iter().sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let rs = 1.0 / (var + eps).sqrt();
        for j in 0..n {
            no_mean.push(round(row[j] * rs * g[j] + be[j]));
            twice.push(round(round(round((row[j] - mean) * rs) * g[j]) + be[j]));
        }
    }
    assert!(violation(&no_mean, &r, |i| b[i]).is_some());
    assert!(violation(&twice, &r, |i| b[i]).is_some());
    let once: Vec<f64> = r.iter().map(|&v| round(v)).collect();
    assert_eq!(violation(&once, &r, |i| b[i]), None);
    let mut ln = LayerNormalization::<mixprec::policy::MixedBf16>::new(n);
    let t = |v: &[f64]| Tensor::from_vec(vec![n], v.to_vec()).unwrap();
    ln.set_weights(&[t(&g), t(&be)]).unwrap();
    let y = ln
        .forward(&Tensor::from_vec(vec![8, n], x.clone()).unwrap().cast())
        .unwrap();
    assert_eq!(violation(&y.to_f64_vec(), &r, |i| b[i]), None);
}

// ---------------------------------------------------------------------------------------------
// Activation layers: one evaluation in the accumulator type, one rounding
// ---------------------------------------------------------------------------------------------

/// The bound for an activation layer computing in `C` at an exact input `z`: the activation's
/// own error in the accumulator type (`common::act_ulps`, plus its smallest normal for a tail
/// that underflows), then one rounding to `C`, plus the f64 reference's, which rounds the same
/// arguments (so carries the same condition number, in f64 ulps).
fn activation_bound<C: Element>(act: Activation, z: f64, y_ref: f64) -> f64 {
    let (u, ua) = (C::UNIT_ROUNDOFF, <C::Acc as Element>::UNIT_ROUNDOFF);
    let tail = <C::Acc as num_traits::Float>::min_positive_value().as_f64();
    let own = act_ulps(act, z.abs()) * ua * y_ref.abs() + tail;
    let reference = (4.0 + act_ulps(act, z.abs())) * f64::UNIT_ROUNDOFF * y_ref.abs();
    u * y_ref.abs() + (1.0 + u) * own + eta::<C>() + reference
}

/// The first element of `y` outside [`activation_bound`].
fn activation_violation<C: Element>(act: Activation, z: &[f64], y: &[f64]) -> Option<String> {
    let r: Vec<f64> = z.iter().map(|&z| act_f64(act, z)).collect();
    violation(y, &r, |i| activation_bound::<C>(act, z[i], r[i])).map(|m| format!("{act}: {m}"))
}

fn activation_layers_match_f64_reference<P: Policy>() {
    TestRunner::new(config(CASES))
        .run(&row_case(3), |c| {
            let x = x_of::<P>(&c);
            let xs = x.to_f64_vec();
            let outputs = [
                (Activation::Relu, ReLU::<P>::new().forward(&x)),
                (Activation::Sigmoid, Sigmoid::<P>::new().forward(&x)),
                (Activation::Tanh, Tanh::<P>::new().forward(&x)),
                (Activation::Gelu, GELU::<P>::new().forward(&x)),
                (
                    Activation::GeluTanh,
                    GELU::<P>::new().with_approximate(true).forward(&x),
                ),
            ];
            for (act, y) in outputs {
                if let Some(m) = activation_violation::<ComputeOf<P>>(act, &xs, &y.to_f64_vec()) {
                    return Err(TestCaseError::fail(m));
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", P::NAME));
}

for_each_policy!(activation_layers_match_f64_reference;
    f32_activations, f64_activations, f16_activations, bf16_activations, mixed_f16_activations,
    mixed_bf16_activations);

/// GELU through `1 + erf` (Keras's literal formula in f32) loses the negative tail's relative
/// accuracy: the bound rejects it for the F32 policy; the layer stays within it.
#[test]
fn gelu_bound_rejects_the_cancelling_formula() {
    let xs: Vec<f32> = (0..64).map(|i| -3.0 - i as f32 * 0.05).collect();
    let z: Vec<f64> = xs.iter().map(|&v| f64::from(v)).collect();
    let erf = |v: f32| 1.0 - erfc_f64(f64::from(v)) as f32; // erf rounded to f32
    let wrong: Vec<f64> = xs
        .iter()
        .map(|&z| f64::from(0.5 * z * (1.0 + erf(z / std::f32::consts::SQRT_2))))
        .collect();
    assert!(activation_violation::<f32>(Activation::Gelu, &z, &wrong).is_some());
    let y = GELU::<F32>::new().forward(&Tensor::from_vec(vec![64], xs).unwrap());
    assert_eq!(
        activation_violation::<f32>(Activation::Gelu, &z, &y.to_f64_vec()),
        None
    );
}

// ---------------------------------------------------------------------------------------------
// The f32 island
// ---------------------------------------------------------------------------------------------

/// Distance in units in the last place of `C` between two values of `C`.
fn ulps<C: Element>(a: C, b: C) -> u64 {
    if a == b || (a.is_nan() && b.is_nan()) {
        return 0;
    }
    let (a, b) = (a.as_f64(), b.as_f64());
    let ulp = C::epsilon().as_f64() * a.abs().max(b.abs()).max(C::min_positive_value().as_f64());
    ((a - b).abs() / ulp).ceil() as u64
}

/// Under a 16-bit policy, Softmax and LayerNormalization give the f32 layer's output on the
/// rounded input, rounded once, within 1 ulp.
fn f32_island<P: Policy>() {
    TestRunner::new(config(CASES))
        .run(&row_case(5), |c| {
            let x = x_of::<P>(&c);
            let x32: Tensor<f32> = x.cast();
            let round = |t: Tensor<f32>| t.cast::<ComputeOf<P>>();
            let pairs = [
                (
                    Softmax::<P>::new().forward(&x).unwrap(),
                    round(Softmax::<F32>::new().forward(&x32).unwrap()),
                ),
                {
                    let ln = layer_norm::<P>(&c);
                    let mut ln32 = LayerNormalization::<F32>::new(c.n);
                    ln32.set_weights(&ln.get_weights()).unwrap();
                    (ln.forward(&x).unwrap(), round(ln32.forward(&x32).unwrap()))
                },
            ];
            for (y, want) in pairs {
                for (a, b) in y.as_slice().iter().zip(want.as_slice()) {
                    prop_assert!(ulps(*a, *b) <= 1, "{} vs {}", a, b);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", P::NAME));
}

#[test]
fn f32_island_mixed_bf16() {
    f32_island::<mixprec::policy::MixedBf16>();
}

#[test]
fn f32_island_mixed_f16() {
    f32_island::<mixprec::policy::MixedF16>();
}

#[test]
fn f32_island_bf16() {
    f32_island::<mixprec::policy::Bf16>();
}

#[test]
fn f32_island_f16() {
    f32_island::<mixprec::policy::F16>();
}

// ---------------------------------------------------------------------------------------------
// Keras's defaults and shapes
// ---------------------------------------------------------------------------------------------

#[test]
fn keras_defaults_and_shapes() {
    assert_eq!(SoftmaxConfig::new().axis, -1);
    assert_eq!(LayerNormalizationConfig::new().epsilon, 1e-3);
    assert_eq!(LayerNormalizationConfig::new().axis, -1);
    assert!(LayerNormalizationConfig::new().center && LayerNormalizationConfig::new().scale);
    assert!(!GELU::<F32>::new().approximate());
    let x = Tensor::<f32>::zeros(vec![2, 3, 5]).unwrap();
    assert_eq!(
        Softmax::<F32>::new().forward(&x).unwrap().shape(),
        &[2, 3, 5]
    );
    assert_eq!(
        LayerNormalization::<F32>::new(5)
            .forward(&x)
            .unwrap()
            .shape(),
        &[2, 3, 5]
    );
    assert_eq!(GELU::<F32>::new().forward(&x).shape(), &[2, 3, 5]);
    // Parameter-free layers need loss scaling exactly when they compute in f16.
    fn needs<M: Module>(_: &M) -> bool {
        <M::NeedsLossScale as typenum::Bit>::BOOL
    }
    assert!(needs(&Softmax::<mixprec::policy::MixedF16>::new()));
    assert!(!needs(&ReLU::<mixprec::policy::MixedBf16>::new()));
    assert_eq!(Softmax::<F32>::new().param_count(), 0);
    assert_eq!(ReLU::<F32>::new().output_dim(7), Some(7));
}
