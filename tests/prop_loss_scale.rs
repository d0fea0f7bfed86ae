//! Issue 10: no history of loss scales lets NaN or infinity reach a variable.
//!
//! `LossScaleOptimizer`, around every inner optimizer, under policies whose variables are f32
//! and f16, is driven through random runs of finite and non-finite steps (hundreds of skips in
//! a row included, gradients from 1e-40 to 1e38, learning rates up to 1e30) and after every step
//! every variable is finite, the scale is one the optimizer can hold and restore, and a step
//! either applied, skipped, or was refused with `Error::NonFiniteUpdate` (which left the
//! overflowing elements unchanged).

mod common;

use mixprec::optimizers::{LossScaleState, Optimizer};
use mixprec::policy::Policy;
use mixprec::prelude::*;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per policy; each case is up to ~2,000 steps of a 4x3 layer. More with
/// `MIXPREC_PROP_CASES`.
fn config() -> Config {
    let cases = std::env::var("MIXPREC_PROP_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48);
    Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    }
}

/// One step's gradient: every element finite, of magnitude `10^exp`, or one element NaN / ±inf.
#[derive(Debug, Clone, Copy)]
enum Grad {
    Finite { exp: i32, sign: bool },
    NonFinite { which: u8, at: usize },
}

/// A run of `len` steps with the same kind of gradient.
#[derive(Debug, Clone, Copy)]
struct Run {
    grad: Grad,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
enum Inner {
    Sgd,
    Momentum,
    Nesterov,
    Adam,
    AdamW,
}

#[derive(Debug, Clone)]
struct Case {
    inner: Inner,
    lr: f32,
    /// `None`: the default bounds `[1, f32::MAX]`; `Some`: the widest the optimizer accepts.
    widest_bounds: bool,
    initial_scale: f32,
    growth: u64,
    runs: Vec<Run>,
}

fn grad() -> impl Strategy<Value = Grad> {
    prop_oneof![
        3 => (-40i32..=38, any::<bool>()).prop_map(|(exp, sign)| Grad::Finite { exp, sign }),
        2 => (0u8..3, 0usize..12).prop_map(|(which, at)| Grad::NonFinite { which, at }),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let inner = prop_oneof![
        Just(Inner::Sgd),
        Just(Inner::Momentum),
        Just(Inner::Nesterov),
        Just(Inner::Adam),
        Just(Inner::AdamW),
    ];
    let lr = prop_oneof![Just(1e-3f32), Just(0.5), Just(1e4), Just(1e30)];
    let scale = prop_oneof![
        Just(32768f32),
        Just(1.0),
        Just(0.5),
        Just(f32::MAX),
        Just(1e-30)
    ];
    let runs = prop::collection::vec(
        (grad(), prop_oneof![1usize..4, 150usize..400]).prop_map(|(grad, len)| Run { grad, len }),
        1..8,
    );
    (inner, lr, any::<bool>(), scale, 1u64..4, runs).prop_map(
        |(inner, lr, widest_bounds, initial_scale, growth, runs)| Case {
            inner,
            lr,
            widest_bounds,
            initial_scale,
            growth,
            runs,
        },
    )
}

fn inner_optimizer(case: &Case) -> InnerOpt {
    match case.inner {
        Inner::Sgd => InnerOpt::Sgd(Sgd::new(case.lr)),
        Inner::Momentum => InnerOpt::Sgd(Sgd::new(case.lr).with_momentum(0.9).unwrap()),
        Inner::Nesterov => InnerOpt::Sgd(
            Sgd::new(case.lr)
                .with_momentum(0.9)
                .unwrap()
                .with_nesterov(true),
        ),
        Inner::Adam => InnerOpt::Adam(Adam::new(case.lr)),
        Inner::AdamW => InnerOpt::Adam(Adam::new(case.lr).with_weight_decay(0.5).unwrap()),
    }
}

enum InnerOpt {
    Sgd(Sgd),
    Adam(Adam),
}

fn wrap<O: Optimizer>(inner: O, case: &Case) -> LossScaleOptimizer<O> {
    let mut opt = LossScaleOptimizer::new(inner)
        .with_dynamic_growth_steps(case.growth)
        .unwrap();
    if case.widest_bounds {
        opt = opt.with_scale_bounds(f32::MIN_POSITIVE, f32::MAX).unwrap();
    }
    // 1e-30 is below the default floor; allowed as an initial scale.
    opt.with_initial_scale(case.initial_scale).unwrap()
}

fn gradient(g: Grad, step: usize, n: usize) -> Vec<f32> {
    match g {
        Grad::Finite { exp, sign } => (0..n)
            .map(|i| {
                let m = 10f32.powi(exp) * (1.0 + ((i + step) % 7) as f32 / 7.0);
                if sign ^ (i % 2 == 0) {
                    m
                } else {
                    -m
                }
            })
            .collect(),
        Grad::NonFinite { which, at } => {
            let mut v = vec![0.5f32; n];
            v[at % n] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][which as usize];
            v
        }
    }
}

fn all_finite<P: Policy>(d: &Dense<P>) -> bool {
    d.get_weights()
        .iter()
        .all(|w| w.as_slice().iter().all(|x| x.is_finite()))
}

use common::set_grads;

fn drive<P: Policy, O: Optimizer>(case: &Case, mut opt: LossScaleOptimizer<O>) {
    let kernel = Tensor::from_vec(vec![4, 3], (0..12).map(|i| i as f32 - 5.5).collect()).unwrap();
    let bias = Tensor::from_vec(vec![3], vec![0.25f32, -0.5, 1.0]).unwrap();
    let mut d = Dense::<P>::from_weights(kernel, Some(bias)).unwrap();
    let (lo, hi) = opt.scale_bounds();
    let mut step = 0;
    for run in &case.runs {
        for _ in 0..run.len {
            step += 1;
            set_grads(&mut d, |_, n| gradient(run.grad, step, n));
            match opt.step(&mut d) {
                Ok(_) => {}
                Err(Error::NonFiniteUpdate { .. }) => {}
                Err(e) => panic!("step {step}: unexpected error {e}"),
            }
            assert!(all_finite(&d), "step {step}: a variable is not finite");
            let s = opt.scale();
            assert!(
                s.is_finite() && s >= f32::MIN_POSITIVE && s <= hi,
                "step {step}: scale {s} outside [{lo}, {hi}]"
            );
            // Below the floor only when it started there (a skip never raises the scale).
            assert!(
                s >= lo.min(case.initial_scale),
                "step {step}: scale {s} below the floor {lo}"
            );
            // What a checkpoint would store, the optimizer accepts back.
            let mut fresh = LossScaleOptimizer::new(Sgd::new(0.1));
            fresh.restore_state(opt.state()).unwrap();
        }
    }
}

fn check<P: Policy>() {
    let mut runner = TestRunner::new(config());
    runner
        .run(&case(), |case| {
            match inner_optimizer(&case) {
                InnerOpt::Sgd(o) => drive::<P, _>(&case, wrap(o, &case)),
                InnerOpt::Adam(o) => drive::<P, _>(&case, wrap(o, &case)),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn prop_loss_scaled_f32_variables_stay_finite() {
    check::<F32>();
}

#[test]
fn prop_loss_scaled_mixed_f16_variables_stay_finite() {
    check::<MixedF16>();
}

#[test]
fn prop_loss_scaled_f16_variables_stay_finite() {
    check::<F16>();
}

/// Companion: the runs above reach the state that broke the old optimizer. Without a floor,
/// 200 skips from 2^15 halve the scale to exactly 0, whose inverse is infinite, and a zero
/// gradient times it is NaN: the generator's runs of 150 to 400 skips cover that, and the same
/// sequence now ends at the floor with finite weights.
#[test]
fn prop_sequences_cover_the_old_zero_scale_failure() {
    let old = (0..200).fold(32768f32, |s, _| s / 2.0);
    assert_eq!(old, 0.0);
    assert!((0.0f32 * (1.0 / old)).is_nan());
    let case = Case {
        inner: Inner::Adam,
        lr: 1e-3,
        widest_bounds: false,
        initial_scale: 32768.0,
        growth: 2000,
        runs: vec![
            Run {
                grad: Grad::NonFinite { which: 0, at: 0 },
                len: 200,
            },
            Run {
                grad: Grad::Finite {
                    exp: -40,
                    sign: true,
                },
                len: 3,
            },
        ],
    };
    let opt = wrap(Adam::new(1e-3), &case);
    drive::<MixedF16, _>(&case, opt);
    let mut probe = wrap(Sgd::new(0.1), &case);
    let mut d = Dense::<F32>::new(1, 1);
    for _ in 0..200 {
        set_grads(&mut d, |_, n| vec![f32::NAN; n]);
        let _ = probe.step(&mut d).unwrap();
    }
    assert_eq!(
        probe.state(),
        LossScaleState {
            scale: 1.0,
            good_steps: 0
        }
    );
}
