//! Training loops: [`fit`] (epochs of shuffled mini-batches, validation, callbacks), [`evaluate`]
//! and [`predict`]. The loss is computed in f32; the optimizer's loss scale multiplies the loss
//! gradient before it enters the model, and the optimizer divides it out again.
//!
//! `fit` is gated at compile time: `O: OptimizerFor<M>`, so a float16-compute model with a
//! plain optimizer does not compile.

use std::time::Instant;

use crate::data::{permutation, Dataset};
use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::losses::Loss;
use crate::optimizers::{OptimizerFor, StepOutcome};
use crate::tensor::Tensor;

mod step;
pub use step::{train_on_batch, StepLogs};

/// Settings of [`fit`]. Build with struct update syntax: `FitOptions { epochs: 20, ..Default::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct FitOptions {
    /// Passes over the training data (default 1).
    pub epochs: usize,
    /// Rows per step (default 32); the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Seed of the per-epoch shuffles (default 0).
    pub seed: u64,
    /// Shuffle the rows every epoch (default true).
    pub shuffle: bool,
    /// Fraction of the rows, taken from the end before shuffling, held out for validation
    /// (Keras's `validation_split`; default 0).
    pub validation_split: f32,
    /// The loss; `None` picks sparse categorical cross-entropy from logits for class labels and
    /// mean squared error for real targets.
    pub loss: Option<Loss>,
    /// Epochs already done (Keras's `initial_epoch`, for resuming): training runs epochs
    /// `initial_epoch + 1 ..= epochs`, with the same shuffles an uninterrupted run would use.
    pub initial_epoch: usize,
    /// Stop with [`Error::Diverged`] after an epoch that diverged (default true): one in which
    /// every step was skipped by loss scaling with the scale at its floor, or whose mean loss is
    /// not finite. `false` trains
    /// on, and the epochs are marked in [`EpochLogs::diverged`]. Keras has no such check (its
    /// `TerminateOnNaN` callback is the nearest); without it a float16 run whose inputs overflow
    /// skips every step and reports nothing.
    pub stop_on_divergence: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions {
            epochs: 1,
            batch_size: 32,
            seed: 0,
            shuffle: true,
            validation_split: 0.0,
            loss: None,
            initial_epoch: 0,
            stop_on_divergence: true,
        }
    }
}

/// Progress after one batch, for [`Callback::on_batch_end`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchLogs {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Mean loss over the epoch so far.
    pub loss: f64,
    /// Accuracy over the epoch so far (classification).
    pub accuracy: Option<f64>,
    /// Rows seen in this epoch so far.
    pub samples: usize,
    /// Seconds since the epoch began.
    pub seconds: f64,
}

/// Results of one epoch.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochLogs {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss (unscaled).
    pub loss: f64,
    /// Training accuracy (classification).
    pub accuracy: Option<f64>,
    /// Validation loss, when a validation split is set.
    pub val_loss: Option<f64>,
    /// Validation accuracy.
    pub val_accuracy: Option<f64>,
    /// Wall time of the epoch's training steps.
    pub seconds: f64,
    /// Training rows per second.
    pub samples_per_sec: f64,
    /// Optimizer steps in this epoch (batches).
    pub steps: usize,
    /// Steps skipped by loss scaling in this epoch.
    pub skipped_steps: usize,
    /// Of those, the steps skipped at the scale's floor: the scale could not be lowered, so the
    /// gradients overflow whatever the scale (inputs or learning rate, not the scale, are at fault).
    pub skipped_at_floor: usize,
    /// The optimizer's loss scale at the end of the epoch (1 without loss scaling).
    pub loss_scale: f32,
}

impl EpochLogs {
    /// Whether this epoch diverged: no step was applied and the loss scale reached its floor
    /// (every gradient was NaN or infinite, whatever the scale), or the mean loss is NaN or
    /// infinite. Skips while the scale is still coming down from a high initial value are
    /// loss scaling at work, not divergence.
    pub fn diverged(&self) -> bool {
        self.all_skipped_at_floor() || !self.loss.is_finite()
    }

    fn all_skipped_at_floor(&self) -> bool {
        self.steps > 0 && self.skipped_steps == self.steps && self.skipped_at_floor > 0
    }

    /// [`Error::Diverged`] for this epoch, when it [`diverged`](Self::diverged).
    fn divergence(&self) -> Option<Error> {
        let what = if self.all_skipped_at_floor() {
            format!(
                "all {} steps were skipped because the gradients were NaN or infinite, down to loss scale {} (its floor)",
                self.steps, self.loss_scale
            )
        } else if !self.loss.is_finite() {
            format!(
                "the mean loss is {} ({} of {} steps skipped)",
                self.loss, self.skipped_steps, self.steps
            )
        } else {
            return None;
        };
        Some(Error::Diverged {
            epoch: self.epoch,
            what,
            hint: "the likely causes are inputs beyond float16's range (|x| > 65504) under a \
                   float16 policy, or a learning rate too high; scale the inputs, use \
                   mixed_bfloat16, or lower the learning rate",
        })
    }
}

/// Everything [`fit`] observed.
#[derive(Debug, Clone, PartialEq)]
pub struct History {
    /// One entry per epoch.
    pub epochs: Vec<EpochLogs>,
    /// Total wall time.
    pub seconds: f64,
    /// The largest number of activation bytes the model held for a backward pass.
    pub activation_bytes: usize,
}

impl History {
    /// The last epoch's logs.
    pub fn last(&self) -> Option<&EpochLogs> {
        self.epochs.last()
    }

    /// Steps skipped by loss scaling over the whole run.
    pub fn skipped_steps(&self) -> usize {
        self.epochs.iter().map(|e| e.skipped_steps).sum()
    }

    /// The 1-based epochs that [diverged](EpochLogs::diverged).
    pub fn diverged_epochs(&self) -> Vec<usize> {
        self.epochs
            .iter()
            .filter(|e| e.diverged())
            .map(|e| e.epoch)
            .collect()
    }
}

/// Observes training; every method has an empty default.
pub trait Callback {
    /// Before the first epoch.
    fn on_train_begin(&mut self, _epochs: usize, _batches_per_epoch: usize) {}
    /// After every batch.
    fn on_batch_end(&mut self, _logs: &BatchLogs) {}
    /// After every epoch (and its validation).
    fn on_epoch_end(&mut self, _logs: &EpochLogs) {}
}

/// A callback that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;
impl Callback for Silent {}

/// Loss and accuracy of a model on a data set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Mean loss.
    pub loss: f64,
    /// Accuracy (classification).
    pub accuracy: Option<f64>,
}

/// Trains `model` on `data` with `optimizer`; see [`fit_with_callback`].
///
/// # Errors
///
/// As [`fit_with_callback`].
pub fn fit<M, O>(
    model: &mut M,
    optimizer: &mut O,
    data: &Dataset,
    options: &FitOptions,
) -> Result<History>
where
    M: Layer + Send,
    O: OptimizerFor<M>,
{
    fit_with_callback(model, optimizer, data, options, &mut Silent)
}

/// Trains `model` on `data` with `optimizer`, reporting progress to `callback`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for zero epochs or batch size, or a validation split that leaves a
/// side empty; [`Error::ShapeMismatch`] when the data does not fit the model;
/// [`Error::NonFinite`] when the loss or a gradient becomes NaN or infinite with an optimizer that
/// does not scale the loss (training stops before the update, so the weights stay finite);
/// [`Error::Diverged`] after an epoch that diverged, unless
/// [`FitOptions::stop_on_divergence`] is false (the weights are those of the last applied step,
/// all finite); [`Error::NonFiniteUpdate`] when an update would have made a weight NaN or
/// infinite (those elements were left unchanged).
pub fn fit_with_callback<M, O>(
    model: &mut M,
    optimizer: &mut O,
    data: &Dataset,
    options: &FitOptions,
    callback: &mut dyn Callback,
) -> Result<History>
where
    M: Layer + Send,
    O: OptimizerFor<M>,
{
    let loss = check_setup(model, data, options)?;
    let (train, val) = if options.validation_split > 0.0 {
        let (t, v) = data.split_tail(options.validation_split)?;
        (t, Some(v))
    } else {
        (data.clone(), None)
    };
    let batches = train.len().div_ceil(options.batch_size);
    callback.on_train_begin(options.epochs - options.initial_epoch, batches);
    let start = Instant::now();
    let mut history = History {
        epochs: Vec::new(),
        seconds: 0.0,
        activation_bytes: 0,
    };
    for epoch in options.initial_epoch + 1..=options.epochs {
        let shuffled = if options.shuffle {
            train.select(&permutation(
                train.len(),
                options.seed.wrapping_add(epoch as u64),
            ))
        } else {
            train.clone()
        };
        let mut logs = run_epoch(
            model,
            optimizer,
            &shuffled,
            loss,
            options.batch_size,
            epoch,
            &mut history,
            callback,
        )?;
        if let Some(v) = &val {
            let m = evaluate(model, v, options.batch_size, Some(loss))?;
            logs.val_loss = Some(m.loss);
            logs.val_accuracy = m.accuracy;
        }
        callback.on_epoch_end(&logs);
        let diverged = logs.divergence();
        history.epochs.push(logs);
        if let (Some(e), true) = (diverged, options.stop_on_divergence) {
            return Err(e);
        }
    }
    history.seconds = start.elapsed().as_secs_f64();
    Ok(history)
}

/// Validates the options against the data and the model, and picks the loss.
fn check_setup<M: Layer>(model: &M, data: &Dataset, options: &FitOptions) -> Result<Loss> {
    for (what, v) in [
        ("epochs", options.epochs),
        ("batch_size", options.batch_size),
    ] {
        if v == 0 {
            return Err(Error::InvalidArgument {
                what,
                found: "0".into(),
                expected: "at least 1",
            });
        }
    }
    if options.initial_epoch >= options.epochs {
        return Err(Error::InvalidArgument {
            what: "initial_epoch",
            found: format!("{} with epochs {}", options.initial_epoch, options.epochs),
            expected: "below epochs (epochs counts the total, as in Keras)",
        });
    }
    let out = model
        .output_shape(&[data.len(), data.features()])
        .and_then(|s| s.last().copied());
    let out = out.ok_or_else(|| {
        Error::shape(
            "model input",
            "the model's input width".into(),
            &[data.len(), data.features()],
        )
    })?;
    if let Some(classes) = data.classes() {
        if out != classes {
            return Err(Error::shape(
                "model output",
                format!("[batch, {classes}] for {classes} classes"),
                &[out],
            ));
        }
    }
    Ok(options.loss.unwrap_or(match data.classes() {
        Some(_) => Loss::SparseCategoricalCrossentropy { from_logits: true },
        None => Loss::MeanSquaredError,
    }))
}

#[allow(clippy::too_many_arguments)]
fn run_epoch<M, O>(
    model: &mut M,
    optimizer: &mut O,
    data: &Dataset,
    loss: Loss,
    batch_size: usize,
    epoch: usize,
    history: &mut History,
    callback: &mut dyn Callback,
) -> Result<EpochLogs>
where
    M: Layer + Send,
    O: OptimizerFor<M>,
{
    let start = Instant::now();
    let batches = data.len().div_ceil(batch_size);
    let (mut loss_sum, mut correct, mut seen, mut skipped) = (0f64, 0usize, 0usize, 0usize);
    let mut at_floor = 0usize;
    for b in 0..batches {
        let (lo, hi) = (b * batch_size, ((b + 1) * batch_size).min(data.len()));
        let step = train_on_batch(
            model,
            optimizer,
            data.x_of(lo, hi),
            data.targets_of(lo, hi),
            loss,
        );
        let step = step.map_err(|e| match e {
            Error::NonFinite { what, value, .. } => Error::NonFinite {
                what,
                value,
                epoch,
                batch: b + 1,
            },
            other => other,
        })?;
        history.activation_bytes = history.activation_bytes.max(step.activation_bytes);
        skipped += usize::from(!step.outcome.is_applied());
        at_floor += usize::from(matches!(
            step.outcome,
            StepOutcome::Skipped { scale_before, scale_after } if scale_after >= scale_before
        ));
        loss_sum += step.loss * (hi - lo) as f64;
        correct += step.correct.unwrap_or(0);
        seen += hi - lo;
        let accuracy = data.classes().map(|_| correct as f64 / seen as f64);
        let seconds = start.elapsed().as_secs_f64();
        let logs = BatchLogs {
            epoch,
            batch: b + 1,
            batches,
            loss: loss_sum / seen as f64,
            accuracy,
            samples: seen,
            seconds,
        };
        callback.on_batch_end(&logs);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok(EpochLogs {
        epoch,
        loss: loss_sum / seen as f64,
        accuracy: data.classes().map(|_| correct as f64 / seen as f64),
        val_loss: None,
        val_accuracy: None,
        seconds,
        samples_per_sec: seen as f64 / seconds.max(1e-9),
        steps: batches,
        skipped_steps: skipped,
        skipped_at_floor: at_floor,
        loss_scale: optimizer.loss_scale(),
    })
}

/// Loss and accuracy of `model` on `data`, in batches of `batch_size`.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a zero batch size; [`Error::ShapeMismatch`] when the data does
/// not fit the model.
pub fn evaluate<M: Layer>(
    model: &M,
    data: &Dataset,
    batch_size: usize,
    loss: Option<Loss>,
) -> Result<Metrics> {
    let options = FitOptions {
        batch_size,
        loss,
        ..FitOptions::default()
    };
    let loss = check_setup(model, data, &options)?;
    let (mut total, mut correct) = (0f64, 0usize);
    for lo in (0..data.len()).step_by(batch_size) {
        let hi = (lo + batch_size).min(data.len());
        let logits = model.infer(&data.x_of(lo, hi).into_cast())?;
        let out = loss.loss_and_grad(&logits, data.targets_of(lo, hi), 1.0)?;
        total += out.loss * (hi - lo) as f64;
        correct += out.correct.unwrap_or(0);
    }
    let n = data.len() as f64;
    Ok(Metrics {
        loss: total / n,
        accuracy: data.classes().map(|_| correct as f64 / n),
    })
}

/// The model's outputs for `x` (`[rows, features]`), widened to f32, in batches.
///
/// # Errors
///
/// [`Error::InvalidArgument`] for a zero batch size; [`Error::ShapeMismatch`] when `x` does not
/// fit the model.
pub fn predict<M: Layer>(model: &M, x: &Tensor<f32>, batch_size: usize) -> Result<Tensor<f32>> {
    if batch_size == 0 {
        return Err(Error::InvalidArgument {
            what: "batch_size",
            found: "0".into(),
            expected: "at least 1",
        });
    }
    let (rows, f) = match *x.shape() {
        [r, f] => (r, f),
        _ => {
            return Err(Error::shape(
                "predict input",
                "[rows, features]".into(),
                x.shape(),
            ))
        }
    };
    let mut out = Vec::new();
    let mut width = 0;
    for lo in (0..rows).step_by(batch_size) {
        let hi = (lo + batch_size).min(rows);
        let xb = Tensor::from_parts(vec![hi - lo, f], x.as_slice()[lo * f..hi * f].to_vec());
        let y = model.infer(&xb.into_cast())?;
        width = y.shape().last().copied().unwrap_or(0);
        out.extend(y.into_cast::<f32>().into_vec());
    }
    Tensor::from_vec(vec![rows, width], out)
}
