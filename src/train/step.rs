//! [`train_on_batch`]: one training step (forward, f32 loss, scaled backward, optimizer update)
//! on rayon's pool, with the pool's other threads polling for the step's work. [`fit`](super::fit)
//! trains through it.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{Error, Result};
use crate::layers::Layer;
use crate::losses::{Loss, Targets};
use crate::optimizers::{grads_are_finite, OptimizerFor, StepOutcome};
use crate::tensor::Tensor;

/// What one [`train_on_batch`] step did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepLogs {
    /// The batch's mean loss, in f32 arithmetic (before any loss scaling).
    pub loss: f64,
    /// Rows whose highest logit is the target class (class targets only).
    pub correct: Option<usize>,
    /// Whether the optimizer applied the update or skipped it (loss scaling).
    pub outcome: StepOutcome,
    /// Bytes of activations the model saved for its backward pass in this step.
    pub activation_bytes: usize,
}

/// One training step on one batch, as Keras's `train_on_batch`: forward, f32 loss, scaled
/// backward, optimizer update. `x` is cast to the model's input type once (free when it already
/// is that type).
///
/// The step runs on a thread of rayon's pool, so the kernels' parallel loops inside it fork and
/// join from a pool thread instead of handing work across from the caller's thread for each loop
/// (measured on a MixedBf16 MLP step: 6.0 ms from the caller's thread, 5.4 ms on the pool; see
/// `docs/PERFORMANCE.md`). While the step runs, the pool's other threads poll for its work
/// instead of sleeping between its loops (they may also run other jobs queued on the same pool;
/// the call returns when each has finished what it picked up and seen the step end).
/// [`fit`](super::fit) trains through this function.
///
/// # Errors
///
/// [`Error::ShapeMismatch`] when `x` or `targets` do not fit the model; [`Error::NonFinite`]
/// when the loss or a gradient is NaN or infinite and the optimizer does not scale the loss (the
/// weights are left unchanged); a loss-scaling optimizer instead skips the update and says so in
/// [`StepLogs::outcome`].
///
/// ```
/// use mixprec::losses::{Loss, Targets};
/// use mixprec::optimizers::{Optimizer, Sgd};
/// use mixprec::prelude::*;
/// use mixprec::train::train_on_batch;
/// let mut model = Dense::<MixedBf16>::new(3, 2).with_seed(1);
/// let mut opt = Sgd::new(0.1);
/// let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, 0.0, -1.0, 0.5, 0.5, 0.5])?;
/// let loss = Loss::SparseCategoricalCrossentropy { from_logits: true };
/// let logs = train_on_batch(&mut model, &mut opt, x, Targets::Classes(&[0, 1]), loss)?;
/// assert!(logs.loss.is_finite() && logs.outcome.is_applied());
/// assert_eq!(opt.iterations(), 1);
/// # Ok::<(), mixprec::Error>(())
/// ```
pub fn train_on_batch<M, O, E>(
    model: &mut M,
    optimizer: &mut O,
    x: Tensor<E>,
    targets: Targets<'_>,
    loss: Loss,
) -> Result<StepLogs>
where
    M: Layer + Send,
    O: OptimizerFor<M>,
    E: crate::dtype::Element,
{
    let done = AtomicBool::new(false);
    rayon::scope(|s| {
        let home = rayon::current_thread_index();
        let done = &done;
        for _ in 1..rayon::current_num_threads() {
            s.spawn(move |_| poll_for_work(done, home));
        }
        // Set when the step ends, also by unwinding from a panic inside it.
        let _end = EndOfStep(done);
        step_here(model, optimizer, x.into_cast(), targets, loss)
    })
}

/// Tells the polling threads that the step has ended, when dropped.
struct EndOfStep<'a>(&'a AtomicBool);

impl Drop for EndOfStep<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// How long a pool thread keeps polling with nothing to run before it gives up and lets rayon
/// put it to sleep.
const POLL_IDLE: std::time::Duration = std::time::Duration::from_micros(200);

/// Keeps one pool thread polling for the step's parallel work until the step is `done`, instead
/// of sleeping between the step's short parallel loops and being woken for each (a futex wake per
/// loop; in the MixedBf16 MLP step, rayon's sleeping and waking took 8–10% of CPU time).
///
/// Returns at once on the step's own thread (`home`), which must not wait for itself. A thread
/// that finds nothing to run for [`POLL_IDLE`] returns too: such a thread may have picked this
/// job up while it waited inside a parallel loop of the step, and that loop cannot finish until
/// it returns.
fn poll_for_work(done: &AtomicBool, home: Option<usize>) {
    if rayon::current_thread_index() == home {
        return;
    }
    let mut idle_since = None;
    while !done.load(Ordering::Acquire) {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => idle_since = None,
            Some(rayon::Yield::Idle) => {
                let since = *idle_since.get_or_insert_with(std::time::Instant::now);
                if since.elapsed() > POLL_IDLE {
                    return;
                }
                // Lets a runnable thread outside the pool (matrixmultiply's workers in F32
                // products) have the core; returns at once when there is none.
                std::thread::yield_now();
            }
            None => return,
        }
    }
}

/// [`train_on_batch`] on the calling thread.
fn step_here<M, O>(
    model: &mut M,
    optimizer: &mut O,
    x: Tensor<M::Input>,
    targets: Targets<'_>,
    loss: Loss,
) -> Result<StepLogs>
where
    M: Layer,
    O: OptimizerFor<M>,
{
    let logits = model.train_forward(x)?;
    let activation_bytes = model.saved_bytes();
    let out = match loss.loss_and_grad(&logits, targets, optimizer.loss_scale()) {
        Ok(out) => out,
        Err(e) => {
            model.clear_saved();
            return Err(e);
        }
    };
    let scaled = optimizer.scales_loss();
    if !scaled && !out.loss.is_finite() {
        model.clear_saved();
        return Err(Error::NonFinite {
            what: "loss",
            value: out.loss,
            epoch: 0,
            batch: 0,
        });
    }
    model.backward(out.grad, false)?;
    if !scaled && !grads_are_finite(model) {
        return Err(Error::NonFinite {
            what: "gradient",
            value: f64::NAN,
            epoch: 0,
            batch: 0,
        });
    }
    let outcome = optimizer.step(model)?;
    Ok(StepLogs {
        loss: out.loss,
        correct: out.correct,
        outcome,
        activation_bytes,
    })
}
