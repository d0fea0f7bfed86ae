//! An implicit-GEMM convolution: the product of a convolution's window matrix with a packed
//! kernel, read straight from a zero-padded NHWC input instead of a window matrix.
//!
//! [`conv_implicit`] runs for bf16 on the AMX tiles (`gemm/conv_amx.rs`) when the kernel was
//! packed for them and the channels are a multiple of 32, or on `vdpbf16ps` (`gemm/conv_dp.rs`)
//! when it was packed in k-pairs and the channels are even, and says `false` otherwise, so the caller
//! keeps its window-matrix path (`im2col` + [`gemm_packed`](super::gemm_packed)) for every other
//! type, CPU and shape. Where it runs, its result has the same bits as that path.
//! [`conv_implicit_rounded`] also runs the caller's epilogue and the rounding on each block.

#[cfg(target_arch = "x86_64")]
use half::slice::HalfFloatSliceExt;

use super::PackedB;
use crate::dtype::Element;
#[cfg(target_arch = "x86_64")]
use crate::dtype::{SliceMut, SliceRef};

/// Sums per row of the blocks an epilogue of [`conv_implicit_rounded`] sees (the tiles' 32×32
/// block).
pub(crate) const BLOCK_PITCH: usize = 32;

/// What [`conv_implicit_rounded`] runs on each block of sums in place: `(first column, block,
/// width)`, the block in rows of [`BLOCK_PITCH`] of which the first `width` are in the output.
pub(crate) type BlockEpilogue<'a, A> = &'a (dyn Fn(usize, &mut [A], usize) + Sync);

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
/// (bf16 on the AMX tiles with channels a multiple of 32, or on `vdpbf16ps` k-pairs with an even
/// channel count): a caller asks before padding its input.
pub(crate) fn implicit_ready<T: Element>(w: &PackedB<T>, channels: usize) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        matches!(T::DTYPE, crate::dtype::DType::BFloat16)
            && channels > 0
            && ((w.vnni().is_some() && channels.is_multiple_of(32))
                || (w.pairs().is_some() && channels.is_multiple_of(2)))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w, channels);
        false
    }
}

/// `out (rows × filters) = windows(x) · W` for the padded input `x` (followed by at least
/// [`ImplicitConv::slack`] zeros) and the packed kernel `w` (`taps × filters`), products and
/// sums in f32: the same function (and bits) as [`gemm_packed`](super::gemm_packed) on the
/// window matrix of `x`. Returns `false`, leaving `out` untouched, when it does not apply
/// ([`implicit_ready`] is false). The layers use [`conv_implicit_rounded`]; these f32 sums are
/// what the tests compare bit for bit.
///
/// # Panics
///
/// When it applies and the shapes disagree (`w` not `taps × filters`, `out` not
/// `rows × filters`, `x` too short, a window outside the input): internal contracts.
#[cfg(test)]
pub(crate) fn conv_implicit<T: Element>(
    x: &[T],
    g: &ImplicitConv,
    w: &PackedB<T>,
    out: &mut [T::Acc],
) -> bool {
    if !implicit_ready(w, g.channels) {
        return false;
    }
    check(x, g, w, out.len());
    #[cfg(target_arch = "x86_64")]
    if let (SliceRef::Bf16(xs), SliceMut::F32(out)) = (T::view(x), T::Acc::view_mut(out)) {
        let sink = super::conv_amx::Sink::Sums(out);
        // SAFETY: as `run`'s contract, checked above.
        unsafe { run(xs, g, w, sink) };
        return true;
    }
    unreachable!("implicit_ready holds only for bf16 tiles on x86_64")
}

/// [`conv_implicit`] with each block of f32 sums passed through `epilogue` (in place: a block
/// of rows of [`BLOCK_PITCH`] sums, its first column and the width in the output; a layer's
/// bias and activation) while in cache, then rounded once to `T`: a `rows × filters` vector
/// written once (never zeroed first) into `out`'s allocation (what it held is dropped; a
/// buffer the caller is done with, whose pages are already mapped, or `Vec::new()`; it is
/// grown when short) with the same bits as the sums of
/// [`conv_implicit`] through the same element-wise function and
/// [`cast_slice`](crate::dtype::cast_slice), without the f32 sums in memory. `None` when it
/// does not apply ([`implicit_ready`] is false).
///
/// # Panics
///
/// As [`conv_implicit`].
pub(crate) fn conv_implicit_rounded<T: Element>(
    x: &[T],
    g: &ImplicitConv,
    w: &PackedB<T>,
    epilogue: BlockEpilogue<'_, T::Acc>,
    mut out: Vec<T>,
) -> Option<Vec<T>> {
    if !implicit_ready(w, g.channels) {
        return None;
    }
    let len = g.rows() * w.cols();
    check(x, g, w, len);
    #[cfg(target_arch = "x86_64")]
    if let SliceRef::Bf16(xs) = T::view(x) {
        let f32_epilogue = |col: usize, block: &mut [f32], width: usize| {
            let block = T::Acc::from_view_mut(SliceMut::F32(block));
            epilogue(col, block.expect("bf16 accumulates in f32"), width);
        };
        out.clear();
        out.reserve(len);
        // `T` is bf16 (the view above), so its spare capacity is `len` bf16 slots.
        let ptr = out.spare_capacity_mut().as_mut_ptr().cast::<half::bf16>();
        let sink = super::conv_amx::Sink::Rounded(ptr, &f32_epilogue);
        // SAFETY: as `run`'s contract, checked above; the sink is `len` writable elements.
        unsafe { run(xs, g, w, sink) };
        // SAFETY: the kernel wrote all `len` elements (every row and column of the output is
        // in one of its blocks); a panic before this line drops `out` with length 0.
        unsafe { out.set_len(len) };
        return Some(out);
    }
    unreachable!("implicit_ready holds only for bf16 tiles on x86_64")
}

/// The shapes [`conv_implicit`] requires, for an output of `out_len` elements.
fn check<T: Element>(x: &[T], g: &ImplicitConv, w: &PackedB<T>, out_len: usize) {
    assert!(g.consistent(), "conv_implicit: a window leaves the input");
    assert_eq!(w.rows(), g.taps(), "conv_implicit: kernel rows differ");
    assert!(
        x.len() >= g.input_len() + g.slack(),
        "conv_implicit: input shorter than its shape and slack"
    );
    assert_eq!(out_len, g.rows() * w.cols(), "conv_implicit: output length");
}

/// The product into `sink`, on the tiles or on `vdpbf16ps`, as `w` was packed.
///
/// # Safety
///
/// `w` is a bf16 kernel for which [`implicit_ready`] holds, with shapes [`check`] accepted for
/// `x` and `g`, and a sink of `g.rows() · w.cols()` elements.
#[cfg(target_arch = "x86_64")]
unsafe fn run<T: Element>(
    x: &[half::bf16],
    g: &ImplicitConv,
    w: &PackedB<T>,
    sink: super::conv_amx::Sink<'_>,
) {
    let n = w.cols();
    if g.rows() == 0 || n == 0 {
        return;
    }
    if let Some(b) = w.vnni() {
        assert_eq!(
            b.kc * 32,
            g.taps(),
            "conv_implicit: chunks differ from taps"
        );
        // SAFETY: a VNNI packing exists only when the selection point chose the AMX tiles for
        // bf16, which it does only after detecting AMX-TILE, AMX-BF16 (with the OS's
        // permission) and AVX-512 (F, BW, VL, DQ); the shapes, the slack and the 32-channel
        // chunks are checked by the caller and above.
        unsafe { super::conv_amx::conv_bf16_amx(x.reinterpret_cast(), g, b, n, sink) };
    } else if let Some(b) = w.pairs() {
        assert_eq!(b.kq * 2, g.taps(), "conv_implicit: pairs differ from taps");
        // SAFETY: a k-pair packing exists only when the selection point chose `vdpbf16ps` for
        // bf16, which it does only after detecting AVX512-BF16 and AVX-512 (F, BW, VL, DQ); the
        // shapes and the even channel count are checked by the caller and above.
        unsafe { super::conv_dp::conv_bf16_dp(x.reinterpret_cast(), g, b, n, sink) };
    } else {
        unreachable!("implicit_ready holds only for the tiles or k-pairs");
    }
}

#[cfg(test)]
pub(super) mod tests;
