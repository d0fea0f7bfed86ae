//! The AMX-BF16 kernel gradient of a convolution, read in place from the layouts of
//! [`super::wgrad`] (the safe wrapper and the geometry are there).
//!
//! A block is 32 filters × 32 columns of `dWᵀ` (two groups of 16 channels of a tap) in the
//! four accumulator tiles tmm0..tmm3. For each image the block's tiles are loaded from the f32
//! accumulator (zeroed for the first image), and every chunk of 32 output pixels of every row
//! adds two A tiles (tmm4, tmm5: 16 filters × 32 pixels of the filter-major `dz`) times two B
//! tiles (tmm6, tmm7: 16 pixel pairs × 16 channels of the input's pair copies) with four
//! `tdpbf16ps`; then the tiles are stored back. Every tile row is 64 bytes on a cache line.
//! Looping images outside the blocks keeps one image's `dz` and input (about 420 KiB at
//! 32×32×64) in L2 across all the blocks, so each is read from memory once. The parallel tasks
//! are fixed runs of output rows with a partial sum each (the wrapper adds them in order), so
//! the result does not depend on the thread count.
//!
//! Numerics as [`super::amx`]: exact bf16 products, f32 sums rounded to nearest even, bf16
//! subnormal inputs read as zero and subnormal results flushed.

use std::arch::asm;

use super::amx::{load_or_zero, store, TileConfig, CONFIG};
use super::wgrad::{Layouts, WeightGradConv};

/// `acc`'s `parts` partial sums (`filters_pad × taps_pad` each) of `dzᵀ·x`, from the input's
/// pair copies `xp` and the filter-major `dzt`: part `p` sums the `p`-th of `parts` equal runs
/// of output rows (image, row), so a part depends on `parts` but not on the thread count.
/// Every element of `acc` is written (a part with no rows is zeroed); none is read first.
///
/// # Safety
///
/// AMX-TILE, AMX-BF16 (granted by the OS) and AVX-512F must be present; `xp` and `dzt` hold the
/// layouts of `g` (`g.layout()`, `g.plane()`, `g.filters_pad()`), both 64-byte aligned,
/// `g.channels % 16 == 0`, `1 <= parts`, and `acc` holds `parts · g.filters_pad()` rows of
/// `g.taps_pad()` f32.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn wgrad_bf16_amx(
    xp: &[u16],
    dzt: &[u16],
    g: &WeightGradConv,
    parts: usize,
    acc: &mut [f32],
) {
    let job = Layouts::new(xp, dzt, g);
    // SAFETY: the contract of this function; each task writes only its own part.
    g.for_parts(parts, acc, |rows, part| unsafe {
        job.amx_lines(rows, part)
    });
}

impl Layouts<'_> {
    /// `part = Σ dzᵀ·x` over the output rows `lines` (image `line / out_h`, row `line % out_h`):
    /// for each image's run of them, every block (32 filters × 32 columns) in turn.
    ///
    /// # Safety
    ///
    /// As [`wgrad_bf16_amx`]; `part` is one part of its `acc`.
    #[target_feature(enable = "avx512f")]
    unsafe fn amx_lines(&self, lines: std::ops::Range<usize>, part: &mut [f32]) {
        let g = self.g;
        let c = g.channels;
        let (fp, wp, tp) = (g.filters_pad(), g.out_w_pad(), g.taps_pad());
        let plane = g.plane(); // elements between filters in `dzt`
        let a_pitch = plane * 2; // bytes between filters
        let b_pitch = 4 * c; // bytes between pixel pairs
        let ldc = tp * 4;
        let blocks = (fp / 32, tp / 32);
        if lines.is_empty() {
            part.fill(0.0);
            return;
        }
        // SAFETY: AMX is present; CONFIG is a valid palette-1 configuration.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly))
        };
        let mut line = lines.start;
        while line < lines.end {
            let img = line / g.out_h;
            let rows = line % g.out_h..(lines.end - img * g.out_h).min(g.out_h);
            for (mp, np) in (0..blocks.1).flat_map(|np| (0..blocks.0).map(move |mp| (mp, np))) {
                let cp = part[32 * mp * tp + 32 * np..].as_mut_ptr();
                // SAFETY: tiles configured; `cp` is 32 rows of 32 f32, `ldc` bytes apart, in
                // `part` (`fp` rows of `tp`).
                unsafe { load_or_zero(cp, ldc, line == lines.start) };
                let xa = img * self.x_image;
                let (b0, b1) = (xa + self.offsets[2 * np], xa + self.offsets[2 * np + 1]);
                let a_img = (img * fp + 32 * mp) * plane;
                for oy in rows.clone() {
                    let x_row = oy * self.x_line;
                    for ox in (0..wp).step_by(32) {
                        // SAFETY: the layouts hold these chunks (wrapper's lengths): the A rows
                        // are inside the image's filter-major `dz`, the B pairs inside the
                        // copy's padded rows.
                        unsafe {
                            let p0 = self.dzt.add(a_img + oy * wp + ox);
                            let p1 = p0.add(16 * plane);
                            let q0 = self.xp.add(b0 + x_row + ox * c);
                            let q1 = self.xp.add(b1 + x_row + ox * c);
                            asm!(
                                "tileloadd tmm4, [{a0} + {ap}*1]",
                                "tileloadd tmm6, [{b0} + {bp}*1]",
                                "tdpbf16ps tmm0, tmm4, tmm6",
                                "tileloadd tmm7, [{b1} + {bp}*1]",
                                "tdpbf16ps tmm1, tmm4, tmm7",
                                "tileloadd tmm5, [{a1} + {ap}*1]",
                                "tdpbf16ps tmm2, tmm5, tmm6",
                                "tdpbf16ps tmm3, tmm5, tmm7",
                                a0 = in(reg) p0,
                                a1 = in(reg) p1,
                                b0 = in(reg) q0,
                                b1 = in(reg) q1,
                                ap = in(reg) a_pitch,
                                bp = in(reg) b_pitch,
                                options(nostack, readonly),
                            );
                        }
                    }
                }
                // SAFETY: as the load.
                unsafe { store(cp, ldc) };
            }
            line = (img + 1) * g.out_h;
        }
        // SAFETY: AMX is present; releasing returns the tile state to its initial value.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}
