//! Compute kernels: matrix products and bulk casts. This module tree is the only place in the crate
//! allowed to hold `unsafe`; every unsafe block sits behind a safe function that checks lengths,
//! shapes and strides first, and every SIMD path is chosen at run time by CPU detection with a
//! portable fallback that computes the same function.
//!
//! - [`gemm()`]: `C = A·B` with operands in any [`Element`](crate::Element) and accumulation in its
//!   [`Acc`](crate::Element::Acc) type (f32 for the 16-bit types).
//! - [`cast`](mod@cast): slice conversions between the 16-bit types and f32.
//!
//! Set `MIXPREC_KERNEL=portable` to force the portable paths everywhere (tests use it to check that
//! every fast path computes the same function).

pub mod cast;
pub mod gemm;

pub use gemm::{gemm, MatRef};

use std::sync::OnceLock;

/// Which family of kernels runs: the fastest this CPU supports, or a forced one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KernelChoice {
    /// Portable Rust (plus matrixmultiply for f32/f64): runs everywhere.
    Portable,
    /// The fastest path the CPU supports.
    Auto,
}

/// The kernel choice for this process, read once from `MIXPREC_KERNEL` (`portable` forces the
/// portable paths; anything else, or unset, means [`KernelChoice::Auto`]).
pub fn kernel_choice() -> KernelChoice {
    static CHOICE: OnceLock<KernelChoice> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("MIXPREC_KERNEL").as_deref() {
        Ok("portable") | Ok("fallback") => KernelChoice::Portable,
        _ => KernelChoice::Auto,
    })
}

/// One line saying which kernel each compute type uses in this process.
pub fn describe() -> String {
    match kernel_choice() {
        KernelChoice::Portable => "portable (forced by MIXPREC_KERNEL)".to_string(),
        KernelChoice::Auto => {
            "f32/f64: matrixmultiply; bf16/f16: widened to f32 once per call, then matrixmultiply"
                .to_string()
        }
    }
}
