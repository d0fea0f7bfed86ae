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
//! let dense = Dense::<MixedBf16>::new(64, 128).with_seed(0);   // kernel stored as f32, math in bf16
//! let x: Tensor<f32> = Tensor::from_vec(vec![32, 64], data)?;  // a length mismatch is an error
//! let y: Tensor<bf16> = dense.forward(&x.cast());              // Tensor<bf16> in, Tensor<bf16> out
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
pub use policy::runtime::{
    global_policy, set_global_policy, DTypePolicy, IntoPolicy, PolicyVisitor,
};
pub use tensor::Tensor;

/// Everything a model file usually needs: `use mixprec::prelude::*;`.
pub mod prelude {
    pub use crate::data::Dataset;
    pub use crate::dtype::{DType, Element};
    pub use crate::error::{Error, Result};
    pub use crate::layers::{Activation, AnyDense, Dense, Layer};
    pub use crate::losses::Loss;
    pub use crate::module::Module;
    pub use crate::optimizers::{Adam, LossScaleOptimizer, Optimizer, Sgd};
    pub use crate::policy::runtime::{
        global_policy, set_global_policy, DTypePolicy, PolicyVisitor,
    };
    pub use crate::policy::{
        Bf16, ComputeOf, DefaultPolicy, MixedBf16, MixedF16, Policy, VariableOf, F16, F32, F64,
    };
    pub use crate::tensor::Tensor;
    pub use crate::train::{evaluate, fit, fit_with_callback, predict, FitOptions};
    pub use half::{bf16, f16};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
