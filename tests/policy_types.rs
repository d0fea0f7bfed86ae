//! Type-level facts about the six policy markers, checked by the compiler: each `const _` below
//! only type-checks when the two types are equal (typenum's `assert_type_eq!` idea). A wrong fact
//! is a compile error, so these cannot pass vacuously.

use core::fmt::Debug;
use core::hash::Hash;

use half::{bf16, f16};
use mixprec::layers::Dense;
use mixprec::policy::{
    Bf16, ComputeOf, DefaultPolicy, MixedBf16, MixedF16, NeedsLossScaleOf, Policy, VariableOf, F16,
    F32, F64,
};
use mixprec::{DType, DTypePolicy, Element};
use typenum::{Bit, B0, B1};

/// Compiles only when `$a` and `$b` are the same type.
macro_rules! assert_type_eq {
    ($a:ty, $b:ty) => {
        const _: fn($a) -> $b = |x| x;
    };
}

/// Compute, variable and loss-scaling facts of one policy, all at compile time.
macro_rules! policy_facts {
    ($p:ty: compute $c:ty, variable $v:ty, loss scale $ls:ty) => {
        assert_type_eq!(ComputeOf<$p>, $c);
        assert_type_eq!(VariableOf<$p>, $v);
        assert_type_eq!(NeedsLossScaleOf<$p>, $ls);
        assert_type_eq!(<$p as Policy>::Compute, $c);
        assert_type_eq!(<$p as Policy>::Variable, $v);
    };
}

policy_facts!(F32: compute f32, variable f32, loss scale B0);
policy_facts!(F64: compute f64, variable f64, loss scale B0);
policy_facts!(F16: compute f16, variable f16, loss scale B1);
policy_facts!(Bf16: compute bf16, variable bf16, loss scale B0);
policy_facts!(MixedF16: compute f16, variable f32, loss scale B1);
policy_facts!(MixedBf16: compute bf16, variable f32, loss scale B0);

// Every compute type accumulates in f32, except f64 in f64.
assert_type_eq!(<f16 as Element>::Acc, f32);
assert_type_eq!(<bf16 as Element>::Acc, f32);
assert_type_eq!(<f32 as Element>::Acc, f32);
assert_type_eq!(<f64 as Element>::Acc, f64);

// `Dense` without a parameter is `Dense<DefaultPolicy>`; with no `default-policy-*` feature
// that is `F32` (the `.ci/check-feature-exclusion` script covers a build with a feature).
assert_type_eq!(Dense, Dense<DefaultPolicy>);
#[cfg(not(any(
    feature = "default-policy-f64",
    feature = "default-policy-f16",
    feature = "default-policy-bf16",
    feature = "default-policy-mixed-f16",
    feature = "default-policy-mixed-bf16",
)))]
assert_type_eq!(DefaultPolicy, F32);
#[cfg(feature = "default-policy-mixed-bf16")]
assert_type_eq!(DefaultPolicy, MixedBf16);

/// Compiles only for a type with typenum's full marker derive set.
const fn has_marker_derives<P: Debug + Clone + Copy + Default + PartialEq + Eq + Hash>() {}
const _: () = {
    has_marker_derives::<F32>();
    has_marker_derives::<F64>();
    has_marker_derives::<F16>();
    has_marker_derives::<Bf16>();
    has_marker_derives::<MixedF16>();
    has_marker_derives::<MixedBf16>();
};

// The loss-scaling bit as a constant, usable in `const` context.
const _: () = assert!(<NeedsLossScaleOf<MixedF16> as Bit>::BOOL);
const _: () = assert!(<NeedsLossScaleOf<F16> as Bit>::BOOL);
const _: () = assert!(!<NeedsLossScaleOf<MixedBf16> as Bit>::BOOL);
const _: () = assert!(!<NeedsLossScaleOf<F32> as Bit>::BOOL);

/// Value-level constants of one policy agree with its type-level facts and its run-time twin.
fn policy_constants_agree_with_types<P: Policy>(name: &str, compute: DType, variable: DType) {
    assert_eq!(P::NAME, name);
    assert_eq!(P::COMPUTE_DTYPE, compute);
    assert_eq!(P::VARIABLE_DTYPE, variable);
    assert_eq!(P::COMPUTE_DTYPE, <ComputeOf<P> as Element>::DTYPE);
    assert_eq!(P::VARIABLE_DTYPE, <VariableOf<P> as Element>::DTYPE);
    assert_eq!(P::RUNTIME.name(), name);
    assert_eq!(P::RUNTIME.compute_dtype(), compute);
    assert_eq!(P::RUNTIME.variable_dtype(), variable);
    assert_eq!(
        P::RUNTIME.needs_loss_scale(),
        <NeedsLossScaleOf<P> as Bit>::BOOL
    );
}

#[test]
fn policy_constants_match_keras_table() {
    use DType::*;
    policy_constants_agree_with_types::<F32>("float32", Float32, Float32);
    policy_constants_agree_with_types::<F64>("float64", Float64, Float64);
    policy_constants_agree_with_types::<F16>("float16", Float16, Float16);
    policy_constants_agree_with_types::<Bf16>("bfloat16", BFloat16, BFloat16);
    policy_constants_agree_with_types::<MixedF16>("mixed_float16", Float16, Float32);
    policy_constants_agree_with_types::<MixedBf16>("mixed_bfloat16", BFloat16, Float32);
}

#[test]
fn unit_roundoff_is_two_to_minus_significand_bits() {
    assert_eq!(<f16 as Element>::UNIT_ROUNDOFF, 2f64.powi(-11));
    assert_eq!(<bf16 as Element>::UNIT_ROUNDOFF, 2f64.powi(-8));
    assert_eq!(<f32 as Element>::UNIT_ROUNDOFF, 2f64.powi(-24));
    assert_eq!(<f64 as Element>::UNIT_ROUNDOFF, 2f64.powi(-53));
    // u is the relative error bound of one rounding: 1 + u is the first tie above 1.
    assert_eq!(
        <f16 as Element>::from_f64_rne(1.0 + 2f64.powi(-11)),
        f16::ONE
    );
    assert_eq!(
        <bf16 as Element>::from_f64_rne(1.0 + 2f64.powi(-8)),
        bf16::ONE
    );
}

#[test]
fn default_policy_runtime_twin_is_the_default_dtype_policy() {
    assert_eq!(DTypePolicy::default(), DefaultPolicy::RUNTIME);
    #[cfg(not(any(
        feature = "default-policy-f64",
        feature = "default-policy-f16",
        feature = "default-policy-bf16",
        feature = "default-policy-mixed-f16",
        feature = "default-policy-mixed-bf16",
    )))]
    assert_eq!(DTypePolicy::default(), DTypePolicy::Float32);
}
