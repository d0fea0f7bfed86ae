//! Bad input to training is an error naming the bad value, and a diverging run stops before it
//! writes NaN into the weights.

use mixprec::prelude::*;

fn digits() -> Dataset {
    mixprec::io::digits().unwrap()
}

#[test]
fn diverging_f32_run_stops_with_a_clear_error_and_finite_weights() {
    let mut model = (
        Dense::<F32>::new(64, 32).with_activation(Activation::Relu),
        Dense::<F32>::new(32, 10),
    );
    let options = FitOptions {
        epochs: 5,
        ..Default::default()
    };
    let err = fit(&mut model, &mut Sgd::new(1e30), &digits(), &options).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("non-finite "), "{msg}");
    assert!(
        msg.contains("training stopped before it wrote NaN into the weights"),
        "{msg}"
    );
    let finite = model
        .get_weights()
        .iter()
        .all(|w| w.as_slice().iter().all(|x| x.is_finite()));
    assert!(finite, "weights must stay finite");
}

#[test]
fn model_that_does_not_fit_the_data_is_rejected() {
    let mut model = (
        Dense::<MixedBf16>::new(32, 16),
        Dense::<MixedBf16>::new(16, 10),
    );
    let err = fit(
        &mut model,
        &mut Adam::new(1e-3),
        &digits(),
        &FitOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("model input"), "{err}");

    let mut narrow = (
        Dense::<MixedBf16>::new(64, 16),
        Dense::<MixedBf16>::new(16, 7),
    );
    let err = fit(
        &mut narrow,
        &mut Adam::new(1e-3),
        &digits(),
        &FitOptions::default(),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "shape mismatch in model output: expected [batch, 10] for 10 classes, found [7]"
    );
}

#[test]
fn mismatched_widths_between_layers_are_an_error() {
    let mut model = (Dense::<F32>::new(64, 16), Dense::<F32>::new(15, 10));
    let err = fit(
        &mut model,
        &mut Adam::new(1e-3),
        &digits(),
        &FitOptions::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("model input"), "{err}");
    let x = Tensor::<f32>::zeros(vec![2, 64]).unwrap();
    let err = model.infer(&x).unwrap_err();
    assert_eq!(
        err.to_string(),
        "shape mismatch in dense input: expected [.., 15], found [2, 16]"
    );
}

#[test]
fn invalid_options_and_optimizer_settings_are_errors() {
    let mut model = (Dense::<F32>::new(64, 16), Dense::<F32>::new(16, 10));
    let zero_epochs = FitOptions {
        epochs: 0,
        ..Default::default()
    };
    let err = fit(&mut model, &mut Adam::new(1e-3), &digits(), &zero_epochs).unwrap_err();
    assert_eq!(err.to_string(), "invalid epochs: 0 (at least 1)");
    let bad_split = FitOptions {
        validation_split: 1.5,
        ..Default::default()
    };
    assert!(fit(&mut model, &mut Adam::new(1e-3), &digits(), &bad_split).is_err());
    assert_eq!(
        Adam::try_new(-1.0).unwrap_err().to_string(),
        "invalid learning_rate: -1 (a finite number > 0)"
    );
    assert!(Adam::try_new(f32::NAN).is_err());
    assert!(Sgd::new(0.1).with_momentum(-0.5).is_err());
    assert!(Adam::new(1e-3).with_weight_decay(2.0).is_err());
}

#[test]
fn empty_and_malformed_data_sets_are_errors() {
    let empty = Tensor::<f32>::zeros(vec![0, 4]).unwrap();
    let err = Dataset::classification(empty, vec![], 2).unwrap_err();
    assert_eq!(err.to_string(), "empty data set: it has no rows");
    let x = Tensor::from_vec(vec![2, 2], vec![0.0f32; 4]).unwrap();
    let err = Dataset::classification(x.clone(), vec![0, 5], 3).unwrap_err();
    assert_eq!(
        err.to_string(),
        "label 5 is out of range for a model with 3 output classes (expected 0..=2)"
    );
    let err = Dataset::classification(x, vec![0], 3).unwrap_err();
    assert!(err.to_string().contains("labels"), "{err}");
}

#[test]
fn validation_split_reports_validation_metrics() {
    let mut model = (
        Dense::<MixedBf16>::new(64, 32).with_activation(Activation::Relu),
        Dense::<MixedBf16>::new(32, 10),
    );
    let options = FitOptions {
        epochs: 2,
        validation_split: 0.25,
        ..Default::default()
    };
    let history = fit(&mut model, &mut Adam::new(1e-3), &digits(), &options).unwrap();
    let last = history.last().unwrap();
    assert!(
        last.val_loss.unwrap().is_finite() && last.val_accuracy.unwrap() > 0.5,
        "{last:?}"
    );
    assert!(last.loss < history.epochs[0].loss + 1.0);
}

fn all_weights_finite<M: Module>(model: &M) -> bool {
    model
        .get_weights()
        .iter()
        .all(|w| w.as_slice().iter().all(|x| x.is_finite()))
}

/// The digits with every 8th row's pixels multiplied by 1e4 (up to 1.6e5): finite in f32,
/// beyond float16's 65504.
fn digits_with_rows_beyond_f16() -> Dataset {
    let d = digits();
    let mut x = d.x().as_slice().to_vec();
    let f = d.features();
    for (r, row) in x.chunks_mut(f).enumerate() {
        if r % 8 == 0 {
            row.iter_mut().for_each(|v| *v = *v * 1e4 + 1e5);
        }
    }
    let labels: Vec<u32> = match d.targets() {
        mixprec::data::TargetData::Classes { labels, .. } => labels.clone(),
        _ => unreachable!("digits are classes"),
    };
    Dataset::classification(Tensor::from_vec(vec![d.len(), f], x).unwrap(), labels, 10).unwrap()
}

/// Issue 10's scenario from the library: a float16 run on inputs beyond float16's range used to
/// halve its loss scale to 0 and end with every weight NaN, reporting success. Now it stops after
/// the first epoch with an error naming the likely cause, and the weights are finite.
#[test]
fn issue_10_float16_run_on_inputs_beyond_its_range_is_reported_and_stays_finite() {
    let data = digits_with_rows_beyond_f16();
    let mut model = (
        Dense::<MixedF16>::new(64, 32).with_activation(Activation::Relu),
        Dense::<MixedF16>::new(32, 10),
    );
    let mut opt = LossScaleOptimizer::new(Adam::new(1e-3));
    let options = FitOptions {
        epochs: 3,
        batch_size: 32,
        ..Default::default()
    };
    let err = fit(&mut model, &mut opt, &data, &options).unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("training diverged at epoch 1"), "{msg}");
    assert!(msg.contains("float16's range"), "{msg}");
    assert!(msg.contains("learning rate"), "{msg}");
    assert!(all_weights_finite(&model));
    assert!(
        opt.scale() >= 1.0,
        "the scale stops at its floor: {}",
        opt.scale()
    );

    // Asked to continue, it trains on: every weight stays finite, the epochs are marked.
    let options = FitOptions {
        stop_on_divergence: false,
        ..options
    };
    let history = fit(&mut model, &mut opt, &data, &options).unwrap();
    assert_eq!(history.diverged_epochs(), [1, 2, 3]);
    assert!(history.epochs.iter().all(|e| e.diverged() && e.steps == 57));
    assert!(all_weights_finite(&model));

    // The same data trains in float32.
    let mut model = (
        Dense::<F32>::new(64, 32).with_activation(Activation::Relu),
        Dense::<F32>::new(32, 10),
    );
    let history = fit(&mut model, &mut Adam::new(1e-3), &data, &options).unwrap();
    assert!(history.diverged_epochs().is_empty());
}

/// Every step skipped is divergence even when the loss is finite (the gradients overflow).
#[test]
fn an_epoch_with_every_step_skipped_is_divergence() {
    let mut model = Dense::<MixedF16>::new(64, 10);
    // A loss scale at f32::MAX overflows every gradient; the floor is set there too, so the
    // scale cannot come down and every step is skipped.
    let mut opt = LossScaleOptimizer::new(Sgd::new(0.1))
        .with_scale_bounds(f32::MAX, f32::MAX)
        .unwrap();
    let err = fit(&mut model, &mut opt, &digits(), &FitOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains("all 57 steps were skipped"),
        "{err}"
    );
    assert!(all_weights_finite(&model));
}

/// Review of issue 10: a high initial scale skips every step of a one-step epoch while it comes
/// down; that is loss scaling at work, not divergence.
#[test]
fn skips_while_the_scale_comes_down_are_not_divergence() {
    let mut model = (
        Dense::<MixedF16>::new(64, 32).with_activation(Activation::Relu),
        Dense::<MixedF16>::new(32, 10),
    );
    let mut opt = LossScaleOptimizer::new(Adam::new(1e-3))
        .with_initial_scale(3e38)
        .unwrap();
    let options = FitOptions {
        epochs: 3,
        batch_size: 4096,
        ..Default::default()
    };
    let history = fit(&mut model, &mut opt, &digits(), &options).unwrap();
    assert_eq!(history.epochs[0].skipped_steps, 1);
    assert_eq!(history.epochs[0].skipped_at_floor, 0);
    assert!(history.diverged_epochs().is_empty());
}
