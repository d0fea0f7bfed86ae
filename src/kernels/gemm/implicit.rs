//! An implicit-GEMM convolution: the product of a convolution's window matrix with a packed
//! kernel, read straight from a zero-padded NHWC input instead of a window matrix.
//!
//! [`conv_implicit`] runs the AMX tiles (`gemm/conv_amx.rs`) for bf16 when the kernel was packed
//! for them and the channels are a multiple of 32, and says `false` otherwise, so the caller
//! keeps its window-matrix path (`im2col` + [`gemm_packed`](super::gemm_packed)) for every other
//! type, CPU and shape. Where it runs, its result has the same bits as that path.

#[cfg(target_arch = "x86_64")]
use half::slice::HalfFloatSliceExt;

use super::PackedB;
use crate::dtype::Element;
#[cfg(target_arch = "x86_64")]
use crate::dtype::{SliceMut, SliceRef};

/// A convolution over an input already padded with zeros (so every window is inside it):
/// `[batch, in_h, in_w, channels]` → `[batch, out_h, out_w, filters]`, output pixel `(oy, ox)`
/// reading input pixels `(oy·sh + ky·dh, ox·sw + kx·dw)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ImplicitConv {
    /// Images.
    pub batch: usize,
    /// Padded input height.
    pub in_h: usize,
    /// Padded input width.
    pub in_w: usize,
    /// Input channels.
    pub channels: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
    /// `(kh, kw)`.
    pub kernel: (usize, usize),
    /// `(sh, sw)`, at least 1.
    pub stride: (usize, usize),
    /// `(dh, dw)`, at least 1.
    pub dilation: (usize, usize),
}

impl ImplicitConv {
    /// Elements of the padded input.
    pub(crate) fn input_len(&self) -> usize {
        self.batch * self.in_h * self.in_w * self.channels
    }

    /// Zero elements the input buffer must hold after the input: the last tiles of a row read up
    /// to 32 output pixels on, past the last image.
    pub(crate) fn slack(&self) -> usize {
        32 * self.stride.1 * self.channels
    }

    /// Window-matrix columns: `kh · kw · channels`.
    pub(crate) fn taps(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.channels
    }

    /// Output pixels: `batch · out_h · out_w`.
    pub(crate) fn rows(&self) -> usize {
        self.batch * self.out_h * self.out_w
    }

    /// Every window inside the padded input, strides and dilations at least 1.
    fn consistent(&self) -> bool {
        let fits = |out: usize, k: usize, s: usize, d: usize, input: usize| {
            s >= 1 && d >= 1 && k >= 1 && (out == 0 || (out - 1) * s + (k - 1) * d < input)
        };
        let (kh, kw) = self.kernel;
        fits(self.out_h, kh, self.stride.0, self.dilation.0, self.in_h)
            && fits(self.out_w, kw, self.stride.1, self.dilation.1, self.in_w)
    }
}

/// Whether [`conv_implicit`] runs for `T` with this packed kernel and `channels` input channels
/// (bf16 on the AMX tiles, channels a multiple of 32): a caller asks before padding its input.
pub(crate) fn implicit_ready<T: Element>(w: &PackedB<T>, channels: usize) -> bool {
    cfg!(target_arch = "x86_64")
        && matches!(T::DTYPE, crate::dtype::DType::BFloat16)
        && w.vnni().is_some()
        && channels > 0
        && channels.is_multiple_of(32)
}

/// `out (rows × filters) = windows(x) · W` for the padded input `x` (followed by at least
/// [`ImplicitConv::slack`] zeros) and the packed kernel `w` (`taps × filters`), products and
/// sums in f32: the same function (and bits) as [`gemm_packed`](super::gemm_packed) on the
/// window matrix of `x`. Returns `false`, leaving `out` untouched, when it does not apply
/// ([`implicit_ready`] is false).
///
/// # Panics
///
/// When it applies and the shapes disagree (`w` not `taps × filters`, `out` not
/// `rows × filters`, `x` too short, a window outside the input): internal contracts.
pub(crate) fn conv_implicit<T: Element>(
    x: &[T],
    g: &ImplicitConv,
    w: &PackedB<T>,
    out: &mut [T::Acc],
) -> bool {
    if !implicit_ready(w, g.channels) {
        return false;
    }
    assert!(g.consistent(), "conv_implicit: a window leaves the input");
    assert_eq!(w.rows(), g.taps(), "conv_implicit: kernel rows differ");
    assert!(
        x.len() >= g.input_len() + g.slack(),
        "conv_implicit: input shorter than its shape and slack"
    );
    let n = w.cols();
    assert_eq!(out.len(), g.rows() * n, "conv_implicit: output length");
    if out.is_empty() {
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    if let (SliceRef::Bf16(xs), SliceMut::F32(out), Some(b)) =
        (T::view(x), T::Acc::view_mut(out), w.vnni())
    {
        assert_eq!(
            b.kc * 32,
            g.taps(),
            "conv_implicit: chunks differ from taps"
        );
        // SAFETY: a VNNI packing exists only when the selection point chose the AMX tiles for
        // bf16, which it does only after detecting AMX-TILE, AMX-BF16 (with the OS's
        // permission) and AVX-512F; the shapes, the slack and the 32-channel chunks are checked
        // above.
        unsafe { super::conv_amx::conv_bf16_amx(xs.reinterpret_cast(), g, b, n, out) };
        return true;
    }
    unreachable!("implicit_ready holds only for bf16 tiles on x86_64")
}

#[cfg(test)]
mod tests;
