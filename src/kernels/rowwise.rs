//! Row kernels of the row-wise layers: one `n`-wide row of a 16-bit or f32 tensor in, the same
//! row out, everything between in f32 AVX-512 lanes ([`softmax_row`], [`layer_norm_row`]).
//!
//! The portable path of these layers widens a row into an f32 buffer, runs plain Rust on it
//! inside [`wide`](super::wide) and rounds it back, a pass per step. These kernels read the
//! compute type, widen in registers, fuse the steps that can share a pass and round straight
//! into the output, so a row makes three trips through L1 instead of six or seven.
//!
//! Results against the portable path:
//!
//! - [`layer_norm_row`] does the same IEEE operations in the same order (the 16-lane sums, the
//!   separate multiplies and adds, the one rounding): its output and statistics are
//!   bit-identical (tested).
//! - [`softmax_row`] sums and normalises as the portable path does, but evaluates `e^x` with
//!   fused multiply-adds (`vfmadd`, `vrndscale`, `vscalef`) instead of separate multiplies and
//!   adds. The exponential is within 2 ulp of exact in both (tested over the whole f32 range),
//!   so the two paths agree within a few f32 ulp before the one rounding to the compute type.
//!
//! bf16 rows are rounded by AVX512-BF16's `vcvtne2ps2bf16` where the CPU has it, two vectors per
//! instruction, with the integer rounding for a pair holding a subnormal (which that instruction
//! reads as zero): the same bits as the casts either way (tested against each other).
//!
//! Each function returns `false`, having done nothing, when `kernels` did not pick the AVX-512
//! element-wise path or the types are not one of bf16, f16, f32 (in and out the same); the
//! caller then runs its portable code.

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(all(test, target_arch = "x86_64"))]
mod tests;

use super::{KernelChoice, Kernels};
use crate::dtype::{SliceMut, SliceRef};

/// The affine part and epsilon of a layer normalisation row, in f32.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NormRow<'a> {
    /// The scale `γ`, one per element of the row, or none (`scale=False`).
    pub gamma: Option<&'a [f32]>,
    /// The offset `β`, or none (`center=False`).
    pub beta: Option<&'a [f32]>,
    /// Added to the variance.
    pub epsilon: f32,
}

/// True when `kernels` picked the AVX-512 element-wise path, which it does only when it
/// detected AVX-512 F/BW/VL/DQ.
fn avx512(kernels: Kernels) -> bool {
    cfg!(target_arch = "x86_64") && kernels.elementwise() == KernelChoice::Avx512
}

/// `out = softmax(x)` over one row, `y_j = e^{x_j − m}·(1/Σ_k e^{x_k − m})` with `m` the row's
/// largest non-NaN element (0 when the row is all `-inf`), a row summing to 0 giving zeros:
/// the portable `Softmax` row's function. `buf` is scratch (resized to the row).
pub(crate) fn softmax_row(
    kernels: Kernels,
    x: SliceRef<'_>,
    out: SliceMut<'_>,
    buf: &mut Vec<f32>,
) -> bool {
    if !avx512(kernels) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        buf.resize(slice_len(x), 0.0);
        // SAFETY: `avx512` says the selection point proved AVX-512 F/BW/VL/DQ, and
        // `pack_bf16_native` AVX512-BF16; each arm checks that the output is as long as the
        // input, and `buf` was just resized to it.
        match (x, out) {
            (SliceRef::Bf16(x), SliceMut::Bf16(o)) if o.len() == x.len() => unsafe {
                if kernels.pack_bf16_native() {
                    avx512::softmax_row_bf16ne(x, o, buf)
                } else {
                    avx512::softmax_row(x, o, buf)
                }
            },
            (SliceRef::F16(x), SliceMut::F16(o)) if o.len() == x.len() => unsafe {
                avx512::softmax_row(x, o, buf)
            },
            (SliceRef::F32(x), SliceMut::F32(o)) if o.len() == x.len() => unsafe {
                avx512::softmax_row(x, o, buf)
            },
            _ => return false,
        }
        return true;
    }
    #[allow(unreachable_code)]
    {
        let _ = (x, out, buf);
        false
    }
}

/// `out = (x − μ)·(1/√(σ² + ε))·γ + β` over one row, with `μ` and the biased `σ²` of the row
/// (two passes), returning `Some((μ, 1/√(σ² + ε)))`; `None`, having done nothing, when there is
/// no kernel for `kernels` and these types (or `γ`, `β` are not as long as the row). `buf` is
/// scratch (resized to the row).
pub(crate) fn layer_norm_row(
    kernels: Kernels,
    x: SliceRef<'_>,
    out: SliceMut<'_>,
    buf: &mut Vec<f32>,
    norm: NormRow<'_>,
) -> Option<(f32, f32)> {
    let n = slice_len(x);
    let fits = |p: Option<&[f32]>| p.is_none_or(|p| p.len() == n);
    if !avx512(kernels) || n == 0 || !fits(norm.gamma) || !fits(norm.beta) {
        return None;
    }
    #[cfg(target_arch = "x86_64")]
    {
        buf.resize(n, 0.0);
        // SAFETY: `avx512` says the selection point proved AVX-512 F/BW/VL/DQ, and
        // `pack_bf16_native` AVX512-BF16; each arm checks the output's length, `buf` was
        // resized and `γ`, `β` checked against the row above.
        return match (x, out) {
            (SliceRef::Bf16(x), SliceMut::Bf16(o)) if o.len() == n => unsafe {
                Some(if kernels.pack_bf16_native() {
                    avx512::layer_norm_row_bf16ne(x, o, buf, norm)
                } else {
                    avx512::layer_norm_row(x, o, buf, norm)
                })
            },
            (SliceRef::F16(x), SliceMut::F16(o)) if o.len() == n => unsafe {
                Some(avx512::layer_norm_row(x, o, buf, norm))
            },
            (SliceRef::F32(x), SliceMut::F32(o)) if o.len() == n => unsafe {
                Some(avx512::layer_norm_row(x, o, buf, norm))
            },
            _ => None,
        };
    }
    #[allow(unreachable_code)]
    {
        let _ = (out, buf);
        None
    }
}

fn slice_len(x: SliceRef<'_>) -> usize {
    match x {
        SliceRef::F16(s) => s.len(),
        SliceRef::Bf16(s) => s.len(),
        SliceRef::F32(s) => s.len(),
        SliceRef::F64(s) => s.len(),
    }
}
