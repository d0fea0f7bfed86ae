//! AVX-512 f32 FMA matrix product on pre-packed B panels, for f32 and f16 operands.
//!
//! B is packed once into panels of [`NR`] = 32 columns ([`Panels`]: panel `s` holds
//! `B[p][32s + j]` at `[p][j]`, zero beyond n) in f32, or kept in **f16** and widened one
//! `KC × 32` block at a time into an L1 buffer that up to [`MC`] strips of A then reuse
//! (conversion fused into the blocked product: half the bytes of B to read, and no f32 copy of B;
//! widening inside the microkernel instead cost ~8% of the FMA issue slots at large m). A is packed per call into strips of [`MR`] = 12
//! rows, k-major (`[p][r]`), in f32, so each k step broadcasts 12 consecutive floats.
//!
//! The microkernel keeps a 12×32 block of C in 24 zmm registers; every product is one f32 FMA
//! (one rounding per step), so the result is the f32 sum in k order, within the same
//! `γ_k·Σ|a||b|` bound as matrixmultiply. k is cut into blocks of [`KC`] so the 32 KiB B panel
//! block stays in L1 while a chunk of A strips streams past it; rayon runs the (row chunk ×
//! column group) blocks in parallel when the product is large enough.
//!
//! It exists because matrixmultiply re-packs B on every call, which dominates small-batch,
//! large-weight shapes (64 × 4096 × 4096); with B packed once this kernel skips that work.

use std::arch::x86_64::*;

use half::f16;
use rayon::prelude::*;

use crate::kernels::aligned::AlignedVec;

/// Columns per B panel (two zmm).
pub(super) const NR: usize = 32;
/// Rows per A strip.
pub(super) const MR: usize = 12;
/// k per block.
const KC: usize = 256;
/// A strips per parallel block.
const MC: usize = 8;
/// B panels per parallel block.
const NG: usize = 4;
/// Below this many multiply-adds, stay on the calling thread.
const PAR_MIN_FLOP: usize = 1 << 21;

/// B packed into panels of [`NR`] columns (`k × NR` each, row-major, zero-padded).
#[derive(Debug, Clone)]
pub(super) struct Panels<E: Copy + Default> {
    pub data: AlignedVec<E>,
    pub strips: usize,
}

/// An element B panels can hold: f32, or f16 widened one L1 block at a time.
pub(super) trait PanelElem: Copy + Default + Send + Sync + 'static {
    /// The block `src` as f32: `src` itself, or its conversion written to `buf`.
    fn as_f32_block<'a>(src: &'a [Self], buf: &'a mut [f32]) -> &'a [f32];
}

impl PanelElem for f32 {
    fn as_f32_block<'a>(src: &'a [f32], _: &'a mut [f32]) -> &'a [f32] {
        src
    }
}

impl PanelElem for f16 {
    fn as_f32_block<'a>(src: &'a [f16], buf: &'a mut [f32]) -> &'a [f32] {
        let out = &mut buf[..src.len()];
        crate::kernels::cast::f16_to_f32(src, out);
        out
    }
}

/// C's base pointer, shared by blocks that write disjoint parts of it.
#[derive(Clone, Copy)]
pub(super) struct OutPtr(pub(super) *mut f32);
// SAFETY: only dereferenced by blocks writing disjoint ranges of one `&mut [f32]` that outlives
// the parallel loop.
unsafe impl Send for OutPtr {}
// SAFETY: as for Send.
unsafe impl Sync for OutPtr {}

impl OutPtr {
    /// The element pointer `offset` past the base (a method, so closures capture the whole
    /// `Send + Sync` wrapper rather than its raw-pointer field).
    ///
    /// # Safety
    ///
    /// `offset` must lie inside the output slice.
    pub(super) unsafe fn add(self, offset: usize) -> *mut f32 {
        // SAFETY: forwarded contract.
        unsafe { self.0.add(offset) }
    }
}

/// `C (m × n, row-major) = A·B`, or `+= A·B` when `accumulate`.
///
/// `a` is A packed by [`pack_a_strips`] (`m.div_ceil(MR)` strips of `k × MR`); `b` holds
/// `n.div_ceil(NR)` panels of `k × NR`.
///
/// # Safety
///
/// The CPU must support AVX-512F. (Shapes are checked here; panics on mismatch.)
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn gemm_f32_avx512<E: PanelElem>(
    a: &[f32],
    m: usize,
    k: usize,
    b: &Panels<E>,
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    let (ms, ns) = (m.div_ceil(MR), n.div_ceil(NR));
    assert!(k > 0 && m > 0 && n > 0, "gemm_f32_avx512: empty product");
    assert_eq!(a.len(), ms * k * MR, "gemm_f32_avx512: packed A length");
    assert!(
        b.strips == ns && b.data.len() == ns * k * NR,
        "packed B shape"
    );
    assert_eq!(c.len(), m * n, "gemm_f32_avx512: output length mismatch");
    let (mb, nb) = (ms.div_ceil(MC), ns.div_ceil(NG));
    let out = OutPtr(c.as_mut_ptr());
    let run = |t: usize| {
        let (ib, jb) = (t % mb, t / mb);
        let is = ib * MC..((ib + 1) * MC).min(ms);
        let js = jb * NG..((jb + 1) * NG).min(ns);
        let mut buf = vec![0f32; KC * NR];
        for kb in (0..k).step_by(KC) {
            let kn = KC.min(k - kb);
            for j in js.clone() {
                // An f16 panel block is widened once here and reused by up to MC strips of A.
                let bp = E::as_f32_block(&b.data[(j * k + kb) * NR..][..kn * NR], &mut buf);
                let bp = bp.as_ptr();
                for i in is.clone() {
                    let ap = a[(i * k + kb) * MR..][..kn * MR].as_ptr();
                    let (r0, c0) = (i * MR, j * NR);
                    let (mr, nr) = ((m - r0).min(MR), (n - c0).min(NR));
                    let load = accumulate || kb > 0;
                    // SAFETY: AVX-512F (contract); ap/bp hold kn k-steps of MR/NR (sliced
                    // above); the C block rows r0..r0+mr, columns c0..c0+nr are in bounds and
                    // belong to this parallel block only.
                    unsafe {
                        edge_block(out.add(r0 * n + c0), n, mr, nr, load, |c, ldc| {
                            dispatch(mr, kn, ap, bp, c, ldc, load)
                        })
                    };
                }
            }
        }
    };
    if m * n * k >= PAR_MIN_FLOP && mb * nb > 1 {
        (0..mb * nb).into_par_iter().for_each(run);
    } else {
        (0..mb * nb).for_each(run);
    }
}

/// One `mr × nr` block of C (`mr <= MR`, `nr <= NR`) written by `kernel` (given a C pointer
/// and its pitch, it writes `mr` full rows of [`NR`] columns, reading them first when `load`),
/// through a scratch block when `nr < NR`. Shared by the FMA and `vdpbf16ps` kernels.
///
/// # Safety
///
/// `c` addresses `mr` rows of `nr` f32 with pitch `ldc`; `kernel` must be safe to call on any
/// `mr × NR` block it is given.
#[inline]
pub(super) unsafe fn edge_block(
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

/// Calls the microkernel specialised for `mr` rows.
///
/// # Safety
///
/// As [`micro`], with `1 <= mr <= MR`.
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn dispatch(
    mr: usize,
    kn: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    macro_rules! rows {
        ($($r:literal)*) => {
            match mr {
                // SAFETY: forwarded contract, with M == mr.
                $($r => unsafe { micro::<$r>(kn, a, b, c, ldc, load) },)*
                _ => unreachable!("mr in 1..=MR"),
            }
        };
    }
    rows!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// `C[0..M][0..32] (+)= A·B` over `kn` steps: A packed `[p][MR]`, B panel `[p][NR]`.
///
/// # Safety
///
/// AVX-512F; `a` valid for `kn·MR` f32, `b` for `kn·NR` elements; `c` valid for `M` rows of 32
/// f32 with pitch `ldc` (read when `load`, always written).
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn micro<const M: usize>(
    kn: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    let mut acc = [[_mm512_setzero_ps(); 2]; M];
    if load {
        for (r, row) in acc.iter_mut().enumerate() {
            // SAFETY: row r < M of C is valid for 32 f32 (contract).
            unsafe {
                row[0] = _mm512_loadu_ps(c.add(r * ldc));
                row[1] = _mm512_loadu_ps(c.add(r * ldc + 16));
            }
        }
    }
    for p in 0..kn {
        // SAFETY: p < kn, so the panel row p (32 elements) and A's step p (MR f32) are in range.
        unsafe {
            let b0 = _mm512_loadu_ps(b.add(p * NR));
            let b1 = _mm512_loadu_ps(b.add(p * NR + 16));
            for (r, row) in acc.iter_mut().enumerate() {
                let av = _mm512_set1_ps(*a.add(p * MR + r));
                row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                row[1] = _mm512_fmadd_ps(av, b1, row[1]);
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        // SAFETY: row r < M of C is valid for 32 f32 (contract).
        unsafe {
            _mm512_storeu_ps(c.add(r * ldc), row[0]);
            _mm512_storeu_ps(c.add(r * ldc + 16), row[1]);
        }
    }
}
