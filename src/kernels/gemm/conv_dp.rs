//! The `vdpbf16ps` convolution read straight from a zero-padded NHWC input, for CPUs with
//! AVX512-BF16 and no AMX (the safe wrapper and the geometry are in [`super::implicit`]).
//!
//! It is [`super::dpbf16`]'s 12×32 register block with A read from the input instead of a
//! packed window matrix. With an even channel count, the window matrix's k-pair `q = t·C/2 + j`
//! is channels `2j, 2j + 1` of tap `t`: one 32-bit word of the input, at a fixed offset from
//! the window's corner, and the corners of 12 consecutive output pixels of one output row lie
//! `stride_w · C` elements apart. So each step broadcasts one input word per row, the B panels
//! are the kernel's k-pair packing (`gemm/pairs.rs`), and the pairs are added in k order as
//! `im2col` + [`gemm_packed`](super::gemm_packed) adds them: the same bits (tested). No window
//! matrix is written or packed, and nothing is read outside the windows.
//!
//! Each task takes a run of output lines (image, output row) and keeps their sums in an f32
//! block of about 256 KiB, panel-major with rows of 32 sums; k is cut into runs of whole taps of
//! up to 288 pairs (a B block of 36 KiB) so a B block stays in L1 while the task's row strips
//! stream past it, and each run reads and writes the task's sums once. At the end the [`Sink`]
//! gets the sums themselves, or each panel's rows through the caller's epilogue in place,
//! rounded once to bf16.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::blocked::{load_acc, store_acc, MR, NR};
use super::conv_amx::{Out, Sink};
use super::implicit::{ImplicitConv, BLOCK_PITCH};
use super::pairs::PairPanels;

/// k-pairs per block, at least one whole tap: a 3×3 kernel on 64 channels in one block (36 KiB
/// of one strip's B panel, in a 48 KiB L1 beside the A words). Against 128 pairs (blocks of 4,
/// 4 and 1 taps, so three passes over the sums) the 32×32×64 forward ran 2–3% faster.
const KQ: usize = 288;
/// f32 sums a task keeps (256 KiB).
const TASK_SUMS: usize = 1 << 16;
/// Below this many multiply-adds, stay on the calling thread.
const PAR_MIN_FLOP: usize = 1 << 22;

thread_local! {
    /// Each worker's block of sums, kept between its tasks and calls (taken out while a task
    /// runs, so a nested task on the same thread gets a new one): a task's first block of taps
    /// stores every sum before any is read, so the block is never zeroed, and the 256 KiB is
    /// neither allocated nor cleared again for each of the 32 tasks of a 32-image layer.
    static SUMS: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// `out (rows × n) = conv(x, W)` for the padded input `x` (bf16 bits) and the k-pair kernel `b`.
///
/// # Safety
///
/// AVX-512 (F, BW, VL) and AVX512-BF16 must be present; the wrapper has checked that `g` is
/// consistent, `g.channels` is even, `b` packs a `g.taps() × n` matrix, `x.len() >=
/// g.input_len()` and that the sink holds `g.rows() * n` elements (every one is written).
pub(super) unsafe fn conv_bf16_dp(
    x: &[u16],
    g: &ImplicitConv,
    b: &PairPanels,
    n: usize,
    sink: Sink<'_>,
) {
    let (kh, kw) = g.kernel;
    let (dh, dw) = g.dilation;
    let (c, cq) = (g.channels, g.channels / 2);
    // Word offset of each tap's first channel pair from the window's corner.
    let taps: Vec<usize> = (0..kh * kw)
        .map(|t| ((t / kw) * dh * g.in_w + (t % kw) * dw) * c / 2)
        .collect();
    debug_assert_eq!(taps.len() * cq, b.kq);
    let lines = g.batch * g.out_h;
    let row_sums = b.strips * NR;
    let mut per_task = (TASK_SUMS / (g.out_w * row_sums).max(1)).max(1);
    if g.rows() * n * g.taps() >= PAR_MIN_FLOP {
        per_task = per_task.min(lines.div_ceil(4 * rayon::current_num_threads()).max(1));
    }
    let job = Job {
        x: x.as_ptr().cast(),
        g,
        b,
        n,
        taps: &taps,
        taps_per_block: (KQ / cq.max(1)).max(1),
    };
    let out = Out::from(sink);
    let run = |t: usize| {
        let first = t * per_task;
        // SAFETY: the contract of this function; each task writes only its own output lines.
        unsafe { job.lines(first..(first + per_task).min(lines), out) }
    };
    (0..lines.div_ceil(per_task)).into_par_iter().for_each(run);
}

/// What every task reads.
struct Job<'a> {
    /// The padded input as 32-bit words (channel pairs), not necessarily 4-byte aligned.
    x: *const u32,
    g: &'a ImplicitConv,
    b: &'a PairPanels,
    n: usize,
    taps: &'a [usize],
    taps_per_block: usize,
}

// SAFETY: `x` points into a slice borrowed for the whole parallel loop and is only read.
unsafe impl Sync for Job<'_> {}

impl Job<'_> {
    /// Output lines `lines` into `out`.
    ///
    /// # Safety
    ///
    /// As [`conv_bf16_dp`]; no other task writes these lines.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn lines(&self, lines: std::ops::Range<usize>, out: Out<'_>) {
        let g = self.g;
        let (sh, sw) = g.stride;
        let cq = g.channels / 2;
        let (n, kq, strips) = (self.n, self.b.kq, self.b.strips);
        let rows = lines.len() * g.out_w;
        let row0 = lines.start * g.out_w;
        let mut sums = SUMS.take();
        if sums.len() < strips * rows * NR {
            sums.resize(strips * rows * NR, 0.0);
        }
        for (tb, block) in self.taps.chunks(self.taps_per_block).enumerate() {
            let q0 = tb * self.taps_per_block * cq;
            for j in 0..strips {
                let bp = self.b.data[j * kq * NR + q0 * NR..][..block.len() * cq * NR].as_ptr();
                for (l, line) in lines.clone().enumerate() {
                    let (img, oy) = (line / g.out_h, line % g.out_h);
                    let corner = (img * g.in_h + oy * sh) * g.in_w * cq;
                    for ox in (0..g.out_w).step_by(MR) {
                        let mr = (g.out_w - ox).min(MR);
                        let at = (j * rows + l * g.out_w + ox) * NR;
                        let c = sums[at..at + mr * NR].as_mut_ptr();
                        // SAFETY: the window corner of pixel `ox` (and of the mr - 1 pixels
                        // after it in this row) is inside the padded input, and so is every
                        // tap word of its window (the wrapper checked `g`); bp holds the block's
                        // pairs; c is mr rows of NR sums.
                        unsafe {
                            let a = self.x.add(corner + ox * sw * cq);
                            strip(mr, block, cq, a, sw * cq, bp, c, tb > 0);
                        }
                    }
                }
            }
        }
        for j in 0..strips {
            let nr = n.saturating_sub(NR * j).min(NR);
            let panel = &mut sums[j * rows * NR..][..rows * NR];
            match out {
                Out::Sums(o) => {
                    for (r, s) in panel.chunks_exact(NR).enumerate() {
                        // SAFETY: row row0 + r of the output belongs to this task's lines.
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(o.add((row0 + r) * n + NR * j), nr)
                        };
                        dst.copy_from_slice(&s[..nr]);
                    }
                }
                Out::Rounded(y, epilogue) => {
                    epilogue(NR * j, panel, nr);
                    for (r, s) in panel.chunks_exact(BLOCK_PITCH).enumerate() {
                        // SAFETY: as above; AVX-512 F/BW/VL (contract), nr bf16 written.
                        unsafe {
                            let dst =
                                std::slice::from_raw_parts_mut(y.add((row0 + r) * n + NR * j), nr);
                            crate::kernels::cast::avx512::f32_to_bf16_avx512(&s[..nr], dst);
                        }
                    }
                }
            }
        }
        SUMS.set(sums);
    }
}

/// Calls the strip kernel specialised for `mr` rows.
///
/// # Safety
///
/// As [`micro`], with `1 <= mr <= MR`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn strip(
    mr: usize,
    taps: &[usize],
    cq: usize,
    a: *const u32,
    lda: usize,
    b: *const u32,
    c: *mut f32,
    load: bool,
) {
    macro_rules! rows {
        ($($r:literal)*) => {
            match mr {
                // SAFETY: forwarded contract, with M == mr.
                $($r => unsafe { micro::<$r>(taps, cq, a, lda, b, c, load) },)*
                _ => unreachable!("mr in 1..=MR"),
            }
        };
    }
    rows!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// `C[0..M][0..32] (+)= A·B` over the channel pairs of `taps`: row `r` of A is the window of the
/// pixel whose corner word is `a + r·lda`, B the panel block `b` (`taps.len()·cq` pair-rows).
///
/// # Safety
///
/// AVX-512F and AVX512-BF16; `a + r·lda + tap + j` readable for `r < M`, each tap, `j < cq`;
/// `b` valid for `taps.len()·cq·NR` words; `c` valid for `M` rows of `NR` f32 (read when `load`).
#[inline]
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn micro<const M: usize>(
    taps: &[usize],
    cq: usize,
    a: *const u32,
    lda: usize,
    b: *const u32,
    c: *mut f32,
    load: bool,
) {
    // SAFETY: forwarded contract (C's M rows).
    let mut acc = unsafe { load_acc::<M>(c, NR, load) };
    let mut bq = b;
    for &tap in taps {
        for j in 0..cq {
            // SAFETY: the words read are those of the contract; a `__m512i` of 16 words is a
            // `__m512bh` of 32 bf16 in the same bits; the input words may be unaligned.
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(bq.cast()));
                let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(bq.add(16).cast()));
                let at = a.add(tap + j);
                for (r, row) in acc.iter_mut().enumerate() {
                    let w = at.add(r * lda).read_unaligned();
                    let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(w as i32));
                    row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                    row[1] = _mm512_dpbf16_ps(row[1], av, b1);
                }
                bq = bq.add(NR);
            }
        }
    }
    // SAFETY: forwarded contract.
    unsafe { store_acc::<M>(&acc, c, NR) }
}
