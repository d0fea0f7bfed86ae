//! The `vdpbf16ps` kernel gradient of a convolution, for CPUs with AVX512-BF16 and no AMX,
//! read in place from the layouts of [`super::wgrad`], written one image at a time by the task
//! that reads them (the safe wrapper and the geometry are there, and the AMX version of the
//! same loop is `gemm/wgrad_amx.rs`).
//!
//! `dWᵀ = dzᵀ · windows(x)` with the output pixels as k: a k-pair is two consecutive output
//! pixels of one row. In the filter-major `dz` (`[img][f][oy][ox]`) the pair of a filter is
//! one 32-bit word, broadcast to a register; in the input's pair copies
//! (`[phase][img][row][pair][c][2]`) 16 channels of a tap for a pixel pair are 32 consecutive
//! bf16, one `__m512bh` already in `vdpbf16ps`'s pair order. A register block is 12 filters ×
//! 32 columns of `dWᵀ` (two groups of 16 channels of a tap, as the AMX blocks are) in 24
//! accumulators: each step loads two B vectors, broadcasts 12 words and issues 24
//! `vdpbf16ps`. For each image of a task's run of output rows, the task writes the image's
//! layouts (about 430 KiB at 32×32×64) into its own buffer, then every block is loaded from the
//! task's f32 partial sum (zeroed for its first row), accumulates all the image's rows, and is
//! stored back: the layouts are written and read in L2 and never go to memory. (Writing the
//! whole batch's layouts first, 14 MiB at 32 images, then reading them back took about 0.35 ms
//! more of a 6 ms backward pass.)
//!
//! Numerics as [`super::dpbf16`]: exact bf16 products, f32 sums rounded to nearest even,
//! subnormal bf16 inputs read as zero and subnormal results flushed (AVX512-BF16's rule).

use std::arch::x86_64::*;

use super::blocked::{load_acc, store_acc, MR, NR};
use super::wgrad::{Layouts, WeightGradConv};

/// The largest image-layout buffer a worker keeps after a task (8 Mi elements, 16 MiB): a larger
/// one (an image of 160×160×128 channels, say) is freed, so idle threads do not hold it.
const KEEP_IMAGE: usize = 8 << 20;

thread_local! {
    /// Each worker's buffer for one image's layouts (about 430 KiB at 32×32×64), kept between
    /// tasks and calls up to [`KEEP_IMAGE`] elements; taken out while a task runs, so a nested
    /// task gets a new one.
    static IMAGE: std::cell::Cell<Vec<u16>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Where [`wgrad_bf16_dp`] reads the layouts of [`super::wgrad`].
#[derive(Clone, Copy)]
pub(super) enum Source<'a> {
    /// The whole batch's layouts, written by the caller (`xp`, `dzt`).
    Batch(&'a [u16], &'a [u16]),
    /// The input and `dz` (bf16 bits, NHWC): each task writes the layouts of one image at a
    /// time ([`super::wgrad::image_layouts`]) and runs every block over them while they are in
    /// its L2, instead of reading the whole batch's layouts back from memory. For batches of at
    /// least one image per part (a part would otherwise lay out a whole image for a few rows).
    Images(&'a [u16], &'a [u16]),
}

/// `acc`'s `parts` partial sums (`filters_pad × taps_pad` each) of `dzᵀ·x` from `src`, with the
/// split into parts of [`super::wgrad_amx::wgrad_bf16_amx`]: part `p` sums the `p`-th of
/// `parts` equal runs of output rows, so a part depends on `parts` but not on the thread count.
/// Every element of `acc` is written (the rows of padding filters and a part with no rows are
/// zeroed).
///
/// # Safety
///
/// AVX-512 (F, BW, VL) and AVX512-BF16 must be present; `src` holds the layouts of `g`
/// (`g.layout()`, `g.plane()`, `g.filters_pad()`), or the input and the output gradient of
/// `g`; `g.channels % 16 == 0`, `1 <= parts`, and `acc` holds `parts · g.filters_pad()` rows
/// of `g.taps_pad()` f32.
pub(super) unsafe fn wgrad_bf16_dp(
    src: Source<'_>,
    g: &WeightGradConv,
    parts: usize,
    acc: &mut [f32],
) {
    let one = g.one_image();
    let batch = match src {
        Source::Batch(xp, dzt) => Some(Layouts::new(xp, dzt, g)),
        Source::Images(..) => None,
    };
    g.for_parts(parts, acc, |lines, part| {
        let tp = g.taps_pad();
        if lines.is_empty() {
            part.fill(0.0);
            return;
        }
        part[g.filters * tp..].fill(0.0); // padding filters: never summed, never read
        let mut buf = IMAGE.take();
        let mut line = lines.start;
        while line < lines.end {
            let img = line / g.out_h;
            let rows = line % g.out_h..(lines.end - img * g.out_h).min(g.out_h);
            let first = line == lines.start;
            if let Some(job) = &batch {
                // SAFETY: the contract of this function; this task writes only its own part.
                unsafe { job.dp_image(img, rows, part, first) };
            } else if let Source::Images(x, dz) = src {
                let (xp, dzt) = super::wgrad::image_layouts(x, dz, g, img, &mut buf);
                let job = Layouts::new(xp, dzt, &one);
                // SAFETY: as above; the layouts are those of `one`, whose image 0 is image `img`.
                unsafe { job.dp_image(0, rows, part, first) };
            }
            line = (img + 1) * g.out_h;
        }
        if buf.len() <= KEEP_IMAGE {
            IMAGE.set(buf);
        }
    });
}

impl Layouts<'_> {
    /// `part (+)= Σ dzᵀ·x` over the output rows `rows` of image `img` of the layouts, every
    /// block (up to 12 filters × 32 columns) in turn; the sums start from zero when `first`.
    ///
    /// # Safety
    ///
    /// As [`wgrad_bf16_dp`], `img` an image of the layouts; `part` is one part of its `acc`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512bf16")]
    unsafe fn dp_image(
        &self,
        img: usize,
        rows: std::ops::Range<usize>,
        part: &mut [f32],
        first: bool,
    ) {
        let g = self.g;
        let (fp, tp) = (g.filters_pad(), g.taps_pad());
        let xa = img * self.x_image;
        for np in 0..tp / NR {
            let b = (xa + self.offsets[2 * np], xa + self.offsets[2 * np + 1]);
            // As few blocks as MR allows, of near-equal sizes (64 filters: 4 of 11 and 2 of
            // 10, not 5 of 12 and one of 4, whose 8 accumulators are too few to hide
            // `vdpbf16ps`'s latency).
            let blocks = g.filters.div_ceil(MR);
            for blk in 0..blocks {
                let f0 = blk * (g.filters / blocks) + blk.min(g.filters % blocks);
                let m = g.filters / blocks + usize::from(blk < g.filters % blocks);
                let cp = part[f0 * tp + NR * np..].as_mut_ptr();
                let a = (img * fp + f0) * g.plane() / 2;
                // SAFETY: `cp` is m rows of NR f32, tp apart, in `part`; the A words and B
                // pairs of these rows are inside the layouts (their lengths are `g`'s).
                unsafe { self.dp_block(m, a, b, rows.clone(), cp, first) };
            }
        }
    }

    /// Calls [`Layouts::dp_rows`] specialised for `m` filters.
    ///
    /// # Safety
    ///
    /// As [`Layouts::dp_rows`], with `1 <= m <= MR`.
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn dp_block(
        &self,
        m: usize,
        a: usize,
        b: (usize, usize),
        rows: std::ops::Range<usize>,
        c: *mut f32,
        first: bool,
    ) {
        macro_rules! rows {
            ($($r:literal)*) => {
                match m {
                    // SAFETY: forwarded contract, with M == m.
                    $($r => unsafe { self.dp_rows::<$r>(a, b, rows, c, first) },)*
                    _ => unreachable!("m in 1..=MR"),
                }
            };
        }
        rows!(1 2 3 4 5 6 7 8 9 10 11 12)
    }

    /// `C[0..M][0..32] (+)= Σ` over the output rows `rows` of one image and all their padded
    /// pixel pairs: A's row `r` is filter word `a + r·plane/2` (its image's first pair), B the
    /// two 16-channel groups at element offsets `b` of the pair copies. `C` is zeroed first when
    /// `first`, otherwise loaded.
    ///
    /// # Safety
    ///
    /// AVX-512F and AVX512-BF16; the M filters' words of these rows and the groups' pairs are
    /// inside the layouts; `c` valid for M rows of NR f32, `taps_pad` apart.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn dp_rows<const M: usize>(
        &self,
        a: usize,
        b: (usize, usize),
        rows: std::ops::Range<usize>,
        c: *mut f32,
        first: bool,
    ) {
        let g = self.g;
        let (wp, ldc, plane_w) = (g.out_w_pad(), g.taps_pad(), g.plane() / 2);
        let step = 2 * g.channels; // elements between pixel pairs in a copy
                                   // SAFETY: forwarded contract (C's M rows).
        let mut acc = unsafe { load_acc::<M>(c, ldc, !first) };
        for oy in rows {
            // SAFETY: as the contract: row oy's words and pairs are inside the layouts.
            unsafe {
                let mut ap = self.dzt.cast::<u32>().add(a + oy * wp / 2);
                let mut q0 = self.xp.add(b.0 + oy * self.x_line);
                let mut q1 = self.xp.add(b.1 + oy * self.x_line);
                for _ in 0..wp / 2 {
                    // A `__m512i` of 32 bf16 is a `__m512bh` in the same bits.
                    let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(q0.cast()));
                    let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(q1.cast()));
                    for (r, row) in acc.iter_mut().enumerate() {
                        let w = ap.add(r * plane_w).read_unaligned();
                        let av: __m512bh = std::mem::transmute(_mm512_set1_epi32(w as i32));
                        row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                        row[1] = _mm512_dpbf16_ps(row[1], av, b1);
                    }
                    ap = ap.add(1);
                    q0 = q0.add(step);
                    q1 = q1.add(step);
                }
            }
        }
        // SAFETY: forwarded contract.
        unsafe { store_acc::<M>(&acc, c, ldc) }
    }
}
