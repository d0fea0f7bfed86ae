//! The kernel gradient's two layouts ([`super`]): the pair copies of the input ([`pairs`]) and
//! the filter-major `dz` ([`filter_major`]), in parallel over rows or (for one image, inside a
//! parallel task of its own) on the calling thread ([`Run`]). With `simd` (AVX-512 F and
//! BW, [`simd_available`]) each pixel pair and each 32 × 32 block moves through registers
//! (`wgrad/avx512.rs`); otherwise the portable loops here, which the tests compare it to.

use rayon::prelude::*;

use super::{Pairs, WeightGradConv};

/// How a layout is written: `Parallel`, in rayon tasks over its rows, or `Serial`, on the
/// calling thread (one image's layout inside a task).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Run {
    Parallel,
    Serial,
}

/// `task(i, chunk)` on each `len`-element chunk of `out`, as `run` says.
fn for_chunks(
    out: &mut [u16],
    len: usize,
    run: Run,
    task: impl Fn((usize, &mut [u16])) + Sync + Send,
) {
    match run {
        Run::Parallel => out.par_chunks_mut(len).enumerate().for_each(task),
        Run::Serial => out.chunks_mut(len).enumerate().for_each(task),
    }
}

/// Whether this CPU runs the AVX-512 moves.
pub(super) fn simd_available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx512f") && std::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// `out[2i] = a[i]`, `out[2i + 1] = b[i]`; `simd` only where [`simd_available`] holds.
fn interleave(a: &[u16], b: &[u16], out: &mut [u16], simd: bool) {
    #[cfg(target_arch = "x86_64")]
    if simd && a.len().is_multiple_of(16) {
        // SAFETY: the caller passes `simd` only where AVX-512 F and BW were detected; the
        // lengths are checked inside.
        unsafe { super::avx512::interleave(a, b, out) };
        return;
    }
    let _ = simd;
    for ((v, &p), &q) in out.chunks_exact_mut(2).zip(a).zip(b) {
        v[0] = p;
        v[1] = q;
    }
}

/// Writes the pair copies of `x` ([`Pairs`]) into `out`, every element (zeros included), one
/// padded row of one copy per task.
pub(super) fn pairs(x: &[u16], g: &WeightGradConv, out: &mut [u16], simd: bool, run: Run) {
    let l: Pairs = g.layout();
    let (c, sw) = (g.channels, g.stride.1);
    let (ph, pw) = g.pad;
    for_chunks(out, l.pairs * 2 * c, run, |(task, dst)| {
        let (copy, yp) = (task / (g.batch * l.rows), task % l.rows);
        let img = task / l.rows % g.batch;
        let src_row = yp
            .checked_sub(ph)
            .filter(|&y| y < g.in_h)
            .map(|y| &x[(img * g.in_h + y) * g.in_w * c..][..g.in_w * c]);
        let phase = l.phases[copy];
        let pixel = |col: usize| {
            let col = col.checked_sub(pw).filter(|&i| i < g.in_w)?;
            src_row.map(|row| &row[col * c..][..c])
        };
        for (j, d) in dst.chunks_exact_mut(2 * c).enumerate() {
            let first = 2 * sw * j + phase;
            match (pixel(first), pixel(first + sw)) {
                (Some(a), Some(b)) => interleave(a, b, d, simd),
                (a, b) => {
                    for (i, v) in d.chunks_exact_mut(2).enumerate() {
                        v[0] = a.map_or(0, |a| a[i]);
                        v[1] = b.map_or(0, |b| b[i]);
                    }
                }
            }
        }
    });
}

/// `dst[f · pitch + p] = src[p · n + f]` for `p < pixels`, `f < width`, zero for the rest of the
/// 32 × 32 block; `simd` only where [`simd_available`] holds.
fn transpose32(
    src: &[u16],
    (n, pixels, width): (usize, usize, usize),
    dst: &mut [u16],
    pitch: usize,
    simd: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if simd {
        // SAFETY: as in `interleave`; the bounds are checked inside.
        unsafe { super::avx512::transpose32(src, (n, pixels, width), dst, pitch) };
        return;
    }
    let _ = simd;
    let mut block = [[0u16; 32]; 32]; // [filter][pixel]
    for p in 0..pixels {
        for (f, &v) in src[p * n..][..width].iter().enumerate() {
            block[f][p] = v;
        }
    }
    for (f, row) in block.iter().enumerate() {
        dst[f * pitch..][..32].copy_from_slice(row);
    }
}

/// Writes `dz` filter-major into `out`: `[img][f][oy][ox]` with the rows padded to
/// [`WeightGradConv::out_w_pad`] pixels, the filters to [`WeightGradConv::filters_pad`] and
/// each filter's pixels to [`WeightGradConv::plane`] by zeros; 32 filters of one image per
/// task, a 32 × 32 block at a time.
pub(super) fn filter_major(dz: &[u16], g: &WeightGradConv, out: &mut [u16], simd: bool, run: Run) {
    let (n, fp, wo, wp) = (g.filters, g.filters_pad(), g.out_w, g.out_w_pad());
    let plane = g.plane();
    for_chunks(out, 32 * plane, run, |(task, dst)| {
        let (img, f0) = (task / (fp / 32), task % (fp / 32) * 32);
        let nf = n.saturating_sub(f0).min(32);
        for oy in 0..g.out_h {
            let src = &dz[(img * g.out_h + oy) * wo * n..][..wo * n];
            for ox0 in (0..wp).step_by(32) {
                let pixels = wo.saturating_sub(ox0).min(32);
                let from = &src[(ox0 * n + f0).min(src.len())..];
                let to = &mut dst[oy * wp + ox0..];
                transpose32(from, (n, pixels, nf), to, plane, simd);
            }
        }
        for f in 0..32 {
            dst[f * plane + g.out_h * wp..][..32].fill(0);
        }
    });
}
