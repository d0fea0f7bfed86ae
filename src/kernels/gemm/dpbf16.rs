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
//! strips streams past it; rayon runs the (row chunk × column group) blocks in parallel when the
//! product is large enough.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::fma::{edge_block, OutPtr, MR, NR};
use super::pairs::PairPanels;

/// k-pairs per block (256 values of k).
const KQ: usize = 128;
/// A strips per parallel block.
const MC: usize = 8;
/// B panels per parallel block.
const NG: usize = 4;
/// Below this many multiply-adds, stay on the calling thread.
const PAR_MIN_FLOP: usize = 1 << 21;

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
    let (ms, ns, kq) = (m.div_ceil(MR), n.div_ceil(NR), k.div_ceil(2));
    assert!(k > 0 && m > 0 && n > 0, "gemm_bf16_dp: empty product");
    assert_eq!(a.len(), ms * kq * MR, "gemm_bf16_dp: packed A length");
    assert!(
        b.strips == ns && b.kq == kq && b.data.len() == ns * kq * NR,
        "gemm_bf16_dp: packed B shape"
    );
    assert_eq!(c.len(), m * n, "gemm_bf16_dp: output length mismatch");
    let (mb, nb) = (ms.div_ceil(MC), ns.div_ceil(NG));
    let out = OutPtr(c.as_mut_ptr());
    let run = |t: usize| {
        let (ib, jb) = (t % mb, t / mb);
        let is = ib * MC..((ib + 1) * MC).min(ms);
        let js = jb * NG..((jb + 1) * NG).min(ns);
        for qb in (0..kq).step_by(KQ) {
            let qn = KQ.min(kq - qb);
            for j in js.clone() {
                let bp = b.data[(j * kq + qb) * NR..][..qn * NR].as_ptr();
                for i in is.clone() {
                    let ap = a[(i * kq + qb) * MR..][..qn * MR].as_ptr();
                    let (r0, c0) = (i * MR, j * NR);
                    let (mr, nr) = ((m - r0).min(MR), (n - c0).min(NR));
                    let load = accumulate || qb > 0;
                    // SAFETY: AVX-512F and AVX512-BF16 (contract); ap/bp hold qn pair steps of
                    // MR/NR words (sliced above); the C block rows r0..r0+mr, columns
                    // c0..c0+nr are in bounds and belong to this parallel block only.
                    unsafe {
                        edge_block(out.add(r0 * n + c0), n, mr, nr, load, |c, ldc| {
                            dispatch(mr, qn, ap, bp, c, ldc, load)
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

/// Calls the microkernel specialised for `mr` rows.
///
/// # Safety
///
/// As [`micro`], with `1 <= mr <= MR`.
#[target_feature(enable = "avx512f,avx512bf16")]
unsafe fn dispatch(
    mr: usize,
    qn: usize,
    a: *const u32,
    b: *const u32,
    c: *mut f32,
    ldc: usize,
    load: bool,
) {
    macro_rules! rows {
        ($($r:literal)*) => {
            match mr {
                // SAFETY: forwarded contract, with M == mr.
                $($r => unsafe { micro::<$r>(qn, a, b, c, ldc, load) },)*
                _ => unreachable!("mr in 1..=MR"),
            }
        };
    }
    rows!(1 2 3 4 5 6 7 8 9 10 11 12)
}

/// `C[0..M][0..32] (+)= A·B` over `qn` pair steps: A packed `[q][MR]`, B panel `[q][NR]`, both
/// in k-pair words.
///
/// # Safety
///
/// AVX-512F and AVX512-BF16; `a` valid for `qn·MR` words, `b` for `qn·NR`; `c` valid for `M`
/// rows of 32 f32 with pitch `ldc` (read when `load`, always written).
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
    for q in 0..qn {
        // SAFETY: q < qn, so the panel's pair-row q (32 words) and A's step q (MR words) are in
        // range. A `__m512i` of 16 words is a `__m512bh` of 32 bf16, in the same bits.
        unsafe {
            let b0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR).cast()));
            let b1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(q * NR + 16).cast()));
            for (r, row) in acc.iter_mut().enumerate() {
                let av: __m512bh =
                    std::mem::transmute(_mm512_set1_epi32(*a.add(q * MR + r) as i32));
                row[0] = _mm512_dpbf16_ps(row[0], av, b0);
                row[1] = _mm512_dpbf16_ps(row[1], av, b1);
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
