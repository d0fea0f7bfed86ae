//! [`MatRef`]: the strided matrix view every product takes, so a transpose is a view, not a copy.

use crate::dtype::{cast_slice, Element};

/// A read-only strided matrix view: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    pub(super) data: &'a [T],
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) row_stride: usize,
    pub(super) col_stride: usize,
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
    pub(super) fn in_bounds(&self) -> bool {
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
    pub(super) fn to_row_major<U: Element>(self) -> Vec<U>
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

/// The same view over another slice (of the same layout).
pub(super) fn with_data<'a, T, U>(m: MatRef<'_, T>, data: &'a [U]) -> MatRef<'a, U> {
    MatRef {
        data,
        rows: m.rows,
        cols: m.cols,
        row_stride: m.row_stride,
        col_stride: m.col_stride,
    }
}
