//! AMX-BF16 matrix product: `C (+)= A·B` with bf16 operands, products and sums in f32, from the
//! tile layouts of [`super::pack`].
//!
//! The microkernel keeps a 32×32 block of C in four tile registers (tmm0..tmm3, 16×16 f32 each),
//! and for every 32-wide k chunk loads two A tiles (tmm4, tmm5: 16 rows × 32 bf16) and two B tiles
//! (tmm6, tmm7: 16 pair-rows × 16 columns, VNNI) and issues four `tdpbf16ps`. The whole k range
//! runs in registers; C is read (for `accumulate`) and written once per block. Blocks at the
//! right and bottom edges go through a 32×32 scratch buffer.
//!
//! Work is split into blocks of up to [`MB`] × [`NB`] pairs of strips; rayon runs the blocks in
//! parallel when the product is large enough to pay for it. Each block configures the tiles on
//! its thread (`ldtilecfg`) and releases them (`tilerelease`) when done.
//!
//! Numerics (Intel SDM, `TDPBF16PS`): each product of two bf16 values is exact in f32 and added
//! with round to nearest even; bf16 *subnormal inputs are read as zero* and subnormal f32 results
//! are flushed to zero, whatever MXCSR says. Normal-range inputs therefore give the same function
//! as the portable path up to the order of f32 additions; the test bound carries an absolute term
//! for the flushed values.
//!
//! Stable Rust cannot name `amx-tile` / `amx-bf16` in `#[target_feature]` (unstable), so the tile
//! instructions are written with `asm!` and the CPU check lives in the selection point
//! (`kernels/select.rs`).

use std::arch::asm;
use std::arch::x86_64::{_mm_prefetch, _MM_HINT_ET0};

use rayon::prelude::*;

use super::blocked::OutPtr;
use super::pack::{PackedA, PackedVnni, A_CHUNK, B_CHUNK, STRIP};

/// Row-pairs of strips (32 rows each) per parallel block.
const MB: usize = 4;
/// Column-pairs of strips (32 columns each) per parallel block.
const NB: usize = 4;
/// Below this many multiply-adds, stay on the calling thread.
const PAR_MIN_FLOP: usize = 1 << 22;

/// The `ldtilecfg` operand: palette 1, eight tiles of 16 rows × 64 bytes.
#[repr(C, align(64))]
pub(super) struct TileConfig {
    palette: u8,
    start_row: u8,
    reserved: [u8; 14],
    colsb: [u16; 16],
    rows: [u8; 16],
}

pub(super) static CONFIG: TileConfig = TileConfig {
    palette: 1,
    start_row: 0,
    reserved: [0; 14],
    colsb: [64, 64, 64, 64, 64, 64, 64, 64, 0, 0, 0, 0, 0, 0, 0, 0],
    rows: [16, 16, 16, 16, 16, 16, 16, 16, 0, 0, 0, 0, 0, 0, 0, 0],
};

/// A 32×32 f32 block, for the edges.
#[repr(C, align(64))]
pub(super) struct Scratch(pub(super) [f32; 1024]);

/// `C (m × n, row-major) = A·B`, or `+= A·B` when `accumulate`, from packed operands.
///
/// # Safety
///
/// The CPU must support AMX-TILE and AMX-BF16 and the OS must have granted this process the tile
/// data state, and the CPU must support AVX-512F: what the selection point proves when it picks
/// [`KernelChoice::Amx`](crate::kernels::KernelChoice::Amx) for bf16.
/// Shapes are checked here (panics on mismatch).
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gemm_bf16_amx(
    a: &PackedA,
    b: &PackedVnni,
    m: usize,
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    assert!(
        a.kc == b.kc && a.kc > 0,
        "gemm_bf16_amx: k chunks differ or zero"
    );
    assert!(a.strips.is_multiple_of(2) && b.strips.is_multiple_of(2));
    assert!(a.strips * STRIP >= m && b.strips * STRIP >= n && m > 0 && n > 0);
    assert!(a.strips * STRIP < m + 2 * STRIP && b.strips * STRIP < n + 2 * STRIP);
    assert_eq!(a.data.len(), a.strips * a.kc * A_CHUNK);
    assert_eq!(b.data.len(), b.strips * b.kc * B_CHUNK);
    assert_eq!(c.len(), m * n, "gemm_bf16_amx: output length mismatch");
    let (mp, np) = (a.strips / 2, b.strips / 2);
    let (mblocks, nblocks) = (mp.div_ceil(MB), np.div_ceil(NB));
    let out = OutPtr(c.as_mut_ptr());
    let job = Job {
        a,
        b,
        m,
        n,
        accumulate,
    };
    let run = |t: usize| {
        let (ib, jb) = (t / nblocks, t % nblocks);
        let rows = ib * MB..((ib + 1) * MB).min(mp);
        let cols = jb * NB..((jb + 1) * NB).min(np);
        // SAFETY: AMX and AVX-512F are present (this function's contract); the block's pairs
        // lie inside the packed operands and its C range is disjoint from every other block's.
        unsafe { job.block(rows, cols, out) };
    };
    if m * n * a.kc * 32 >= PAR_MIN_FLOP && mblocks * nblocks > 1 {
        (0..mblocks * nblocks).into_par_iter().for_each(run);
    } else {
        (0..mblocks * nblocks).for_each(run);
    }
}

/// The shared, read-only description of one product.
struct Job<'a> {
    a: &'a PackedA,
    b: &'a PackedVnni,
    m: usize,
    n: usize,
    accumulate: bool,
}

impl Job<'_> {
    /// Computes the C blocks of row pairs `rows` × column pairs `cols`.
    ///
    /// # Safety
    ///
    /// As [`gemm_bf16_amx`]; `rows` and `cols` index existing strip pairs; `out` points to the
    /// `m × n` output and no other thread touches these blocks' elements.
    #[target_feature(enable = "avx512f")]
    unsafe fn block(
        &self,
        rows: std::ops::Range<usize>,
        cols: std::ops::Range<usize>,
        out: OutPtr,
    ) {
        let (a, b, kc) = (self.a, self.b, self.a.kc);
        // SAFETY: AMX is present; CONFIG is a valid palette-1 configuration.
        unsafe {
            asm!("ldtilecfg [{}]", in(reg) &CONFIG as *const TileConfig, options(nostack, readonly))
        };
        for jp in cols {
            let b0 = b.data[2 * jp * kc * B_CHUNK..].as_ptr();
            let b1 = b.data[(2 * jp + 1) * kc * B_CHUNK..].as_ptr();
            for ip in rows.clone() {
                let a0 = a.data[2 * ip * kc * A_CHUNK..].as_ptr();
                let a1 = a.data[(2 * ip + 1) * kc * A_CHUNK..].as_ptr();
                let (r0, c0) = (32 * ip, 32 * jp);
                let (mr, nr) = ((self.m - r0).min(32), (self.n - c0).min(32));
                // SAFETY: each strip holds kc chunks of 1 KiB from a0/a1/b0/b1 (checked lengths);
                // the C block is in bounds (full block) or the scratch buffer (edge).
                unsafe {
                    if mr == 32 && nr == 32 {
                        let cp = out.0.add(r0 * self.n + c0);
                        // Ask for the block's 64 lines of C now, for writing: the tile stores
                        // at the end of the k loop otherwise wait for each line's RFO miss.
                        for r in 0..32 {
                            let row = cp.add(r * self.n) as *const i8;
                            _mm_prefetch::<_MM_HINT_ET0>(row);
                            _mm_prefetch::<_MM_HINT_ET0>(row.add(64));
                        }
                        tile_2x2(a0, a1, b0, b1, kc, cp, 4 * self.n, self.accumulate);
                    } else {
                        let mut s = Scratch([0.0; 1024]);
                        let cp = out.0.add(r0 * self.n + c0);
                        if self.accumulate {
                            for r in 0..mr {
                                let src = std::slice::from_raw_parts(cp.add(r * self.n), nr);
                                s.0[32 * r..32 * r + nr].copy_from_slice(src);
                            }
                        }
                        tile_2x2(a0, a1, b0, b1, kc, s.0.as_mut_ptr(), 128, self.accumulate);
                        for r in 0..mr {
                            let dst = std::slice::from_raw_parts_mut(cp.add(r * self.n), nr);
                            dst.copy_from_slice(&s.0[32 * r..32 * r + nr]);
                        }
                    }
                }
            }
        }
        // SAFETY: AMX is present; releasing returns the tile state to its initial value.
        unsafe { asm!("tilerelease", options(nostack, nomem)) };
    }
}

/// One 32×32 block: `C (+)= A0A1 · B0B1` over `kc` chunks of 32.
///
/// # Safety
///
/// The tiles are configured with [`CONFIG`] on this thread; `a0`, `a1`, `b0`, `b1` each point to
/// `kc >= 1` consecutive 1 KiB tiles; `c` addresses 32 rows of 32 f32 with a row pitch of
/// `ldc` bytes, readable (when `load`) and writable, and nobody else accesses it meanwhile.
#[inline]
#[allow(clippy::too_many_arguments)] // a microkernel: four operand streams plus C
unsafe fn tile_2x2(
    a0: *const u16,
    a1: *const u16,
    b0: *const u32,
    b1: *const u32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    // SAFETY: the 32×32 block at c is readable with pitch ldc (caller's contract).
    unsafe { load_or_zero(c, ldc, !load) };
    // SAFETY: c + 16 rows stays inside the 32-row block (caller's contract).
    let c1 = unsafe { c.byte_add(16 * ldc) };
    // SAFETY: reads kc tiles from each operand pointer and writes the 32×32 block (contract).
    unsafe {
        asm!(
            "2:",
            "tileloadd tmm4, [{a0} + {s}*1]",
            "tileloadd tmm6, [{b0} + {s}*1]",
            "tdpbf16ps tmm0, tmm4, tmm6",
            "tileloadd tmm7, [{b1} + {s}*1]",
            "tdpbf16ps tmm1, tmm4, tmm7",
            "tileloadd tmm5, [{a1} + {s}*1]",
            "tdpbf16ps tmm2, tmm5, tmm6",
            "tdpbf16ps tmm3, tmm5, tmm7",
            "add {a0}, 1024",
            "add {a1}, 1024",
            "add {b0}, 1024",
            "add {b1}, 1024",
            "dec {kc}",
            "jnz 2b",
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c0} + {ldc}*1 + 64], tmm1",
            "tilestored [{c1} + {ldc}*1], tmm2",
            "tilestored [{c1} + {ldc}*1 + 64], tmm3",
            a0 = inout(reg) a0 => _,
            a1 = inout(reg) a1 => _,
            b0 = inout(reg) b0 => _,
            b1 = inout(reg) b1 => _,
            kc = inout(reg) kc => _,
            s = in(reg) 64usize,
            c0 = in(reg) c,
            c1 = in(reg) c1,
            ldc = in(reg) ldc,
            options(nostack),
        )
    };
}

/// tmm0..tmm3 = the 32×32 f32 block at `c` (row pitch `ldc` bytes), or zeros when `zero`.
///
/// # Safety
///
/// Tiles configured with [`CONFIG`]; `c` is 32 readable rows of 32 f32.
#[inline]
pub(super) unsafe fn load_or_zero(c: *const f32, ldc: usize, zero: bool) {
    if zero {
        // SAFETY: tilezero only writes tile registers.
        unsafe {
            asm!(
                "tilezero tmm0",
                "tilezero tmm1",
                "tilezero tmm2",
                "tilezero tmm3",
                options(nostack, nomem)
            )
        };
        return;
    }
    // SAFETY: the contract.
    unsafe {
        asm!(
            "tileloadd tmm0, [{c0} + {ldc}*1]",
            "tileloadd tmm1, [{c0} + {ldc}*1 + 64]",
            "tileloadd tmm2, [{c1} + {ldc}*1]",
            "tileloadd tmm3, [{c1} + {ldc}*1 + 64]",
            c0 = in(reg) c,
            c1 = in(reg) c.byte_add(16 * ldc),
            ldc = in(reg) ldc,
            options(nostack, readonly),
        )
    };
}

/// The 32×32 f32 block at `c` (row pitch `ldc` bytes) = tmm0..tmm3.
///
/// # Safety
///
/// Tiles configured with [`CONFIG`]; `c` is 32 writable rows of 32 f32.
#[inline]
pub(super) unsafe fn store(c: *mut f32, ldc: usize) {
    // SAFETY: the contract.
    unsafe {
        asm!(
            "tilestored [{c0} + {ldc}*1], tmm0",
            "tilestored [{c0} + {ldc}*1 + 64], tmm1",
            "tilestored [{c1} + {ldc}*1], tmm2",
            "tilestored [{c1} + {ldc}*1 + 64], tmm3",
            c0 = in(reg) c,
            c1 = in(reg) c.byte_add(16 * ldc),
            ldc = in(reg) ldc,
            options(nostack),
        )
    };
}
