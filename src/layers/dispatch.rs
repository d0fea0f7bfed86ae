//! Values whose policy is chosen at run time: [`ByPolicy<F>`] holds one of the six
//! monomorphizations of a generic type (`Dense<F32>`, …, `Dense<MixedBf16>`), and
//! [`FamilyVisitor`] runs generic code on whichever it holds (a `match`, no `dyn`).
//!
//! A type constructor is named by a [`PolicyFamily`] (`DenseFamily::At<P> = Dense<P>`), so the
//! same enum and the same dispatch serve every layer and model.

use crate::error::Result;
use crate::layers::Layer;
use crate::module::Module;
use crate::policy::{Bf16, MixedBf16, MixedF16, Policy, F16, F32, F64};
use crate::tensor::Tensor;
use crate::DTypePolicy;

/// A type constructor over policies: `Self::At<P>` is the layer or model for policy `P`.
/// `#[derive(Module)]` writes one for every model (`MlpFamily`), with `AnyMlp = ByPolicy<MlpFamily>`.
pub trait PolicyFamily {
    /// The layer or model for policy `P`.
    type At<P: Policy>: Layer;
}

/// One `F::At<P>` for a policy chosen at run time.
#[allow(missing_docs)]
pub enum ByPolicy<F: PolicyFamily> {
    Float32(F::At<F32>),
    Float64(F::At<F64>),
    Float16(F::At<F16>),
    BFloat16(F::At<Bf16>),
    MixedFloat16(F::At<MixedF16>),
    MixedBFloat16(F::At<MixedBf16>),
}

/// Builds an `F::At<P>` for any `P`: the argument of [`ByPolicy::build`].
pub trait FamilyBuilder<F: PolicyFamily> {
    /// What can go wrong while building.
    type Error;
    /// Builds the value for `P`.
    fn build<P: Policy>(self) -> Result<F::At<P>, Self::Error>;
}

/// Generic code over a shared reference to `F::At<P>`, for any `P`.
pub trait FamilyVisitor<F: PolicyFamily> {
    /// What the visit returns.
    type Output;
    /// Runs on the held value.
    fn visit<P: Policy>(self, value: &F::At<P>) -> Self::Output;
}

macro_rules! each_variant {
    ($self:expr, $v:ident => $body:expr) => {
        match $self {
            ByPolicy::Float32($v) => $body,
            ByPolicy::Float64($v) => $body,
            ByPolicy::Float16($v) => $body,
            ByPolicy::BFloat16($v) => $body,
            ByPolicy::MixedFloat16($v) => $body,
            ByPolicy::MixedBFloat16($v) => $body,
        }
    };
}

impl<F: PolicyFamily> ByPolicy<F> {
    /// Builds the variant for `policy` with `builder`.
    ///
    /// # Errors
    ///
    /// Whatever the builder returns.
    pub fn build<B: FamilyBuilder<F>>(policy: DTypePolicy, builder: B) -> Result<Self, B::Error> {
        Ok(match policy {
            DTypePolicy::Float32 => ByPolicy::Float32(builder.build::<F32>()?),
            DTypePolicy::Float64 => ByPolicy::Float64(builder.build::<F64>()?),
            DTypePolicy::Float16 => ByPolicy::Float16(builder.build::<F16>()?),
            DTypePolicy::BFloat16 => ByPolicy::BFloat16(builder.build::<Bf16>()?),
            DTypePolicy::MixedFloat16 => ByPolicy::MixedFloat16(builder.build::<MixedF16>()?),
            DTypePolicy::MixedBFloat16 => ByPolicy::MixedBFloat16(builder.build::<MixedBf16>()?),
        })
    }

    /// The policy of the held value.
    pub fn policy(&self) -> DTypePolicy {
        match self {
            ByPolicy::Float32(_) => DTypePolicy::Float32,
            ByPolicy::Float64(_) => DTypePolicy::Float64,
            ByPolicy::Float16(_) => DTypePolicy::Float16,
            ByPolicy::BFloat16(_) => DTypePolicy::BFloat16,
            ByPolicy::MixedFloat16(_) => DTypePolicy::MixedFloat16,
            ByPolicy::MixedBFloat16(_) => DTypePolicy::MixedBFloat16,
        }
    }

    /// Number of scalars in the variables.
    pub fn param_count(&self) -> usize {
        each_variant!(self, v => v.param_count())
    }

    /// Bytes held by the variables.
    pub fn variable_bytes(&self) -> usize {
        each_variant!(self, v => v.variable_bytes())
    }

    /// Every variable's name.
    pub fn param_names(&self) -> Vec<String> {
        each_variant!(self, v => v.param_names())
    }

    /// The inference pass from and to f32: casts `x` to the model's input type, runs the typed
    /// model, and widens its output.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `x` does not fit the model.
    pub fn predict_f32(&self, x: &Tensor<f32>) -> Result<Tensor<f32>> {
        each_variant!(self, v => Ok(v.infer(&x.cast())?.into_cast()))
    }

    /// Runs `visitor` on the held value.
    pub fn visit<V: FamilyVisitor<F>>(&self, visitor: V) -> V::Output {
        each_variant!(self, v => visitor.visit(v))
    }
}

impl<F: PolicyFamily> Clone for ByPolicy<F>
where
    F::At<F32>: Clone,
    F::At<F64>: Clone,
    F::At<F16>: Clone,
    F::At<Bf16>: Clone,
    F::At<MixedF16>: Clone,
    F::At<MixedBf16>: Clone,
{
    fn clone(&self) -> Self {
        match self {
            ByPolicy::Float32(v) => ByPolicy::Float32(v.clone()),
            ByPolicy::Float64(v) => ByPolicy::Float64(v.clone()),
            ByPolicy::Float16(v) => ByPolicy::Float16(v.clone()),
            ByPolicy::BFloat16(v) => ByPolicy::BFloat16(v.clone()),
            ByPolicy::MixedFloat16(v) => ByPolicy::MixedFloat16(v.clone()),
            ByPolicy::MixedBFloat16(v) => ByPolicy::MixedBFloat16(v.clone()),
        }
    }
}

impl<F: PolicyFamily> std::fmt::Debug for ByPolicy<F>
where
    F::At<F32>: std::fmt::Debug,
    F::At<F64>: std::fmt::Debug,
    F::At<F16>: std::fmt::Debug,
    F::At<Bf16>: std::fmt::Debug,
    F::At<MixedF16>: std::fmt::Debug,
    F::At<MixedBf16>: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        each_variant!(self, v => v.fmt(f))
    }
}
