//! The cache blocking and register-block plumbing shared by the two AVX-512 panel kernels: the
//! f32 FMA kernel (`gemm/fma.rs`, f32 and f16 operands) and the `vdpbf16ps` kernel
//! (`gemm/dpbf16.rs`, bf16 k-pairs).
//!
//! Both keep a [`MR`]×[`NR`] = 12×32 block of C in 24 zmm registers and differ only in their
//! inner step ([`Micro`]). [`drive`] cuts k into L1 blocks, walks (row chunk × column group)
//! blocks in parallel when the product is large enough, and passes each 12×32 block of C, or a
//! scratch copy of an edge block ([`edge_block`]), to the microkernel for its row count
//! ([`dispatch`]). The order of every sum is fixed by the blocking, not by the thread count.

use std::arch::x86_64::*;

use rayon::prelude::*;

/// Columns per B panel (two zmm).
pub(super) const NR: usize = 32;
/// Rows per A strip.
pub(super) const MR: usize = 12;
/// A strips per parallel block.
const MC: usize = 8;
/// B panels per parallel block.
const NG: usize = 4;
/// Below this many multiply-adds, stay on the calling thread.
const PAR_MIN_FLOP: usize = 1 << 21;

/// An output base pointer shared by blocks that write disjoint parts of it.
pub(super) struct OutPtr<T = f32>(pub(super) *mut T);
impl<T> Clone for OutPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for OutPtr<T> {}
// SAFETY: the pointer is only dereferenced by blocks that write disjoint index ranges of one
// `&mut [T]` that outlives the parallel loop.
unsafe impl<T> Send for OutPtr<T> {}
// SAFETY: as for Send; the blocks never read each other's ranges.
unsafe impl<T> Sync for OutPtr<T> {}

impl<T> OutPtr<T> {
    /// The element pointer `offset` past the base (a method, so closures capture the whole
    /// `Send + Sync` wrapper rather than its raw-pointer field).
    ///
    /// # Safety
    ///
    /// `offset` must lie inside the output slice.
    pub(super) unsafe fn add(self, offset: usize) -> *mut T {
        // SAFETY: forwarded contract.
        unsafe { self.0.add(offset) }
    }
}

/// A register-blocked microkernel over packed operands.
pub(super) trait Micro {
    /// What the packed strips of A and panels of B hold: f32 values, or k-pair words.
    type Elem: Copy + Sync;
    /// `C[0..M][0..NR] (+)= A·B` over `steps` packed steps: A `[step][MR]`, B `[step][NR]`.
    ///
    /// # Safety
    ///
    /// The kernel's CPU features; `a` valid for `steps·MR` elements, `b` for `steps·NR`; `c`
    /// valid for `M` rows of `NR` f32 with pitch `ldc` (read when `load`, always written).
    unsafe fn micro<const M: usize>(
        steps: usize,
        a: *const Self::Elem,
        b: *const Self::Elem,
        c: *mut f32,
        ldc: usize,
        load: bool,
    );
}

/// `C (m × n, row-major) = A·B`, or `+= A·B` when `accumulate`, over `steps` packed steps cut
/// into L1 blocks of `block`.
///
/// `a` holds `m.div_ceil(MR)` strips of `steps × MR`; `panel(j, s0, len, buf)` gives panel `j`'s
/// steps `s0..s0 + len` (`len × NR` elements), from the packed B or converted into `buf` (one per
/// parallel block, reused). `flop` is `m·n·k`, which decides whether to go parallel.
///
/// # Safety
///
/// The CPU must support `K`'s features; `panel` must return a pointer valid for `len × NR`
/// elements until its next call. (Shapes of C and A are checked here; panics on mismatch.)
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn drive<K: Micro>(
    a: &[K::Elem],
    (m, n, steps, block): (usize, usize, usize, usize),
    panel: impl Fn(usize, usize, usize, &mut Vec<f32>) -> *const K::Elem + Sync,
    c: &mut [f32],
    accumulate: bool,
    flop: usize,
) {
    let (ms, ns) = (m.div_ceil(MR), n.div_ceil(NR));
    assert_eq!(a.len(), ms * steps * MR, "packed A length");
    assert_eq!(c.len(), m * n, "output length mismatch");
    let (mb, nb) = (ms.div_ceil(MC), ns.div_ceil(NG));
    let out = OutPtr(c.as_mut_ptr());
    let run = |t: usize| {
        let (ib, jb) = (t % mb, t / mb);
        let mut buf = Vec::new();
        for s0 in (0..steps).step_by(block) {
            let len = block.min(steps - s0);
            for j in jb * NG..((jb + 1) * NG).min(ns) {
                // A panel block is fetched (or widened) once and reused by up to MC strips of A.
                let bp = panel(j, s0, len, &mut buf);
                for i in ib * MC..((ib + 1) * MC).min(ms) {
                    let ap = a[(i * steps + s0) * MR..][..len * MR].as_ptr();
                    let (r0, c0) = (i * MR, j * NR);
                    let (mr, nr) = ((m - r0).min(MR), (n - c0).min(NR));
                    let load = accumulate || s0 > 0;
                    // SAFETY: K's features (contract); ap holds len steps of MR (sliced above),
                    // bp len steps of NR (contract); the C block rows r0..r0+mr, columns
                    // c0..c0+nr are in bounds and belong to this parallel block only.
                    unsafe {
                        edge_block(out.add(r0 * n + c0), n, mr, nr, load, |c, ldc| {
                            dispatch::<K>(mr, len, ap, bp, c, ldc, load)
                        })
                    };
                }
            }
        }
    };
    if flop >= PAR_MIN_FLOP && mb * nb > 1 {
        (0..mb * nb).into_par_iter().for_each(run);
    } else {
        (0..mb * nb).for_each(run);
    }
}

/// One `mr × nr` block of C (`mr <= MR`, `nr <= NR`) written by `kernel` (given a C pointer
/// and its pitch, it writes `mr` full rows of [`NR`] columns, reading them first when `load`),
/// through a scratch block when `nr < NR`.
///
/// # Safety
///
/// `c` addresses `mr` rows of `nr` f32 with pitch `ldc`; `kernel` must be safe to call on any
/// `mr × NR` block it is given.
#[inline]
unsafe fn edge_block(
    c: *mut f32,
    ldc: usize,
    mr: usize,
    nr: usize,
    load: bool,
    kernel: impl FnOnce(*mut f32, usize),
) {
    if nr == NR {
        return kernel(c, ldc);
    }
    let mut s = [0f32; MR * NR];
    // SAFETY: c holds mr rows of nr valid f32 with pitch ldc (contract); s is MR × NR.
    unsafe {
        if load {
            for r in 0..mr {
                std::ptr::copy_nonoverlapping(c.add(r * ldc), s.as_mut_ptr().add(r * NR), nr);
            }
        }
        kernel(s.as_mut_ptr(), NR);
        for r in 0..mr {
            std::ptr::copy_nonoverlapping(s.as_ptr().add(r * NR), c.add(r * ldc), nr);
        }
    }
}

/// Calls `K`'s microkernel specialised for `mr` rows.
///
/// # Safety
///
/// As [`Micro::micro`], with `1 <= mr <= MR`.
unsafe fn dispatch<K: Micro>(
    mr: usize,
    steps: usize,
    a: *const K::Elem,
    b: *const K::Elem,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    macro_rules! rows {
        ($($r:literal)*) => {
            match mr {
                // SAFETY: forwarded contract, with M == mr.
                $($r => unsafe { K::micro::<$r>(steps, a, b, c, ldc, load) },)*
                _ => unreachable!("mr in 1..=MR"),
            }
        };
    }
    rows!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// The `M × NR` block of C in registers: read from `c` (pitch `ldc`) when `load`, else zero.
///
/// # Safety
///
/// AVX-512F; when `load`, `c` valid for `M` rows of `NR` f32 with pitch `ldc`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn load_acc<const M: usize>(
    c: *const f32,
    ldc: usize,
    load: bool,
) -> [[__m512; 2]; M] {
    let mut acc = [[_mm512_setzero_ps(); 2]; M];
    if load {
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: row r < M of C is valid for NR f32 (contract).
            unsafe {
                row[0] = _mm512_loadu_ps(c.add(r * ldc));
                row[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
            }
        }
    }
    acc
}

/// Writes the `M × NR` register block `acc` to `c` (pitch `ldc`).
///
/// # Safety
///
/// AVX-512F; `c` valid for `M` rows of `NR` f32 with pitch `ldc`.
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn store_acc<const M: usize>(acc: &[[__m512; 2]; M], c: *mut f32, ldc: usize) {
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row r < M of C is valid for NR f32 (contract).
        unsafe {
            _mm512_storeu_ps(c.add(r * ldc), row[0]);
            _mm512_storeu_ps(c.add(r * ldc + 16), row[1]);
        }
    }
}
