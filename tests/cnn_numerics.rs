//! The `CnnSpec` model's numerics as one model (each layer has its own tests):
//!
//! - finite differences in f64 (`F64`): the input gradient and every variable's gradient of
//!   `L = Σ c ⊙ cnn(x)`, and a mutated gradient (the dense kernel's rows read in channels-first
//!   order, a flatten that disagrees with the forward pass) that the same check rejects;
//! - every policy against the f64 model on the same variables, within a bound from the compute
//!   type's unit roundoff `u` (below), and two layout bugs (the image read transposed, the flat
//!   vector in channels-first order) that the bound rejects in bfloat16, the loosest type.
//!
//! The bound. Let `A` be a convolution output's `Σ|w||x| + |b|` and `Y = Σ|W| P + |b|` the
//! logit of the same model run in f64 on `|x|` with `|weights|` (so its pooled values `P` are
//! the window maxima of `A`: ReLU is the identity on them). Rounding `x` and `w` to the compute
//! type, summing in f32 and rounding once put each convolution output within
//! `c₁·A`, `c₁ = 3u + 4u² + γ_{taps+1}(u_f32)`; ReLU and max pooling are 1-Lipschitz in the max
//! norm, so each pooled value is within `c₁·P`. The dense layer adds its weight rounding, its
//! f32 sum and its one rounding: `|y − y₆₄| <= (c₁ + (2u + γ_{n+1}(u_f32))(1 + c₁))·Y·(1 + u)`.

#[macro_use]
mod common;

use common::{eta, gamma, SplitMix};
use mixprec::dtype::Element;
use mixprec::layers::{Layer, Padding};
use mixprec::models::{Cnn, CnnSpec};
use mixprec::policy::{ComputeOf, Policy, F64};
use mixprec::{Module, Tensor};
use proptest::prelude::*;

/// A model of `spec` from `seed`, with biases drawn too (they start at zero).
fn model<P: Policy>(spec: &CnnSpec, seed: u64) -> Cnn<P> {
    let mut m = spec.build::<P>(seed).unwrap();
    let mut rng = SplitMix(seed ^ 0x5eed);
    let mut w = m.get_weights();
    for b in [1, 3] {
        for v in w[b].as_mut_slice() {
            *v = f64::from(rng.uniform(-0.5, 0.5));
        }
    }
    m.set_weights(&w).unwrap();
    m
}

fn inputs(spec: &CnnSpec, rows: usize, seed: u64) -> Tensor<f64> {
    let mut rng = SplitMix(seed);
    let x = (0..rows * spec.features())
        .map(|_| f64::from(rng.uniform(-1.0, 1.0)))
        .collect();
    Tensor::from_vec(vec![rows, spec.features()], x).unwrap()
}

fn logits<P: Policy>(m: &Cnn<P>, x: &Tensor<f64>) -> Vec<f64> {
    m.infer(&x.cast::<ComputeOf<P>>()).unwrap().to_f64_vec()
}

/// The f64 model with `|weights|`, and what it gives on `|x|`.
fn abs_logits(m: &Cnn<F64>, x: &Tensor<f64>) -> Vec<f64> {
    let mut a = m.clone();
    let w: Vec<Tensor<f64>> = a.get_weights().into_iter().map(abs).collect();
    a.set_weights(&w).unwrap();
    a.infer(&abs(x.clone())).unwrap().into_vec()
}

fn abs(t: Tensor<f64>) -> Tensor<f64> {
    let shape = t.shape().to_vec();
    Tensor::from_vec(shape, t.into_vec().into_iter().map(f64::abs).collect()).unwrap()
}

/// The first logit of `y` outside the bound around `want`, given the abs model's `y_abs`.
fn violation<C: Element>(spec: &CnnSpec, y: &[f64], want: &[f64], y_abs: &[f64]) -> Option<String> {
    let (u, ua) = (C::UNIT_ROUNDOFF, f32::UNIT_ROUNDOFF.min(C::UNIT_ROUNDOFF));
    let (kh, kw) = spec.kernel_size;
    let taps = kh * kw * spec.input[2];
    let n = spec.flat_features().unwrap();
    let c1 = 3.0 * u + 4.0 * u * u + gamma(taps + 1, ua);
    let rel = (c1 + (2.0 * u + gamma(n + 1, ua)) * (1.0 + c1)) * (1.0 + u);
    let slack = 8.0 * (taps + n + 2) as f64 * eta::<C>();
    (0..y.len()).find_map(|i| {
        let bound = rel * y_abs[i] + slack;
        let err = (y[i] - want[i]).abs();
        (err > bound).then(|| {
            format!(
                "logit {i}: {} vs f64 {} (error {err:e} > bound {bound:e})",
                y[i], want[i]
            )
        })
    })
}

fn check<P: Policy>(spec: &CnnSpec, seed: u64) -> Result<(), String> {
    let m = model::<P>(spec, seed);
    let r: Cnn<F64> = m.to_policy::<F64>();
    let x = inputs(spec, 3, seed + 1);
    let y = logits(&m, &x);
    let (want, y_abs) = (r.infer(&x).unwrap().into_vec(), abs_logits(&r, &x));
    match violation::<ComputeOf<P>>(spec, &y, &want, &y_abs) {
        Some(e) => Err(format!("{} {spec:?}: {e}", P::RUNTIME)),
        None => Ok(()),
    }
}

fn spec_strategy() -> impl Strategy<Value = CnnSpec> {
    (
        3usize..8,
        3usize..8,
        1usize..4,
        1usize..6,
        1usize..4,
        1usize..4,
        any::<bool>(),
        1usize..3,
        2usize..6,
    )
        .prop_map(|(h, w, c, f, kh, kw, same, p, out)| CnnSpec {
            filters: f,
            kernel_size: (kh, kw),
            padding: if same { Padding::Same } else { Padding::Valid },
            pool_size: (p, p),
            ..CnnSpec::new([h, w, c], out)
        })
        .prop_filter("layers that fit", |s| s.flat_features().is_ok())
}

fn cnn_matches_f64_reference<P: Policy>() {
    let config = ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    proptest!(config, |(spec in spec_strategy(), seed in 0u64..1_000_000)| {
        check::<P>(&spec, seed).map_err(TestCaseError::fail)?;
    });
    check::<P>(&CnnSpec::new([8, 8, 1], 10), 7).unwrap();
}

for_each_policy!(cnn_matches_f64_reference;
    f32_cnn_matches_f64_reference,
    f64_cnn_matches_f64_reference,
    f16_cnn_matches_f64_reference,
    bf16_cnn_matches_f64_reference,
    mixed_f16_cnn_matches_f64_reference,
    mixed_bf16_cnn_matches_f64_reference);

/// `dense`'s kernel rows (HWC order of the pooled `[h, w, f]`) moved to where a channels-first
/// flatten (CHW) would read them.
fn rows_channels_first(kernel: &Tensor<f64>, [h, w, f]: [usize; 3]) -> Tensor<f64> {
    let outs = kernel.shape()[1];
    let src = kernel.as_slice();
    let mut dst = vec![0.0; src.len()];
    for (y, x, c) in (0..h).flat_map(|y| (0..w).flat_map(move |x| (0..f).map(move |c| (y, x, c)))) {
        let (hwc, chw) = ((y * w + x) * f + c, (c * h + y) * w + x);
        dst[chw * outs..][..outs].copy_from_slice(&src[hwc * outs..][..outs]);
    }
    Tensor::from_vec(kernel.shape().to_vec(), dst).unwrap()
}

#[test]
fn bound_rejects_layout_bugs_in_bf16() {
    type P = mixprec::policy::MixedBf16;
    let spec = CnnSpec {
        filters: 4,
        ..CnnSpec::new([6, 5, 1], 3)
    };
    for seed in 0..8 {
        let m = model::<P>(&spec, seed);
        let r: Cnn<F64> = m.to_policy::<F64>();
        let x = inputs(&spec, 3, seed + 1);
        let (y, y_abs) = (logits(&m, &x), abs_logits(&r, &x));
        let right = r.infer(&x).unwrap().into_vec();
        assert!(violation::<half::bf16>(&spec, &y, &right, &y_abs).is_none());
        // The image read as [w, h]: each row's pixels transposed.
        let t: Vec<f64> = (0..3)
            .flat_map(|n| (0..30).map(move |i| (n, i)))
            .map(|(n, i)| x.as_slice()[n * 30 + (i % 6) * 5 + i / 6])
            .collect();
        let xt = Tensor::from_vec(vec![3, 30], t).unwrap();
        let transposed = r.infer(&xt).unwrap().into_vec();
        assert!(violation::<half::bf16>(&spec, &y, &transposed, &y_abs).is_some());
        // The flat vector in channels-first order.
        let mut w = r.get_weights();
        w[2] = rows_channels_first(&w[2], spec.pool_output().unwrap());
        let mut chw = r.clone();
        chw.set_weights(&w).unwrap();
        let wrong = chw.infer(&x).unwrap().into_vec();
        assert!(violation::<half::bf16>(&spec, &y, &wrong, &y_abs).is_some());
    }
}

/// `Σ c ⊙ cnn(x)`.
fn loss(m: &Cnn<F64>, x: &Tensor<f64>, c: &[f64]) -> f64 {
    m.infer(x)
        .unwrap()
        .as_slice()
        .iter()
        .zip(c)
        .map(|(y, c)| y * c)
        .sum()
}

/// The backward pass's input gradient, then every variable's gradient.
fn analytic(m: &Cnn<F64>, x: &Tensor<f64>, c: &[f64]) -> Vec<f64> {
    let mut l = m.clone();
    let y = l.train_forward(x.clone()).unwrap();
    let dy = Tensor::from_vec(y.shape().to_vec(), c.to_vec()).unwrap();
    let mut g = l.backward(dy, true).unwrap().unwrap().into_vec();
    g.extend(common::grads(&l).concat());
    g
}

fn numeric(m: &Cnn<F64>, x: &Tensor<f64>, c: &[f64]) -> Vec<f64> {
    let h = 1e-6;
    let mut out = Vec::new();
    for i in 0..x.len() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.as_mut_slice()[i] += h;
        xm.as_mut_slice()[i] -= h;
        out.push((loss(m, &xp, c) - loss(m, &xm, c)) / (2.0 * h));
    }
    let w = m.get_weights();
    for v in 0..w.len() {
        for i in 0..w[v].len() {
            let shifted = |d: f64| {
                let mut w2 = w.clone();
                w2[v].as_mut_slice()[i] += d;
                let mut l = m.clone();
                l.set_weights(&w2).unwrap();
                loss(&l, x, c)
            };
            out.push((shifted(h) - shifted(-h)) / (2.0 * h));
        }
    }
    out
}

fn mismatch(a: &[f64], n: &[f64]) -> Option<String> {
    assert_eq!(a.len(), n.len(), "gradient lengths");
    (0..a.len()).find_map(|i| {
        let ok = (a[i] - n[i]).abs() <= 1e-6 * n[i].abs().max(1.0);
        (!ok).then(|| {
            format!(
                "element {i}: backward {} vs finite difference {}",
                a[i], n[i]
            )
        })
    })
}

#[test]
fn cnn_gradients_match_finite_differences_in_f64() {
    for (spec, seed) in [
        (
            CnnSpec {
                filters: 3,
                ..CnnSpec::new([5, 6, 2], 4)
            },
            1,
        ),
        (
            CnnSpec {
                filters: 2,
                padding: Padding::Valid,
                kernel_size: (2, 3),
                ..CnnSpec::new([6, 6, 1], 3)
            },
            2,
        ),
    ] {
        let m = model::<F64>(&spec, seed);
        let x = inputs(&spec, 2, seed + 10);
        let mut rng = SplitMix(seed + 20);
        let c: Vec<f64> = (0..2 * spec.outputs)
            .map(|_| f64::from(rng.uniform(-1.0, 1.0)))
            .collect();
        let (a, n) = (analytic(&m, &x, &c), numeric(&m, &x, &c));
        assert_eq!(mismatch(&a, &n), None, "{spec:?}");
        // A backward that flattens channels-first: its dense kernel gradient in CHW row order.
        let flat = spec.flat_features().unwrap();
        let conv = m.get_weights()[0].len() + m.get_weights()[1].len();
        let at = x.len() + conv;
        let dk = Tensor::from_vec(
            vec![flat, spec.outputs],
            a[at..at + flat * spec.outputs].to_vec(),
        )
        .unwrap();
        let mut bad = a.clone();
        bad[at..at + flat * spec.outputs]
            .copy_from_slice(rows_channels_first(&dk, spec.pool_output().unwrap()).as_slice());
        assert!(mismatch(&bad, &n).is_some(), "{spec:?}");
    }
}
