//! Matrix products `C = A·B` (or `C += A·B`) for every [`Element`], accumulated in
//! [`Element::Acc`]: f32 for f16, bf16 and f32; f64 for f64.
//!
//! - f32 and f64 go straight to matrixmultiply's `sgemm` / `dgemm`, strides and all, so a
//!   transposed operand ([`MatRef::t`]) costs nothing.
//! - The 16-bit types take the portable path: each operand is widened to f32 once per call
//!   (exact), then `sgemm` multiplies and accumulates in f32. A product of two 16-bit values is
//!   exact in f32, so this is the same function as a native 16-bit-operand, f32-accumulate unit.
//!
//! The one `unsafe` call into matrixmultiply lives in `mm_checked`, after every length and
//! stride has been checked against the slices.

use crate::dtype::{cast_slice, Element, SliceMut, SliceRef};

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
        (_, _, SliceMut::F32(c)) => {
            let a32: Vec<f32> = a.to_row_major();
            let b32: Vec<f32> = b.to_row_major();
            mm_checked(
                MatRef::row_major(&a32, a.rows, a.cols),
                MatRef::row_major(&b32, b.rows, b.cols),
                c,
                accumulate,
            )
        }
        _ => unreachable!("Element::Acc is f32 or f64, matching the operand type"),
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

/// The scalar types matrixmultiply multiplies.
trait MmScalar: Copy {
    const ZERO: Self;
    const ONE: Self;
    /// # Safety
    ///
    /// As `matrixmultiply::sgemm` / `dgemm`: every index reached through the pointers and
    /// strides must be in bounds.
    #[allow(clippy::too_many_arguments)]
    unsafe fn mm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: *const Self,
        rsa: isize,
        csa: isize,
        b: *const Self,
        rsb: isize,
        csb: isize,
        beta: Self,
        c: *mut Self,
        rsc: isize,
        csc: isize,
    );
}

macro_rules! mm_scalar {
    ($t:ty, $f:path) => {
        impl MmScalar for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            unsafe fn mm(
                m: usize,
                k: usize,
                n: usize,
                alpha: Self,
                a: *const Self,
                rsa: isize,
                csa: isize,
                b: *const Self,
                rsb: isize,
                csb: isize,
                beta: Self,
                c: *mut Self,
                rsc: isize,
                csc: isize,
            ) {
                // SAFETY: forwarded contract; see the trait method's `# Safety`.
                unsafe { $f(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
            }
        }
    };
}
mm_scalar!(f32, matrixmultiply::sgemm);
mm_scalar!(f64, matrixmultiply::dgemm);

/// The only call into matrixmultiply: checks shapes and strides, then multiplies.
fn mm_checked<T: MmScalar>(a: MatRef<'_, T>, b: MatRef<'_, T>, c: &mut [T], accumulate: bool) {
    assert!(a.cols == b.rows && c.len() == a.rows * b.cols && a.in_bounds() && b.in_bounds());
    let (m, k, n) = (a.rows, a.cols, b.cols);
    if m == 0 || n == 0 {
        return;
    }
    let beta = if accumulate { T::ONE } else { T::ZERO };
    // Strides fit in isize: checked by `in_bounds`. The output is contiguous row-major.
    let s = |x: usize| x as isize;
    // SAFETY: every index `i*rs + j*cs` of A (i < m, j < k) and B (i < k, j < n) is below its
    // slice's length (`in_bounds`), C holds exactly m·n elements addressed with strides (n, 1),
    // and C does not alias A or B (a `&mut` borrow). With k == 0 matrixmultiply reads no operand
    // and scales C by beta.
    unsafe {
        T::mm(
            m,
            k,
            n,
            T::ONE,
            a.data.as_ptr(),
            s(a.row_stride),
            s(a.col_stride),
            b.data.as_ptr(),
            s(b.row_stride),
            s(b.col_stride),
            beta,
            c.as_mut_ptr(),
            s(n),
            1,
        );
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
