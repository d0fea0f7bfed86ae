//! Repacking a cached [`PackedB`] block of rows by block of rows, as an optimizer updates the
//! weight: [`repack_blocks`] cuts the packed copies into [`RepackBlock`]s.

use std::marker::PhantomData;

#[cfg(target_arch = "x86_64")]
use super::super::{blocked, pairs, panels};
use super::super::{pack, MatRef};
use super::{PackedB, Repr};
#[cfg(target_arch = "x86_64")]
use crate::dtype::DType;
use crate::dtype::Element;

/// Rows of `W` per [`RepackBlock`]: one AMX k-chunk, two AMX strips of `Wᵀ`, one FMA panel of
/// `Wᵀ`. Blocks of any multiple of this line up with every packed layout.
pub(crate) const REPACK_ROWS: usize = 32;

/// Where one block of rows of `W` goes in a packed copy.
enum Dst<'a> {
    /// `W` in AMX tiles: the block's k-chunks within each strip.
    Vnni { pieces: Vec<&'a mut [u32]> },
    /// `W` in FMA panels: the block's rows within each panel.
    Panels { pieces: Vec<&'a mut [f32]> },
    /// `Wᵀ` in AMX tiles: the block's strips, contiguous.
    VnniT { strips: &'a mut [u32], kc: usize },
    /// `Wᵀ` in FMA panels: the block's panels, contiguous.
    PanelsT { panels: &'a mut [f32] },
    /// `W` in `vdpbf16ps` k-pair panels: the block's pair-rows within each panel.
    #[cfg(target_arch = "x86_64")]
    Pairs { pieces: Vec<&'a mut [u32]> },
    /// `Wᵀ` in k-pair panels: the block's panels, contiguous.
    #[cfg(target_arch = "x86_64")]
    PairsT { panels: &'a mut [u32] },
}

/// Rows `rows` of a row-major f32 matrix `W` (`k × n`) together with the parts of its cached
/// packed copies (`W`, `Wᵀ`, or both) that those rows determine. An optimizer updates the rows,
/// then calls [`pack`](Self::pack) while they are still in cache, so the packed copies follow
/// the update without a separate pass over the weight (see [`repack_blocks`]).
pub(crate) struct RepackBlock<'a, T> {
    rows: std::ops::Range<usize>,
    n: usize,
    dst: Vec<Dst<'a>>,
    done: &'a std::sync::atomic::AtomicUsize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> RepackBlock<'_, T> {
    /// Packs the block's rows (`rows.len() × n` values, row-major, already updated) into every
    /// packed copy, rounding to `T` exactly as [`pack_b_from_f32`](super::pack_b_from_f32) does.
    ///
    /// # Panics
    ///
    /// If `values` is not `rows.len() × n` long.
    pub(crate) fn pack(self, values: &[f32]) {
        let (r, n) = (self.rows.len(), self.n);
        assert_eq!(values.len(), r * n, "RepackBlock::pack: block length");
        let w = MatRef::row_major(values, r, n);
        for dst in self.dst {
            match dst {
                Dst::Vnni { mut pieces } => {
                    pack::fill_vnni_pieces(w, r.div_ceil(pack::KCHUNK), &mut pieces)
                }
                Dst::VnniT { strips, kc } => pack::fill_vnni(w.t(), 0, kc, strips),
                Dst::Panels { pieces } => {
                    for (s, piece) in pieces.into_iter().enumerate() {
                        fill_panels_as::<T>(w, s, piece);
                    }
                }
                Dst::PanelsT { panels } => fill_panels_as::<T>(w.t(), 0, panels),
                #[cfg(target_arch = "x86_64")]
                Dst::Pairs { pieces } => {
                    for (s, piece) in pieces.into_iter().enumerate() {
                        pairs::fill_pairs(w, s, piece);
                    }
                }
                #[cfg(target_arch = "x86_64")]
                Dst::PairsT { panels } => pairs::fill_pairs(w.t(), 0, panels),
            }
        }
        self.done.fetch_add(r, std::sync::atomic::Ordering::Relaxed);
    }
}

/// FMA panels hold `T`'s values widened to f32: f32 as is, f16 rounded first.
fn fill_panels_as<T: Element>(b: MatRef<'_, f32>, s0: usize, chunk: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if T::DTYPE == DType::Float32 {
        panels::fill_panels::<f32, f32>(b, s0, chunk);
    } else {
        panels::fill_panels_rounded::<T>(b, s0, chunk);
    }
    #[cfg(not(target_arch = "x86_64"))]
    unreachable!("FMA panels on {:?}", (b.rows, s0, chunk.len()))
}

/// Splits the cached packed copies of a `k × n` f32 weight `W` (`w`: packed as is, `wt`: packed
/// transposed, either may be absent) into blocks of `block_rows` rows of `W`, in order, each able
/// to repack its rows independently of the others (so they can run in parallel). Every block
/// that [`pack`](RepackBlock::pack)s adds its row count to `done`; the copies equal a fresh
/// packing of the updated `W` once `done` reaches `k`.
///
/// Returns `None` when a copy's layout has no row-block repacking (the plain `F32`/`F64`
/// layouts of the portable path), when a copy's shape is not `W`'s, or when `block_rows` is not
/// a positive multiple of [`REPACK_ROWS`]: the caller then drops the copies and packs afresh.
pub(crate) fn repack_blocks<'a, T: Element>(
    w: Option<&'a mut PackedB<T>>,
    wt: Option<&'a mut PackedB<T>>,
    k: usize,
    n: usize,
    block_rows: usize,
    done: &'a std::sync::atomic::AtomicUsize,
) -> Option<Vec<RepackBlock<'a, T>>> {
    if block_rows == 0 || !block_rows.is_multiple_of(REPACK_ROWS) || k == 0 || n == 0 {
        return None;
    }
    let nblocks = k.div_ceil(block_rows);
    let mut per_block: Vec<Vec<Dst<'a>>> = (0..nblocks).map(|_| Vec::new()).collect();
    if let Some(w) = w {
        if (w.k, w.n) != (k, n) {
            return None;
        }
        match &mut w.repr {
            Repr::Vnni(p) => {
                let strip_len = p.kc * pack::B_CHUNK;
                let mut pieces: Vec<Vec<&'a mut [u32]>> =
                    (0..nblocks).map(|_| Vec::new()).collect();
                for strip in p.data.chunks_mut(strip_len) {
                    let block_len = block_rows / pack::KCHUNK * pack::B_CHUNK;
                    for (b, piece) in strip.chunks_mut(block_len).enumerate() {
                        pieces[b].push(piece);
                    }
                }
                for (d, pieces) in per_block.iter_mut().zip(pieces) {
                    d.push(Dst::Vnni { pieces });
                }
            }
            #[cfg(target_arch = "x86_64")]
            Repr::Panels32(p) => {
                let mut pieces: Vec<Vec<&'a mut [f32]>> =
                    (0..nblocks).map(|_| Vec::new()).collect();
                for panel in p.data.chunks_mut(k * blocked::NR) {
                    for (b, piece) in panel.chunks_mut(block_rows * blocked::NR).enumerate() {
                        pieces[b].push(piece);
                    }
                }
                for (d, pieces) in per_block.iter_mut().zip(pieces) {
                    d.push(Dst::Panels { pieces });
                }
            }
            #[cfg(target_arch = "x86_64")]
            Repr::Pairs(p) => {
                // A block of rows of W is block_rows / 2 pair-rows of each panel.
                let mut pieces: Vec<Vec<&'a mut [u32]>> =
                    (0..nblocks).map(|_| Vec::new()).collect();
                for panel in p.data.chunks_mut(p.kq * blocked::NR) {
                    for (b, piece) in panel.chunks_mut(block_rows / 2 * blocked::NR).enumerate() {
                        pieces[b].push(piece);
                    }
                }
                for (d, pieces) in per_block.iter_mut().zip(pieces) {
                    d.push(Dst::Pairs { pieces });
                }
            }
            _ => return None,
        }
    }
    if let Some(wt) = wt {
        if (wt.k, wt.n) != (n, k) {
            return None;
        }
        match &mut wt.repr {
            Repr::Vnni(p) => {
                let kc = p.kc;
                let block_len = block_rows / pack::STRIP * kc * pack::B_CHUNK;
                for (d, strips) in per_block.iter_mut().zip(p.data.chunks_mut(block_len)) {
                    d.push(Dst::VnniT { strips, kc });
                }
            }
            #[cfg(target_arch = "x86_64")]
            Repr::Panels32(p) => {
                let block_len = block_rows / blocked::NR * n * blocked::NR;
                for (d, panels) in per_block.iter_mut().zip(p.data.chunks_mut(block_len)) {
                    d.push(Dst::PanelsT { panels });
                }
            }
            #[cfg(target_arch = "x86_64")]
            Repr::Pairs(p) => {
                let block_len = block_rows / blocked::NR * p.kq * blocked::NR;
                for (d, panels) in per_block.iter_mut().zip(p.data.chunks_mut(block_len)) {
                    d.push(Dst::PairsT { panels });
                }
            }
            _ => return None,
        }
    }
    Some(
        per_block
            .into_iter()
            .enumerate()
            .map(|(b, dst)| RepackBlock {
                rows: b * block_rows..((b + 1) * block_rows).min(k),
                n,
                dst,
                done,
                _t: PhantomData,
            })
            .collect(),
    )
}
