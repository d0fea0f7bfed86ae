//! Matrix products `C = A·B` (or `C += A·B`) for every [`Element`], accumulated in
//! [`Element::Acc`]: f32 for f16, bf16 and f32; f64 for f64. The paths are described in the
//! [`kernels`](crate::kernels) docs.
//!
//! - f32 and f64 go straight to matrixmultiply's `sgemm` / `dgemm` (`gemm/mm.rs`), strides and
//!   all.
//! - bf16 runs on the AMX tiles (`gemm/amx.rs`) when the selection point picks them for bf16:
//!   both operands are packed into the tile layouts (`gemm/pack.rs`), converting strided or
//!   transposed views while packing. Without AMX but with AVX512-BF16 it runs on `vdpbf16ps`
//!   (`gemm/dpbf16.rs`) over k-pair panels (`gemm/pairs.rs`). f16 (and a pre-packed f32 weight) runs on the AVX-512 FMA
//!   panels (`gemm/panels.rs`, `gemm/fma.rs`) when it picks them.
//! - Otherwise the 16-bit types are widened to f32 once per call (exact), then `sgemm`.

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // `asm!` tile instructions
mod amx;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // the register blocks shared by the FMA and `vdpbf16ps` kernels
mod blocked;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // `asm!` tile instructions reading a padded input
mod conv_amx;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // the `vdpbf16ps` convolution reading a padded input
mod conv_dp;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // the AVX512-BF16 `vdpbf16ps` microkernel
mod dpbf16;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // the AVX-512 FMA microkernel
mod fma;
#[allow(unsafe_code)] // the call of the AMX convolution
mod implicit;
mod matref;
#[allow(unsafe_code)] // the one call into matrixmultiply
mod mm;
#[allow(unsafe_code)] // calls of the AVX-512 packers
mod pack;
#[allow(unsafe_code)] // calls of the AMX and FMA kernels
mod packed;
#[cfg(target_arch = "x86_64")]
mod pairs;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // a call of the AVX-512 transpose
mod panels;
#[allow(unsafe_code)] // the call of the AMX kernel gradient
mod wgrad;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // `asm!` tile instructions reading the kernel gradient's layouts
mod wgrad_amx;
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)] // the `vdpbf16ps` kernel gradient reading the layouts
mod wgrad_dp;

#[cfg(test)]
pub(crate) use implicit::conv_implicit;
pub(crate) use implicit::{conv_implicit_rounded, implicit_ready};
pub(crate) use implicit::{BlockEpilogue, ImplicitConv, BLOCK_PITCH};
pub use matref::MatRef;
pub use packed::{gemm_packed, pack_b, pack_b_from, pack_b_from_f32, PackedB};
#[cfg(test)]
pub(crate) use packed::{pack_b_from_f32_with, pack_b_with};
pub(crate) use packed::{repack_blocks, RepackBlock, REPACK_ROWS};
pub(crate) use wgrad::{conv_weight_grad, WeightGradConv};

use super::select::{selected, Kernels};
use super::KernelChoice;
use crate::dtype::{Element, SliceMut, SliceRef};
use matref::with_data;
use mm::mm_checked;
use packed::pack_b_for;

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
    gemm_for(selected(), a, b, c, accumulate)
}

/// [`gemm`] for an explicit kernel ceiling (capped by what the CPU has), ignoring
/// `MIXPREC_KERNEL`: lets the tests compare paths in one process.
///
/// # Panics
///
/// As [`gemm`].
#[cfg(test)]
pub(crate) fn gemm_with<T: Element>(
    choice: KernelChoice,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T::Acc],
    accumulate: bool,
) {
    gemm_for(super::kernels_for(choice), a, b, c, accumulate)
}

fn gemm_for<T: Element>(
    kernels: Kernels,
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
        (_, _, c) if kernels.gemm(T::DTYPE) == KernelChoice::Portable => {
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
        // A 16-bit type with a packed fast path (AMX tiles or `vdpbf16ps` pairs for bf16, FMA
        // panels for f16).
        _ => gemm_packed(a, &pack_b_for(kernels, b), c, accumulate),
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
