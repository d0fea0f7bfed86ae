//! A convolution's kernel gradient `dW = Σ_windows xᵀ·dz` without a window matrix:
//! [`conv_weight_grad`] lays `dz` out filter-major and the input in VNNI pixel pairs, and the
//! AMX tiles (`gemm/wgrad_amx.rs`, every tile row on a cache line) or, on a CPU with
//! AVX512-BF16 and no AMX, `vdpbf16ps` register blocks (`gemm/wgrad_dp.rs`) read both in place.
//!
//! `dWᵀ[f, (ky, kx, c)] = Σ_(img, oy, ox) dz[img, oy, ox, f] · x[img, oy·sh + ky·dh − ph,
//! ox·sw + kx·dw − pw, c]` is a product with the output pixels as its long k axis:
//!
//! - An A tile is 16 filters × 32 output pixels of one row, contiguous in the filter-major copy
//!   of `dz` (`[img][f][oy][ox]`, rows padded with zeros to 32 pixels, filters to 32).
//! - A B tile is 16 pixel pairs × 16 channels × 2 of the input, contiguous in its pair copy
//!   ([`Pairs`]: `[phase][img][padded row][pair][c][2]`). Output pixels `2j, 2j + 1` of a tap
//!   with the shift `s = kx·dw` read input columns `2j·sw + s` and `2j·sw + s + sw`: pair `j +
//!   s / 2sw` of the copy for the phase `s mod 2sw`, so a tap is whole pairs of one copy (two
//!   copies for a 3×3 kernel of stride 1).
//!
//! Each element of `dW` is a fixed sum of up to [`PARTS`] f32 partial sums, each over a fixed
//! run of output rows in a fixed order (rows, chunks of 32 pixels, pairs), so the result does
//! not depend on the thread count; it is the same sum as the window-matrix product's in
//! another order of f32 additions (tested against an f64 reference in `wgrad/tests.rs`).

use crate::dtype::{max_abs, DType, Element};
#[cfg(target_arch = "x86_64")]
use crate::dtype::{SliceMut, SliceRef};
use crate::kernels::{selected, KernelChoice};
#[cfg(target_arch = "x86_64")]
use half::slice::HalfFloatSliceExt;
use layout::Run;
use rayon::prelude::*;

/// A convolution seen from its kernel gradient: the unpadded NHWC input `[batch, in_h, in_w,
/// channels]`, `dz` `[batch, out_h, out_w, filters]`, and the window (`pad` zeros before the
/// input on each axis; windows may reach past its end, into zeros).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WeightGradConv {
    /// Images.
    pub batch: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Input channels.
    pub channels: usize,
    /// Output channels.
    pub filters: usize,
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
    /// Zeros before the input, `(rows, columns)`.
    pub pad: (usize, usize),
}

/// The pair copies of the input: `[phase][img][row][pair][c][2]` with `rows` padded rows (the
/// rows the windows read) and `pairs` pairs per row, one copy per phase in `phases`; element `(φ,
/// row, j, c, e)` is input pixel `(row − ph, 2·sw·j + φ + e·sw − pw)`, channel `c`, or zero
/// outside the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pairs {
    pub rows: usize,
    pub pairs: usize,
    pub phases: Vec<usize>,
}

impl WeightGradConv {
    /// Output pixels of a row, padded to a multiple of 32 (one tile's k).
    pub(super) fn out_w_pad(&self) -> usize {
        self.out_w.next_multiple_of(32)
    }

    /// Filters padded to a multiple of 32 (two B tiles).
    pub(super) fn filters_pad(&self) -> usize {
        self.filters.next_multiple_of(32)
    }

    /// Elements between two filters in the filter-major `dz`: a filter's padded pixels and one
    /// more cache line, so that the 16 rows of an A tile (16 filters) do not all fall into the
    /// same few L1 sets when the pixels fill a multiple of 4 KiB (32 × 32 pixels do).
    pub(super) fn plane(&self) -> usize {
        self.out_h * self.out_w_pad() + 32
    }

    /// The same convolution on one image: the geometry of one image's layouts.
    pub(super) fn one_image(&self) -> Self {
        Self { batch: 1, ..*self }
    }

    /// The pair layout of the input.
    pub(super) fn layout(&self) -> Pairs {
        let (kh, kw) = self.kernel;
        let (sh, sw) = self.stride;
        let (dh, dw) = self.dilation;
        let mut phases: Vec<usize> = (0..kw).map(|kx| kx * dw % (2 * sw)).collect();
        phases.sort_unstable();
        phases.dedup();
        Pairs {
            rows: self.out_h.saturating_sub(1) * sh + (kh - 1) * dh + 1,
            pairs: self.out_w_pad() / 2 + (kw - 1) * dw / (2 * sw),
            phases,
        }
    }

    /// Where tap column `kx` reads: (its copy's index in [`Pairs::phases`], its first pair).
    pub(super) fn tap_pairs(&self, kx: usize, l: &Pairs) -> (usize, usize) {
        let (s, two_sw) = (kx * self.dilation.1, 2 * self.stride.1);
        let copy = l.phases.iter().position(|&p| p == s % two_sw);
        (copy.expect("every tap's phase has a copy"), s / two_sw)
    }

    /// Runs `task(rows, part)` in parallel on each of the `parts` partial sums in `acc`
    /// (`filters_pad × taps_pad` each): part `p` gets the `p`-th of `parts` equal runs of
    /// output rows `image · out_h + row`, so a part depends on `parts`, not on the threads.
    pub(super) fn for_parts(
        &self,
        parts: usize,
        acc: &mut [f32],
        task: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
    ) {
        let part_len = self.filters_pad() * self.taps_pad();
        debug_assert_eq!(acc.len(), parts * part_len);
        let lines = self.batch * self.out_h;
        let per_part = lines.div_ceil(parts.max(1));
        acc.par_chunks_mut(part_len)
            .enumerate()
            .for_each(|(p, part)| {
                let first = (p * per_part).min(lines);
                task(first..(first + per_part).min(lines), part)
            });
    }

    /// Elements of the pair copies of the input and of the filter-major `dz`.
    fn work_lens(&self) -> (usize, usize) {
        let l = self.layout();
        let x = l.phases.len() * self.batch * l.rows * l.pairs * 2 * self.channels;
        (x, self.batch * self.filters_pad() * self.plane())
    }

    /// Columns of the transposed accumulator: the taps in groups of 16, an even count.
    pub(super) fn taps_pad(&self) -> usize {
        (self.taps() / 16).next_multiple_of(2) * 16
    }

    /// Window-matrix columns: `kh · kw · channels`.
    pub(super) fn taps(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.channels
    }

    /// Strides, dilations and the kernel at least 1, and every window's first pixel inside the
    /// padded input (as a checked [`Window2d`](crate::layers::ops::window::Window2d) is).
    fn consistent(&self) -> bool {
        let ok = |s: usize, d: usize, k: usize| s >= 1 && d >= 1 && k >= 1;
        ok(self.stride.0, self.dilation.0, self.kernel.0)
            && ok(self.stride.1, self.dilation.1, self.kernel.1)
    }
}

/// What every task of a kernel-gradient kernel (`gemm/wgrad_amx.rs`, `gemm/wgrad_dp.rs`)
/// reads: the two layouts of `g` and where in them each group of 16 columns of `dWᵀ` starts.
pub(super) struct Layouts<'a> {
    /// The input's pair copies ([`Pairs`]).
    pub xp: *const u16,
    /// The filter-major `dz`.
    pub dzt: *const u16,
    pub g: &'a WeightGradConv,
    /// Element offset in image 0 of each group of 16 columns (16 channels of a tap) at output
    /// pixel (0, 0), [`WeightGradConv::taps_pad`] / 16 of them: an odd count gets a phantom
    /// group (group 0 again) whose columns are dropped.
    pub offsets: Vec<usize>,
    /// Elements of one image in one pair copy.
    pub x_image: usize,
    /// Elements between the first input rows of two consecutive output rows in a pair copy.
    pub x_line: usize,
}

// SAFETY: the pointers point into slices borrowed (by `Layouts::new`'s caller) for the whole
// parallel loop, and are only read.
unsafe impl Sync for Layouts<'_> {}

impl<'a> Layouts<'a> {
    /// The layouts `xp` and `dzt` of `g`, which the caller keeps borrowed while this is used.
    pub(super) fn new(xp: &[u16], dzt: &[u16], g: &'a WeightGradConv) -> Self {
        let l = g.layout();
        let (kw, c) = (g.kernel.1, g.channels);
        let pixel_row = l.pairs * 2 * c; // elements of one padded row of one copy
        debug_assert!(xp.len() >= l.phases.len() * g.batch * l.rows * pixel_row);
        debug_assert!(dzt.len() >= g.batch * g.filters_pad() * g.plane());
        let groups = g.taps() / 16;
        let mut offsets: Vec<usize> = (0..groups)
            .map(|m| {
                let (t, c0) = (m / (c / 16), m % (c / 16) * 16);
                let (ky, kx) = (t / kw, t % kw);
                let (copy, first) = g.tap_pairs(kx, &l);
                ((copy * g.batch * l.rows + ky * g.dilation.0) * l.pairs + first) * 2 * c + 2 * c0
            })
            .collect();
        if groups % 2 == 1 {
            offsets.push(offsets[0]);
        }
        debug_assert_eq!(offsets.len() * 16, g.taps_pad());
        Layouts {
            xp: xp.as_ptr(),
            dzt: dzt.as_ptr(),
            g,
            offsets,
            x_image: l.rows * pixel_row,
            x_line: g.stride.0 * pixel_row,
        }
    }
}

/// Image `img`'s two layouts, as [`Layouts::new`] reads them for `g.one_image()`, written into
/// `buf` on the calling thread (grown when short, never zeroed: every element used is
/// written): the pair copies and the filter-major `dz`, each starting on a 64-byte boundary.
#[cfg(target_arch = "x86_64")]
pub(super) fn image_layouts<'b>(
    x: &[u16],
    dz: &[u16],
    g: &WeightGradConv,
    img: usize,
    buf: &'b mut Vec<u16>,
) -> (&'b [u16], &'b [u16]) {
    let one = g.one_image();
    let (x_len, dz_len) = one.work_lens();
    if buf.len() < x_len + dz_len + 64 {
        buf.resize(x_len + dz_len + 64, 0);
    }
    let at = buf.as_ptr().align_offset(64).min(64);
    let (xp, rest) = buf[at..].split_at_mut(x_len);
    let dzt = &mut rest[..dz_len];
    let x_image = g.in_h * g.in_w * g.channels;
    let dz_image = g.out_h * g.out_w * g.filters;
    let simd = layout::simd_available();
    layout::pairs(&x[img * x_image..][..x_image], &one, xp, simd, Run::Serial);
    layout::filter_major(
        &dz[img * dz_image..][..dz_image],
        &one,
        dzt,
        simd,
        Run::Serial,
    );
    (xp, dzt)
}

/// Partial sums of the kernel gradient, each over a fixed run of output rows: the parallel
/// tasks (a fixed count, so the result does not depend on the thread count).
const PARTS: usize = 8;

/// At most this many bytes of partial sums (fewer parts for a large kernel).
const PARTS_BYTES: usize = 16 << 20;

/// Whether [`conv_weight_grad`] runs for `T` and `channels` input channels: bf16 on the AMX
/// tiles or on `vdpbf16ps` (the selection point's choice for bf16 products), channels a
/// multiple of 16 (a block's 16 columns are 16 channels of one tap).
pub(crate) fn wgrad_ready<T: Element>(channels: usize) -> bool {
    cfg!(target_arch = "x86_64")
        && T::DTYPE == DType::BFloat16
        && matches!(
            selected().gemm(DType::BFloat16),
            KernelChoice::Amx | KernelChoice::Avx512
        )
        && channels > 0
        && channels.is_multiple_of(16)
}

/// `out (taps × filters) = Σ_windows xᵀ·dz`, the kernel gradient in Keras's `[kh, kw, c, f]`
/// order, for the unpadded input `x` and the output gradient `dz`, products and sums in f32;
/// `work` holds the two layouts (grown when short, its values overwritten). Returns `false`,
/// leaving `out` untouched, when it does not apply: [`wgrad_ready`] is false; the layouts would
/// be more than twice the window matrix (a narrow output under a wide stride); or a row of
/// output pixels is not a multiple of 32 long and `x` holds an infinity or a NaN (the zero `dz`
/// that pads the row would multiply it into a NaN the window matrix does not have).
///
/// # Panics
///
/// When it applies and the lengths disagree with `g` (internal contracts).
pub(crate) fn conv_weight_grad<T: Element>(
    x: &[T],
    g: &WeightGradConv,
    dz: &[T],
    work: &mut Vec<T>,
    out: &mut [T::Acc],
) -> bool {
    if !wgrad_ready::<T>(g.channels) || !g.consistent() {
        return false;
    }
    let rows = g.batch * g.out_h * g.out_w;
    let (x_len, dz_len) = g.work_lens();
    if x_len + dz_len > 2 * rows.saturating_mul(g.taps()).max(1 << 16) {
        return false;
    }
    if !g.out_w.is_multiple_of(32) && !max_abs(x).is_finite() {
        return false;
    }
    assert_eq!(
        x.len(),
        g.batch * g.in_h * g.in_w * g.channels,
        "wgrad: input"
    );
    assert_eq!(dz.len(), rows * g.filters, "wgrad: output gradient");
    assert_eq!(out.len(), g.taps() * g.filters, "wgrad: kernel gradient");
    if rows == 0 {
        out.fill(T::Acc::default());
        return true;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let tp = g.taps_pad();
        let part = g.filters_pad() * tp;
        let parts = PARTS
            .min(g.batch * g.out_h)
            .min((PARTS_BYTES / (4 * part)).max(1));
        // On the tiles the two layouts of the whole batch are written first (in parallel over
        // rows: a machine with AMX has many cores); `vdpbf16ps` writes each image's layouts
        // inside the task that reads them (`wgrad_dp.rs`), so they stay in its L2, when there
        // is at least an image per part.
        let amx = selected().gemm(DType::BFloat16) == KernelChoice::Amx;
        let per_image = !amx && g.batch >= parts;
        let (x_len, dz_len) = if per_image { (0, 0) } else { (x_len, dz_len) };
        // The two layouts and the partial sums (f32, two elements each) all start on a 64-byte
        // boundary (the layouts' lengths are multiples of 32 elements): a `tileloadd` whose
        // rows straddle cache lines is several times slower. `work` is reused between calls and
        // only grown (every element used is written), so it is neither zeroed by the allocator
        // nor zero-filled again after a shorter use.
        let need = x_len + dz_len + 2 * parts * part + 64;
        if work.len() < need {
            work.resize(need, T::default());
        }
        let at = work.as_ptr().align_offset(64).min(64);
        let (xp, rest) = work[at..].split_at_mut(x_len);
        let (dzt, sums) = rest.split_at_mut(dz_len);
        if let (
            SliceRef::Bf16(xs),
            SliceRef::Bf16(dzs),
            SliceMut::Bf16(xp),
            SliceMut::Bf16(dzt),
            SliceMut::Bf16(sums),
        ) = (
            T::view(x),
            T::view(dz),
            T::view_mut(xp),
            T::view_mut(dzt),
            T::view_mut(sums),
        ) {
            let (xs, dzs) = (xs.reinterpret_cast(), dzs.reinterpret_cast());
            let (xp, dzt) = (xp.reinterpret_cast_mut(), dzt.reinterpret_cast_mut());
            let simd = layout::simd_available();
            let sums: &mut [u16] = sums.reinterpret_cast_mut();
            // SAFETY: every bit pattern is an f32; the region starts on a 64-byte boundary, so
            // the prefix is empty (asserted).
            let (head, acc, _) = unsafe { sums.align_to_mut::<f32>() };
            assert!(head.is_empty() && acc.len() >= parts * part);
            let acc = &mut acc[..parts * part];
            if !per_image {
                layout::pairs(xs, g, xp, simd, Run::Parallel);
                layout::filter_major(dzs, g, dzt, simd, Run::Parallel);
            }
            // SAFETY: `wgrad_ready` holds only when the selection point chose the AMX tiles for
            // bf16, which it does only after detecting AMX-TILE, AMX-BF16 (with the OS's
            // permission) and AVX-512F, or `vdpbf16ps`, which it does only after detecting
            // AVX-512 (F, BW, VL, DQ) and AVX512-BF16; the batch layouts were just written at
            // the lengths `g` gives (unless `per_image`), the input and `dz` have the lengths
            // asserted above, and `acc` holds `parts` parts of `filters_pad` rows of `taps_pad`
            // f32.
            unsafe {
                use super::wgrad_dp::{wgrad_bf16_dp, Source};
                if amx {
                    super::wgrad_amx::wgrad_bf16_amx(xp, dzt, g, parts, acc)
                } else if per_image {
                    wgrad_bf16_dp(Source::Images(xs, dzs), g, parts, acc)
                } else {
                    wgrad_bf16_dp(Source::Batch(xp, dzt), g, parts, acc)
                }
            };
            let (first, rest) = acc.split_at_mut(part);
            for other in rest.chunks_exact(part) {
                first.iter_mut().zip(other).for_each(|(a, &b)| *a += b);
            }
            let SliceMut::F32(out) = T::Acc::view_mut(out) else {
                unreachable!("bf16 accumulates in f32")
            };
            for (t, dst) in out.chunks_exact_mut(g.filters).enumerate() {
                for (f, v) in dst.iter_mut().enumerate() {
                    *v = acc[f * tp + t];
                }
            }
            return true;
        }
    }
    let _ = work;
    unreachable!("wgrad_ready holds only for bf16 products on x86_64")
}

#[cfg(target_arch = "x86_64")]
mod avx512;
mod layout;
#[cfg(test)]
mod tests;
