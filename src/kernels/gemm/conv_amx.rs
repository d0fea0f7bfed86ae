//! The AMX-BF16 convolution read straight from a zero-padded NHWC input (the safe wrapper and
//! the geometry are in [`super::implicit`]).
//!
//! It is [`super::amx`]'s 32×32 microkernel with one change: the two A tiles are not read from a
//! packed copy of the window matrix but from the input itself. With the channels a multiple of
//! 32, the window matrix's k chunk `c` is 32 channels of one tap `(ky, kx)`, and its 16 rows for
//! output pixels `ox .. ox + 16` of one output row sit in the padded input `stride_w · C`
//! elements apart: one `tileloadd` with that row pitch. So no window matrix is written or
//! packed; the tiles get exactly the bf16 values (padding zeros included) that the packed
//! window matrix would hold, the B tiles are the same packed kernel, and the four
//! `tdpbf16ps` per chunk run in the same order, so the result has the bits of
//! `im2col` + [`gemm_packed`](super::gemm_packed) (tested).
//!
//! Output pixels past the row's end (the last pair of tiles of a row whose width is not a
//! multiple of 32) read on into the next row, or into the wrapper's slack after the input;
//! their rows go to a scratch block and are dropped.
//!
//! The blocks go to a [`Sink`]: the f32 sums themselves, or each block through a scratch block
//! in L1, where the caller's epilogue (a layer's bias and activation) runs on it in place and
//! the AVX-512 rounding writes it once to the bf16 output, so the f32 sums never reach memory.

use std::arch::asm;

use rayon::prelude::*;

use half::bf16;

use super::amx::{load_or_zero, store, Scratch, TileConfig, CONFIG};
use super::blocked::OutPtr;
use super::implicit::{ImplicitConv, BLOCK_PITCH};
use super::pack::{PackedVnni, B_CHUNK};

/// Below this many multiply-adds, stay on the calling thread.
const PAR_MIN_FLOP: usize = 1 << 22;

/// An epilogue on the f32 sums (see [`super::implicit::conv_implicit_rounded`]).
type Epilogue<'a> = &'a (dyn Fn(usize, &mut [f32], usize) + Sync);

/// Where the product's `rows × n` result goes.
pub(super) enum Sink<'a> {
    /// The f32 sums (what the tests compare bit for bit).
    #[cfg_attr(not(test), allow(dead_code))]
    Sums(&'a mut [f32]),
    /// The sums after `epilogue`, rounded once to bf16, written (never read) through the
    /// pointer: `rows × n` elements that may be uninitialised.
    Rounded(*mut bf16, Epilogue<'a>),
}

/// What the tasks write through (here and in `gemm/conv_dp.rs`).
#[derive(Clone, Copy)]
pub(super) enum Out<'a> {
    Sums(OutPtr),
    Rounded(OutPtr<bf16>, Epilogue<'a>),
}

impl<'a> From<Sink<'a>> for Out<'a> {
    fn from(sink: Sink<'a>) -> Self {
        match sink {
            Sink::Sums(out) => Out::Sums(OutPtr(out.as_mut_ptr())),
            Sink::Rounded(out, epilogue) => Out::Rounded(OutPtr(out), epilogue),
        }
    }
}

/// `out (rows × n) = conv(x, W)` for the padded input `x` and the packed kernel `b`.
///
/// # Safety
///
/// AMX-TILE, AMX-BF16 (granted by the OS) and AVX-512 (F, BW, VL) must be present; the wrapper
/// has checked that `g` is consistent, `g.channels % 32 == 0`, `b` packs a `g.taps() × n`
/// matrix, `x.len() >= g.input_len() + g.slack()` and that the sink holds `g.rows() * n`
/// elements (the kernel writes every one of them).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn conv_bf16_amx(
    x: &[u16],
    g: &ImplicitConv,
    b: &PackedVnni,
    n: usize,
    sink: Sink<'_>,
) {
    let (kh, kw) = g.kernel;
    let (dh, dw) = g.dilation;
    let c = g.channels;
    // Element offset of each k chunk's first tap element from the window's corner.
    let offsets: Vec<usize> = (0..kh * kw)
        .flat_map(|t| {
            let tap = ((t / kw) * dh * g.in_w + (t % kw) * dw) * c;
            (0..c / 32).map(move |j| tap + 32 * j)
        })
        .collect();
    debug_assert_eq!(offsets.len(), b.kc);
    let lines = g.batch * g.out_h;
    let out_ptr = Out::from(sink);
    let job = Job {
        x: x.as_ptr(),
        g,
        b,
        n,
        offsets: &offsets,
    };
    let flop = g.rows() * n * b.kc * 32;
    let per_task = if flop >= PAR_MIN_FLOP {
        lines.div_ceil(4 * rayon::current_num_threads()).max(1)
    } else {
        lines.max(1)
    };
    let run = |t: usize| {
        let first = t * per_task;
        // SAFETY: the contract of this function; each task writes only its own output lines.
        unsafe { job.lines(first..(first + per_task).min(lines), out_ptr) }
    };
    (0..lines.div_ceil(per_task)).into_par_iter().for_each(run);
}

/// What every task reads.
struct Job<'a> {
    x: *const u16,
    g: &'a ImplicitConv,
    b: &'a PackedVnni,
    n: usize,
    offsets: &'a [usize],
}

// SAFETY: `x` points into a slice borrowed for the whole parallel loop and is only read.
unsafe impl Sync for Job<'_> {}
// SAFETY: the pointers write disjoint lines of slices borrowed for the whole loop; the
// epilogue is `Sync`.
unsafe impl Send for Out<'_> {}
// SAFETY: as for Send.
unsafe impl Sync for Out<'_> {}

impl Job<'_> {
    /// Output lines (image, output row) `lines`: every pair of 16-pixel tiles × pair of
    /// 16-filter strips.
    ///
    /// # Safety
    ///
    /// As [`conv_bf16_amx`]; no other task writes these lines.
    #[target_feature(enable = "avx512f")]
    unsafe fn lines(&self, lines: std::ops::Range<usize>, out: Out<'_>) {
        let g = self.g;
        let (sh, sw) = g.stride;
        let c = g.channels;
        let n = self.n;
        let kc = self.b.kc;
        let pitch = sw * c * 2; // bytes between the rows of an A tile
                                // SAFETY: AMX is present; CONFIG is a valid palette-1 configuration.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly))
        };
        for line in lines {
            let (img, oy) = (line / g.out_h, line % g.out_h);
            let row0 = line * g.out_w; // first output row (pixel) of the line
            let corner = (img * g.in_h + oy * sh) * g.in_w * c;
            for ox in (0..g.out_w).step_by(32) {
                let mr = (g.out_w - ox).min(32);
                // SAFETY: the window corner of pixel `ox` is inside the padded input; tail
                // tiles read at most 32·sw pixels on, inside the slack (wrapper's check).
                let a = unsafe { self.x.add(corner + ox * sw * c) };
                for jp in 0..self.b.strips / 2 {
                    let nr = n.saturating_sub(32 * jp).min(32);
                    if nr == 0 {
                        break;
                    }
                    let b0 = self.b.data[2 * jp * kc * B_CHUNK..].as_ptr();
                    let b1 = self.b.data[(2 * jp + 1) * kc * B_CHUNK..].as_ptr();
                    let at = (row0 + ox) * n + 32 * jp;
                    // SAFETY: C row `row0 + ox` onwards belongs to this line; full blocks are
                    // in bounds, edges and rounded blocks go through the scratch block.
                    unsafe {
                        match out {
                            Out::Sums(c) if mr == 32 && nr == 32 => {
                                self.block(a, pitch, b0, b1, c.0.add(at), 4 * n);
                            }
                            Out::Sums(c) => {
                                let mut s = Scratch([0.0; 1024]);
                                self.block(a, pitch, b0, b1, s.0.as_mut_ptr(), 128);
                                for r in 0..mr {
                                    let dst =
                                        std::slice::from_raw_parts_mut(c.0.add(at + r * n), nr);
                                    dst.copy_from_slice(&s.0[32 * r..32 * r + nr]);
                                }
                            }
                            Out::Rounded(y, epilogue) => {
                                let mut s = Scratch([0.0; 1024]);
                                self.block(a, pitch, b0, b1, s.0.as_mut_ptr(), 128);
                                epilogue(32 * jp, &mut s.0[..BLOCK_PITCH * mr], nr);
                                let mut row = [bf16::ZERO; 32];
                                for r in 0..mr {
                                    crate::kernels::cast::avx512::f32_to_bf16_avx512(
                                        &s.0[32 * r..32 * r + nr],
                                        &mut row[..nr],
                                    );
                                    let dst = y.0.add(at + r * n);
                                    std::ptr::copy_nonoverlapping(row.as_ptr(), dst, nr);
                                }
                            }
                        }
                    }
                }
            }
        }
        // SAFETY: AMX is present; releasing returns the tile state to its initial value.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }

    /// One 32×32 block: 32 output pixels from `a` (rows `pitch` bytes apart) × the 32 filters of
    /// strips `b0`, `b1`, over every k chunk, stored at `c` with row pitch `ldc` bytes.
    ///
    /// # Safety
    ///
    /// Tiles configured with [`CONFIG`]; `a + offset` for every chunk offset, with 32 rows of
    /// `pitch` bytes, is readable; `b0`, `b1` hold `kc` chunks; `c` is 32 writable rows of 32 f32.
    #[inline]
    unsafe fn block(
        &self,
        a: *const u16,
        pitch: usize,
        b0: *const u32,
        b1: *const u32,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: tiles configured (caller's contract); nothing is read when zeroing.
        unsafe { load_or_zero(c, ldc, true) };
        for (k, &off) in self.offsets.iter().enumerate() {
            // SAFETY: the A rows, B chunks and tiles are as the contract says.
            unsafe {
                let a0 = a.add(off);
                let a1 = a0.byte_add(16 * pitch);
                asm!(
                    "tileloadd tmm4, [{a0} + {p}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    "tdpbf16ps tmm0, tmm4, tmm6",
                    "tileloadd tmm7, [{b1} + {s}*1]",
                    "tdpbf16ps tmm1, tmm4, tmm7",
                    "tileloadd tmm5, [{a1} + {p}*1]",
                    "tdpbf16ps tmm2, tmm5, tmm6",
                    "tdpbf16ps tmm3, tmm5, tmm7",
                    a0 = in(reg) a0,
                    a1 = in(reg) a1,
                    b0 = in(reg) b0.add(k * B_CHUNK),
                    b1 = in(reg) b1.add(k * B_CHUNK),
                    p = in(reg) pitch,
                    s = in(reg) 64usize,
                    options(nostack, readonly),
                );
            }
        }
        // SAFETY: c is 32 writable rows of 32 f32, ldc bytes apart.
        unsafe { store(c, ldc) };
    }
}
