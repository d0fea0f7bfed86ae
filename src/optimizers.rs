//! Optimizers: [`Sgd`], [`Adam`] (and AdamW through its weight decay), and [`LossScaleOptimizer`]
//! for float16 training. They update the master variables (`P::Variable`) with state kept in
//! f32 (f64 for `F64`), and every update clears the variable's cached compute-type copy.
//!
//! Training a model whose policy computes in f16 needs loss scaling; the [`OptimizerFor`] bound
//! makes a plain optimizer on such a model a compile error that says to wrap it.

mod adam;
mod loss_scale;
mod sgd;

pub use adam::Adam;
#[cfg(feature = "serde")] // checkpoints, which need serde for their metadata
pub(crate) use loss_scale::valid_scale;
pub use loss_scale::{LossScaleOptimizer, LossScaleState, DEFAULT_MIN_SCALE};
pub use sgd::Sgd;

use num_traits::Zero;
use typenum::B0;

use rayon::prelude::*;

use crate::dtype::{cast_slice, Element, VecOf};
use crate::error::{Error, Result};
use crate::kernels::gemm::RepackBlock;
use crate::module::Module;
use crate::policy::{Bf16, MixedBf16, Policy, F32, F64};

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

    /// The loss scale's state, for optimizers that scale the loss.
    fn loss_scale_state(&self) -> Option<LossScaleState> {
        None
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

    /// Restores a saved loss-scale state; a no-op for optimizers that do not scale the loss.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for a scale that is not finite and positive.
    fn restore_loss_scale_state(&mut self, _state: LossScaleState) -> Result<()> {
        Ok(())
    }
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

/// Gate: `Self` may train a model of policy `P`. Plain optimizers train every policy whose
/// compute type is not f16; [`LossScaleOptimizer`] trains every policy.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot train a `{P}` model: float16 compute needs loss scaling",
    label = "this optimizer does not scale the loss",
    note = "float16 gradients underflow to zero without loss scaling; wrap the optimizer: `LossScaleOptimizer::new(optimizer)`"
)]
pub trait OptimizerFor<P: Policy>: Optimizer {}

/// An optimizer that does not scale the loss ([`Sgd`], [`Adam`]): it trains every policy
/// except the float16-compute ones, for which [`Policy::auto_optimizer`] wraps it in a
/// [`LossScaleOptimizer`].
pub trait PlainOptimizer:
    Optimizer + OptimizerFor<F32> + OptimizerFor<F64> + OptimizerFor<Bf16> + OptimizerFor<MixedBf16>
{
}
impl PlainOptimizer for Sgd {}
impl PlainOptimizer for Adam {}

/// Implemented for typenum's `B0` only: "this policy does not need loss scaling".
#[diagnostic::on_unimplemented(
    message = "this policy computes in float16, so training it needs loss scaling",
    label = "this optimizer does not scale the loss",
    note = "wrap the optimizer: `LossScaleOptimizer::new(optimizer)`"
)]
pub trait NoLossScaleNeeded {}
impl NoLossScaleNeeded for B0 {}

macro_rules! plain_optimizer_gate {
    ($($t:ty),*) => {$(
        impl<P: Policy> OptimizerFor<P> for $t where P::NeedsLossScale: NoLossScaleNeeded {}
    )*};
}
plain_optimizer_gate!(Sgd, Adam);

impl<P: Policy, O: Optimizer> OptimizerFor<P> for LossScaleOptimizer<O> {}

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

/// One variable's element-wise update, as [`for_each_grad`] hands it to an optimizer: the
/// weights and gradients in the accumulator type, the factor `scale` (the loss scale's inverse)
/// that every gradient must be multiplied by, and the variable's index (for its optimizer state).
///
/// [`par_apply`](Self::par_apply) runs the update over chunks in parallel and repacks the
/// variable's cached packed copies chunk by chunk as it goes (see
/// [`Param::update_repacking`](crate::param::Param)); an update that does not use it is still
/// correct, the copies are then packed afresh on next use.
pub(crate) struct VarUpdate<'a, A: Element, C: Element> {
    /// Index of the variable in visiting order.
    pub index: usize,
    /// The weights.
    pub w: &'a mut [A],
    /// The gradients, still to be multiplied by `scale`.
    pub g: &'a [A],
    /// `1 / loss scale` (1 without loss scaling).
    pub scale: A,
    /// The largest magnitude a new weight may have: the variable type's largest finite value,
    /// in `A`. An update whose result is beyond it (or NaN) keeps the old weight and state.
    pub limit: A,
    chunk: usize,
    blocks: Vec<Option<RepackBlock<'a, C>>>,
}

impl<A: Element, C: Element> VarUpdate<'_, A, C> {
    /// Number of elements.
    pub fn len(&self) -> usize {
        self.w.len()
    }

    /// Runs `f(w, g, state)` on matching chunks of the weights, the gradients and each slice of
    /// `state` (each as long as the weights), chunks in parallel, and repacks each chunk of
    /// weights into the packed copies right after `f` returns. `f` returns how many elements it
    /// held back (left unchanged because their new value was not finite, see
    /// [`limit`](Self::limit)); the sum is returned.
    ///
    /// # Panics
    ///
    /// If a state slice is not as long as the weights.
    pub fn par_apply(
        self,
        state: &mut [Vec<A>],
        f: impl Fn(&mut [A], &[A], &mut [&mut [A]]) -> usize + Sync,
    ) -> usize {
        let (chunk, n) = (self.chunk, self.w.len());
        let mut per_chunk: Vec<Vec<&mut [A]>> =
            (0..n.div_ceil(chunk)).map(|_| Vec::new()).collect();
        for s in state.iter_mut() {
            assert_eq!(s.len(), n, "optimizer state length");
            for (dst, c) in per_chunk.iter_mut().zip(s.chunks_mut(chunk)) {
                dst.push(c);
            }
        }
        self.w
            .par_chunks_mut(chunk)
            .zip(self.g.par_chunks(chunk))
            .zip(per_chunk)
            .zip(self.blocks)
            .map(|(((w, g), mut st), block)| {
                let held = f(w, g, &mut st);
                if let (Some(block), Some(w)) = (block, f32::from_view(A::view(w))) {
                    block.pack(w);
                }
                held
            })
            .sum()
    }
}

/// Runs `update` for every variable of `model` with a [`VarUpdate`]: weights and gradients in
/// the accumulator type of the variables. When the variable type is its own accumulator type
/// (f32, f64), both slices are the variable's own memory (no copy); otherwise each is converted
/// once into a scratch buffer reused across variables, and the weights are rounded back after the
/// update. Errors if a gradient is missing or `inv_scale` is not a finite positive number.
pub(crate) fn for_each_grad<M: Module>(
    model: &mut M,
    inv_scale: f32,
    mut update: impl FnMut(VarUpdate<'_, VarAcc<M>, ComputeOf<M>>) -> Result<()>,
) -> Result<()> {
    type V<M> = <<M as Module>::Policy as Policy>::Variable;
    check_positive("gradient unscaling factor", inv_scale)?;
    let (mut index, mut result) = (0, Ok(()));
    let (mut g_buf, mut w_buf) = (Vec::new(), Vec::new());
    let scale = VarAcc::<M>::from_f32_rne(inv_scale);
    let limit = VarAcc::<M>::from_f64_rne(V::<M>::DTYPE.max_finite());
    model.visit_params_mut(&mut |p| {
        if result.is_err() {
            return;
        }
        result = p.update_repacking(PAR_CHUNK, |u| {
            let Some(grad) = u.grad else {
                return Err(Error::InvalidArgument {
                    what: "gradient",
                    found: format!("none for variable #{index}"),
                    expected: "a backward pass before the optimizer step",
                });
            };
            let g: &[VarAcc<M>] = match VarAcc::<M>::from_view(V::<M>::view(grad)) {
                Some(same) => same,
                None => {
                    g_buf.resize(grad.len(), VarAcc::<M>::zero());
                    cast_slice(grad, &mut g_buf);
                    &g_buf
                }
            };
            let (chunk, blocks) = (u.chunk, u.blocks);
            match VarAcc::<M>::from_view_mut(V::<M>::view_mut(u.value)) {
                Some(w) => update(VarUpdate {
                    index,
                    w,
                    g,
                    scale,
                    limit,
                    chunk,
                    blocks,
                }),
                None => {
                    w_buf.resize(u.value.len(), VarAcc::<M>::zero());
                    cast_slice(u.value, &mut w_buf);
                    let r = update(VarUpdate {
                        index,
                        w: &mut w_buf,
                        g,
                        scale,
                        limit,
                        chunk,
                        blocks: blocks.into_iter().map(|_| None).collect(),
                    });
                    cast_slice(&w_buf, u.value);
                    r
                }
            }
        });
        index += 1;
    });
    result
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

/// The compute type of a model's policy.
pub(crate) type ComputeOf<M> = <<M as Module>::Policy as Policy>::Compute;

/// The accumulator type of a model's variables.
pub(crate) type VarAcc<M> = <<<M as Module>::Policy as Policy>::Variable as Element>::Acc;

/// True when every gradient of `model` is finite (a missing gradient counts as finite).
/// Gradients whose layer proved them finite ([`Param::grad_known_finite`]) are not scanned.
///
/// [`Param::grad_known_finite`]: crate::param::Param::grad_known_finite
pub fn grads_are_finite<M: Module>(model: &M) -> bool {
    let mut finite = true;
    model.visit_params("", &mut |_, p| {
        if p.grad_known_finite() {
            return;
        }
        if let (true, Some(g)) = (finite, p.grad_slice()) {
            finite = g.par_chunks(PAR_CHUNK).all(crate::dtype::all_finite);
        }
    });
    finite
}

/// Elements per rayon task in element-wise optimizer updates: large enough that a bias vector
/// stays one task, small enough that a 1024 × 1024 kernel splits across cores.
pub(crate) const PAR_CHUNK: usize = 1 << 15;

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
