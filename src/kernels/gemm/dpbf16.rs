//! AVX512-BF16 matrix product: `vdpbf16ps` on k-pair panels, for bf16 on CPUs that have
//! AVX512-BF16 but no AMX tiles (AMD Zen 4 and later; see `docs/PERFORMANCE.md`).
//!
//! Operands are packed by `gemm/pairs.rs`: B into panels of [`NR`] = 32 columns of k-pairs, A
//! into strips of [`MR`] = 12 rows. The microkernel keeps a 12×32 block of C in 24 zmm
//! registers, as the f32 FMA kernel does (`gemm/fma.rs`), and each `vdpbf16ps` adds two k
//! steps: per f32 lane, `c += a[2q]·b[2q] + a[2q+1]·b[2q+1]`. The products of two bf16 values
//! are exact in f32, so the result is an f32 sum of the exact products in k order (the two of a
//! pair in the order the CPU chooses), within the `γ_{k+1}·Σ|a||b|` bound of every other path.
//!
//! Like AMX, `vdpbf16ps` reads bf16 subnormals as zero and flushes subnormal results to zero
//! (whatever MXCSR says), and rounds to nearest even; NaN and infinities propagate as in IEEE
//! arithmetic. So the result differs from the portable path's only by the flushed subnormals, at
//! most `(k+1)·2^-126` in absolute value, which the tests' bound allows for.
//!
//! k is cut into blocks of [`KQ`] pairs so a 16 KiB B panel block stays in L1 while a chunk of A
//! strips streams past it; the blocking and the parallel (row chunk × column group) blocks are
//! `gemm/blocked.rs`'s, shared with the f32 FMA kernel.

use std::arch::x86_64::*;

use super::blocked::{drive, load_acc, store_acc, Micro, MR, NR};
use super::pairs::PairPanels;

/// k-pairs per block (256 values of k).
const KQ: usize = 128;

/// `C (m × n, row-major) = A·B`, or `+= A·B` when `accumulate`.
///
/// `a` is A packed by `pairs::with_a_pairs` (`m.div_ceil(MR)` strips of `kq × MR` words); `b`
/// holds `n.div_ceil(NR)` panels of `kq × NR` words, with `kq = k.div_ceil(2)`.
///
/// # Safety
///
/// The CPU must support AVX-512F and AVX512-BF16. (Shapes are checked here; panics on mismatch.)
#[target_feature(enable = "avx512f,avx512bf16")]
pub(super) unsafe fn gemm_bf16_dp(
    a: &[u32],
    m: usize,
    k: usize,
    b: &PairPanels,
    n: usize,
    c: &mut [f32],
    accumulate: bool,
) {
    let (ns, kq) = (n.div_ceil(NR), k.div_ceil(2));
    assert!(k > 0 && m > 0 && n > 0, "gemm_bf16_dp: empty product");
    assert!(
        b.strips == ns && b.kq == kq && b.data.len() == ns * kq * NR,
        "gemm_bf16_dp: packed B shape"
    );
    let panel = |j: usize, q0: usize, qn: usize, _: &mut Vec<f32>| {
        b.data[(j * kq + q0) * NR..][..qn * NR].as_ptr()
    };
    // SAFETY: AVX-512F and AVX512-BF16 (contract), Dp's features; `panel` points into b.data.
    unsafe { drive::<Dp>(a, (m, n, kq, KQ), panel, c, accumulate, m * n * k) }
}

/// The `vdpbf16ps` step: two k steps (one pair word) per 16 lanes.
struct Dp;

impl Micro for Dp {
    type Elem = u32;

    #[inline]
    #[target_feature(enable = "avx512f,avx512bf16")]
    unsafe fn micro<const M: usize>(
        qn: usize,
        a: *const u32,
        b: *const u32,
        c: *mut f32,
        ldc: usize,
        load: bool,
    ) {
        // SAFETY: forwarded contract (C's M rows).
        let mut acc = unsafe { load_acc::<M>(c, ldc, load) };
        for q in 0..qn {
            // SAFETY: q < qn, so the panel's pair-row q (32 words) and A's step q (MR words) are
            // in range. A `__m512i` of 16 words is a `__m512bh` of 32 bf16, in the same bits.
            unsafe {
                let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR).cast()));
                let b1: __m512bh =
                    std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16).cast()));
                for (r, row) in acc.iter_mut().enumerate() {
                    let av: __m512bh =
                        std::mem::transmute(_mm512_set1_epi32(*a.add(q * MR + r) as i32));
                    row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                    row[1] = _mm512_dpbf16_ps(row[1], av, b1);
                }
            }
        }
        // SAFETY: forwarded contract.
        unsafe { store_acc::<M>(&acc, c, ldc) }
    }
}
