//! [`LossScaleOptimizer`]: dynamic loss scaling with Keras 3's semantics, for float16 training.
//!
//! The training loop multiplies the loss (in practice, the loss gradient) by [`scale`]; the
//! gradients then carry that factor. A step checks every gradient: if all are finite it
//! divides them by the scale the loss was multiplied by, runs the inner optimizer, and counts a
//! good step (doubling the scale after `dynamic_growth_steps` of them); if any is NaN or inf it
//! halves the scale, resets the count, and changes nothing else.
//!
//! [`scale`]: LossScaleOptimizer::scale

use crate::error::{Error, Result};
use crate::module::Module;
use crate::optimizers::{check_positive, grads_are_finite, Optimizer, OptimizerState, StepOutcome};

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
    min_scale: Option<f32>,
    max_scale: Option<f32>,
    skipped: u64,
}

impl<O: Optimizer> LossScaleOptimizer<O> {
    /// Keras's defaults: initial scale 2^15, doubling after 2000 finite steps.
    pub fn new(inner: O) -> Self {
        LossScaleOptimizer {
            inner,
            scale: 32768.0,
            growth_steps: 2000,
            good_steps: 0,
            min_scale: None,
            max_scale: None,
            skipped: 0,
        }
    }

    /// Sets the initial scale.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless the scale is finite and positive.
    pub fn with_initial_scale(self, scale: f32) -> Result<Self> {
        Ok(LossScaleOptimizer {
            scale: check_positive("initial_scale", scale)?,
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

    /// Bounds the scale to `[min, max]` (an extension; Keras has no bounds, and neither does this
    /// optimizer unless asked).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless `0 < min <= max`, both finite.
    pub fn with_scale_bounds(self, min: f32, max: f32) -> Result<Self> {
        check_positive("min_scale", min)?;
        check_positive("max_scale", max)?;
        if min > max {
            return Err(Error::InvalidArgument {
                what: "scale bounds",
                found: format!("[{min}, {max}]"),
                expected: "min <= max",
            });
        }
        let scale = self.scale.clamp(min, max);
        Ok(LossScaleOptimizer {
            min_scale: Some(min),
            max_scale: Some(max),
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

    /// Restores [`state`](Self::state) (clamped to the scale bounds, if any).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless the scale is finite and positive.
    pub fn restore_state(&mut self, state: LossScaleState) -> Result<()> {
        let scale = check_positive("loss scale", state.scale)?;
        self.scale = self.clamp(scale);
        self.good_steps = state.good_steps;
        Ok(())
    }

    /// The wrapped optimizer.
    pub fn inner(&self) -> &O {
        &self.inner
    }

    fn clamp(&self, s: f32) -> f32 {
        let s = self.min_scale.map_or(s, |m| s.max(m));
        self.max_scale.map_or(s, |m| s.min(m))
    }
}

impl<O: Optimizer> Optimizer for LossScaleOptimizer<O> {
    /// Unscales by the current scale (the one the loss was multiplied by), or skips.
    fn step<M: Module>(&mut self, model: &mut M) -> Result<StepOutcome> {
        self.step_unscaled(model, 1.0)
    }

    fn step_unscaled<M: Module>(&mut self, model: &mut M, inv_scale: f32) -> Result<StepOutcome> {
        let before = self.scale;
        if !grads_are_finite(model) {
            self.scale = self.clamp(before / 2.0);
            self.good_steps = 0;
            self.skipped += 1;
            return Ok(StepOutcome::Skipped {
                scale_before: before,
                scale_after: self.scale,
            });
        }
        let outcome = self.inner.step_unscaled(model, inv_scale / before)?;
        self.good_steps += 1;
        if self.good_steps >= self.growth_steps {
            self.scale = self.clamp(before * 2.0);
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

    fn loss_scale_state(&self) -> Option<LossScaleState> {
        Some(self.state())
    }

    fn restore_loss_scale_state(&mut self, state: LossScaleState) -> Result<()> {
        self.restore_state(state)
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
            check_positive("loss scale", s.scale)?; // before anything changes
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
