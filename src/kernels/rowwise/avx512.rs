//! The AVX-512 bodies of [`softmax_row`](super::softmax_row) and
//! [`layer_norm_row`](super::layer_norm_row): sixteen f32 lanes per step, the row's last
//! `n mod 16` elements through masked loads and stores (which never touch memory past the row).
//!
//! The reductions keep the portable path's order: lane `j` sums elements `j, j+16, …` (the
//! tail into lanes `0..n mod 16`), then the lanes are combined one by one from lane 0.

use std::arch::x86_64::*;

use half::{bf16, f16};

use super::NormRow;
use crate::kernels::cast::round_bf16_lanes;

/// Every lane.
const ALL: __mmask16 = 0xffff;

/// The element types a row can be in, widened to and rounded from f32 lanes.
pub(super) trait Lane: Copy {
    /// Which one (a constant, so `load` and `store` fold to one instruction sequence).
    const KIND: Kind;
}

#[derive(PartialEq, Eq)]
pub(super) enum Kind {
    Bf16,
    F16,
    F32,
}

impl Lane for bf16 {
    const KIND: Kind = Kind::Bf16;
}
impl Lane for f16 {
    const KIND: Kind = Kind::F16;
}
impl Lane for f32 {
    const KIND: Kind = Kind::F32;
}

/// Lanes `k` of `p[0..16]` widened to f32 (exact), 0 in the others.
///
/// # Safety
///
/// AVX-512 F/BW/VL, and every lane of `k` readable at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn load<T: Lane>(p: *const T, k: __mmask16) -> __m512 {
    // SAFETY: the caller promises the lanes of `k` are readable; masked lanes are not touched.
    unsafe {
        match T::KIND {
            Kind::F32 => _mm512_maskz_loadu_ps(k, p.cast()),
            Kind::Bf16 => {
                let h = _mm256_maskz_loadu_epi16(k, p.cast());
                _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
            }
            Kind::F16 => _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(k, p.cast())),
        }
    }
}

/// Stores lanes `k` of `v` at `p`, each rounded once to `T` (to nearest, ties to even; the same
/// bits as the crate's casts: NaN quiet, subnormals kept).
///
/// # Safety
///
/// AVX-512 F/BW/VL, and every lane of `k` writable at `p`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn store<T: Lane>(p: *mut T, k: __mmask16, v: __m512) {
    // SAFETY: the caller promises the lanes of `k` are writable; masked lanes are not touched.
    unsafe {
        match T::KIND {
            Kind::F32 => _mm512_mask_storeu_ps(p.cast(), k, v),
            Kind::Bf16 => {
                let bits = _mm512_cvtepi32_epi16(round_bf16_lanes(_mm512_castps_si512(v)));
                _mm256_mask_storeu_epi16(p.cast(), k, bits)
            }
            Kind::F16 => {
                let h = _mm512_cvtps_ph::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(v);
                _mm256_mask_storeu_epi16(p.cast(), k, h)
            }
        }
    }
}

/// Stores 32 lanes at `p`, `a` then `b`, each rounded once to `T` as [`store`] rounds them. For
/// bf16 with `NE`, by AVX512-BF16's `vcvtne2ps2bf16` (one instruction for both vectors instead
/// of the integer rounding's eight per vector), which gives the same bits for every f32 but
/// subnormals (it reads them as zero): a pair holding one takes the integer rounding.
///
/// # Safety
///
/// AVX-512 F/BW/VL/DQ, AVX512-BF16 when `NE`, and 32 elements writable at `p`.
#[inline(always)]
unsafe fn store2<T: Lane, const NE: bool>(p: *mut T, a: __m512, b: __m512) {
    // SAFETY: the caller promises the features and 32 writable elements.
    unsafe {
        if NE && T::KIND == Kind::Bf16 {
            const DENORMAL: i32 = 0x20;
            let sub = _mm512_fpclass_ps_mask::<DENORMAL>(a) | _mm512_fpclass_ps_mask::<DENORMAL>(b);
            if sub == 0 {
                let bits: __m512i = std::mem::transmute(_mm512_cvtne2ps_pbh(b, a));
                _mm512_storeu_si512(p.cast(), bits);
                return;
            }
        }
        store(p, ALL, a);
        store(p.add(16), ALL, b);
    }
}

/// The mask of the first `n` (< 16) lanes.
#[inline]
fn tail(n: usize) -> __mmask16 {
    ((1u32 << n) - 1) as __mmask16
}

/// The lanes of `v` combined in lane order from `init` by `f`.
#[inline]
#[target_feature(enable = "avx512f")]
fn fold(v: __m512, init: f32, f: impl Fn(f32, f32) -> f32) -> f32 {
    let mut lanes = [0f32; 16];
    // SAFETY: `lanes` is 64 writable bytes.
    unsafe { _mm512_storeu_ps(lanes.as_mut_ptr(), v) };
    lanes.into_iter().fold(init, f)
}

/// `e^x` in each lane: the portable `exp_f32`'s range reduction and Cephes polynomial with fused
/// multiply-adds, `2^n` by `vscalef` (one rounding, so subnormal results underflow gradually).
/// NaN stays NaN; `x <= -104` gives 0 and `x >= 88.8` gives `+inf` (the clamp keeps `±inf` off
/// the reduction).
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp_lanes(x: __m512) -> __m512 {
    exp_with(x, &EXP_POLY)
}

/// Cephes's `expf` polynomial for `e^r` on `|r| <= ln2/2`, highest degree first (the terms of
/// degree 2 to 7; `1 + r` is added separately).
pub(super) const EXP_POLY: [f32; 6] = [
    1.987_569_1e-4,
    1.398_199_9e-3,
    8.333_452e-3,
    4.166_579_6e-2,
    1.666_666_5e-1,
    0.5,
];

/// [`exp_lanes`] with the polynomial `poly` (the tests check a truncated one fails the bound).
#[inline]
#[target_feature(enable = "avx512f")]
pub(super) fn exp_with(x: __m512, poly: &[f32]) -> __m512 {
    // vmaxps/vminps return their second operand when either is NaN: NaN passes the clamp.
    let x = _mm512_min_ps(
        _mm512_set1_ps(89.0),
        _mm512_max_ps(_mm512_set1_ps(-104.0), x),
    );
    let t = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E));
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(t);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(poly[0]);
    for &c in &poly[1..] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    let e = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    _mm512_scalef_ps(_mm512_add_ps(e, _mm512_set1_ps(1.0)), n)
}

/// Widens `x` into `buf` and reduces it on the way: `acc = f(acc, k, v)` for each vector `v`
/// of `x` with `k` its lanes (all, or the tail's), from `init` in every lane.
///
/// # Safety
///
/// AVX-512 F/BW/VL/DQ; `x.len() <= buf.len()`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
unsafe fn widen_into<T: Lane>(
    x: &[T],
    buf: &mut [f32],
    init: f32,
    f: impl Fn(__m512, __mmask16, __m512) -> __m512,
) -> __m512 {
    let n = x.len();
    let (full, k) = (n / 16 * 16, tail(n % 16));
    let (xp, bp) = (x.as_ptr(), buf.as_mut_ptr());
    let mut acc = _mm512_set1_ps(init);
    // SAFETY: full vectors at `i + 16 <= full <= n`, then the tail's lanes `0..n − full`, inside
    // `x` and `buf`.
    unsafe {
        for i in (0..full).step_by(16) {
            let v = load(xp.add(i), ALL);
            _mm512_storeu_ps(bp.add(i), v);
            acc = f(acc, ALL, v);
        }
        if k != 0 {
            let v = load(xp.add(full), k);
            _mm512_mask_storeu_ps(bp.add(full), k, v);
            acc = f(acc, k, v);
        }
    }
    acc
}

/// Writes a row kernel twice from one body: `$name`, whose bf16 output takes the integer
/// rounding, and `$ne` (for bf16 on CPUs with AVX512-BF16), whose pairs of vectors are rounded by
/// `vcvtne2ps2bf16` ([`store2`]). Each is its own `#[target_feature]` function, so the body's
/// closures are compiled with the features too (an `#[inline(always)]` body shared by two such
/// functions would leave its closures without them: every intrinsic a call, 10x slower).
macro_rules! row_kernels {
    (
        $(#[$doc:meta])*
        $name:ident, $ne:ident, <$T:ident, $NE:ident>
        ($($arg:ident: $ty:ty),*) -> $ret:ty $body:block
    ) => {
        $(#[$doc])*
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
        pub(super) unsafe fn $name<$T: Lane>($($arg: $ty),*) -> $ret {
            const $NE: bool = false;
            $body
        }

        $(#[$doc])*
        ///
        /// This one rounds bf16 by `vcvtne2ps2bf16`: the caller also promises AVX512-BF16.
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")]
        pub(super) unsafe fn $ne<$T: Lane>($($arg: $ty),*) -> $ret {
            const $NE: bool = true;
            $body
        }
    };
}

row_kernels! {
    /// One row's softmax (see [`super::softmax_row`]); `buf` holds the widened row between
    /// passes.
    ///
    /// # Safety
    ///
    /// AVX-512 F/BW/VL/DQ; `out.len() == x.len() <= buf.len()`.
    softmax_row, softmax_row_bf16ne, <T, NE> (x: &[T], out: &mut [T], buf: &mut [f32]) -> () {
        let n = x.len();
        let (full, k) = (n / 16 * 16, tail(n % 16));
        // SAFETY: every access below is a full vector at `i + 16 <= full <= n` or the masked tail
        // at `full` with the lanes `0..n − full`, inside `x`, `out` and `buf` (all at least `n`).
        unsafe {
            // Widen into `buf` and find the maximum: lane-wise `x > m ? x : m` (NaN skipped).
            let m = widen_into(x, buf, f32::NEG_INFINITY, |m, k, v| {
                _mm512_mask_max_ps(m, k, v, m)
            });
            let (op, bp) = (out.as_mut_ptr(), buf.as_mut_ptr());
            let m = fold(m, f32::NEG_INFINITY, |a, b| if b > a { b } else { a });
            // A row of only -inf: subtract nothing, so each exp is 0.
            let m = _mm512_set1_ps(if m == f32::NEG_INFINITY { 0.0 } else { m });
            // e^{x − m} into `buf`, and its sum.
            let mut s = _mm512_setzero_ps();
            for i in (0..full).step_by(16) {
                let e = exp_lanes(_mm512_sub_ps(_mm512_loadu_ps(bp.add(i)), m));
                _mm512_storeu_ps(bp.add(i), e);
                s = _mm512_add_ps(s, e);
            }
            if k != 0 {
                let e = exp_lanes(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, bp.add(full)), m));
                _mm512_mask_storeu_ps(bp.add(full), k, e);
                s = _mm512_mask_add_ps(s, k, s, e);
            }
            let s = fold(s, 0.0, |a, b| a + b);
            let inv = _mm512_set1_ps(if s == 0.0 { 0.0 } else { 1.0 / s });
            let scaled = |i: usize| _mm512_mul_ps(_mm512_loadu_ps(bp.add(i)), inv);
            let pairs = n / 32 * 32;
            for i in (0..pairs).step_by(32) {
                store2::<T, NE>(op.add(i), scaled(i), scaled(i + 16));
            }
            if pairs < full {
                store(op.add(pairs), ALL, scaled(pairs));
            }
            if k != 0 {
                store(
                    op.add(full),
                    k,
                    _mm512_mul_ps(_mm512_maskz_loadu_ps(k, bp.add(full)), inv),
                );
            }
        }
    }
}

row_kernels! {
    /// One row's layer normalisation (see [`super::layer_norm_row`]), returning
    /// `(μ, 1/√(σ²+ε))`.
    ///
    /// # Safety
    ///
    /// AVX-512 F/BW/VL/DQ; `0 < out.len() == x.len() <= buf.len()`, and `γ`, `β` (when given)
    /// as long as `x`.
    layer_norm_row, layer_norm_row_bf16ne, <T, NE>
    (x: &[T], out: &mut [T], buf: &mut [f32], norm: NormRow<'_>) -> (f32, f32) {
        let n = x.len();
        let (full, k) = (n / 16 * 16, tail(n % 16));
        // SAFETY: as in `softmax_row`; `γ` and `β` are as long as the row.
        unsafe {
            let s = widen_into(x, buf, 0.0, |s, k, v| _mm512_mask_add_ps(s, k, s, v));
            let (op, bp) = (out.as_mut_ptr(), buf.as_mut_ptr());
            let count = n as f32; // exact: rows are far shorter than 2^24
            let mean = fold(s, 0.0, |a, b| a + b) / count;
            let mv = _mm512_set1_ps(mean);
            let mut q = _mm512_setzero_ps();
            for i in (0..full).step_by(16) {
                let d = _mm512_sub_ps(_mm512_loadu_ps(bp.add(i)), mv);
                q = _mm512_add_ps(q, _mm512_mul_ps(d, d));
            }
            if k != 0 {
                let d = _mm512_sub_ps(_mm512_maskz_loadu_ps(k, bp.add(full)), mv);
                q = _mm512_mask_add_ps(q, k, q, _mm512_mul_ps(d, d));
            }
            let var = fold(q, 0.0, |a, b| a + b) / count;
            let rstd = 1.0 / (var + norm.epsilon).sqrt();
            let rv = _mm512_set1_ps(rstd);
            // y = (x − μ)·rstd·γ + β, each a separate IEEE operation as in the portable row.
            let affine = |i: usize, k: __mmask16| {
                let mut y = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, bp.add(i)), mv), rv);
                if let Some(g) = norm.gamma {
                    y = _mm512_mul_ps(y, _mm512_maskz_loadu_ps(k, g.as_ptr().add(i)));
                }
                if let Some(b) = norm.beta {
                    y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(k, b.as_ptr().add(i)));
                }
                y
            };
            let pairs = n / 32 * 32;
            for i in (0..pairs).step_by(32) {
                store2::<T, NE>(op.add(i), affine(i, ALL), affine(i + 16, ALL));
            }
            if pairs < full {
                store(op.add(pairs), ALL, affine(pairs, ALL));
            }
            if k != 0 {
                store(op.add(full), k, affine(full, k));
            }
            (mean, rstd)
        }
    }
}
