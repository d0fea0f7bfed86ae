//! Matrix products `C = A·B` (or `C += A·B`) for every [`Element`], accumulated in
//! [`Element::Acc`]: f32 for f16, bf16 and f32; f64 for f64.
//!
//! - f32 and f64 go straight to matrixmultiply's `sgemm` / `dgemm` (`gemm/mm.rs`), strides and all, so
//!   a transposed operand ([`MatRef::t`]) costs nothing.
//! - bf16 runs on the AMX tiles (`gemm/amx.rs`) when the CPU has them: both operands are packed into the
//!   tile layouts (`gemm/pack.rs`), converting strided or transposed views while packing.
//! - Otherwise the 16-bit types take the portable path: each operand is widened to f32 once per
//!   call (exact), then `sgemm` multiplies and accumulates in f32. A product of two 16-bit values
//!   is exact in f32, so this is the same function as a native 16-bit-operand, f32-accumulate unit.
//!
//! # Pre-packed weights
//!
//! A layer multiplies by the same weight many times between optimizer steps. [`pack_b`] (or
//! [`pack_b_from_f32`], which rounds an f32 master weight to the compute type while packing)
//! builds a [`PackedB`] once, in the layout of the kernel this process selected, and
//! [`gemm_packed`] multiplies by it without touching the weight again:
//!
//! ```
//! use mixprec::kernels::{gemm_packed, pack_b_from_f32, MatRef, PackedB};
//! use half::bf16;
//! let w = vec![0.5f32; 3 * 2]; // f32 variable, 3 × 2 (in × units)
//! let packed: PackedB<bf16> = pack_b_from_f32(MatRef::row_major(&w, 3, 2));
//! let x = vec![bf16::from_f32(2.0); 4 * 3]; // batch of 4
//! let mut y = vec![0f32; 4 * 2];
//! gemm_packed(MatRef::row_major(&x, 4, 3), &packed, &mut y, false);
//! assert_eq!(y, vec![3.0; 8]);
//! // Backward, dX = dY·Wᵀ, packs the transposed view (no transpose is materialised):
//! let packed_t: PackedB<bf16> = pack_b_from_f32(MatRef::row_major(&w, 3, 2).t());
//! assert_eq!((packed_t.rows(), packed_t.cols()), (2, 3));
//! ```

#[cfg(target_arch = "x86_64")]
mod amx;
#[cfg(target_arch = "x86_64")]
mod fma;
mod mm;
mod pack;
#[cfg(target_arch = "x86_64")]
mod panels;

use std::marker::PhantomData;

use super::isa::{cpu_isa, isa, Isa};
use super::KernelChoice;
use crate::dtype::{cast_slice, DType, Element, SliceMut, SliceRef};
use mm::mm_checked;

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A contiguous row-major `rows × cols` matrix.
    ///
    /// # Panics
    ///
    /// If `data.len() != rows * cols` (an internal contract; layers check shapes first).
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "MatRef::row_major: length mismatch"
        );
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose, as a view (no copy).
    pub fn t(self) -> Self {
        MatRef {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Element `(i, j)`.
    pub fn at(&self, i: usize, j: usize) -> T
    where
        T: Copy,
    {
        self.data[i * self.row_stride + j * self.col_stride]
    }

    /// True when every index the view can produce lies inside `data`.
    fn in_bounds(&self) -> bool {
        if self.rows == 0 || self.cols == 0 {
            return true;
        }
        let last = (self.rows - 1).checked_mul(self.row_stride).and_then(|r| {
            (self.cols - 1)
                .checked_mul(self.col_stride)
                .and_then(|c| r.checked_add(c))
        });
        matches!(last, Some(l) if l < self.data.len())
            && isize::try_from(self.row_stride).is_ok()
            && isize::try_from(self.col_stride).is_ok()
    }

    /// A contiguous row-major copy in type `U`, converted once.
    fn to_row_major<U: Element>(self) -> Vec<U>
    where
        T: Element,
    {
        if self.col_stride == 1 && self.row_stride == self.cols {
            let mut out = vec![U::default(); self.rows * self.cols];
            cast_slice(&self.data[..self.rows * self.cols], &mut out);
            return out;
        }
        // Strided: gather into a row-major buffer of T first, then one bulk conversion.
        let mut gathered = Vec::with_capacity(self.rows * self.cols);
        for i in 0..self.rows {
            gathered.extend((0..self.cols).map(|j| self.at(i, j)));
        }
        let mut out = vec![U::default(); gathered.len()];
        cast_slice(&gathered, &mut out);
        out
    }
}

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
    /// AVX-512 FMA panels in f32 (f32 only).
    #[cfg(target_arch = "x86_64")]
    Panels32(fma::Panels<f32>),
    /// AVX-512 FMA panels kept in f16, widened in the kernel (f16 only).
    #[cfg(target_arch = "x86_64")]
    Panels16(fma::Panels<half::f16>),
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
            Repr::Panels32(_) | Repr::Panels16(_) => KernelChoice::Avx512,
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
/// # Panics
///
/// If the view's strides reach outside its slice.
pub fn pack_b_from_f32<T: Element>(b: MatRef<'_, f32>) -> PackedB<T> {
    pack_b_from_f32_isa(isa(), b)
}

/// [`pack_b_from_f32`] for an explicit kernel ceiling (see [`pack_b_with`]).
///
/// # Panics
///
/// If the view's strides reach outside its slice.
pub fn pack_b_from_f32_with<T: Element>(choice: KernelChoice, b: MatRef<'_, f32>) -> PackedB<T> {
    pack_b_from_f32_isa(cpu_isa().capped(choice), b)
}

fn pack_b_isa<T: Element>(isa: Isa, b: MatRef<'_, T>) -> PackedB<T> {
    assert!(b.in_bounds(), "pack_b: strides reach outside the data");
    let repr = match T::view(b.data) {
        SliceRef::Bf16(d) if isa.amx_bf16 => Repr::Vnni(pack::pack_b_vnni(with_data(b, d))),
        #[cfg(target_arch = "x86_64")]
        SliceRef::F16(d) if isa.avx512 => Repr::Panels16(panels::pack_b_panels(with_data(b, d))),
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
        DType::Float16 if isa.avx512 => Repr::Panels16(panels::pack_b_panels(b)),
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

/// `C = A·B` (`accumulate == false`) or `C += A·B` (`accumulate == true`), with `C` a contiguous
/// row-major `A.rows() × B.cols()` slice in the accumulator type.
///
/// Every product of two `T` values is formed and summed in `T::Acc`; nothing is rounded to `T`.
///
/// # Panics
///
/// If `A.cols() != B.rows()`, `c.len() != A.rows() * B.cols()`, or a view's strides reach outside
/// its slice. These are internal contracts: layers validate user shapes and return errors before
/// calling a kernel.
///
/// ```
/// use mixprec::kernels::{gemm, MatRef};
/// use half::bf16;
/// let a: Vec<bf16> = [1.0f32, 2.0, 3.0, 4.0].iter().map(|&x| bf16::from_f32(x)).collect();
/// let b: Vec<bf16> = [1.0f32, 0.0, 0.0, 1.0].iter().map(|&x| bf16::from_f32(x)).collect();
/// let mut c = [0f32; 4];
/// gemm(MatRef::row_major(&a, 2, 2), MatRef::row_major(&b, 2, 2).t(), &mut c, false);
/// assert_eq!(c, [1.0, 2.0, 3.0, 4.0]);
/// ```
pub fn gemm<T: Element>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T::Acc], accumulate: bool) {
    gemm_isa(isa(), a, b, c, accumulate)
}

/// [`gemm`] for an explicit kernel ceiling (capped by what the CPU has), ignoring
/// `MIXPREC_KERNEL`: lets tests and benches compare paths in one process.
///
/// # Panics
///
/// As [`gemm`].
pub fn gemm_with<T: Element>(
    choice: KernelChoice,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T::Acc],
    accumulate: bool,
) {
    gemm_isa(cpu_isa().capped(choice), a, b, c, accumulate)
}

fn gemm_isa<T: Element>(
    isa: Isa,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T::Acc],
    accumulate: bool,
) {
    assert_eq!(a.cols, b.rows, "gemm: inner dimensions differ");
    assert_eq!(c.len(), a.rows * b.cols, "gemm: output length mismatch");
    assert!(
        a.in_bounds() && b.in_bounds(),
        "gemm: strides reach outside the data"
    );
    match (T::view(a.data), T::view(b.data), T::Acc::view_mut(c)) {
        (SliceRef::F32(ad), SliceRef::F32(bd), SliceMut::F32(c)) => {
            mm_checked(with_data(a, ad), with_data(b, bd), c, accumulate)
        }
        (SliceRef::F64(ad), SliceRef::F64(bd), SliceMut::F64(c)) => {
            mm_checked(with_data(a, ad), with_data(b, bd), c, accumulate)
        }
        (_, _, c) if !fast_16bit::<T>(isa) => {
            let SliceMut::F32(c) = c else {
                unreachable!("16-bit types accumulate in f32")
            };
            let a32: Vec<f32> = a.to_row_major();
            let b32: Vec<f32> = b.to_row_major();
            mm_checked(
                MatRef::row_major(&a32, a.rows, a.cols),
                MatRef::row_major(&b32, b.rows, b.cols),
                c,
                accumulate,
            )
        }
        _ => gemm_packed(a, &pack_b_isa(isa, b), c, accumulate),
    }
}

/// `C = A·B` or `C += A·B` with a pre-packed `B` ([`pack_b`], [`pack_b_from_f32`]): the same
/// function as [`gemm`] on the matrix that was packed.
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
        (Repr::Panels16(pb), _, SliceMut::F32(c)) => {
            let pa = panels::pack_a_strips(a);
            assert!(cpu_isa().avx512, "FMA panels without AVX-512");
            // SAFETY: AVX-512F was detected; shapes are checked inside.
            unsafe { fma::gemm_f32_avx512(&pa, m, k, pb, n, c, accumulate) }
        }
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

/// True when a 16-bit `T` has a packed fast path on `isa` (AMX for bf16, FMA panels for f16).
fn fast_16bit<T: Element>(isa: Isa) -> bool {
    match T::DTYPE {
        DType::BFloat16 => isa.amx_bf16,
        DType::Float16 => isa.avx512 && cfg!(target_arch = "x86_64"),
        _ => false,
    }
}

fn with_data<'a, T, U>(m: MatRef<'_, T>, data: &'a [U]) -> MatRef<'a, U> {
    MatRef {
        data,
        rows: m.rows,
        cols: m.cols,
        row_stride: m.row_stride,
        col_stride: m.col_stride,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::{bf16, f16};

    fn naive(a: &MatRef<'_, f64>, b: &MatRef<'_, f64>) -> Vec<f64> {
        let mut c = vec![0.0; a.rows * b.cols];
        for i in 0..a.rows {
            for j in 0..b.cols {
                c[i * b.cols + j] = (0..a.cols).map(|p| a.at(i, p) * b.at(p, j)).sum();
            }
        }
        c
    }

    fn check<T: Element>() {
        let (m, k, n) = (5, 7, 3);
        let a: Vec<T> = (0..m * k)
            .map(|i| T::from_f64_rne((i % 5) as f64 - 2.0))
            .collect();
        let b: Vec<T> = (0..n * k)
            .map(|i| T::from_f64_rne((i % 3) as f64 * 0.5))
            .collect();
        let a64: Vec<f64> = a.iter().map(|x| x.as_f64()).collect();
        let b64: Vec<f64> = b.iter().map(|x| x.as_f64()).collect();
        // B stored as n×k and used transposed: exercises strided operands.
        let want = naive(
            &MatRef::row_major(&a64, m, k),
            &MatRef::row_major(&b64, n, k).t(),
        );
        let mut c = vec![T::Acc::default(); m * n];
        gemm(
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, n, k).t(),
            &mut c,
            false,
        );
        let got: Vec<f64> = c.iter().map(|x| x.as_f64()).collect();
        assert_eq!(got, want, "{:?}", T::DTYPE);
        gemm(
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, n, k).t(),
            &mut c,
            true,
        );
        let got: Vec<f64> = c.iter().map(|x| x.as_f64()).collect();
        assert_eq!(got, want.iter().map(|x| 2.0 * x).collect::<Vec<_>>());
    }

    #[test]
    fn gemm_small_integers_are_exact_for_every_type() {
        check::<f16>();
        check::<bf16>();
        check::<f32>();
        check::<f64>();
    }

    #[test]
    fn gemm_with_k_zero_clears_output() {
        let mut c = [5f32; 6];
        gemm::<f32>(
            MatRef::row_major(&[], 2, 0),
            MatRef::row_major(&[], 0, 3),
            &mut c,
            false,
        );
        assert_eq!(c, [0.0; 6]);
    }

    #[test]
    #[should_panic(expected = "strides reach outside")]
    fn gemm_rejects_out_of_bounds_strides() {
        let a = [1f32; 4];
        let bad = MatRef {
            data: &a[..],
            rows: 2,
            cols: 2,
            row_stride: 3,
            col_stride: 1,
        };
        let mut c = [0f32; 4];
        gemm(bad, MatRef::row_major(&a, 2, 2), &mut c, false);
    }
}
