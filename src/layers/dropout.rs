//! [`Dropout`]: Keras's `Dropout(rate, seed=…)`, inverted scaling, seeded by a counter-based
//! hash of `(seed, step, element)` so a mask is reproducible from the seed and the step alone
//! (no saved mask, no state shared between threads).

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::dtype::Element;
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::saved::{Geometry, Saved};
use crate::layers::ops::stateless::impl_stateless_module;
use crate::layers::Layer;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

#[cfg(feature = "serde")]
mod config;
#[cfg(test)]
mod tests;

/// The arguments of Keras's `Dropout`: `rate` (the fraction of elements dropped, `0 <= rate
/// <= 1`) and `seed`. Keras's `noise_shape` (a mask broadcast over some axes) is not supported;
/// its JSON is accepted only as `null`.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "config::KerasDropout"))]
#[non_exhaustive]
pub struct DropoutConfig {
    /// The fraction of elements set to zero in training.
    pub rate: f64,
    /// The seed of the masks. Keras's `seed=None` draws a fresh one; here
    /// [`DropoutConfig::new`] takes the next of a process-wide sequence (see [`Dropout::new`]).
    pub seed: u64,
}

/// Seeds for `Dropout`s built without one: `DEFAULT_SEED`, then one more for each layer, so two
/// dropout layers of one model never share masks.
static NEXT_SEED: AtomicU64 = AtomicU64::new(crate::init::DEFAULT_SEED);

impl DropoutConfig {
    /// `rate` with the next seed of the process-wide sequence.
    pub fn new(rate: f64) -> Self {
        DropoutConfig {
            rate,
            seed: NEXT_SEED.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// `rate` with `seed`.
    pub const fn with_seed(rate: f64, seed: u64) -> Self {
        DropoutConfig { rate, seed }
    }

    /// Checks the rate.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `rate` is NaN or outside `[0, 1]`.
    pub fn validate(&self) -> Result<()> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(Error::InvalidArgument {
                what: "dropout rate",
                found: format!("{}", self.rate),
                expected: "a fraction in [0, 1] (Keras's `rate`: the share of inputs dropped)",
            });
        }
        Ok(())
    }

    /// The layer, after [`validate`](Self::validate).
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn build<P: Policy>(&self) -> Result<Dropout<P>> {
        self.validate()?;
        Ok(Dropout {
            args: *self,
            step: 0,
            saved: Saved::default(),
            _policy: PhantomData,
        })
    }
}

/// Keras's `Dropout`: in training, each element is zeroed with probability `rate` and the
/// others are divided by `1 − rate` (inverted dropout: inference is the identity). The
/// quotient is formed in f64 and rounded once to the compute type.
///
/// The mask of training step `s` is a pure function of `(seed, s, element index)` (a
/// SplitMix64 hash of the counter, as JAX's and Philox's counter-based generators), so it is
/// the same on any number of threads, needs no saved mask for backward (only the step), and a
/// resumed run reproduces it with [`set_step`](Self::set_step). Each
/// [`train_forward`](Layer::train_forward) uses the current step and then advances it by one.
///
/// NaN and infinite inputs of dropped elements become 0 (the mask selects, as Keras's `where`);
/// kept ones pass through scaled.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::Dropout;
/// let mut drop = Dropout::<MixedBf16>::with_seed(0.5, 7)?;
/// let x = Tensor::from_vec(vec![2, 4], vec![bf16::ONE; 8])?;
/// assert_eq!(drop.infer(&x)?, x); // inference: the identity
/// let y = drop.train_forward(x.clone())?.to_f64_vec();
/// assert!(y.iter().all(|&v| v == 0.0 || v == 2.0)); // dropped, or kept and scaled by 1/(1 − 0.5)
/// // The same seed and step give the same mask.
/// let mut again = Dropout::<MixedBf16>::with_seed(0.5, 7)?;
/// assert_eq!(again.train_forward(x)?.to_f64_vec(), y);
/// assert!(Dropout::<F32>::new(1.5).is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Dropout<P: Policy = DefaultPolicy> {
    args: DropoutConfig,
    /// The step the next training pass uses.
    step: u64,
    /// The step and shape of the last training pass.
    saved: Saved<Geometry<(u64, Vec<usize>)>>,
    _policy: PhantomData<P>,
}

impl_stateless_module!(Dropout);

impl<P: Policy> PartialEq for Dropout<P> {
    /// Equal rate, seed and step.
    fn eq(&self, other: &Self) -> bool {
        self.args == other.args && self.step == other.step
    }
}

impl<P: Policy> Dropout<P> {
    /// `Dropout(rate)`, seeded from a process-wide sequence (each new layer takes the next
    /// seed, as Keras's `seed=None` draws a fresh one; use [`with_seed`](Self::with_seed) to
    /// fix it).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `rate` is NaN or outside `[0, 1]`.
    pub fn new(rate: f64) -> Result<Self> {
        DropoutConfig::new(rate).build()
    }

    /// `Dropout(rate, seed=seed)`.
    ///
    /// # Errors
    ///
    /// As [`new`](Self::new).
    pub fn with_seed(rate: f64, seed: u64) -> Result<Self> {
        DropoutConfig::with_seed(rate, seed).build()
    }

    fn to_policy_of<Q: Policy>(&self) -> Dropout<Q> {
        Dropout {
            args: self.args,
            step: self.step,
            saved: Saved::default(),
            _policy: PhantomData,
        }
    }

    /// The arguments.
    pub fn config(&self) -> DropoutConfig {
        self.args
    }

    /// The step the next training pass uses (the number of training passes so far, unless set).
    pub fn step(&self) -> u64 {
        self.step
    }

    /// Sets the step the next training pass uses (to resume a run's masks).
    pub fn set_step(&mut self, step: u64) {
        self.step = step;
    }

    /// Whether element `index` is kept at `step`: a pure function of the seed, the step and
    /// the index.
    pub fn keeps(&self, step: u64, index: usize) -> bool {
        Mask::new(self.args, step).keeps(index)
    }

    /// The inference pass: `x` unchanged (a copy).
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Tensor<P::Compute> {
        x.clone()
    }

    /// Keras's `layer(x)` in inference: `x` cast to the compute type.
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Tensor<P::Compute> {
        x.cast_ref::<P::Compute>().into_owned()
    }
}

/// The keep decision of one step: element `i` is kept when the SplitMix64 output of state
/// `stream + (i + 1)·γ` is at least `rate · 2⁶⁴`.
#[derive(Clone, Copy)]
struct Mask {
    stream: u64,
    /// Kept when the hash is at least this (`None`: nothing is kept, `rate == 1`).
    threshold: Option<u64>,
    /// `1 − rate`, the divisor of kept elements.
    keep: f64,
}

const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Mask {
    fn new(args: DropoutConfig, step: u64) -> Self {
        // rate · 2⁶⁴, exact for rates that are multiples of 2⁻⁵³; `as` saturates below 2⁶⁴.
        let threshold =
            (args.rate < 1.0).then_some((args.rate * 18_446_744_073_709_551_616.0) as u64);
        Mask {
            stream: mix(mix(args.seed) ^ step.wrapping_mul(GAMMA)),
            threshold,
            keep: 1.0 - args.rate,
        }
    }

    fn keeps(&self, index: usize) -> bool {
        // Out-of-range elements (`out` starts at 0) are the dropped ones.
        let h = mix(self
            .stream
            .wrapping_add((index as u64 + 1).wrapping_mul(GAMMA)));
        self.threshold.is_some_and(|t| h >= t)
    }

    /// `x ⊙ mask / (1 − rate)`: each kept quotient formed in f64 and rounded once to `C`.
    fn apply<C: Element>(&self, x: &[C]) -> Vec<C> {
        if self.threshold == Some(0) {
            return x.to_vec(); // rate 0: every element kept, scale 1
        }
        crate::kernels::par_collect(x.len(), |range, out| {
            for ((i, &v), o) in range.clone().zip(&x[range]).zip(out.iter_mut()) {
                if self.keeps(i) {
                    *o = C::from_f64_rne(v.as_f64() / self.keep);
                }
            }
        })
    }
}

impl<P: Policy> Layer for Dropout<P> {
    type Input = P::Compute;
    type Output = P::Compute;

    fn infer(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        Ok(self.forward(x))
    }

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let step = self.step;
        self.step = self.step.wrapping_add(1);
        let y = Mask::new(self.args, step).apply(x.as_slice());
        let shape = x.shape().to_vec();
        self.saved.save(Geometry((step, shape.clone())));
        Ok(Tensor::from_parts(shape, y))
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let Geometry((step, shape)) = self.saved.take("Dropout")?;
        if dy.shape() != shape.as_slice() {
            let expected = fmt_shape(&shape);
            return Err(Error::shape(
                "Dropout output gradient",
                expected,
                dy.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        let dx = Mask::new(self.args, step).apply(dy.as_slice());
        Ok(Some(Tensor::from_parts(shape, dx)))
    }

    fn saved_bytes(&self) -> usize {
        0
    }

    fn clear_saved(&mut self) {
        self.saved.clear();
    }

    fn output_dim(&self, input: usize) -> Option<usize> {
        Some(input)
    }
}
