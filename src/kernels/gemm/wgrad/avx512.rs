//! AVX-512 data movement for the kernel gradient's layouts ([`super::layout`]), both built on
//! one perfect shuffle of two registers of 32 words (`vpermt2w`):
//!
//! - [`interleave`]: two pixels' channels into VNNI pairs, `out[2i] = a[i]`, `out[2i + 1] =
//!   b[i]`, one shuffle per 16 pairs;
//! - [`transpose32`]: a 32 × 32 block of 16-bit words in five rounds of shuffles. Each round
//!   pairs rows `i` and `i + 16` into rows `2i`, `2i + 1`, which rotates the 10-bit index
//!   `(row, column)` left by one bit; five rotations swap row and column.
//!
//! Pure data movement: the results equal the portable loops of [`super::layout`] bit for bit
//! (tested in `wgrad/tests.rs`). Reached only through those loops, which check the CPU once.
//! Every slice access is bounds-checked or masked to the slice.

use std::arch::x86_64::*;

/// `vpermt2w` indices: lane `2j` takes word `j + base` of the first operand, lane `2j + 1` the
/// same word of the second (indices 32.. select the second register).
const fn shuffle_indices(base: u16) -> [u16; 32] {
    let mut out = [0u16; 32];
    let mut j = 0;
    while j < 16 {
        out[2 * j] = base + j as u16;
        out[2 * j + 1] = 32 + base + j as u16;
        j += 1;
    }
    out
}

static LOW: [u16; 32] = shuffle_indices(0);
static HIGH: [u16; 32] = shuffle_indices(16);

/// The perfect shuffle of `a` and `b` (32 words each): words `a0 b0 a1 b1 … a15 b15`, then
/// `a16 b16 … a31 b31`.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn shuffle(a: __m512i, b: __m512i) -> (__m512i, __m512i) {
    // SAFETY: each index table is 32 u16, one 512-bit load.
    let (lo, hi) = unsafe {
        (
            _mm512_loadu_si512(LOW.as_ptr().cast()),
            _mm512_loadu_si512(HIGH.as_ptr().cast()),
        )
    };
    (
        _mm512_permutex2var_epi16(a, lo, b),
        _mm512_permutex2var_epi16(a, hi, b),
    )
}

/// Up to 32 words from `s`, zeros past its end.
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn load(s: &[u16]) -> __m512i {
    let n = s.len().min(32);
    let mask: __mmask32 = if n == 32 { !0 } else { (1u32 << n) - 1 };
    // SAFETY: the mask covers the first n <= s.len() words; masked lanes are not read.
    unsafe { _mm512_maskz_loadu_epi16(mask, s.as_ptr().cast()) }
}

/// Stores 32 words into `d` (exactly 32 long).
#[inline]
#[target_feature(enable = "avx512f,avx512bw")]
fn store(d: &mut [u16], v: __m512i) {
    let d = &mut d[..32];
    // SAFETY: d holds exactly 32 u16, one 512-bit store.
    unsafe { _mm512_storeu_si512(d.as_mut_ptr().cast(), v) }
}

/// `out[2i] = a[i]`, `out[2i + 1] = b[i]`.
///
/// # Safety
///
/// The CPU must support AVX-512 F and BW.
///
/// # Panics
///
/// Unless `a` and `b` have the same length, a multiple of 16, and `out` twice it.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn interleave(a: &[u16], b: &[u16], out: &mut [u16]) {
    assert!(a.len() == b.len() && a.len().is_multiple_of(16) && out.len() == 2 * a.len());
    for ((a, b), out) in a.chunks(32).zip(b.chunks(32)).zip(out.chunks_mut(64)) {
        let (lo, hi) = shuffle(load(a), load(b));
        store(&mut out[..32], lo);
        if out.len() == 64 {
            store(&mut out[32..], hi);
        }
    }
}

/// The transpose of a 32 × 32 block: `dst[f · pitch + p] = src[p · stride + f]` for pixels `p <
/// pixels` and words `f < width`, and zero for every other `p, f < 32` (all 32 rows of 32 words
/// of `dst` are written).
///
/// # Safety
///
/// The CPU must support AVX-512 F and BW.
///
/// # Panics
///
/// When `pixels` or `width` exceed 32, or a row lies outside `src` or `dst`.
#[target_feature(enable = "avx512f,avx512bw")]
pub(super) unsafe fn transpose32(
    src: &[u16],
    (stride, pixels, width): (usize, usize, usize),
    dst: &mut [u16],
    pitch: usize,
) {
    assert!(pixels <= 32 && width <= 32);
    let mut r = [_mm512_setzero_si512(); 32];
    for (p, row) in r.iter_mut().enumerate().take(pixels) {
        *row = load(&src[p * stride..][..width]);
    }
    for _ in 0..5 {
        let mut next = [_mm512_setzero_si512(); 32];
        for i in 0..16 {
            (next[2 * i], next[2 * i + 1]) = shuffle(r[i], r[i + 16]);
        }
        r = next;
    }
    for (f, row) in r.iter().enumerate() {
        store(&mut dst[f * pitch..][..32], *row);
    }
}
