//! Optimizers: [`Sgd`], [`Adam`] (and AdamW through its weight decay), and [`LossScaleOptimizer`]
//! for float16 training. They update the master variables (`P::Variable`) with state kept in
//! f32 (f64 for `F64`), and every update clears the variable's cached compute-type copy.
//!
//! Training a model with a layer that computes in f16 needs loss scaling; the [`OptimizerFor`]
//! bound makes a plain optimizer on such a model a compile error that says to wrap it, and
//! [`AutoOptimizer`] wraps one exactly when the model needs it.
//!
//! Each variable is updated in its own accumulator type (f32 for f16, bf16 and f32 variables, f64
//! for f64 ones), through [`Param::apply_update`](crate::param::Param), which also does the
//! chunking and the repacking of cached packed weights; optimizers only say what happens to one
//! element.

mod adam;
mod auto;
mod loss_scale;
mod sgd;

pub use adam::Adam;
pub use auto::AutoOptimizer;
#[cfg(feature = "serde")] // checkpoints, which need serde for their metadata
pub(crate) use loss_scale::valid_scale;
pub use loss_scale::{LossScaleOptimizer, LossScaleState, DEFAULT_MIN_SCALE};
pub use sgd::Sgd;

use typenum::B0;

use rayon::prelude::*;

use crate::dtype::{Element, VecOf};
use crate::error::{Error, Result};
use crate::module::{Module, ParamVisitor, ParamVisitorMut};
use crate::param::{ElementwiseUpdate, Param, VarAccOf, PAR_CHUNK};
use crate::policy::Policy;

/// What an optimizer step did.
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a skipped step means the variables did not change"]
pub enum StepOutcome {
    /// The variables were updated.
    Applied,
    /// A gradient was NaN or infinite: nothing changed but the loss scale, which was lowered.
    Skipped {
        /// The scale the gradients carried.
        scale_before: f32,
        /// The scale for the next step.
        scale_after: f32,
    },
}

impl StepOutcome {
    /// True when the variables were updated.
    pub fn is_applied(self) -> bool {
        matches!(self, StepOutcome::Applied)
    }
}

/// An optimizer: updates a model's variables from the gradients its last backward pass stored.
///
/// `Send`, because [`train_on_batch`](crate::train::train_on_batch) runs the step on a thread of
/// rayon's pool.
pub trait Optimizer: Send {
    /// One update from the gradients in `model`'s variables.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a variable has no gradient or the model's variables changed
    /// shape since the optimizer's state was made.
    fn step<M: Module>(&mut self, model: &mut M) -> Result<StepOutcome> {
        self.step_unscaled(model, 1.0)
    }

    /// One update using `grad · inv_scale` as the gradient (for wrappers that scale the loss).
    ///
    /// # Errors
    ///
    /// As [`step`](Self::step).
    fn step_unscaled<M: Module>(&mut self, model: &mut M, inv_scale: f32) -> Result<StepOutcome>;

    /// Applied steps so far.
    fn iterations(&self) -> u64;

    /// The learning rate.
    fn learning_rate(&self) -> f32;

    /// The factor the training loop multiplies the loss by (1 unless the loss is scaled).
    fn loss_scale(&self) -> f32 {
        1.0
    }

    /// Whether this optimizer scales the loss and skips non-finite steps itself.
    fn scales_loss(&self) -> bool {
        false
    }

    /// Steps skipped because a gradient was not finite (0 unless the loss is scaled).
    fn skipped_steps(&self) -> u64 {
        0
    }

    /// A copy of the state this optimizer carries between steps.
    fn export_state(&self) -> OptimizerState;

    /// Restores an [`export_state`](Self::export_state), so the next step is the one the
    /// exporting optimizer would have taken.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the state does not fit this optimizer (a slot it does not
    /// have, an invalid loss scale). The optimizer is then unchanged.
    fn import_state(&mut self, state: OptimizerState) -> Result<()>;
}

/// Everything an optimizer carries from one step to the next, so training can resume exactly
/// from a checkpoint: the applied-step count, the per-variable state vectors (momentum, Adam's
/// `m` and `v`) and the loss-scale state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct OptimizerState {
    /// Applied steps.
    pub iterations: u64,
    /// `(variable index in visiting order, slot index, values)`; Adam's slots are `m` (0) and
    /// `v` (1), SGD's velocity is slot 0. Variables never stepped have no entry.
    pub slots: Vec<(usize, usize, VecOf)>,
    /// The dynamic loss scale, for [`LossScaleOptimizer`].
    pub loss_scale: Option<LossScaleState>,
}

/// Gate: `Self` may train the model `M`. Plain optimizers train every model none of whose layers
/// computes in f16 (`M::NeedsLossScale` is `B0`); [`LossScaleOptimizer`] and [`AutoOptimizer`]
/// train every model.
///
/// ```compile_fail
/// use mixprec::prelude::*;
/// fn needs_gate<M: Module, O: mixprec::optimizers::OptimizerFor<M>>(_: &M, _: &O) {}
/// // One float16-compute layer among float32 ones: the model needs loss scaling.
/// let model = (Dense::<F32>::new(4, 8), Dense::<MixedF16>::new(8, 8), Dense::<F32>::new(8, 2));
/// needs_gate(&model, &Adam::new(1e-3));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot train `{M}`: a layer computes in float16, which needs loss scaling",
    label = "this optimizer does not scale the loss",
    note = "float16 gradients underflow to zero without loss scaling; wrap the optimizer: `LossScaleOptimizer::new(optimizer)`, or `AutoOptimizer::for_model(&model, optimizer)`"
)]
pub trait OptimizerFor<M: Module + ?Sized>: Optimizer {}

/// An optimizer that does not scale the loss ([`Sgd`], [`Adam`]): it trains every model without a
/// float16-compute layer, and [`AutoOptimizer`] or [`LossScaleOptimizer`] wrap it for the others.
pub trait PlainOptimizer: Optimizer {}
impl PlainOptimizer for Sgd {}
impl PlainOptimizer for Adam {}

/// Implemented for typenum's `B0` only: "this model does not need loss scaling".
#[diagnostic::on_unimplemented(
    message = "this model has a layer that computes in float16, so training it needs loss scaling",
    label = "this optimizer does not scale the loss",
    note = "wrap the optimizer: `LossScaleOptimizer::new(optimizer)`"
)]
pub trait NoLossScaleNeeded {}
impl NoLossScaleNeeded for B0 {}

macro_rules! plain_optimizer_gate {
    ($($t:ty),*) => {$(
        impl<M: Module + ?Sized> OptimizerFor<M> for $t where M::NeedsLossScale: NoLossScaleNeeded {}
    )*};
}
plain_optimizer_gate!(Sgd, Adam);

impl<M: Module + ?Sized, O: Optimizer> OptimizerFor<M> for LossScaleOptimizer<O> {}

/// Per-variable optimizer state: slots in the accumulator type of the variable (f32, or f64).
#[derive(Debug)]
pub(crate) struct Slots {
    slots: Vec<Vec<VecOf>>,
}

impl Slots {
    pub(crate) fn new() -> Self {
        Slots { slots: Vec::new() }
    }

    /// The `count` state vectors of variable `index` (zeros on first use), as `A`.
    pub(crate) fn get<A: Element>(
        &mut self,
        index: usize,
        len: usize,
        count: usize,
    ) -> Result<Vec<Vec<A>>> {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, Vec::new);
        }
        let taken = std::mem::take(&mut self.slots[index]);
        if taken.is_empty() {
            return Ok((0..count).map(|_| vec![A::zero(); len]).collect());
        }
        taken
            .into_iter()
            .map(|v| match A::from_vec_of(v) {
                Ok(v) if v.len() == len => Ok(v),
                _ => Err(Error::InvalidArgument {
                    what: "optimizer state",
                    found: format!("variable #{index} changed shape or type"),
                    expected: "the same model the optimizer has been stepping",
                }),
            })
            .collect()
    }

    /// Every slot vector, as `(variable, slot, values)`.
    pub(crate) fn export(&self) -> Vec<(usize, usize, VecOf)> {
        let mut out = Vec::new();
        for (var, slots) in self.slots.iter().enumerate() {
            for (slot, values) in slots.iter().enumerate() {
                out.push((var, slot, values.clone()));
            }
        }
        out
    }

    /// Slots from [`export`](Self::export); `count` is how many slots each variable has.
    pub(crate) fn import(entries: Vec<(usize, usize, VecOf)>, count: usize) -> Result<Self> {
        let mut slots: Vec<Vec<Option<VecOf>>> = Vec::new();
        for (var, slot, values) in entries {
            if slot >= count {
                return Err(Error::InvalidArgument {
                    what: "optimizer state",
                    found: format!("slot {slot} of variable #{var}"),
                    expected: "slots this optimizer has (Adam: m, v; SGD: velocity)",
                });
            }
            if slots.len() <= var {
                slots.resize_with(var + 1, Vec::new);
            }
            slots[var].resize_with(count, || None);
            slots[var][slot] = Some(values);
        }
        let slots = slots
            .into_iter()
            .enumerate()
            .map(|(var, s)| match s.iter().all(Option::is_some) {
                true => Ok(s.into_iter().flatten().collect()),
                false if s.iter().all(Option::is_none) => Ok(Vec::new()),
                false => Err(Error::InvalidArgument {
                    what: "optimizer state",
                    found: format!("some but not all slots of variable #{var}"),
                    expected: "every slot of a variable, or none",
                }),
            })
            .collect::<Result<_>>()?;
        Ok(Slots { slots })
    }

    /// Puts the state of variable `index` back.
    pub(crate) fn put<A: Element>(&mut self, index: usize, state: Vec<Vec<A>>) {
        self.slots[index] = state.into_iter().map(A::into_vec_of).collect();
    }
}

/// Applies `update` to every variable of `model`, each in its own accumulator type, with the
/// gradients multiplied by `inv_scale`, and `slot_count` state vectors per variable kept in
/// `slots` (none when 0). Returns what was held back; errors if a gradient is missing or
/// `inv_scale` is not a finite positive number (then no variable after the first missing one
/// changed).
pub(crate) fn update_each<M: Module, U: ElementwiseUpdate>(
    model: &mut M,
    inv_scale: f32,
    slots: &mut Slots,
    slot_count: usize,
    update: &U,
) -> Result<HeldBack> {
    struct Each<'a, U> {
        update: &'a U,
        slots: &'a mut Slots,
        slot_count: usize,
        inv_scale: f32,
        index: usize,
        held: HeldBack,
        result: Result<()>,
    }
    impl<U: ElementwiseUpdate> ParamVisitorMut for Each<'_, U> {
        fn visit<P: Policy>(&mut self, p: &mut Param<P>) {
            let index = self.index;
            self.index += 1;
            // A non-trainable variable keeps its index (slots are keyed by visiting order, so
            // exported state resumes exactly) but has no slot and no update.
            if self.result.is_err() || !p.is_trainable() {
                return;
            }
            if p.grad_slice().is_none() {
                self.result = Err(Error::InvalidArgument {
                    what: "gradient",
                    found: format!("none for variable #{index}"),
                    expected: "a backward pass before the optimizer step",
                });
                return;
            }
            let mut state = match self.slot_count {
                0 => Vec::new(),
                n => match self.slots.get::<VarAccOf<P>>(index, p.len(), n) {
                    Ok(s) => s,
                    Err(e) => return self.result = Err(e),
                },
            };
            let held = p.apply_update(self.update, &mut state, self.inv_scale);
            self.held
                .add(index, held.expect("the gradient was checked above"));
            if self.slot_count > 0 {
                self.slots.put(index, state);
            }
        }
    }
    check_positive("gradient unscaling factor", inv_scale)?;
    let mut each = Each {
        update,
        slots,
        slot_count,
        inv_scale,
        index: 0,
        held: HeldBack::default(),
        result: Ok(()),
    };
    model.visit_params_mut(&mut each);
    each.result.map(|()| each.held)
}

/// What the element-wise updates held back in one step: the first variable with an element
/// whose new value was not finite, and how many elements in all.
#[derive(Debug, Default)]
pub(crate) struct HeldBack {
    first: Option<usize>,
    elements: usize,
}

impl HeldBack {
    /// Records `held` elements of variable `index`.
    pub(crate) fn add(&mut self, index: usize, held: usize) {
        if held > 0 {
            self.first.get_or_insert(index);
            self.elements += held;
        }
    }

    /// `Ok` when nothing was held back, else [`Error::NonFiniteUpdate`].
    pub(crate) fn into_result(self, learning_rate: f32) -> Result<()> {
        match self.first {
            None => Ok(()),
            Some(variable) => Err(Error::NonFiniteUpdate {
                variable,
                elements: self.elements,
                learning_rate,
            }),
        }
    }
}

/// `new` when `ok`, else `old` (a select the compiler turns into a blend).
#[inline(always)]
pub(crate) fn commit<A: Element>(ok: bool, new: A, old: A) -> A {
    if ok {
        new
    } else {
        old
    }
}

/// True when every gradient of `model` is finite (a missing gradient counts as finite).
/// Gradients whose layer proved them finite ([`Param::grad_known_finite`]) are not scanned.
///
/// [`Param::grad_known_finite`]: crate::param::Param::grad_known_finite
pub fn grads_are_finite<M: Module>(model: &M) -> bool {
    struct Finite(bool);
    impl ParamVisitor for Finite {
        fn visit<P: Policy>(&mut self, _: &str, p: &Param<P>) {
            if p.grad_known_finite() || !p.is_trainable() {
                return;
            }
            if let (true, Some(g)) = (self.0, p.grad_slice()) {
                self.0 = g.par_chunks(PAR_CHUNK).all(crate::dtype::all_finite);
            }
        }
    }
    let mut finite = Finite(true);
    model.visit_params("", &mut finite);
    finite.0
}

/// Below this, optimizer state (momentum, Adam's `m` and `v`) is set to zero: 2^-100.
pub(crate) const STATE_FLOOR: f64 = 7.888609052210118e-31;
/// Below this, a gradient element counts as zero in the optimizer: 2^-60, so `g²` stays normal.
pub(crate) const GRAD_FLOOR: f64 = 8.673617379884035e-19;

/// `x`, or 0 when `|x| < floor`.
///
/// Optimizer state decays geometrically where a gradient is (nearly) zero: a dead ReLU unit, a
/// gradient flushed to zero by the AMX tiles. Adam's `m` shrinks by β₁ every step and, with its
/// products `(g - m)(1 - β₁)` and `g²`, passes through f32's subnormal range, where x86 arithmetic
/// takes microcode assists about 100x slower. Measured on a MixedBf16 MLP after ~650 steps on one
/// batch: the Adam step went from 1.2 ms to 27–37 ms. With the floors above no operand or product
/// in the update is subnormal. The effect on the weights is invisible: a gradient below 2^-60
/// moves a weight by at most `lr · 2^-60 / ε` (ε = 1e-7), about `lr · 1e-11`, and a state below
/// 2^-100 by less than `lr · 1e-23`.
#[inline(always)]
pub(crate) fn flush_below<A: Element>(x: A, floor: A) -> A {
    if x.abs() < floor {
        A::zero()
    } else {
        x
    }
}

pub(crate) fn check_positive(what: &'static str, v: f32) -> Result<f32> {
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(Error::InvalidArgument {
            what,
            found: v.to_string(),
            expected: "a finite number > 0",
        })
    }
}

pub(crate) fn check_unit_interval(what: &'static str, v: f32) -> Result<f32> {
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(Error::InvalidArgument {
            what,
            found: v.to_string(),
            expected: "in [0, 1)",
        })
    }
}
