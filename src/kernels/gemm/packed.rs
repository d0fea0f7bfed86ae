//! [`PackedB`]: a weight packed once for the kernel this process selected, and
//! [`gemm_packed`], the product that reads it. See the [`kernels`](crate::kernels) docs for an
//! example.

use std::marker::PhantomData;

#[cfg(target_arch = "x86_64")]
use super::{amx, dpbf16, fma, pairs, panels};
use super::{mm::mm_checked, pack, with_data, MatRef};
use crate::dtype::{DType, Element, SliceMut, SliceRef};
#[cfg(any(test, target_arch = "x86_64"))]
use crate::kernels::select::kernels_for;
use crate::kernels::select::{selected, Kernels};
use crate::kernels::KernelChoice;

mod repack;
pub(crate) use repack::{repack_blocks, RepackBlock, REPACK_ROWS};

/// A right-hand operand `B` (`k × n`) packed once for the kernel this process uses, so repeated
/// products ([`gemm_packed`]) skip the conversion and packing. Build it with [`pack_b`] or
/// [`pack_b_from_f32`]; it owns its data, so it can be cached in a layer until the weight changes.
///
/// What it holds is what the selection point chose for `T` ([`Kernels::gemm`]): the AMX
/// pairwise-VNNI bf16 tiles for bf16 on AMX CPUs ([`PackedB::kernel`] is [`KernelChoice::Amx`]),
/// k-pair `vdpbf16ps` panels for bf16 on AVX512-BF16 CPUs without AMX and AVX-512 FMA panels
/// for f16 and f32 on AVX-512 CPUs (both [`KernelChoice::Avx512`]), otherwise a
/// contiguous row-major copy in the accumulator type (f32, or f64 for f64), which `sgemm`/`dgemm`
/// read directly.
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
    /// `vdpbf16ps` k-pair panels (bf16 only, without AMX).
    #[cfg(target_arch = "x86_64")]
    Pairs(pairs::PairPanels),
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
    /// [`KernelChoice::Avx512`] (f32 FMA panels for f32 and f16, `vdpbf16ps` pairs for bf16) or
    /// [`KernelChoice::Portable`].
    pub fn kernel(&self) -> KernelChoice {
        match self.repr {
            Repr::Vnni(_) => KernelChoice::Amx,
            #[cfg(target_arch = "x86_64")]
            Repr::Panels32(_) | Repr::Pairs(_) => KernelChoice::Avx512,
            _ => KernelChoice::Portable,
        }
    }

    /// The AMX tiles, when this packing holds them.
    pub(super) fn vnni(&self) -> Option<&pack::PackedVnni> {
        match &self.repr {
            Repr::Vnni(v) => Some(v),
            _ => None,
        }
    }

    /// The `vdpbf16ps` k-pair panels, when this packing holds them.
    #[cfg(target_arch = "x86_64")]
    pub(super) fn pairs(&self) -> Option<&pairs::PairPanels> {
        match &self.repr {
            Repr::Pairs(p) => Some(p),
            _ => None,
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
    pack_b_for(selected(), b)
}

/// [`pack_b`] for an explicit kernel ceiling (capped by what the CPU has), ignoring
/// `MIXPREC_KERNEL`: lets the tests compare paths in one process.
///
/// # Panics
///
/// If the view's strides reach outside its slice.
#[cfg(test)]
pub(crate) fn pack_b_with<T: Element>(choice: KernelChoice, b: MatRef<'_, T>) -> PackedB<T> {
    pack_b_for(kernels_for(choice), b)
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
    pack_b_from_f32_for(selected(), b)
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
/// use mixprec::kernels::{gemm_packed, pack_b_from, MatRef, PackedB};
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
#[cfg(test)]
pub(crate) fn pack_b_from_f32_with<T: Element>(
    choice: KernelChoice,
    b: MatRef<'_, f32>,
) -> PackedB<T> {
    pack_b_from_f32_for(kernels_for(choice), b)
}

/// [`pack_b`] in the layout `kernels` chose for `T`.
pub(super) fn pack_b_for<T: Element>(kernels: Kernels, b: MatRef<'_, T>) -> PackedB<T> {
    assert!(b.in_bounds(), "pack_b: strides reach outside the data");
    let repr = match (T::view(b.data), kernels.gemm(T::DTYPE)) {
        (SliceRef::Bf16(d), KernelChoice::Amx) => Repr::Vnni(pack::pack_b_vnni(with_data(b, d))),
        #[cfg(target_arch = "x86_64")]
        (SliceRef::Bf16(d), KernelChoice::Avx512) => {
            Repr::Pairs(pairs::pack_b_pairs(with_data(b, d)))
        }
        #[cfg(target_arch = "x86_64")]
        (SliceRef::F16(d), KernelChoice::Avx512) => {
            Repr::Panels32(panels::pack_b_panels(with_data(b, d)))
        }
        #[cfg(target_arch = "x86_64")]
        (SliceRef::F32(d), KernelChoice::Avx512) => {
            Repr::Panels32(panels::pack_b_panels(with_data(b, d)))
        }
        (SliceRef::F64(d), _) => Repr::F64(with_data(b, d).to_row_major()),
        _ => Repr::F32(b.to_row_major()),
    };
    PackedB::new(b.rows, b.cols, repr)
}

/// [`pack_b_from_f32`] in the layout `kernels` chose for `T`.
fn pack_b_from_f32_for<T: Element>(kernels: Kernels, b: MatRef<'_, f32>) -> PackedB<T> {
    assert!(
        b.in_bounds(),
        "pack_b_from_f32: strides reach outside the data"
    );
    let repr = match (T::DTYPE, kernels.gemm(T::DTYPE)) {
        (DType::BFloat16, KernelChoice::Amx) => Repr::Vnni(pack::pack_b_vnni(b)),
        #[cfg(target_arch = "x86_64")]
        (DType::BFloat16, KernelChoice::Avx512) => Repr::Pairs(pairs::pack_b_pairs(b)),
        #[cfg(target_arch = "x86_64")]
        // f16 values kept in f32 panels: the FMA kernel runs faster on f32 panels at every
        // measured shape (see `docs/PERFORMANCE.md`: 299/304/258 against 293/303/163 GFLOP/s),
        // so MixedF16 runs at F32's speed for twice the cache memory of f16 panels.
        (DType::Float16, KernelChoice::Avx512) => {
            Repr::Panels32(panels::pack_b_panels_rounded::<half::f16>(b))
        }
        #[cfg(target_arch = "x86_64")]
        (DType::Float32, KernelChoice::Avx512) => Repr::Panels32(panels::pack_b_panels(b)),
        (DType::Float64, _) => Repr::F64(b.to_row_major()),
        (DType::Float32, _) => Repr::F32(b.to_row_major()),
        (DType::BFloat16 | DType::Float16, _) => {
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
            assert_eq!(
                kernels_for(KernelChoice::Avx512).gemm(T::DTYPE),
                KernelChoice::Avx512,
                "FMA panels without AVX-512"
            );
            panels::with_a_strips(a, |pa| {
                // SAFETY: the selection point picks the FMA panels for `T` under an AVX-512
                // ceiling (checked just above) only when it detected AVX-512F; shapes are
                // checked inside.
                unsafe { fma::gemm_f32_avx512(pa, m, k, pb, n, c, accumulate) }
            })
        }
        #[cfg(target_arch = "x86_64")]
        (Repr::Pairs(pb), SliceRef::Bf16(ad), SliceMut::F32(c)) => {
            assert_eq!(
                kernels_for(KernelChoice::Avx512).gemm(T::DTYPE),
                KernelChoice::Avx512,
                "vdpbf16ps panels without AVX512-BF16"
            );
            pairs::with_a_pairs(with_data(a, ad), |pa| {
                // SAFETY: the selection point picks the k-pair panels for bf16 under an AVX-512
                // ceiling (checked just above) only when it detected AVX-512F and AVX512-BF16;
                // shapes are checked inside.
                unsafe { dpbf16::gemm_bf16_dp(pa, m, k, pb, n, c, accumulate) }
            })
        }
        #[cfg(target_arch = "x86_64")]
        (Repr::Vnni(pb), SliceRef::Bf16(ad), SliceMut::F32(c)) => {
            let pa = pack::pack_a(with_data(a, ad));
            assert_eq!(
                kernels_for(KernelChoice::Amx).gemm(T::DTYPE),
                KernelChoice::Amx,
                "AMX packing without AMX"
            );
            #[cfg(target_arch = "x86_64")]
            // SAFETY: the selection point picks the AMX tiles for bf16 (checked just above) only
            // when it detected AMX-TILE, AMX-BF16 (with the OS's permission) and AVX-512F; the
            // packed shapes are checked inside against m, n and c.
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
