//! Keras 3's `LossScaleOptimizer` facts (keras/src/optimizers/loss_scale_optimizer_test.py), on a
//! single variable `[1, 2, 3, 4]` held as the kernel of a bias-free `Dense<F32>` `[4, 1]`.

mod common;

use mixprec::optimizers::{grads_are_finite, LossScaleState, StepOutcome};
use mixprec::prelude::*;

fn variable() -> Dense<F32> {
    let k = Tensor::from_vec(vec![4, 1], vec![1.0f32, 2.0, 3.0, 4.0]).unwrap();
    Dense::<F32>::from_weights(k, None).unwrap()
}

fn set_grad(model: &mut Dense<F32>, g: [f32; 4]) {
    set_grads(model, |_, _| g.to_vec());
}

use common::set_grads;

fn values(model: &Dense<F32>) -> Vec<f32> {
    model.kernel().as_slice().to_vec()
}

#[test]
fn finite_step_unscales_then_applies_inner_sgd() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5));
    let s = 2f32.powi(15);
    assert_eq!(opt.scale(), s);
    set_grad(&mut v, [s, 6.0 * s, 7.0 * s, 2.0 * s]);
    assert_eq!(opt.step(&mut v).unwrap(), StepOutcome::Applied);
    assert_eq!(values(&v), [0.5, -1.0, -0.5, 3.0]);
    assert_eq!(opt.iterations(), 1);
}

#[test]
fn non_finite_step_skips_and_changes_nothing() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Adam::new(0.1));
    set_grad(&mut v, [f32::INFINITY; 4]);
    let outcome = opt.step(&mut v).unwrap();
    assert_eq!(
        outcome,
        StepOutcome::Skipped {
            scale_before: 32768.0,
            scale_after: 16384.0
        }
    );
    assert_eq!(values(&v), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(opt.iterations(), 0);
    // The inner optimizer's state is untouched: the next finite step is Adam's first step.
    set_grad(&mut v, [16384.0; 4]);
    assert!(opt.step(&mut v).unwrap().is_applied());
    let first = values(&v);
    let mut fresh = variable();
    set_grad(&mut fresh, [1.0; 4]);
    let _ = Adam::new(0.1).step(&mut fresh).unwrap();
    assert_eq!(first, values(&fresh));
}

#[test]
fn one_nan_gradient_skips_the_whole_step() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5));
    set_grad(&mut v, [1.0, f32::NAN, 1.0, 1.0]);
    assert!(!grads_are_finite(&v));
    assert!(!opt.step(&mut v).unwrap().is_applied());
    assert_eq!(values(&v), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn four_non_finite_steps_from_400_give_25() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5))
        .with_initial_scale(400.0)
        .unwrap();
    for _ in 0..4 {
        set_grad(&mut v, [f32::NAN; 4]);
        let _ = opt.step(&mut v).unwrap();
    }
    assert_eq!(opt.scale(), 25.0);
    assert_eq!(opt.iterations(), 0);
    assert_eq!(opt.skipped_steps(), 4);
}

#[test]
fn eight_finite_steps_with_growth_2_from_2_give_32() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5))
        .with_initial_scale(2.0)
        .unwrap()
        .with_dynamic_growth_steps(2)
        .unwrap();
    for _ in 0..8 {
        set_grad(&mut v, [0.0; 4]);
        assert!(opt.step(&mut v).unwrap().is_applied());
    }
    assert_eq!(opt.scale(), 32.0);
    assert_eq!(opt.iterations(), 8);
}

#[test]
fn iterations_count_only_applied_steps() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5));
    for g in [1.0, f32::INFINITY, 1.0, f32::NAN, 1.0] {
        set_grad(&mut v, [g; 4]);
        let _ = opt.step(&mut v).unwrap();
    }
    assert_eq!(opt.iterations(), 3);
    assert_eq!(opt.skipped_steps(), 2);
}

#[test]
fn a_skip_resets_the_growth_count() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5))
        .with_initial_scale(8.0)
        .unwrap()
        .with_dynamic_growth_steps(3)
        .unwrap();
    for g in [0.0, 0.0, f32::NAN, 0.0, 0.0] {
        set_grad(&mut v, [g; 4]);
        let _ = opt.step(&mut v).unwrap();
    }
    // 8 -> 4 on the NaN; only 2 good steps since, so no growth yet.
    assert_eq!(opt.scale(), 4.0);
    assert_eq!(opt.good_steps(), 2);
}

#[test]
fn invalid_settings_are_errors() {
    let new = || LossScaleOptimizer::new(Sgd::new(0.5));
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let err = new().with_initial_scale(bad).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid initial_scale"),
            "{err}"
        );
    }
    let err = new().with_dynamic_growth_steps(0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid dynamic_growth_steps: 0 (at least 1)"
    );
    assert!(new().with_scale_bounds(4.0, 2.0).is_err());
}

#[test]
fn scale_bounds_clamp_growth_and_decay() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5))
        .with_initial_scale(4.0)
        .unwrap()
        .with_dynamic_growth_steps(1)
        .unwrap()
        .with_scale_bounds(2.0, 8.0)
        .unwrap();
    for _ in 0..3 {
        set_grad(&mut v, [0.0; 4]);
        let _ = opt.step(&mut v).unwrap();
    }
    assert_eq!(opt.scale(), 8.0);
    for _ in 0..4 {
        set_grad(&mut v, [f32::NAN; 4]);
        let _ = opt.step(&mut v).unwrap();
    }
    assert_eq!(opt.scale(), 2.0);
}

#[test]
fn sgd_momentum_and_nesterov_match_keras_formulas() {
    // Keras: m = mu*m - lr*g; w += m (nesterov: w += mu*m - lr*g). g = 1, lr = 0.1, mu = 0.9.
    let mut v = variable();
    let mut opt = Sgd::new(0.1).with_momentum(0.9).unwrap();
    for _ in 0..2 {
        set_grad(&mut v, [1.0; 4]);
        let _ = opt.step(&mut v).unwrap();
    }
    // m1 = -0.1, w1 = w0 - 0.1; m2 = -0.19, w2 = w0 - 0.29.
    let want: Vec<f32> = [1.0f32, 2.0, 3.0, 4.0]
        .iter()
        .map(|w| w - 0.1 - 0.19)
        .collect();
    for (a, b) in values(&v).iter().zip(&want) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
    let mut v = variable();
    let mut opt = Sgd::new(0.1)
        .with_momentum(0.9)
        .unwrap()
        .with_nesterov(true);
    set_grad(&mut v, [1.0; 4]);
    let _ = opt.step(&mut v).unwrap();
    // m1 = -0.1; w1 = w0 + 0.9*(-0.1) - 0.1 = w0 - 0.19.
    assert!((values(&v)[0] - 0.81).abs() < 1e-6);
}

#[test]
fn adam_first_step_moves_each_weight_by_lr() {
    // With bias correction Adam's first step is lr * g / (|g| + eps') ≈ lr * sign(g).
    let mut v = variable();
    set_grad(&mut v, [0.5, -2.0, 3.0, -0.25]);
    let _ = Adam::new(0.01).step(&mut v).unwrap();
    let want = [0.99, 2.01, 2.99, 4.01];
    for (a, b) in values(&v).iter().zip(&want) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}

#[test]
fn adamw_decays_weights_without_gradient() {
    let mut v = variable();
    set_grad(&mut v, [0.0; 4]);
    let _ = Adam::adamw(0.1).step(&mut v).unwrap();
    // w -= lr * 0.004 * w, and the Adam term is 0 for g = 0.
    for (a, w0) in values(&v).iter().zip([1.0f32, 2.0, 3.0, 4.0]) {
        assert!((a - w0 * (1.0 - 0.1 * 0.004)).abs() < 1e-6);
    }
}

#[test]
fn step_without_gradient_is_an_error() {
    let mut v = variable();
    let err = Sgd::new(0.1).step(&mut v).unwrap_err();
    assert!(
        err.to_string()
            .contains("a backward pass before the optimizer step"),
        "{err}"
    );
}

/// Issue 10: about 165 skips in a row used to halve the scale to 0.0, and the next finite step
/// multiplied every gradient by `1 / 0 = inf`, turning every weight into NaN.
#[test]
fn issue_10_hundreds_of_skips_stop_at_the_floor_and_the_next_step_is_exact() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5));
    for _ in 0..400 {
        set_grad(&mut v, [f32::NAN; 4]);
        assert!(!opt.step(&mut v).unwrap().is_applied());
    }
    assert_eq!(opt.scale(), mixprec::optimizers::DEFAULT_MIN_SCALE);
    assert_eq!(opt.skipped_steps(), 400);
    set_grad(&mut v, [2.0, 4.0, 6.0, 8.0]); // scale 1: the gradients are used as they are
    assert!(opt.step(&mut v).unwrap().is_applied());
    assert_eq!(values(&v), [0.0, 0.0, 0.0, 0.0]);
}

#[test]
fn issue_10_a_skip_never_raises_a_scale_below_the_floor() {
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5))
        .with_initial_scale(0.25)
        .unwrap();
    set_grad(&mut v, [f32::INFINITY; 4]);
    let _ = opt.step(&mut v).unwrap();
    assert_eq!(opt.scale(), 0.25);
}

/// The mechanism, not the symptom: whatever the scale, a step whose factor `inv_scale / scale`
/// is not finite is skipped like a step with a NaN gradient.
#[test]
fn issue_10_a_step_whose_unscaling_factor_overflows_is_skipped() {
    let tiny = f32::MIN_POSITIVE; // 2^-126: 1 / tiny = 2^126 is finite, 4 / tiny is not
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.5))
        .with_scale_bounds(tiny, 1.0)
        .unwrap()
        .with_initial_scale(tiny)
        .unwrap();
    set_grad(&mut v, [0.0; 4]);
    let out = opt.step_unscaled(&mut v, 4.0).unwrap();
    assert!(!out.is_applied(), "{out:?}");
    assert_eq!(values(&v), [1.0, 2.0, 3.0, 4.0]);
    for bad in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        assert!(!opt.step_unscaled(&mut v, bad).unwrap().is_applied());
    }
    assert_eq!(values(&v), [1.0, 2.0, 3.0, 4.0]);
}

#[test]
fn issue_10_scales_whose_inverse_overflows_are_refused() {
    let new = || LossScaleOptimizer::new(Sgd::new(0.5));
    let sub = f32::MIN_POSITIVE / 2.0;
    assert!(new().with_initial_scale(sub).is_err());
    assert!(new().with_scale_bounds(sub, 1.0).is_err());
    let mut opt = new();
    let err = opt
        .restore_state(LossScaleState {
            scale: sub,
            good_steps: 0,
        })
        .unwrap_err();
    assert!(err.to_string().contains("1 / scale is finite"), "{err}");
    assert_eq!(opt.scale(), 32768.0);
}

/// A plain optimizer given a bad factor through the public `step_unscaled` refuses it.
#[test]
fn issue_10_plain_optimizers_refuse_a_non_finite_unscaling_factor() {
    for bad in [0.0, -2.0, f32::NAN, f32::INFINITY] {
        let mut v = variable();
        set_grad(&mut v, [1.0; 4]);
        let err = Sgd::new(0.5).step_unscaled(&mut v, bad).unwrap_err();
        assert!(err.to_string().contains("unscaling factor"), "{err}");
        let err = Adam::new(0.5).step_unscaled(&mut v, bad).unwrap_err();
        assert!(err.to_string().contains("unscaling factor"), "{err}");
        assert_eq!(values(&v), [1.0, 2.0, 3.0, 4.0]);
    }
}

/// A finite gradient can still overflow a weight (a learning rate of 1e30): the elements whose
/// new value is not finite keep their old one, the others are updated, and the step says so.
#[test]
fn issue_10_an_update_that_overflows_leaves_those_weights_unchanged() {
    let mut v = variable();
    set_grad(&mut v, [1e10, 1.0, 1e10, 1.0]);
    let err = Sgd::new(1e30).step(&mut v).unwrap_err();
    assert!(
        err.to_string().contains("overflowed in 2 element(s)"),
        "{err}"
    );
    assert_eq!(values(&v), [1.0, 2.0 - 1e30, 3.0, 4.0 - 1e30]);
    for opt in [
        Sgd::new(1e30).with_momentum(0.9).unwrap(),
        Sgd::new(1e30)
            .with_momentum(0.9)
            .unwrap()
            .with_nesterov(true),
    ] {
        let mut v = variable();
        set_grad(&mut v, [1e10; 4]);
        let mut opt = opt;
        assert!(opt.step(&mut v).is_err());
        assert_eq!(values(&v), [1.0, 2.0, 3.0, 4.0]);
    }
    // Adam's step is bounded by its rate; g² overflowing `v` is what it must catch.
    let mut v = variable();
    set_grad(&mut v, [1e20, 1.0, 1.0, 1.0]);
    let mut adam = Adam::new(0.5);
    let err = adam.step(&mut v).unwrap_err();
    assert!(err.to_string().contains("variable #0"), "{err}");
    assert_eq!(values(&v)[0], 1.0);
    assert!(values(&v).iter().all(|w| w.is_finite()));
}

/// In a float16 variable the limit is float16's: 65504.
#[test]
fn issue_10_a_float16_weight_is_not_pushed_past_65504() {
    let k = Tensor::from_vec(vec![2, 1], vec![60000.0f32, 1.0]).unwrap();
    let mut d = Dense::<F16>::from_weights(k, None).unwrap();
    set_grads(&mut d, |_, n| vec![-1.0; n]);
    let mut opt = LossScaleOptimizer::new(Sgd::new(10000.0))
        .with_initial_scale(1.0)
        .unwrap();
    assert!(opt.step(&mut d).is_err());
    let w: Vec<f32> = d.kernel().as_slice().iter().map(|x| x.to_f32()).collect();
    assert_eq!(w, [60000.0, 10000.0]); // 1 + 10000 rounds to 10000 in float16
}

/// Review of issue 10: counters restored from a crafted checkpoint at u64::MAX used to overflow
/// on the next step (a panic in debug builds, a NaN Adam rate in release).
#[test]
fn issue_10_counters_at_u64_max_do_not_overflow() {
    use mixprec::optimizers::OptimizerState;
    let mut v = variable();
    let mut opt = LossScaleOptimizer::new(Adam::new(0.1));
    opt.import_state(OptimizerState {
        iterations: u64::MAX,
        slots: Vec::new(),
        loss_scale: Some(LossScaleState {
            scale: 1.0,
            good_steps: u64::MAX,
        }),
    })
    .unwrap();
    set_grad(&mut v, [1.0; 4]);
    assert!(opt.step(&mut v).unwrap().is_applied());
    assert!(values(&v).iter().all(|w| w.is_finite()));
    assert_eq!(opt.iterations(), u64::MAX);
    let mut sgd = Sgd::new(0.1);
    sgd.import_state(OptimizerState {
        iterations: u64::MAX,
        ..OptimizerState::default()
    })
    .unwrap();
    set_grad(&mut v, [1.0; 4]);
    assert!(sgd.step(&mut v).unwrap().is_applied());
}
