//! The one call into matrixmultiply ([`mm_checked`]): `sgemm` / `dgemm` on strided views, after
//! every length and stride has been checked against the slices.

use super::MatRef;

/// The scalar types matrixmultiply multiplies.
pub(super) trait MmScalar: Copy {
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
pub(super) fn mm_checked<T: MmScalar>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c: &mut [T],
    accumulate: bool,
) {
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
