//! AVX-512 f32 FMA matrix product on pre-packed B panels, for f32 and f16 operands.
//!
//! B is packed once into panels of [`NR`] = 32 columns ([`Panels`]: panel `s` holds
//! `B[p][32s + j]` at `[p][j]`, zero beyond n) in f32, or kept in **f16** and widened one
//! `KC × 32` block at a time into an L1 buffer that up to eight strips of A then reuse
//! (conversion fused into the blocked product: half the bytes of B to read, and no f32 copy of B;
//! widening inside the microkernel instead cost ~8% of the FMA issue slots at large m). A is packed per call into strips of [`MR`] = 12
//! rows, k-major (`[p][r]`), in f32, so each k step broadcasts 12 consecutive floats.
//!
//! The microkernel keeps a 12×32 block of C in 24 zmm registers; every product is one f32 FMA
//! (one rounding per step), so the result is the f32 sum in k order, within the same
//! `γ_k·Σ|a||b|` bound as matrixmultiply. k is cut into blocks of [`KC`] so the 32 KiB B panel
//! block stays in L1 while a chunk of A strips streams past it; the blocking and the
//! parallel (row chunk × column group) blocks are `gemm/blocked.rs`'s, shared with `vdpbf16ps`.
//!
//! It exists because matrixmultiply re-packs B on every call, which dominates small-batch,
//! large-weight shapes (64 × 4096 × 4096); with B packed once this kernel skips that work.

use std::arch::x86_64::*;

use super::blocked::{drive, load_acc, store_acc, Micro, MR, NR};
use crate::kernels::aligned::AlignedVec;
use half::f16;

/// k per block.
const KC: usize = 256;

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
    assert!(k > 0 && m > 0 && n > 0, "gemm_f32_avx512: empty product");
    let ns = n.div_ceil(NR);
    assert!(
        b.strips == ns && b.data.len() == ns * k * NR,
        "gemm_f32_avx512: packed B shape"
    );
    let panel = |j: usize, kb: usize, kn: usize, buf: &mut Vec<f32>| {
        buf.resize(KC * NR, 0.0);
        // An f16 panel block is widened once here and reused by up to eight strips of A.
        E::as_f32_block(&b.data[(j * k + kb) * NR..][..kn * NR], buf).as_ptr()
    };
    // SAFETY: AVX-512F (contract), Fma's only feature; `panel` points into b.data or into buf,
    // which is not touched again until the next call.
    unsafe { drive::<Fma>(a, (m, n, k, KC), panel, c, accumulate, m * n * k) }
}

/// The f32 FMA step: one `vfmadd` per 16 lanes and k step.
struct Fma;

impl Micro for Fma {
    type Elem = f32;

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
        // SAFETY: forwarded contract (C's M rows).
        let mut acc = unsafe { load_acc::<M>(c, ldc, load) };
        for p in 0..kn {
            // SAFETY: p < kn, so the panel row p (32 elements) and A's step p (MR f32) are in
            // range.
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
        // SAFETY: forwarded contract.
        unsafe { store_acc::<M>(&acc, c, ldc) }
    }
}
