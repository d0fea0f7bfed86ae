//! [`PackedB`]: a weight packed once for the kernel this process selected, and
//! [`gemm_packed`], the product that reads it. See the [`gemm`](super) module docs for an example.

use std::marker::PhantomData;

#[cfg(target_arch = "x86_64")]
use super::{amx, fma, panels};
use super::{mm::mm_checked, pack, with_data, MatRef};
use crate::dtype::{DType, Element, SliceMut, SliceRef};
use crate::kernels::isa::{cpu_isa, isa, Isa};
use crate::kernels::KernelChoice;

/// A right-hand operand `B` (`k × n`) packed once for the kernel this process uses, so repeated
/// products ([`gemm_packed`]) skip the conversion and packing. Build it with [`pack_b`] or
/// [`pack_b_from_f32`]; it owns its data, so it can be cached in a layer until the weight changes.
///
/// What it holds depends on `T` and the CPU: the AMX pairwise-VNNI bf16 tiles for bf16 on AMX
/// CPUs ([`PackedB::kernel`] is [`KernelChoice::Amx`]); otherwise a contiguous row-major copy in
/// the accumulator type (f32, or f64 for f64), which `sgemm`/`dgemm` read directly.
#[derive(Debug, Clone)]
pub struct PackedB<T> {
    k: usize,
    n: usize,
    repr: Repr,
    _t: PhantomData<fn() -> T>,
}

#[derive(Debug, Clone)]
enum Repr {
    /// AMX tiles (bf16 only).
    Vnni(pack::PackedVnni),
    /// AVX-512 FMA panels in f32 (f32, and f16 values widened exactly).
    #[cfg(target_arch = "x86_64")]
    Panels32(fma::Panels<f32>),
    /// Row-major `k × n`, already rounded to `T` and widened (exact) to f32.
    F32(Vec<f32>),
    /// Row-major `k × n` (f64 only).
    F64(Vec<f64>),
}

impl<T: Element> PackedB<T> {
    /// `k`, the rows of `B`.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// `n`, the columns of `B`.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// The kernel family this packing feeds: [`KernelChoice::Amx`] (bf16 tiles),
    /// [`KernelChoice::Avx512`] (f32 FMA panels, for f32 and f16) or [`KernelChoice::Portable`].
    pub fn kernel(&self) -> KernelChoice {
        match self.repr {
            Repr::Vnni(_) => KernelChoice::Amx,
            #[cfg(target_arch = "x86_64")]
            Repr::Panels32(_) => KernelChoice::Avx512,
            _ => KernelChoice::Portable,
        }
    }

    fn new(k: usize, n: usize, repr: Repr) -> Self {
        PackedB {
            k,
            n,
            repr,
            _t: PhantomData,
        }
    }
}

/// Packs `B` (`k × n`, any strides, e.g. `W.t()`) for [`gemm_packed`], in the layout of the
/// kernel selected for this process (`MIXPREC_KERNEL` and CPU detection).
///
/// # Panics
///
/// If the view's strides reach outside its slice.
pub fn pack_b<T: Element>(b: MatRef<'_, T>) -> PackedB<T> {
    pack_b_isa(isa(), b)
}

/// [`pack_b`] for an explicit kernel ceiling (capped by what the CPU has), ignoring
/// `MIXPREC_KERNEL`: lets tests and benches compare paths in one process.
///
/// # Panics
///
/// If the view's strides reach outside its slice.
pub fn pack_b_with<T: Element>(choice: KernelChoice, b: MatRef<'_, T>) -> PackedB<T> {
    pack_b_isa(cpu_isa().capped(choice), b)
}

/// Packs an f32 `B` rounded to `T` (nearest, ties to even), in one pass: the same packed
/// operand as `pack_b` of the rounded copy, without the copy. For a mixed policy this turns the
/// f32 variable into the cached compute-type weight.
///
/// One exception, invisible in products: for the AMX tiles on CPUs with AVX512-BF16 the
/// rounding is done by `vcvtne2ps2bf16`, which turns f32 subnormals into zero of the same sign
/// where the rounded copy would hold a bf16 subnormal; the tiles read bf16 subnormals as zero,
/// so the products are the same.
///
/// # Panics
///
/// If the view's strides reach outside its slice.
pub fn pack_b_from_f32<T: Element>(b: MatRef<'_, f32>) -> PackedB<T> {
    pack_b_from_f32_isa(isa(), b)
}

/// Packs a `B` stored in any element type `V` as the operand of a `T` product, each element
/// rounded to `T` (nearest, ties to even) once: [`pack_b_from_f32`] when `V` is f32, [`pack_b`]
/// when `V` is `T`, otherwise one rounded copy first. A layer can call
/// `pack_b_from::<P::Variable, P::Compute>(w)` whatever its policy.
///
/// # Panics
///
/// If the view's strides reach outside its slice.
///
/// ```
/// use mixprec::kernels::gemm::pack_b_from;
/// use mixprec::kernels::{gemm_packed, MatRef, PackedB};
/// use half::{bf16, f16};
/// let w = vec![bf16::from_f32(1.5); 4]; // a bf16 variable used by an f16 product
/// let p: PackedB<f16> = pack_b_from(MatRef::row_major(&w, 2, 2));
/// let x = vec![f16::ONE; 2];
/// let mut y = [0f32; 2];
/// gemm_packed(MatRef::row_major(&x, 1, 2), &p, &mut y, false);
/// assert_eq!(y, [3.0, 3.0]);
/// ```
pub fn pack_b_from<V: Element, T: Element>(b: MatRef<'_, V>) -> PackedB<T> {
    assert!(b.in_bounds(), "pack_b_from: strides reach outside the data");
    if let SliceRef::F32(d) = V::view(b.data) {
        return pack_b_from_f32(with_data(b, d));
    }
    if let Some(d) = T::from_view(V::view(b.data)) {
        return pack_b(with_data(b, d));
    }
    let rounded: Vec<T> = b.to_row_major();
    pack_b(MatRef::row_major(&rounded, b.rows, b.cols))
}

/// [`pack_b_from_f32`] for an explicit kernel ceiling (see [`pack_b_with`]).
///
/// # Panics
///
/// If the view's strides reach outside its slice.
pub fn pack_b_from_f32_with<T: Element>(choice: KernelChoice, b: MatRef<'_, f32>) -> PackedB<T> {
    pack_b_from_f32_isa(cpu_isa().capped(choice), b)
}

pub(super) fn pack_b_isa<T: Element>(isa: Isa, b: MatRef<'_, T>) -> PackedB<T> {
    assert!(b.in_bounds(), "pack_b: strides reach outside the data");
    let repr = match T::view(b.data) {
        SliceRef::Bf16(d) if isa.amx_bf16 => Repr::Vnni(pack::pack_b_vnni(with_data(b, d))),
        #[cfg(target_arch = "x86_64")]
        SliceRef::F16(d) if isa.avx512 => Repr::Panels32(panels::pack_b_panels(with_data(b, d))),
        #[cfg(target_arch = "x86_64")]
        SliceRef::F32(d) if isa.avx512 => Repr::Panels32(panels::pack_b_panels(with_data(b, d))),
        SliceRef::F64(d) => Repr::F64(with_data(b, d).to_row_major()),
        _ => Repr::F32(b.to_row_major()),
    };
    PackedB::new(b.rows, b.cols, repr)
}

fn pack_b_from_f32_isa<T: Element>(isa: Isa, b: MatRef<'_, f32>) -> PackedB<T> {
    assert!(
        b.in_bounds(),
        "pack_b_from_f32: strides reach outside the data"
    );
    let repr = match T::DTYPE {
        DType::BFloat16 if isa.amx_bf16 => Repr::Vnni(pack::pack_b_vnni(b)),
        #[cfg(target_arch = "x86_64")]
        // f16 values kept in f32 panels: the FMA kernel runs faster on f32 panels at every
        // measured shape (see `docs/PERFORMANCE.md`: 299/304/258 against 293/303/163 GFLOP/s),
        // so MixedF16 runs at F32's speed for twice the cache memory of f16 panels.
        DType::Float16 if isa.avx512 => {
            Repr::Panels32(panels::pack_b_panels_rounded::<half::f16>(b))
        }
        #[cfg(target_arch = "x86_64")]
        DType::Float32 if isa.avx512 => Repr::Panels32(panels::pack_b_panels(b)),
        DType::Float64 => Repr::F64(b.to_row_major()),
        DType::Float32 => Repr::F32(b.to_row_major()),
        DType::BFloat16 | DType::Float16 => {
            let mut v: Vec<f32> = b.to_row_major();
            v.iter_mut().for_each(|x| *x = T::from_f32_rne(*x).as_f32());
            Repr::F32(v)
        }
    };
    PackedB::new(b.rows, b.cols, repr)
}

/// `C = A·B` or `C += A·B` with a pre-packed `B` ([`pack_b`], [`pack_b_from_f32`]): the same
/// function as [`gemm`](super::gemm()) on the matrix that was packed.
///
/// # Panics
///
/// If `A.cols() != B.rows()`, `c.len() != A.rows() * B.cols()`, or A's strides reach outside
/// its slice.
pub fn gemm_packed<T: Element>(
    a: MatRef<'_, T>,
    b: &PackedB<T>,
    c: &mut [T::Acc],
    accumulate: bool,
) {
    assert_eq!(a.cols, b.k, "gemm_packed: inner dimensions differ");
    assert_eq!(c.len(), a.rows * b.n, "gemm_packed: output length mismatch");
    assert!(a.in_bounds(), "gemm_packed: strides reach outside the data");
    let (m, k, n) = (a.rows, b.k, b.n);
    if m == 0 || n == 0 {
        return;
    }
    let tiled = b.kernel() != KernelChoice::Portable;
    if k == 0 && tiled {
        if !accumulate {
            c.fill(T::Acc::default());
        }
        return;
    }
    match (&b.repr, T::view(a.data), T::Acc::view_mut(c)) {
        #[cfg(target_arch = "x86_64")]
        (Repr::Panels32(pb), _, SliceMut::F32(c)) => {
            let pa = panels::pack_a_strips(a);
            assert!(cpu_isa().avx512, "FMA panels without AVX-512");
            // SAFETY: AVX-512F was detected; shapes are checked inside.
            unsafe { fma::gemm_f32_avx512(&pa, m, k, pb, n, c, accumulate) }
        }
        #[cfg(target_arch = "x86_64")]
        (Repr::Vnni(pb), SliceRef::Bf16(ad), SliceMut::F32(c)) => {
            let pa = pack::pack_a(with_data(a, ad));
            assert!(
                cpu_isa().amx_bf16 && cpu_isa().avx512,
                "AMX packing without AMX"
            );
            #[cfg(target_arch = "x86_64")]
            // SAFETY: AMX (with OS permission) and AVX-512F were detected; the packed shapes are
            // checked inside against m, n and c.
            unsafe {
                amx::gemm_bf16_amx(&pa, pb, m, n, c, accumulate)
            }
            #[cfg(not(target_arch = "x86_64"))]
            unreachable!(
                "AMX tiles packed on {:?}",
                (pa.kc, pb.kc, c.len(), accumulate)
            )
        }
        (Repr::F32(bd), SliceRef::F32(ad), SliceMut::F32(c)) => {
            mm_checked(with_data(a, ad), MatRef::row_major(bd, k, n), c, accumulate)
        }
        (Repr::F32(bd), _, SliceMut::F32(c)) => {
            let a32: Vec<f32> = a.to_row_major();
            mm_checked(
                MatRef::row_major(&a32, m, k),
                MatRef::row_major(bd, k, n),
                c,
                accumulate,
            )
        }
        (Repr::F64(bd), SliceRef::F64(ad), SliceMut::F64(c)) => {
            mm_checked(with_data(a, ad), MatRef::row_major(bd, k, n), c, accumulate)
        }
        _ => unreachable!("a PackedB<T> is packed for T's kernels"),
    }
}

/// Rows of `W` per [`RepackBlock`]: one AMX k-chunk, two AMX strips of `Wᵀ`, one FMA panel of
/// `Wᵀ`. Blocks of any multiple of this line up with every packed layout.
pub const REPACK_ROWS: usize = 32;

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
}

/// Rows `rows` of a row-major f32 matrix `W` (`k × n`) together with the parts of its cached
/// packed copies (`W`, `Wᵀ`, or both) that those rows determine. An optimizer updates the rows,
/// then calls [`pack`](Self::pack) while they are still in cache, so the packed copies follow
/// the update without a separate pass over the weight (see [`repack_blocks`]).
pub struct RepackBlock<'a, T> {
    rows: std::ops::Range<usize>,
    n: usize,
    dst: Vec<Dst<'a>>,
    done: &'a std::sync::atomic::AtomicUsize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Element> RepackBlock<'_, T> {
    /// The rows of `W` this block covers.
    pub fn rows(&self) -> std::ops::Range<usize> {
        self.rows.clone()
    }

    /// Packs the block's rows (`rows.len() × n` values, row-major, already updated) into every
    /// packed copy, rounding to `T` exactly as [`pack_b_from_f32`] does.
    ///
    /// # Panics
    ///
    /// If `values` is not `rows.len() × n` long.
    pub fn pack(self, values: &[f32]) {
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
pub fn repack_blocks<'a, T: Element>(
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
                for panel in p.data.chunks_mut(k * fma::NR) {
                    for (b, piece) in panel.chunks_mut(block_rows * fma::NR).enumerate() {
                        pieces[b].push(piece);
                    }
                }
                for (d, pieces) in per_block.iter_mut().zip(pieces) {
                    d.push(Dst::Panels { pieces });
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
                let block_len = block_rows / fma::NR * n * fma::NR;
                for (d, panels) in per_block.iter_mut().zip(p.data.chunks_mut(block_len)) {
                    d.push(Dst::PanelsT { panels });
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
