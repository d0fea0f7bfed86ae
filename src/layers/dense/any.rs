//! [`DenseFamily`] and [`AnyDense`]: a `Dense` whose policy is chosen at run time.

use super::Dense;
use crate::error::{Error, Result};
use crate::layers::dispatch::{ByPolicy, FamilyBuilder, PolicyFamily};
use crate::policy::Policy;
use crate::tensor::Tensor;
use crate::{global_policy, DTypePolicy};

/// The family `P ↦ Dense<P>`, for [`ByPolicy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DenseFamily;

impl PolicyFamily for DenseFamily {
    type At<P: Policy> = Dense<P>;
}

/// A [`Dense`] whose policy was chosen at run time (from a string, a config, or the global
/// policy, read once at construction).
///
/// ```
/// use mixprec::prelude::*;
/// let dense = AnyDense::with_policy("mixed_float16".parse()?, 3, 2)?;
/// assert_eq!(dense.policy(), DTypePolicy::MixedFloat16);
/// let y = dense.call_f32(&Tensor::from_vec(vec![1, 3], vec![1.0f32, 2.0, 3.0])?)?;
/// assert_eq!(y.shape(), &[1, 2]);
/// # Ok::<(), mixprec::Error>(())
/// ```
pub type AnyDense = ByPolicy<DenseFamily>;

struct NewDense {
    input_dim: usize,
    units: usize,
}

impl FamilyBuilder<DenseFamily> for NewDense {
    type Error = Error;
    fn build<P: Policy>(self) -> Result<Dense<P>> {
        Dense::try_new(self.input_dim, self.units)
    }
}

impl AnyDense {
    /// A `Dense` in the current [`global_policy`] (read now; later changes do not affect it).
    ///
    /// # Errors
    ///
    /// As [`Dense::try_new`].
    pub fn new(input_dim: usize, units: usize) -> Result<Self> {
        Self::with_policy(global_policy(), input_dim, units)
    }

    /// A `Dense` in `policy`.
    ///
    /// # Errors
    ///
    /// As [`Dense::try_new`].
    pub fn with_policy(policy: DTypePolicy, input_dim: usize, units: usize) -> Result<Self> {
        ByPolicy::build(policy, NewDense { input_dim, units })
    }

    /// Casts `x` to the compute type, runs the typed forward pass, and widens the result to f32.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., input_dim]`.
    pub fn call_f32(&self, x: &Tensor<f32>) -> Result<Tensor<f32>> {
        self.predict_f32(x)
    }
}
