//! [`LossScaleOptimizer`]: dynamic loss scaling with Keras 3's semantics, for float16 training.
//!
//! The training loop multiplies the loss (in practice, the loss gradient) by [`scale`]; the
//! gradients then carry that factor. A step checks every gradient: if all are finite it
//! divides them by the scale the loss was multiplied by, runs the inner optimizer, and counts a
//! good step (doubling the scale after `dynamic_growth_steps` of them); if any is NaN or inf it
//! halves the scale, resets the count, and changes nothing else.
//!
//! A step is finite only if its *unscaling factor* is too: `1 / scale` (times any factor an outer
//! wrapper passes in) must be a finite, positive number, or the step is skipped like a step with
//! a NaN gradient. Together with the scale's floor this is what keeps NaN out of the variables:
//! without either, about 165 skips in a row halve the scale to 0.0, and the next finite step
//! multiplies every gradient by `1 / 0 = inf`.
//!
//! # The floor, against Keras and jmp
//!
//! Keras 3 halves without a floor; `tf.keras` 2 (`max(scale / 2, 1)`) and DeepMind's jmp
//! (`min_loss_scale`, default 1) stop at 1. mixprec stops at 1 too ([`DEFAULT_MIN_SCALE`]): below
//! 1 the scale no longer protects float16 gradients from underflow, it only shrinks them, and a
//! model whose gradients overflow at scale 1 overflows because of its inputs or learning rate,
//! which no loss scale fixes. A run of skips at the floor is what [`fit`](crate::train::fit)
//! reports as divergence. [`with_scale_bounds`](LossScaleOptimizer::with_scale_bounds) sets
//! another floor (down to [`f32::MIN_POSITIVE`], whose inverse is still finite). A skip never
//! raises the scale: one that starts below the floor (an initial scale under 1) stays where it is.
//!
//! [`scale`]: LossScaleOptimizer::scale

use crate::error::{Error, Result};
use crate::module::Module;
use crate::optimizers::{grads_are_finite, Optimizer, OptimizerState, StepOutcome};

/// The scale's default floor: halving stops at 1, as in `tf.keras` 2 and jmp (see the module
/// docs).
pub const DEFAULT_MIN_SCALE: f32 = 1.0;

/// Whether the optimizer can hold `v` as its scale: finite, and at least [`f32::MIN_POSITIVE`], so
/// that `1 / scale` is finite too. Checkpoints save and read exactly these scales.
pub(crate) fn valid_scale(v: f32) -> bool {
    v.is_finite() && v >= f32::MIN_POSITIVE
}

/// [`valid_scale`], as an error naming `what`.
fn check_scale(what: &'static str, v: f32) -> Result<f32> {
    if valid_scale(v) {
        Ok(v)
    } else {
        Err(Error::InvalidArgument {
            what,
            found: v.to_string(),
            expected: "a finite number >= 2^-126 (f32::MIN_POSITIVE), so that 1 / scale is finite",
        })
    }
}

/// The dynamic loss scale's state, so float16 training resumes exactly where it stopped (stored
/// in checkpoints as `mixprec.loss_scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct LossScaleState {
    /// The current loss scale (finite, positive).
    pub scale: f32,
    /// Consecutive finite steps since the scale last changed.
    pub good_steps: u64,
}

/// Wraps an optimizer with dynamic loss scaling (Keras's `LossScaleOptimizer`).
///
/// ```
/// use mixprec::optimizers::{Adam, LossScaleOptimizer};
/// let opt = LossScaleOptimizer::new(Adam::new(1e-3));
/// assert_eq!(opt.scale(), 32768.0);       // 2^15
/// assert_eq!(opt.scale_loss(0.5), 16384.0);
/// assert!(LossScaleOptimizer::new(Adam::new(1e-3)).with_initial_scale(0.0).is_err());
/// ```
#[derive(Debug)]
pub struct LossScaleOptimizer<O> {
    inner: O,
    scale: f32,
    growth_steps: u64,
    good_steps: u64,
    min_scale: f32,
    max_scale: f32,
    skipped: u64,
}

impl<O: Optimizer> LossScaleOptimizer<O> {
    /// Keras's defaults: initial scale 2^15, doubling after 2000 finite steps; halving stops at
    /// [`DEFAULT_MIN_SCALE`] (1), and growth at `f32::MAX`.
    pub fn new(inner: O) -> Self {
        LossScaleOptimizer {
            inner,
            scale: 32768.0,
            growth_steps: 2000,
            good_steps: 0,
            min_scale: DEFAULT_MIN_SCALE,
            max_scale: f32::MAX,
            skipped: 0,
        }
    }

    /// Sets the initial scale.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless the scale is finite and at least `f32::MIN_POSITIVE`
    /// (so that its inverse is finite).
    pub fn with_initial_scale(self, scale: f32) -> Result<Self> {
        Ok(LossScaleOptimizer {
            scale: check_scale("initial_scale", scale)?.min(self.max_scale),
            ..self
        })
    }

    /// Sets how many consecutive finite steps double the scale.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `steps` is 0.
    pub fn with_dynamic_growth_steps(self, steps: u64) -> Result<Self> {
        if steps == 0 {
            return Err(Error::InvalidArgument {
                what: "dynamic_growth_steps",
                found: "0".into(),
                expected: "at least 1",
            });
        }
        Ok(LossScaleOptimizer {
            growth_steps: steps,
            ..self
        })
    }

    /// Bounds the scale to `[min, max]` (an extension; Keras has no bounds). The default bounds
    /// are `[1, f32::MAX]` ([`DEFAULT_MIN_SCALE`]); the current scale is clamped into the new ones.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless `f32::MIN_POSITIVE <= min <= max`, both finite.
    pub fn with_scale_bounds(self, min: f32, max: f32) -> Result<Self> {
        check_scale("min_scale", min)?;
        check_scale("max_scale", max)?;
        if min > max {
            return Err(Error::InvalidArgument {
                what: "scale bounds",
                found: format!("[{min}, {max}]"),
                expected: "min <= max",
            });
        }
        let scale = self.scale.clamp(min, max);
        Ok(LossScaleOptimizer {
            min_scale: min,
            max_scale: max,
            scale,
            ..self
        })
    }

    /// The current loss scale.
    pub fn scale(&self) -> f32 {
        self.scale
    }

    /// `loss · scale`.
    pub fn scale_loss(&self, loss: f32) -> f32 {
        loss * self.scale
    }

    /// Finite steps since the scale last changed.
    pub fn good_steps(&self) -> u64 {
        self.good_steps
    }

    /// The scale and the count of good steps, for a checkpoint.
    pub fn state(&self) -> LossScaleState {
        LossScaleState {
            scale: self.scale,
            good_steps: self.good_steps,
        }
    }

    /// The floor and the ceiling of the scale.
    pub fn scale_bounds(&self) -> (f32, f32) {
        (self.min_scale, self.max_scale)
    }

    /// Restores [`state`](Self::state). A scale above the ceiling is lowered to it; one below
    /// the floor is kept (a skip never raises the scale, so a run may hold such a scale).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless the scale is finite and at least `f32::MIN_POSITIVE`
    /// (every scale a run can reach).
    pub fn restore_state(&mut self, state: LossScaleState) -> Result<()> {
        let scale = check_scale("loss scale", state.scale)?;
        self.scale = scale.min(self.max_scale);
        self.good_steps = state.good_steps;
        Ok(())
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    /// The scale after a skipped step: halved, but not below the floor, and never raised.
    fn lowered(&self, s: f32) -> f32 {
        (s / 2.0).max(s.min(self.min_scale))
    }

    /// The scale after `growth_steps` finite steps: doubled, but not above the ceiling.
    fn raised(&self, s: f32) -> f32 {
        (s * 2.0).min(self.max_scale)
    }
}

impl<O: Optimizer> Optimizer for LossScaleOptimizer<O> {
    /// Unscales by the current scale (the one the loss was multiplied by), or skips.
    fn step<M: Module>(&mut self, model: &mut M) -> Result<StepOutcome> {
        self.step_unscaled(model, 1.0)
    }

    /// A step is finite when every gradient is finite *and* the unscaling factor
    /// `inv_scale / scale` is a finite positive number; any other step is skipped.
    fn step_unscaled<M: Module>(&mut self, model: &mut M, inv_scale: f32) -> Result<StepOutcome> {
        let before = self.scale;
        let factor = inv_scale / before;
        if !(factor.is_finite() && factor > 0.0 && grads_are_finite(model)) {
            self.scale = self.lowered(before);
            self.good_steps = 0;
            self.skipped += 1;
            return Ok(StepOutcome::Skipped {
                scale_before: before,
                scale_after: self.scale,
            });
        }
        let outcome = self.inner.step_unscaled(model, factor)?;
        self.good_steps = self.good_steps.saturating_add(1);
        if self.good_steps >= self.growth_steps {
            self.scale = self.raised(before);
            self.good_steps = 0;
        }
        Ok(outcome)
    }

    /// Applied steps only (Keras counts the same way).
    fn iterations(&self) -> u64 {
        self.inner.iterations()
    }

    fn learning_rate(&self) -> f32 {
        self.inner.learning_rate()
    }

    fn loss_scale(&self) -> f32 {
        self.scale
    }

    fn scales_loss(&self) -> bool {
        true
    }

    fn skipped_steps(&self) -> u64 {
        self.skipped
    }

    fn export_state(&self) -> OptimizerState {
        OptimizerState {
            loss_scale: Some(self.state()),
            ..self.inner.export_state()
        }
    }

    fn import_state(&mut self, state: OptimizerState) -> Result<()> {
        let scale = state.loss_scale;
        if let Some(s) = scale {
            check_scale("loss scale", s.scale)?; // before anything changes
        }
        self.inner.import_state(OptimizerState {
            loss_scale: None,
            ..state
        })?;
        if let Some(s) = scale {
            self.restore_state(s)?;
        }
        Ok(())
    }
}
