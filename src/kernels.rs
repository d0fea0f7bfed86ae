//! Compute kernels: matrix products and bulk casts. This module tree is the only place in the crate
//! allowed to hold `unsafe`; every unsafe block sits behind a safe function that checks lengths,
//! shapes and strides first, and every SIMD path is chosen at run time by CPU detection with a
//! portable fallback that computes the same function.
//!
//! - [`gemm`](mod@gemm): `C = A·B` with operands in any [`Element`](crate::Element) and accumulation in its
//!   [`Acc`](crate::Element::Acc) type (f32 for the 16-bit types), plus the pre-packed weight API
//!   ([`PackedB`], [`pack_b`], [`pack_b_from_f32`], [`pack_b_from`], [`gemm_packed`]).
//! - [`cast`](mod@cast): slice conversions between the 16-bit types and f32.
//! - [`isa`]: which instruction sets this CPU (and `MIXPREC_KERNEL`) allows, detected once.
//!
//! # Choosing a path: `MIXPREC_KERNEL`
//!
//! The variable is read once per process and sets a *ceiling* on the instruction sets used:
//!
//! | value | paths used |
//! | --- | --- |
//! | `portable` (alias `fallback`) | portable Rust plus matrixmultiply only |
//! | `avx512` | AVX-512 / AVX512-BF16 / F16C casts and packing; no AMX tiles |
//! | `amx` | everything up to AMX-BF16 tiles (same as `auto` on today's kernels) |
//! | `auto`, empty or unset | the fastest this CPU supports |
//!
//! A level the CPU lacks degrades to the best level below it that it has, so every value runs
//! everywhere. An unknown value is treated as `auto` and one warning is printed on stderr.

mod aligned;
pub(crate) use aligned::AlignedVec;
pub mod cast;
mod collect;
pub mod gemm;
pub mod isa;
mod wide;

pub(crate) use collect::{par_collect, CHUNK as COLLECT_CHUNK};
pub use gemm::{
    gemm, gemm_packed, gemm_with, pack_b, pack_b_from, pack_b_from_f32, MatRef, PackedB,
};
pub use wide::{wide, WideOp};

use std::sync::OnceLock;

/// Which family of kernels runs: the fastest this CPU supports, or a forced ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KernelChoice {
    /// Portable Rust (plus matrixmultiply for f32/f64): runs everywhere.
    Portable,
    /// AVX-512 (with AVX512-BF16 and F16C where present), but no AMX tiles.
    Avx512,
    /// Up to AMX-BF16 tiles.
    Amx,
    /// The fastest path the CPU supports.
    Auto,
}

impl KernelChoice {
    /// Parses a `MIXPREC_KERNEL` value; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" | "fallback" => Some(KernelChoice::Portable),
            "avx512" | "avx512bf16" => Some(KernelChoice::Avx512),
            "amx" | "amx-bf16" | "amxbf16" => Some(KernelChoice::Amx),
            "auto" | "" => Some(KernelChoice::Auto),
            _ => None,
        }
    }

    /// True when this ceiling allows AVX-512 paths.
    pub fn allows_avx512(self) -> bool {
        self >= KernelChoice::Avx512
    }

    /// True when this ceiling allows AMX tiles.
    pub fn allows_amx(self) -> bool {
        self >= KernelChoice::Amx
    }
}

/// The kernel choice for this process, read once from `MIXPREC_KERNEL` (see the module docs for
/// the values; an unknown value means [`KernelChoice::Auto`] after one warning on stderr).
pub fn kernel_choice() -> KernelChoice {
    static CHOICE: OnceLock<KernelChoice> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("MIXPREC_KERNEL") {
        Err(_) => KernelChoice::Auto,
        Ok(v) => KernelChoice::parse(&v).unwrap_or_else(|| {
            eprintln!(
                "mixprec: unknown MIXPREC_KERNEL {v:?} (expected one of: portable, avx512, amx, \
                 auto); using auto"
            );
            KernelChoice::Auto
        }),
    })
}

/// The matrix kernel a compute type runs on in this process (CPU features capped by
/// `MIXPREC_KERNEL`), in words, for `mixprec info`.
pub fn kernel_name(dtype: crate::DType) -> &'static str {
    let isa = isa::isa();
    match dtype {
        crate::DType::BFloat16 if isa.amx_bf16 => "AMX-BF16 tiles (tdpbf16ps), f32 accumulation",
        crate::DType::BFloat16 => "widened to f32 once per call, matrixmultiply sgemm",
        crate::DType::Float16 if isa.avx512 => {
            "AVX-512 FMA panels (weights rounded to f16, kept widened), f32 accumulation"
        }
        crate::DType::Float16 => "widened to f32 once per call, matrixmultiply sgemm",
        crate::DType::Float32 if isa.avx512 => {
            "matrixmultiply sgemm; AVX-512 FMA panels for cached layer weights"
        }
        crate::DType::Float32 => "matrixmultiply sgemm",
        crate::DType::Float64 => "matrixmultiply dgemm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_choice_parses_every_documented_name() {
        assert_eq!(
            KernelChoice::parse("portable"),
            Some(KernelChoice::Portable)
        );
        assert_eq!(
            KernelChoice::parse("fallback"),
            Some(KernelChoice::Portable)
        );
        assert_eq!(KernelChoice::parse("AVX512"), Some(KernelChoice::Avx512));
        assert_eq!(KernelChoice::parse("amx"), Some(KernelChoice::Amx));
        assert_eq!(KernelChoice::parse("auto"), Some(KernelChoice::Auto));
        assert_eq!(KernelChoice::parse(""), Some(KernelChoice::Auto));
        assert_eq!(KernelChoice::parse("sse2"), None);
    }

    #[test]
    fn kernel_choice_levels_are_ordered_ceilings() {
        assert!(!KernelChoice::Portable.allows_avx512());
        assert!(KernelChoice::Avx512.allows_avx512() && !KernelChoice::Avx512.allows_amx());
        assert!(KernelChoice::Amx.allows_amx() && KernelChoice::Auto.allows_amx());
    }
}
