//! [`Adam`] (Keras's `Adam`, same defaults) and AdamW's decoupled weight decay
//! ([`Adam::with_weight_decay`], [`Adam::adamw`]).

use crate::dtype::Element;
use crate::error::Result;
use crate::kernels::{wide, WideOp};
use crate::module::Module;
use crate::optimizers::{
    check_positive, check_unit_interval, commit, flush_below, update_each, Optimizer,
    OptimizerState, Slots, StepOutcome, GRAD_FLOOR, STATE_FLOOR,
};
use crate::param::ElementwiseUpdate;

/// Adam, as Keras computes it: with `t` the 1-based step,
/// `α = lr·sqrt(1 - β₂ᵗ) / (1 - β₁ᵗ)`, `m += (g - m)(1 - β₁)`, `v += (g² - v)(1 - β₂)`,
/// `w -= α·m / (sqrt(v) + ε)`. With weight decay `λ` (AdamW), first `w -= lr·λ·w`.
/// Defaults: lr 0.001, β₁ 0.9, β₂ 0.999, ε 1e-7, no weight decay. State (`m`, `v`) in f32
/// (f64 for `F64`).
///
/// ```
/// use mixprec::optimizers::Adam;
/// let adam = Adam::new(1e-3);
/// let adamw = Adam::adamw(1e-3); // weight decay 0.004, Keras's AdamW default
/// assert!(Adam::new(1e-3).with_betas(0.9, 1.0).is_err());
/// # let _ = (adam, adamw);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug)]
pub struct Adam {
    learning_rate: f32,
    beta_1: f32,
    beta_2: f32,
    epsilon: f32,
    weight_decay: f32,
    iterations: u64,
    slots: Slots,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            learning_rate: 1e-3,
            beta_1: 0.9,
            beta_2: 0.999,
            epsilon: 1e-7,
            weight_decay: 0.0,
            iterations: 0,
            slots: Slots::new(),
        }
    }
}

impl Adam {
    /// Adam with this learning rate and Keras's other defaults.
    ///
    /// # Panics
    ///
    /// If the rate is not finite and positive; [`try_new`](Self::try_new) returns an error.
    pub fn new(learning_rate: f32) -> Self {
        Self::try_new(learning_rate).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Adam with this learning rate.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidArgument`] unless the rate is finite and positive.
    pub fn try_new(learning_rate: f32) -> Result<Self> {
        Ok(Adam {
            learning_rate: check_positive("learning_rate", learning_rate)?,
            ..Adam::default()
        })
    }

    /// AdamW: Adam with Keras's default decoupled weight decay 0.004.
    ///
    /// # Panics
    ///
    /// As [`new`](Self::new).
    pub fn adamw(learning_rate: f32) -> Self {
        Adam {
            weight_decay: 0.004,
            ..Self::new(learning_rate)
        }
    }

    /// Sets β₁ and β₂.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidArgument`] unless both are in `[0, 1)`.
    pub fn with_betas(self, beta_1: f32, beta_2: f32) -> Result<Self> {
        Ok(Adam {
            beta_1: check_unit_interval("beta_1", beta_1)?,
            beta_2: check_unit_interval("beta_2", beta_2)?,
            ..self
        })
    }

    /// Sets ε.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidArgument`] unless ε is finite and positive.
    pub fn with_epsilon(self, epsilon: f32) -> Result<Self> {
        Ok(Adam {
            epsilon: check_positive("epsilon", epsilon)?,
            ..self
        })
    }

    /// Sets the decoupled weight decay λ (AdamW); 0 turns it off.
    ///
    /// # Errors
    ///
    /// [`crate::Error::InvalidArgument`] unless `0 <= λ < 1`.
    pub fn with_weight_decay(self, weight_decay: f32) -> Result<Self> {
        Ok(Adam {
            weight_decay: check_unit_interval("weight_decay", weight_decay)?,
            ..self
        })
    }
}

impl Optimizer for Adam {
    fn step_unscaled<M: Module>(&mut self, model: &mut M, inv_scale: f32) -> Result<StepOutcome> {
        let t = self.iterations.saturating_add(1) as f64;
        let (b1, b2) = (f64::from(self.beta_1), f64::from(self.beta_2));
        let update = Update {
            alpha: f64::from(self.learning_rate) * (1.0 - b2.powf(t)).sqrt() / (1.0 - b1.powf(t)),
            decay: f64::from(self.learning_rate) * f64::from(self.weight_decay),
            eps: self.epsilon,
            one_b1: 1.0 - b1,
            one_b2: 1.0 - b2,
        };
        let held = update_each(model, inv_scale, &mut self.slots, 2, &update)?;
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
        self.slots = Slots::import(state.slots, 2)?;
        self.iterations = state.iterations;
        Ok(())
    }
}

/// One Adam step's constants, in f64, rounded once to each variable's accumulator type.
struct Update {
    alpha: f64,
    decay: f64,
    eps: f32,
    one_b1: f64,
    one_b2: f64,
}

impl ElementwiseUpdate for Update {
    fn chunk<A: Element>(
        &self,
        w: &mut [A],
        g: &[A],
        state: &mut [&mut [A]],
        s: A,
        limit: A,
    ) -> usize {
        let c = |x: f64| A::from_f64_rne(x);
        let k = Coeffs {
            s,
            limit,
            alpha: c(self.alpha),
            decay: c(self.decay),
            eps: A::from_f32_rne(self.eps),
            one_b1: c(self.one_b1),
            one_b2: c(self.one_b2),
            g_floor: c(GRAD_FLOOR),
            s_floor: c(STATE_FLOOR),
        };
        // Element-wise, in AVX-512 lanes where present (chunks are spread over rayon's pool by
        // `Param::apply_update`).
        match state {
            [m, v] => wide(Chunk { w, m, v, g, k }),
            _ => unreachable!("Adam keeps two slots"),
        }
    }
}

/// Adam's per-step constants, in the accumulator type.
#[derive(Clone, Copy)]
struct Coeffs<A> {
    /// `1 / loss scale`.
    s: A,
    /// The largest new weight magnitude ([`VarUpdate::limit`](crate::optimizers::VarUpdate)).
    limit: A,
    alpha: A,
    decay: A,
    eps: A,
    one_b1: A,
    one_b2: A,
    g_floor: A,
    s_floor: A,
}

/// One chunk of Adam's update.
struct Chunk<'a, A> {
    w: &'a mut [A],
    m: &'a mut [A],
    v: &'a mut [A],
    g: &'a [A],
    k: Coeffs<A>,
}

impl<A: Element> WideOp for Chunk<'_, A> {
    /// Elements held back: their new weight was beyond `limit` or NaN, or their new `v` was not
    /// finite; they keep their old weight, `m` and `v`.
    type Output = usize;

    #[inline(always)]
    fn run(self) -> usize {
        let k = self.k;
        // Counted in u32 lanes, as wide as the f32 lanes (a chunk is far below 2^32 elements).
        let mut held = 0u32;
        for (((w, m), v), &g) in self.w.iter_mut().zip(self.m).zip(self.v).zip(self.g) {
            let nw = *w - k.decay * *w;
            let g = flush_below(g * k.s, k.g_floor);
            let nm = flush_below(*m + (g - *m) * k.one_b1, k.s_floor);
            let nv = flush_below(*v + (g * g - *v) * k.one_b2, k.s_floor);
            let nw = nw - k.alpha * nm / (nv.sqrt() + k.eps);
            // `&`, not `&&`, and plain compares (`v` is never negative, so `nv <= MAX` is false
            // exactly for inf and NaN): with `is_finite` the step measured ~2% slower.
            let ok = (nw.abs() <= k.limit) & (nv <= A::max_value());
            *w = commit(ok, nw, *w);
            *m = commit(ok, nm, *m);
            *v = commit(ok, nv, *v);
            held += u32::from(!ok);
        }
        held as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::Dense;
    use crate::module::Module;
    use crate::policy::F32;
    use crate::tensor::Tensor;

    fn set_grad(d: &mut Dense<F32>, g: f32) {
        struct SetGrad(f32);
        impl crate::module::ParamVisitorMut for SetGrad {
            fn visit<P: crate::policy::Policy>(&mut self, p: &mut crate::param::Param<P>) {
                let g = Tensor::from_vec(vec![1, 1], vec![self.0]).unwrap().cast();
                p.set_grad(g).unwrap();
            }
        }
        d.visit_params_mut(&mut SetGrad(g));
    }

    /// The update compiled for 512-bit lanes (`wide`) computes the same bits as the portable
    /// build, over ordinary, tiny, huge, zero, NaN and infinite inputs.
    #[test]
    fn wide_update_is_bit_identical_to_the_portable_one() {
        let specials = [
            0.0f32,
            -0.0,
            1e-40,
            3e38,
            f32::INFINITY,
            f32::NAN,
            1e-20,
            -2.5,
        ];
        let val = |i: usize, salt: usize| -> f32 {
            let x = ((i * 7919 + salt * 104_729) % 2003) as f32 / 1000.0 - 1.0;
            if (i + salt).is_multiple_of(37) {
                specials[(i / 37 + salt) % specials.len()]
            } else {
                x * [1.0, 1e-3, 1e3][(i + salt) % 3]
            }
        };
        let n = 1000;
        let (w0, m0, g): (Vec<f32>, Vec<f32>, Vec<f32>) = (
            (0..n).map(|i| val(i, 1)).collect(),
            (0..n).map(|i| val(i, 2)).collect(),
            (0..n).map(|i| val(i, 3)).collect(),
        );
        let v0: Vec<f32> = (0..n).map(|i| val(i, 4).abs()).collect();
        let k = Coeffs {
            s: 0.5,
            limit: f32::MAX,
            alpha: 1e-3,
            decay: 1e-4,
            eps: 1e-7,
            one_b1: 0.1,
            one_b2: 0.001,
            g_floor: GRAD_FLOOR as f32,
            s_floor: STATE_FLOOR as f32,
        };
        let run = |wide_lanes: bool| {
            let (mut w, mut m, mut v) = (w0.clone(), m0.clone(), v0.clone());
            let c = Chunk {
                w: &mut w,
                m: &mut m,
                v: &mut v,
                g: &g,
                k,
            };
            let held = if wide_lanes { wide(c) } else { c.run() };
            let bits = |x: &[f32]| x.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            (bits(&w), bits(&m), bits(&v), held)
        };
        let (wide_run, portable) = (run(true), run(false));
        assert!(
            portable.3 > 0,
            "the specials must exercise the held-back path"
        );
        assert_eq!(wide_run, portable);
    }

    /// Where the gradient stays zero, `m` decays by β₁ per step; it must reach exactly 0 without
    /// passing through the subnormal range (where each operation is ~100x slower on x86).
    #[test]
    fn decaying_state_never_becomes_subnormal() {
        let k = Tensor::from_vec(vec![1, 1], vec![1.0f32]).unwrap();
        let mut d = Dense::<F32>::from_weights(k, None).unwrap();
        let mut adam = Adam::new(1e-3);
        set_grad(&mut d, 1.0);
        let _ = adam.step(&mut d).unwrap();
        for _ in 0..2000 {
            set_grad(&mut d, 0.0);
            let _ = adam.step(&mut d).unwrap();
            let state = adam.slots.get::<f32>(0, 1, 2).unwrap();
            for s in &state {
                assert!(
                    s[0] == 0.0 || s[0].is_normal(),
                    "subnormal optimizer state {:e}",
                    s[0]
                );
            }
            adam.slots.put(0, state);
        }
        let state = adam.slots.get::<f32>(0, 1, 2).unwrap();
        assert_eq!(state[0][0], 0.0, "m must have been flushed to zero");
    }
}
