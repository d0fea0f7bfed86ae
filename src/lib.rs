//! # mixprec: Keras 3 mixed precision for Rust, checked by the compiler
//!
//! A Keras `DTypePolicy` says which type a layer computes in and which it stores its variables
//! in. In mixprec the policy is a type parameter, so `Dense<MixedBf16>` computes in `bf16`,
//! keeps its kernel in `f32`, and every cast between the two is resolved at compile time.
//!
//! | Keras name | Rust type | compute | variables |
//! | --- | --- | --- | --- |
//! | `"float32"` | [`policy::F32`] | `f32` | `f32` |
//! | `"float64"` | [`policy::F64`] | `f64` | `f64` |
//! | `"float16"` | [`policy::F16`] | `f16` | `f16` |
//! | `"bfloat16"` | [`policy::Bf16`] | `bf16` | `bf16` |
//! | `"mixed_float16"` | [`policy::MixedF16`] | `f16` | `f32` |
//! | `"mixed_bfloat16"` | [`policy::MixedBf16`] | `bf16` | `f32` |
//!
//! ```
//! use mixprec::prelude::*;
//! let data: Vec<f32> = (0..32 * 64).map(|i| (i % 7) as f32 / 7.0).collect();
//! let dense = DenseConfig::new(128).init::<MixedBf16>(64)?;    // kernel stored as f32, math in bf16
//! let x: Tensor<f32> = Tensor::from_vec(vec![32, 64], data)?;  // a length mismatch is an error
//! let y: Tensor<bf16> = dense.forward(&x.cast())?;             // Tensor<bf16> in, Tensor<bf16> out
//! assert_eq!(y.shape(), &[32, 128]);
//! let policy: DTypePolicy = "mixed_bfloat16".parse()?;         // Keras names, exact
//! assert_eq!(policy.compute_dtype(), DType::BFloat16);
//! # Ok::<(), mixprec::Error>(())
//! ```
//!
//! ## Where things are
//!
//! - [`dtype`]: the [`Element`] scalars (`f16`, `bf16`, `f32`, `f64`), [`DType`], bulk casts.
//! - [`policy`]: the [`Policy`](policy::Policy) trait and markers; [`policy::runtime`] holds
//!   [`DTypePolicy`], the global policy and the run-time dispatch.
//! - [`Tensor`], [`layers`], [`kernels`] (the only `unsafe`).
//!
//! ## Cargo features
//!
//! | feature | effect |
//! | --- | --- |
//! | `serde` (default) | Keras's JSON config for [`DTypePolicy`] |
//! | `default-policy-f32` (implied when none) | [`policy::DefaultPolicy`] is `F32` |
//! | `default-policy-f64`, `-f16`, `-bf16`, `-mixed-f16`, `-mixed-bf16` | the other defaults; at most one |
//! | `strict` | missing docs are errors (CI) |

#![cfg_attr(feature = "strict", deny(missing_docs))]
#![cfg_attr(not(feature = "strict"), warn(missing_docs))]
#![deny(unsafe_code)] // allowed file by file inside `kernels`, nowhere else
#![deny(unsafe_op_in_unsafe_fn)]
#![doc(test(attr(deny(warnings))))]

extern crate self as mixprec;

pub mod data;
pub mod dtype;
pub mod error;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod losses;
pub mod models;
pub mod module;
pub mod optimizers;
pub mod param;
pub mod policy;
pub mod tensor;
pub mod train;

mod init;

pub use dtype::{DType, Element};
pub use error::{Error, ParsePolicyError, Result};
pub use half::{bf16, f16};
/// Derives [`Module`](trait@Module) for a struct of layers generic over its policy, and (for a
/// struct of layers only) [`Layer`](layers::Layer), a family `MlpFamily`, a run-time wrapper
/// `AnyMlp` and the methods `to_any` / `to_global_policy`.
///
/// For `struct Mlp<P: Policy> { hidden: Dense<P>, out: Dense<P> }` it writes:
///
/// - `impl<P: Policy> Module for Mlp<P>`: `type At<Q> = Mlp<Q>`; variables named
///   `hidden.kernel`, `hidden.bias`, `out.kernel`, … in declaration order; `to_policy::<Q>()`
///   converts every field.
/// - `impl<P: Policy> Layer for Mlp<P>`: the layer fields run in declaration order, exactly as the
///   tuple `(hidden, out)` (backward in reverse). Each field's `Input` must be the previous
///   field's `Output`, or the derive does not compile.
/// - `struct MlpFamily` (a [`PolicyFamily`](layers::PolicyFamily)),
///   `type AnyMlp = ByPolicy<MlpFamily>`, and `Mlp::to_any(&self, DTypePolicy) -> AnyMlp` and
///   `Mlp::to_global_policy(&self) -> AnyMlp` (the global policy is read once, at the call). These
///   need no generic parameter besides `P` and const parameters.
///
/// ```
/// use mixprec::prelude::*;
///
/// /// A two-layer perceptron.
/// #[derive(Module)]
/// struct Mlp<P: Policy> {
///     hidden: Dense<P>,
///     out: Dense<P>,
/// }
///
/// let mlp = Mlp::<MixedBf16> {
///     hidden: Dense::new(4, 8).with_activation(Activation::Relu),
///     out: Dense::new(8, 3),
/// };
/// assert_eq!(mlp.param_names(), ["hidden.kernel", "hidden.bias", "out.kernel", "out.bias"]);
/// assert_eq!(mlp.param_count(), 4 * 8 + 8 + 8 * 3 + 3);
///
/// let y = mlp.infer(&Tensor::<bf16>::zeros(vec![2, 4])?)?;      // bf16 in, bf16 out
/// assert_eq!(y.shape(), &[2, 3]);
/// let f32_mlp: Mlp<F32> = mlp.to_policy::<F32>();                // variables cast
/// let any = mlp.to_any(DTypePolicy::MixedFloat16);              // policy chosen at run time
/// assert_eq!(any.policy(), DTypePolicy::MixedFloat16);
/// assert_eq!(any.predict_f32(&Tensor::zeros(vec![1, 4])?)?.shape(), &[1, 3]);
/// # let _ = f32_mlp;
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// # Field attributes
///
/// - no attribute: a layer (its type must use `P`); visited, converted, and run in order.
/// - `#[module(param)]`: a variable held directly, `Param<P>` or `Option<Param<P>>`, named by
///   the field. A struct with one gets only the `Module` impl and writes its `Layer` by hand, as
///   [`Dense`](layers::Dense) does.
/// - `#[module(skip)]`: configuration that does not depend on `P` (cloned by `to_policy`).
/// - `#[module(reset)]`: transient state (`PhantomData<P>`, saved activations), set to
///   `Default::default()` by `to_policy`.
///
/// On the struct, `#[module(no_layer)]` writes the `Module` impl only.
///
/// ```
/// use mixprec::prelude::*;
/// use std::marker::PhantomData;
///
/// /// A block that remembers its name.
/// #[derive(Module)]
/// struct Block<P: Policy> {
///     #[module(skip)]
///     name: String,
///     dense: Dense<P>,
///     #[module(reset)]
///     _policy: PhantomData<P>,
/// }
///
/// /// A model holding a block: names nest.
/// #[derive(Module)]
/// struct Model<P: Policy> {
///     block: Block<P>,
///     head: Dense<P>,
/// }
///
/// let model = Model::<F32> {
///     block: Block { name: "stem".into(), dense: Dense::new(2, 2), _policy: PhantomData },
///     head: Dense::new(2, 1),
/// };
/// assert_eq!(model.param_names()[..2], ["block.dense.kernel", "block.dense.bias"]);
/// assert_eq!(model.to_policy::<Bf16>().block.name, "stem");
/// ```
///
/// Mistakes are compile errors that name the field: a field whose type does not use `P` ("field
/// `count` is not a layer: …; mark it #[module(skip)] if it is configuration"), a struct without
/// a `P: Policy` parameter, an enum, an unknown `#[module(...)]` key, or two neighbouring layers
/// whose types do not connect.
pub use mixprec_macros::Module;
pub use module::Module;
pub use policy::map::DTypePolicyMap;
pub use policy::runtime::{
    global_policy, set_global_policy, DTypePolicy, IntoPolicy, PolicyVisitor,
};
pub use tensor::Tensor;

/// Everything a model file usually needs: `use mixprec::prelude::*;`.
pub mod prelude {
    pub use crate::data::Dataset;
    pub use crate::dtype::{DType, Element};
    pub use crate::error::{Error, Result};
    pub use crate::layers::{
        Activation, AnyDense, BatchNormalization, Dense, DenseConfig, Layer, LayerNormalization,
        ReLU, Sigmoid, Softmax, Tanh, GELU,
    };
    pub use crate::losses::Loss;
    pub use crate::optimizers::{Adam, AutoOptimizer, LossScaleOptimizer, Optimizer, Sgd};
    pub use crate::policy::runtime::{
        global_policy, set_global_policy, DTypePolicy, PolicyVisitor,
    };
    pub use crate::policy::{
        Bf16, ComputeOf, DefaultPolicy, MixedBf16, MixedF16, Policy, VariableOf, F16, F32, F64,
    };
    pub use crate::tensor::Tensor;
    pub use crate::train::{evaluate, fit, fit_with_callback, predict, train_on_batch, FitOptions};
    pub use crate::Module;
    pub use half::{bf16, f16};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
