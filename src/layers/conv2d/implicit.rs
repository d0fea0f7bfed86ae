//! Conv2D's implicit-GEMM path ([`conv_implicit`]): where the selected kernels have it (bf16 on
//! the AMX tiles, 32·k channels), the products read a zero-padded copy of the input instead of
//! a window matrix, which is 9 times larger for a 3×3 kernel and was written, packed and (in
//! backward) written again in f32 and gathered. The results have the bits of the window-matrix
//! path for the forward product (tested in `kernels/gemm/implicit`), and the input gradient is
//! the same sum in another order of f32 additions.
//!
//! - Forward: pad `x` by the layer's padding, then one implicit product with the packed kernel.
//! - Input gradient, for strides of 1: `dx` is the convolution of `dz` (padded by the dilated
//!   kernel's extent less the forward padding) with the kernel flipped in both spatial axes
//!   and its channel axes swapped, `W'[kh-1-ky, kw-1-kx, f, c] = W[ky, kx, c, f]`.
//! - Kernel gradient, any stride and dilation: `kernels::gemm::conv_weight_grad` from the
//!   unpadded input and `dz` (its own layouts; tested against an f64 sum there and here).

use rayon::prelude::*;

use crate::dtype::{DType, Element};
use crate::kernels::gemm::{conv_implicit_rounded, conv_weight_grad, implicit_ready, ImplicitConv};
use crate::kernels::gemm::{BlockEpilogue, WeightGradConv};
use crate::kernels::{pack_b, selected, KernelChoice, MatRef, PackedB};
use crate::layers::ops::window::{Axis, Window2d};

/// Copies `images` NHWC images of `h × w × c` into `out` at rows and columns `before..` of a
/// zero `padded.0 × padded.1` frame each, followed by `slack` zeros (what `out` held before is
/// overwritten; `out` is grown when short, never shrunk), and returns where the frames start:
/// the first element of `out` on a 64-byte boundary, so that the tiles' rows (whole multiples of
/// 32 channels) do not straddle cache lines (a split `tileloadd` is several times slower).
fn pad_into<T: Element>(
    x: &[T],
    (images, h, w, c): (usize, usize, usize, usize),
    before: (usize, usize),
    padded: (usize, usize),
    slack: usize,
    out: &mut Vec<T>,
) -> usize {
    let (ph, pw) = padded;
    debug_assert!(before.0 + h <= ph && before.1 + w <= pw);
    let row = pw * c;
    let len = images * ph * row + slack;
    // Grown only: every element used is written below, so a buffer left longer by another pass
    // (the kernel gradient's layouts) is not zero-filled again on each call.
    if out.len() < len + 64 {
        out.resize(len + 64, T::default());
    }
    let skip = out.as_ptr().align_offset(64).min(64);
    let (frames, tail) = out[skip..skip + len].split_at_mut(images * ph * row);
    tail.fill(T::default());
    frames
        .par_chunks_mut(row.max(1))
        .enumerate()
        .for_each(|(r, dst)| {
            let (img, py) = (r / ph, r % ph);
            match py.checked_sub(before.0).filter(|&y| y < h) {
                Some(y) => {
                    let src = &x[(img * h + y) * w * c..][..w * c];
                    let (left, rest) = dst.split_at_mut(before.1 * c);
                    let (mid, right) = rest.split_at_mut(w * c);
                    left.fill(T::default());
                    mid.copy_from_slice(src);
                    right.fill(T::default());
                }
                None => dst.fill(T::default()),
            }
        });
    skip
}

/// The padded extent of an axis: every window inside it, and the whole input.
fn padded_extent(a: &Axis) -> usize {
    let reach = a.output.saturating_sub(1) * a.stride + (a.kernel - 1) * a.dilation + 1;
    reach.max(a.pad_before + a.input)
}

/// `epilogue(windows(x) · w)` rounded once, `rows × filters`, through the implicit product
/// with `x` padded into `buf` (the epilogue runs on each block of f32 sums in cache, see
/// [`conv_implicit_rounded`]); `None` when the kernels here have no implicit path for it.
pub(super) fn forward<T: Element>(
    x: &[T],
    g: &Window2d,
    w: &PackedB<T>,
    buf: &mut Vec<T>,
    epilogue: BlockEpilogue<'_, T::Acc>,
) -> Option<Vec<T>> {
    if !implicit_ready(w, g.channels) {
        return None;
    }
    let ig = ImplicitConv {
        batch: g.batch,
        in_h: padded_extent(&g.h),
        in_w: padded_extent(&g.w),
        channels: g.channels,
        out_h: g.h.output,
        out_w: g.w.output,
        kernel: (g.h.kernel, g.w.kernel),
        stride: (g.h.stride, g.w.stride),
        dilation: (g.h.dilation, g.w.dilation),
    };
    let dims = (g.batch, g.h.input, g.w.input, g.channels);
    let before = (g.h.pad_before, g.w.pad_before);
    let at = pad_into(x, dims, before, (ig.in_h, ig.in_w), ig.slack(), buf);
    conv_implicit_rounded(&buf[at..], &ig, w, epilogue, Vec::new())
}

/// The input gradient `dx = Σ dz·Wᵀ` over the windows, summed in the accumulator type and
/// rounded once (`batch · h · w · c` elements), through the implicit product of `dz` with the
/// flipped kernel, for strides of 1; `None` otherwise or when the kernels have no implicit
/// path. `kernel` is the layer's `[kh, kw, c, filters]` kernel in the compute type.
///
/// Once `dz` is padded into `buf`, its allocation is taken (`dz` is left empty) for `dx` when
/// it is large enough and not more than twice `dx`'s size, which it is for the usual "same"
/// layer with as many filters as channels: `dx` is then written into pages already mapped,
/// where a new 4 MiB vector costs page faults on each call. On `None`, `dz` is untouched.
pub(super) fn input_grad<T: Element>(
    dz: &mut Vec<T>,
    g: &Window2d,
    kernel: &[T],
    filters: usize,
    buf: &mut Vec<T>,
) -> Option<Vec<T>> {
    let (kh, kw, c) = (g.h.kernel, g.w.kernel, g.channels);
    // The filters are the implicit product's channels: a multiple of 32 on the AMX tiles, even
    // on `vdpbf16ps` k-pairs (what `implicit_ready` checks below, after the flip).
    let step = match selected().gemm(T::DTYPE) {
        KernelChoice::Amx => 32,
        KernelChoice::Avx512 => 2,
        _ => 0,
    };
    let bf16 = T::DTYPE == DType::BFloat16;
    if !bf16 || step == 0 || g.h.stride != 1 || g.w.stride != 1 || c == 0 {
        return None;
    }
    if !filters.is_multiple_of(step) {
        return None;
    }
    // W'[(ky', kx', f), c] = W[(kh-1-ky', kw-1-kx', c), f], packed for the selected kernels.
    let mut flipped = vec![T::default(); kh * kw * filters * c];
    flipped
        .chunks_exact_mut(filters * c)
        .enumerate()
        .for_each(|(t, block)| {
            let src = &kernel[(kh * kw - 1 - t) * c * filters..][..c * filters];
            for (ci, row) in src.chunks_exact(filters).enumerate() {
                for (f, &v) in row.iter().enumerate() {
                    block[f * c + ci] = v;
                }
            }
        });
    let w = pack_b(MatRef::row_major(&flipped, kh * kw * filters, c));
    if !implicit_ready(&w, filters) {
        return None;
    }
    // dz's frame: the dilated kernel's extent before the data, less the forward padding.
    let lead =
        |a: &Axis| (a.kernel - 1) * a.dilation - a.pad_before.min((a.kernel - 1) * a.dilation);
    let ig = ImplicitConv {
        batch: g.batch,
        in_h: g.h.input + (kh - 1) * g.h.dilation,
        in_w: g.w.input + (kw - 1) * g.w.dilation,
        channels: filters,
        out_h: g.h.input,
        out_w: g.w.input,
        kernel: (kh, kw),
        stride: (1, 1),
        dilation: (g.h.dilation, g.w.dilation),
    };
    let dims = (g.batch, g.h.output, g.w.output, filters);
    let at = pad_into(
        dz,
        dims,
        (lead(&g.h), lead(&g.w)),
        (ig.in_h, ig.in_w),
        ig.slack(),
        buf,
    );
    let len = ig.rows() * c;
    let out = if (len..=2 * len).contains(&dz.capacity()) {
        std::mem::take(dz)
    } else {
        Vec::new()
    };
    conv_implicit_rounded(&buf[at..], &ig, &w, &|_, _, _| {}, out)
}

/// The kernel gradient `dW = Σ_windows xᵀ·dz` (`[kh, kw, c, filters]` into `dw`, in the
/// accumulator type) from the unpadded input `x` and `dz` on the tiles, with `buf` for their
/// layouts; `false` (nothing written) when the kernels have no such path for it.
pub(super) fn weight_grad<T: Element>(
    x: &[T],
    g: &Window2d,
    dz: &[T],
    filters: usize,
    buf: &mut Vec<T>,
    dw: &mut [T::Acc],
) -> bool {
    let wg = WeightGradConv {
        batch: g.batch,
        in_h: g.h.input,
        in_w: g.w.input,
        channels: g.channels,
        filters,
        out_h: g.h.output,
        out_w: g.w.output,
        kernel: (g.h.kernel, g.w.kernel),
        stride: (g.h.stride, g.w.stride),
        dilation: (g.h.dilation, g.w.dilation),
        pad: (g.h.pad_before, g.w.pad_before),
    };
    conv_weight_grad(x, &wg, dz, buf, dw)
}

#[cfg(test)]
mod tests;
