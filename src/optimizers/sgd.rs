//! [`Sgd`]: stochastic gradient descent with optional momentum and Nesterov momentum (Keras's
//! `SGD`, same defaults: learning rate 0.01, momentum 0).

use crate::dtype::Element;
use crate::error::Result;
use crate::module::Module;
use crate::optimizers::{
    check_positive, check_unit_interval, commit, flush_below, update_each, Optimizer,
    OptimizerState, Slots, StepOutcome, STATE_FLOOR,
};
use crate::param::ElementwiseUpdate;

/// SGD: `v = momentum·v - lr·g; w += v` (Nesterov: `w += momentum·v - lr·g`); without
/// momentum `w -= lr·g`. State (the velocity) in f32 (f64 for `F64`).
///
/// ```
/// use mixprec::optimizers::Sgd;
/// let sgd = Sgd::new(0.1).with_momentum(0.9)?.with_nesterov(true);
/// assert!(Sgd::new(0.1).with_momentum(1.5).is_err());
/// # let _ = sgd;
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug)]
pub struct Sgd {
    learning_rate: f32,
    momentum: f32,
    nesterov: bool,
    iterations: u64,
    slots: Slots,
}

impl Default for Sgd {
    /// Keras's defaults: learning rate 0.01, no momentum.
    fn default() -> Self {
        Sgd {
            learning_rate: 0.01,
            momentum: 0.0,
            nesterov: false,
            iterations: 0,
            slots: Slots::new(),
        }
    }
}

impl Sgd {
    /// SGD with this learning rate.
    ///
    /// # Panics
    ///
    /// If the rate is not finite and positive; [`try_new`](Self::try_new) returns an error.
    pub fn new(learning_rate: f32) -> Self {
        Self::try_new(learning_rate).unwrap_or_else(|e| panic!("{e}"))
    }

    /// SGD with this learning rate.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidArgument`] unless the rate is finite and positive.
    pub fn try_new(learning_rate: f32) -> Result<Self> {
        Ok(Sgd {
            learning_rate: check_positive("learning_rate", learning_rate)?,
            ..Sgd::default()
        })
    }

    /// Sets the momentum.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidArgument`] unless `0 <= momentum < 1`.
    pub fn with_momentum(self, momentum: f32) -> Result<Self> {
        Ok(Sgd {
            momentum: check_unit_interval("momentum", momentum)?,
            ..self
        })
    }

    /// Uses Nesterov momentum.
    pub fn with_nesterov(self, nesterov: bool) -> Self {
        Sgd { nesterov, ..self }
    }
}

impl Optimizer for Sgd {
    fn step_unscaled<M: Module>(&mut self, model: &mut M, inv_scale: f32) -> Result<StepOutcome> {
        let (lr, momentum, nesterov) = (self.learning_rate, self.momentum, self.nesterov);
        let held = if momentum == 0.0 {
            update_each(model, inv_scale, &mut self.slots, 0, &Plain { lr })?
        } else {
            let update = Momentum {
                lr,
                momentum,
                nesterov,
            };
            update_each(model, inv_scale, &mut self.slots, 1, &update)?
        };
        self.iterations = self.iterations.saturating_add(1);
        held.into_result(self.learning_rate)?;
        Ok(StepOutcome::Applied)
    }

    fn iterations(&self) -> u64 {
        self.iterations
    }

    fn learning_rate(&self) -> f32 {
        self.learning_rate
    }

    fn export_state(&self) -> OptimizerState {
        OptimizerState {
            iterations: self.iterations,
            slots: self.slots.export(),
            loss_scale: None,
        }
    }

    fn import_state(&mut self, state: OptimizerState) -> Result<()> {
        self.slots = Slots::import(state.slots, 1)?;
        self.iterations = state.iterations;
        Ok(())
    }
}

/// SGD without momentum: `w -= lr·g`.
struct Plain {
    lr: f32,
}

impl ElementwiseUpdate for Plain {
    fn chunk<A: Element>(&self, w: &mut [A], g: &[A], _: &mut [&mut [A]], s: A, lim: A) -> usize {
        let lr = A::from_f32_rne(self.lr);
        let mut held = 0;
        for (w, &g) in w.iter_mut().zip(g) {
            let nw = *w - lr * (g * s);
            let ok = nw.abs() <= lim;
            *w = commit(ok, nw, *w);
            held += usize::from(!ok);
        }
        held
    }
}

/// SGD with (Nesterov) momentum; the velocity is the one state vector.
struct Momentum {
    lr: f32,
    momentum: f32,
    nesterov: bool,
}

impl ElementwiseUpdate for Momentum {
    fn chunk<A: Element>(
        &self,
        w: &mut [A],
        g: &[A],
        state: &mut [&mut [A]],
        s: A,
        lim: A,
    ) -> usize {
        let (lr, mu) = (A::from_f32_rne(self.lr), A::from_f32_rne(self.momentum));
        let floor = A::from_f64_rne(STATE_FLOOR);
        let [v] = state else {
            unreachable!("SGD with momentum keeps one slot")
        };
        let mut held = 0;
        for ((w, v), &g) in w.iter_mut().zip(v.iter_mut()).zip(g) {
            let g = g * s;
            let nv = flush_below(mu * *v - lr * g, floor);
            let nw = if self.nesterov {
                *w + mu * nv - lr * g
            } else {
                *w + nv
            };
            // A finite weight with an infinite velocity would overflow next step.
            let ok = nw.abs() <= lim && nv.is_finite();
            *w = commit(ok, nw, *w);
            *v = commit(ok, nv, *v);
            held += usize::from(!ok);
        }
        held
    }
}
