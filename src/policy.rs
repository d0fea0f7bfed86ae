//! Policies as types: the [`Policy`] trait, its six markers ([`F32`], [`F64`], [`F16`], [`Bf16`],
//! [`MixedF16`], [`MixedBf16`]) and the compile-time [`DefaultPolicy`].
//!
//! A policy says which type a layer *computes* in and which it *stores its variables* in, exactly
//! as a Keras `DTypePolicy` does, but here the compiler knows both, so every cast is resolved at
//! compile time and a cast between equal types is no cast at all. The run-time twin, which parses
//! Keras's names, is [`DTypePolicy`] in [`runtime`].
//!
//! | Keras name | type | compute | variable | loss scaling for training |
//! | --- | --- | --- | --- | --- |
//! | `"float32"` | [`F32`] | `f32` | `f32` | no |
//! | `"float64"` | [`F64`] | `f64` | `f64` | no |
//! | `"float16"` | [`F16`] | `f16` | `f16` | yes |
//! | `"bfloat16"` | [`Bf16`] | `bf16` | `bf16` | no |
//! | `"mixed_float16"` | [`MixedF16`] | `f16` | `f32` | yes |
//! | `"mixed_bfloat16"` | [`MixedBf16`] | `bf16` | `f32` | no |

pub mod map;
pub mod runtime;

pub use map::DTypePolicyMap;

use half::{bf16, f16};
use typenum::{Bit, B0, B1};

use crate::dtype::Element;
use crate::DTypePolicy;

/// A mixed-precision policy as a type.
///
/// ```
/// use mixprec::policy::{ComputeOf, MixedBf16, Policy, VariableOf};
/// fn describe<P: Policy>() -> String {
///     format!("{}: compute {}, variables {}", P::NAME, P::COMPUTE_DTYPE, P::VARIABLE_DTYPE)
/// }
/// assert_eq!(describe::<MixedBf16>(), "mixed_bfloat16: compute bfloat16, variables float32");
/// let _: ComputeOf<MixedBf16> = half::bf16::ONE;
/// let _: VariableOf<MixedBf16> = 1.0f32;
/// ```
pub trait Policy:
    Copy
    + Clone
    + Default
    + PartialEq
    + Eq
    + core::hash::Hash
    + core::fmt::Debug
    + Send
    + Sync
    + 'static
{
    /// The type forward and backward passes compute in.
    type Compute: Element;
    /// The type variables (the master weights) are stored and updated in.
    type Variable: Element;
    /// [`B1`] when training must scale the loss (compute type f16, whose range underflows small
    /// gradients), [`B0`] otherwise. A type, so optimizers can be gated on it at compile time; a
    /// model's bit is the OR of its layers' ([`LossScaleBit::Or`]).
    type NeedsLossScale: LossScaleBit;
    /// The policy of statistics a layer keeps in the accumulator type whatever it computes in:
    /// [`F32`] for every policy but [`F64`], which keeps [`F64`]. BatchNormalization's moving
    /// mean and variance are `Param<P::Stats>`, because a 0.01-weighted update of a bfloat16
    /// value is rounded away and the average would stall.
    type Stats: Policy<
        Compute = <Self::Variable as Element>::Acc,
        Variable = <Self::Variable as Element>::Acc,
    >;
    /// Keras's name (`"mixed_bfloat16"`, …).
    const NAME: &'static str;
    /// The run-time policy with the same meaning.
    const RUNTIME: DTypePolicy;
    /// `Compute`'s tag.
    const COMPUTE_DTYPE: crate::DType = <Self::Compute as Element>::DTYPE;
    /// `Variable`'s tag.
    const VARIABLE_DTYPE: crate::DType = <Self::Variable as Element>::DTYPE;
}

/// The compute type of `P`.
pub type ComputeOf<P> = <P as Policy>::Compute;
/// The variable type of `P`.
pub type VariableOf<P> = <P as Policy>::Variable;
/// Whether `P` needs loss scaling for training, as a typenum bit.
pub type NeedsLossScaleOf<P> = <P as Policy>::NeedsLossScale;

/// A typenum bit that can be OR-ed with another at the type level: the "needs loss scaling"
/// flag of a policy, and of a model, whose flag is the OR over its parts (a model with one
/// float16-compute layer needs loss scaling, whatever its other layers compute in).
///
/// typenum's own `BitOr` cannot be used here: `X: Bit` does not imply `X: BitOr<Y>`, so generic
/// code could not OR two unknown bits. This trait, implemented for [`B0`] and [`B1`] only, can.
///
/// ```
/// use mixprec::policy::Or;
/// use typenum::{Bit, B0, B1};
/// assert!(!<Or<B0, B0> as Bit>::BOOL);
/// assert!(<Or<B0, B1> as Bit>::BOOL);
/// assert!(<Or<B1, B0> as Bit>::BOOL);
/// ```
pub trait LossScaleBit: Bit + sealed::Sealed + Send + Sync + 'static {
    /// `Self | R`.
    type Or<R: LossScaleBit>: LossScaleBit;
}

impl LossScaleBit for B0 {
    type Or<R: LossScaleBit> = R;
}

impl LossScaleBit for B1 {
    type Or<R: LossScaleBit> = B1;
}

/// `A | B` for loss-scale bits.
pub type Or<A, B> = <A as LossScaleBit>::Or<B>;

mod sealed {
    pub trait Sealed {}
    impl Sealed for typenum::B0 {}
    impl Sealed for typenum::B1 {}
}

macro_rules! policies {
    ($($(#[$doc:meta])* $name:ident = $keras:literal, $variant:ident, $c:ty, $v:ty, $ls:ty, $stats:ty;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name;

        impl Policy for $name {
            type Compute = $c;
            type Variable = $v;
            type NeedsLossScale = $ls;
            type Stats = $stats;
            const NAME: &'static str = $keras;
            const RUNTIME: DTypePolicy = DTypePolicy::$variant;
        }
    )*};
}

policies! {
    /// Keras `"float32"`: compute and variables in `f32`.
    F32 = "float32", Float32, f32, f32, B0, F32;
    /// Keras `"float64"`: compute and variables in `f64`.
    F64 = "float64", Float64, f64, f64, B0, F64;
    /// Keras `"float16"`: compute and variables in `f16`. Training needs loss scaling.
    F16 = "float16", Float16, f16, f16, B1, F32;
    /// Keras `"bfloat16"`: compute and variables in `bf16`.
    Bf16 = "bfloat16", BFloat16, bf16, bf16, B0, F32;
    /// Keras `"mixed_float16"`: compute in `f16`, variables in `f32`. Training needs loss scaling.
    MixedF16 = "mixed_float16", MixedFloat16, f16, f32, B1, F32;
    /// Keras `"mixed_bfloat16"`: compute in `bf16`, variables in `f32`.
    MixedBf16 = "mixed_bfloat16", MixedBFloat16, bf16, f32, B0, F32;
}

macro_rules! default_policy {
    ($($feature:literal => $ty:ident),* $(,)?) => {
        default_policy!(@pairs [$($feature)*]);
        $(
            /// The compile-time default policy, chosen by a `default-policy-*` cargo feature
            #[doc = concat!("(this build: `", $feature, "`, so `", stringify!($ty), "`).")]
            /// `Dense` without a parameter means `Dense<DefaultPolicy>`.
            #[cfg(feature = $feature)]
            pub type DefaultPolicy = $ty;
        )*
        /// The compile-time default policy: `F32`, as no `default-policy-*` feature is enabled.
        /// `Dense` without a parameter means `Dense<DefaultPolicy>`.
        #[cfg(not(any($(feature = $feature),*)))]
        pub type DefaultPolicy = F32;
    };
    // Every pair of features: enabling both is a compile error that names them.
    (@pairs [$first:literal $($rest:literal)*]) => {
        $(
            #[cfg(all(feature = $first, feature = $rest))]
            compile_error!(concat!(
                "mixprec: features `", $first, "` and `", $rest,
                "` both choose the default policy; enable at most one default-policy-* feature"
            ));
        )*
        default_policy!(@pairs [$($rest)*]);
    };
    (@pairs []) => {};
}

default_policy! {
    "default-policy-f32" => F32,
    "default-policy-f64" => F64,
    "default-policy-f16" => F16,
    "default-policy-bf16" => Bf16,
    "default-policy-mixed-f16" => MixedF16,
    "default-policy-mixed-bf16" => MixedBf16,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compile-time type equality check (typenum's `assert_type_eq!` idea).
    macro_rules! assert_type_eq {
        ($a:ty, $b:ty) => {
            const _: fn($a) -> $b = |x| x;
        };
    }

    assert_type_eq!(ComputeOf<MixedBf16>, bf16);
    assert_type_eq!(VariableOf<MixedBf16>, f32);
    assert_type_eq!(ComputeOf<MixedF16>, f16);
    assert_type_eq!(VariableOf<MixedF16>, f32);
    assert_type_eq!(ComputeOf<Bf16>, bf16);
    assert_type_eq!(VariableOf<Bf16>, bf16);
    assert_type_eq!(ComputeOf<F16>, f16);
    assert_type_eq!(VariableOf<F16>, f16);
    assert_type_eq!(ComputeOf<F32>, f32);
    assert_type_eq!(ComputeOf<F64>, f64);
    assert_type_eq!(NeedsLossScaleOf<MixedF16>, B1);
    assert_type_eq!(NeedsLossScaleOf<F16>, B1);
    assert_type_eq!(NeedsLossScaleOf<MixedBf16>, B0);
    assert_type_eq!(NeedsLossScaleOf<F32>, B0);

    #[test]
    fn names_and_runtime_twins_agree() {
        fn check<P: Policy>() {
            assert_eq!(P::RUNTIME.name(), P::NAME);
            assert_eq!(P::RUNTIME.compute_dtype(), P::COMPUTE_DTYPE);
            assert_eq!(P::RUNTIME.variable_dtype(), P::VARIABLE_DTYPE);
        }
        check::<F32>();
        check::<F64>();
        check::<F16>();
        check::<Bf16>();
        check::<MixedF16>();
        check::<MixedBf16>();
    }
}
