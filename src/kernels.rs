//! Compute kernels: matrix products and bulk casts. This module tree is the only place in the crate
//! allowed to hold `unsafe` (the crate root denies `unsafe_code`; the files below that need it
//! allow it one by one); every unsafe block sits behind a safe function that checks lengths,
//! shapes and strides first, and every SIMD path is chosen at run time, by one selection point,
//! with a portable fallback that computes the same function.
//!
//! - [`gemm()`]: `C = A·B` with operands in any [`Element`](crate::Element) and accumulation in
//!   its [`Acc`](crate::Element::Acc) type (f32 for the 16-bit types), over strided views
//!   ([`MatRef`]), plus the pre-packed weight API ([`PackedB`], [`pack_b`], [`pack_b_from_f32`],
//!   [`pack_b_from`], [`gemm_packed`]).
//! - [`selected`]: which kernel each operation runs on in this process ([`Kernels`]), decided
//!   once from the CPU's features and `MIXPREC_KERNEL`; [`kernel_name`] says it in words.
//!
//! The bulk casts are reached through [`crate::dtype::cast_slice`]. The row-wise layers
//! (Softmax, LayerNormalization) run each row on the AVX-512 kernels of `rowwise` when
//! they are selected, and on portable Rust otherwise.
//!
//! # Matrix products
//!
//! - f32 and f64 go straight to matrixmultiply's `sgemm` / `dgemm`, strides and all, so a
//!   transposed operand ([`MatRef::t`]) costs nothing.
//! - bf16 runs on the AMX tiles when the CPU has them: both operands are packed into the tile
//!   layouts, converting strided or transposed views while packing; f16 runs on AVX-512 FMA
//!   panels when the CPU has AVX-512.
//! - Otherwise the 16-bit types take the portable path: each operand is widened to f32 once per
//!   call (exact), then `sgemm` multiplies and accumulates in f32. A product of two 16-bit values
//!   is exact in f32, so this is the same function as a native 16-bit-operand, f32-accumulate unit.
//!
//! A layer multiplies by the same weight many times between optimizer steps. [`pack_b`] (or
//! [`pack_b_from_f32`], which rounds an f32 master weight to the compute type while packing)
//! builds a [`PackedB`] once, in the layout of the kernel this process selected, and
//! [`gemm_packed`] multiplies by it without touching the weight again:
//!
//! ```
//! use mixprec::kernels::{gemm_packed, pack_b_from_f32, MatRef, PackedB};
//! use half::bf16;
//! let w = vec![0.5f32; 3 * 2]; // f32 variable, 3 × 2 (in × units)
//! let packed: PackedB<bf16> = pack_b_from_f32(MatRef::row_major(&w, 3, 2));
//! let x = vec![bf16::from_f32(2.0); 4 * 3]; // batch of 4
//! let mut y = vec![0f32; 4 * 2];
//! gemm_packed(MatRef::row_major(&x, 4, 3), &packed, &mut y, false);
//! assert_eq!(y, vec![3.0; 8]);
//! // Backward, dX = dY·Wᵀ, packs the transposed view (no transpose is materialised):
//! let packed_t: PackedB<bf16> = pack_b_from_f32(MatRef::row_major(&w, 3, 2).t());
//! assert_eq!((packed_t.rows(), packed_t.cols()), (2, 3));
//! ```
//!
//! # Choosing a path: `MIXPREC_KERNEL`
//!
//! The variable is read once per process and sets a *ceiling* on the instruction sets used
//! ([`Kernels::ceiling`]):
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
#[allow(unsafe_code)] // the AVX-512 casts and their dispatch
pub(crate) mod cast;
#[allow(unsafe_code)]
// `par_collect` and `par_collect_blocks` set the length of the vector they filled
mod collect;
pub(crate) mod gemm;
#[allow(unsafe_code)] // the AVX-512 row kernels and their dispatch
pub(crate) mod rowwise;
mod select;
#[cfg(test)]
mod tests;
#[allow(unsafe_code)] // the `#[target_feature]` trampoline
mod wide;

pub(crate) use aligned::AlignedVec;
pub(crate) use collect::{par_collect, par_collect_blocks, CHUNK as COLLECT_CHUNK};
pub use gemm::{gemm, gemm_packed, pack_b, pack_b_from, pack_b_from_f32, MatRef, PackedB};
#[cfg(test)]
pub(crate) use select::kernels_for;
pub use select::{kernel_name, selected, KernelChoice, Kernels};
pub(crate) use wide::{wide, WideOp};

/// Not API: what `benches/cast.rs` needs to time the portable casts beside the selected ones in
/// one run. Hidden from the docs, and free to change or go away in any release.
#[doc(hidden)]
pub mod __bench {
    pub use super::cast::portable;
}
