//! [`Tensor<T>`]: a dense, row-major, contiguous array of one [`Element`] type with a shape.
//! It is deliberately small (construct, read, cast); the layers own the math.

use std::fmt;

use crate::dtype::{cast_slice, cast_vec, Element};
use crate::error::{Error, Result};

/// A dense row-major tensor of `T`.
///
/// ```
/// use mixprec::Tensor;
/// use half::bf16;
/// let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])?;
/// assert_eq!(x.shape(), &[2, 3]);
/// let y: Tensor<bf16> = x.cast();
/// assert_eq!(y.to_f64_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
/// assert!(Tensor::from_vec(vec![2, 3], vec![1.0f32; 5]).is_err()); // 5 != 2·3
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Clone, PartialEq)]
pub struct Tensor<T: Element> {
    shape: Vec<usize>,
    data: Vec<T>,
}

pub(crate) mod alloc;

pub(crate) use alloc::numel;
pub use alloc::MAX_ALLOCATION_BYTES;

impl<T: Element> Tensor<T> {
    /// A tensor of `shape` holding `data` in row-major order.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when `data.len()` is not the product of `shape`;
    /// [`Error::ShapeOverflow`] when that product overflows.
    pub fn from_vec(shape: Vec<usize>, data: Vec<T>) -> Result<Self> {
        let expected = numel(&shape)?;
        if data.len() != expected {
            return Err(Error::LengthMismatch {
                shape,
                expected,
                found: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor of zeros.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] when it would need more than [`MAX_ALLOCATION_BYTES`] (an overflowing
    /// element count included); [`Error::AllocationFailed`] when the system refuses the memory.
    pub fn zeros(shape: Vec<usize>) -> Result<Self> {
        let what = || format!("tensor of shape {shape:?} of {}", T::DTYPE);
        let n = alloc::check_shape::<T>(what, &shape)?;
        let data = alloc::try_filled(what, n, T::default())?;
        Ok(Tensor { shape, data })
    }

    /// A tensor from data the caller has already checked (`data.len() == numel(shape)`).
    pub(crate) fn from_parts(shape: Vec<usize>, data: Vec<T>) -> Self {
        debug_assert_eq!(Some(data.len()), numel(&shape).ok());
        Tensor { shape, data }
    }

    /// The dimensions.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements in row-major order.
    pub fn as_slice(&self) -> &[T] {
        &self.data
    }

    /// The elements in row-major order, mutable (the shape stays fixed).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// The number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Gives up the shape and returns the elements.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The same elements in type `U`, rounded to nearest-even. Casting to `T` itself moves
    /// nothing.
    pub fn cast<U: Element>(&self) -> Tensor<U> {
        let mut data = vec![U::default(); self.data.len()];
        cast_slice(&self.data, &mut data);
        Tensor {
            shape: self.shape.clone(),
            data,
        }
    }

    /// Like [`cast`](Self::cast) but consumes `self`, so a cast to `T` itself is free.
    pub fn into_cast<U: Element>(self) -> Tensor<U> {
        Tensor {
            shape: self.shape,
            data: cast_vec(self.data),
        }
    }

    /// This tensor in type `U`: borrowed when `U` is `T` (no copy), otherwise converted, rounded
    /// to nearest-even. The cast a layer applies to its input (Keras's autocast).
    pub fn cast_ref<U: Element>(&self) -> std::borrow::Cow<'_, Tensor<U>> {
        match (self as &dyn std::any::Any).downcast_ref::<Tensor<U>>() {
            Some(same) => std::borrow::Cow::Borrowed(same),
            None => std::borrow::Cow::Owned(Tensor {
                shape: self.shape.clone(),
                data: crate::dtype::cast_to_vec(&self.data),
            }),
        }
    }

    /// The elements widened to `f64` (exact).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        self.data.iter().map(|x| x.as_f64()).collect()
    }

    /// The same elements under another shape with the same element count.
    ///
    /// # Errors
    ///
    /// [`Error::LengthMismatch`] when the counts differ.
    pub fn reshape(self, shape: Vec<usize>) -> Result<Self> {
        Tensor::from_vec(shape, self.data)
    }
}

impl<T: Element> fmt::Debug for Tensor<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const SHOWN: usize = 8;
        write!(f, "Tensor<{}>{:?} [", T::DTYPE, self.shape)?;
        for (i, x) in self.data.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{x}")?;
        }
        if self.data.len() > SHOWN {
            write!(f, ", … ({} more)", self.data.len() - SHOWN)?;
        }
        f.write_str("]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_vec_rejects_wrong_length_and_names_both() {
        let err = Tensor::from_vec(vec![2, 3], vec![0f32; 7]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "length mismatch: shape [2, 3] holds 6 elements, found 7"
        );
    }

    #[test]
    fn from_vec_rejects_overflowing_shape() {
        let err = Tensor::<f32>::from_vec(vec![usize::MAX, 2], vec![]).unwrap_err();
        assert!(matches!(err, Error::ShapeOverflow { .. }), "{err}");
    }

    #[test]
    fn cast_ref_borrows_the_same_type_and_rounds_another() {
        let t = Tensor::from_vec(vec![2], vec![1.0f32, 1.0 + 1.0 / 512.0]).unwrap();
        assert!(
            matches!(t.cast_ref::<f32>(), std::borrow::Cow::Borrowed(b) if std::ptr::eq(b, &t))
        );
        let b = t.cast_ref::<half::bf16>();
        assert_eq!(b.shape(), &[2]);
        // bf16 spaces values 2^-7 apart at 1, so 1 + 2^-9 rounds down to 1.
        assert_eq!(b.as_slice(), &[half::bf16::ONE, half::bf16::ONE]);
    }

    #[test]
    fn into_cast_to_same_type_keeps_allocation() {
        let t = Tensor::from_vec(vec![3], vec![1f32, 2.0, 3.0]).unwrap();
        let p = t.as_slice().as_ptr();
        assert_eq!(t.into_cast::<f32>().as_slice().as_ptr(), p);
    }
}
