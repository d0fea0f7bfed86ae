//! [`AutoOptimizer`]: the optimizer Keras's `compile` would train a model with: the plain
//! optimizer, or the plain optimizer wrapped in a [`LossScaleOptimizer`] when the model has a
//! layer that computes in float16.

use crate::error::Result;
use crate::module::Module;
use crate::optimizers::{
    LossScaleOptimizer, Optimizer, OptimizerFor, OptimizerState, PlainOptimizer, StepOutcome,
};
use typenum::Bit;

/// A plain optimizer, wrapped in a [`LossScaleOptimizer`] exactly when the model it was made for
/// needs loss scaling. It lets code that is generic over the policy (a policy chosen at run time,
/// a model whose layers' policies come from a config) train every model without naming the
/// wrapper, and it trains any model ([`OptimizerFor`] every `M`), like `LossScaleOptimizer`.
///
/// Keras's `compile` wraps the optimizer only when the *model's* policy is `mixed_float16`: a
/// `float16` model, or a `float32` model with one `mixed_float16` layer, trains without loss
/// scaling there, and small gradients silently underflow to zero in the f16 backward pass. Here
/// the rule is on the compute type of every layer ([`Module::NeedsLossScale`], the OR over the
/// layers): any layer that computes in float16, with float32 or float16 variables, gets loss
/// scaling. (The variable type does not matter for the underflow: it is the f16 activation
/// gradients that lose small values.)
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::optimizers::{AutoOptimizer, Optimizer};
/// let bf16_body = (Dense::<MixedBf16>::new(4, 8), Dense::<F32>::new(8, 2));
/// assert!(!AutoOptimizer::for_model(&bf16_body, Adam::new(1e-3)).scales_loss());
/// let f16_inside = (Dense::<F32>::new(4, 8), Dense::<MixedF16>::new(8, 8), Dense::<F32>::new(8, 2));
/// assert!(AutoOptimizer::for_model(&f16_inside, Adam::new(1e-3)).scales_loss());
/// ```
#[derive(Debug)]
pub enum AutoOptimizer<O: PlainOptimizer> {
    /// The model needs no loss scaling: the optimizer itself.
    Plain(O),
    /// The model has a float16-compute layer: the optimizer under dynamic loss scaling.
    Scaled(LossScaleOptimizer<O>),
}

impl<O: PlainOptimizer> AutoOptimizer<O> {
    /// `optimizer` as `model` needs it: wrapped when [`Module::needs_loss_scale`] says so.
    ///
    /// That is the model's own answer, not only its type's: for a typed model the two agree,
    /// but a model whose layers' policies were chosen at run time
    /// ([`LayeredMlp`](crate::models::LayeredMlp)) has the bit `B1` because it *may* hold a
    /// float16 layer, and a bfloat16 body with a float32 head should not pay for loss scaling
    /// (nor skip steps) because of what it might have held.
    pub fn for_model<M: Module + ?Sized>(model: &M, optimizer: O) -> Self {
        Self::wrapped_if(model.needs_loss_scale(), optimizer)
    }

    /// `optimizer` as a model of type `M` needs it (for code that has no model value yet):
    /// decided by the type's bit `M::NeedsLossScale` alone.
    pub fn new<M: Module + ?Sized>(optimizer: O) -> Self {
        Self::wrapped_if(<M::NeedsLossScale as Bit>::BOOL, optimizer)
    }

    fn wrapped_if(scale: bool, optimizer: O) -> Self {
        if scale {
            AutoOptimizer::Scaled(LossScaleOptimizer::new(optimizer))
        } else {
            AutoOptimizer::Plain(optimizer)
        }
    }
}

macro_rules! delegate {
    ($self:expr, $o:ident => $e:expr) => {
        match $self {
            AutoOptimizer::Plain($o) => $e,
            AutoOptimizer::Scaled($o) => $e,
        }
    };
}

impl<O: PlainOptimizer> Optimizer for AutoOptimizer<O> {
    fn step_unscaled<M: Module>(&mut self, model: &mut M, inv_scale: f32) -> Result<StepOutcome> {
        delegate!(self, o => o.step_unscaled(model, inv_scale))
    }

    fn iterations(&self) -> u64 {
        delegate!(self, o => o.iterations())
    }

    fn learning_rate(&self) -> f32 {
        delegate!(self, o => o.learning_rate())
    }

    fn loss_scale(&self) -> f32 {
        delegate!(self, o => o.loss_scale())
    }

    fn scales_loss(&self) -> bool {
        delegate!(self, o => o.scales_loss())
    }

    fn skipped_steps(&self) -> u64 {
        delegate!(self, o => o.skipped_steps())
    }

    fn export_state(&self) -> OptimizerState {
        delegate!(self, o => o.export_state())
    }

    fn import_state(&mut self, state: OptimizerState) -> Result<()> {
        delegate!(self, o => o.import_state(state))
    }
}

impl<M: Module + ?Sized, O: PlainOptimizer> OptimizerFor<M> for AutoOptimizer<O> {}
