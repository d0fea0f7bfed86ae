//! [`Softmax`]: Keras's `Softmax` layer over the last axis, with an optional mask, computed in
//! the accumulator type whatever the policy; [`SoftmaxConfig`] its arguments.

use crate::dtype::{Element, SliceMut, SliceRef};
use crate::error::{fmt_shape, Error, Result};
use crate::kernels::{rowwise, Kernels};
use crate::layers::ops::math::{exp_in_place, row_dot, row_max, row_sum};
use crate::layers::ops::rows::{map_rows, map_rows_in_place, RowOp};
use crate::layers::ops::saved::Saved;
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::Layer;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

mod config;
#[cfg(test)]
mod tests;

pub use config::SoftmaxConfig;

/// Softmax over the last axis: `y_j = e^{x_j − m} / Σ_k e^{x_k − m}` with `m` the row's largest
/// element, Keras's `Softmax()` (`axis=-1`; other axes are refused by [`SoftmaxConfig`]).
///
/// - Computed in f32 (f64 for `F64`) whatever the policy: each row is widened, its maximum
///   subtracted (so `exp` cannot overflow, even for logits past f16's 65504 in f32), and the
///   result rounded once to the compute type. (Keras computes softmax in the compute type.)
/// - A mask (Keras's `mask=`, `true` = keep) gives masked positions probability exactly 0: they
///   are left out of the maximum and the sum (Keras adds a large negative number, which can
///   leave a little mass on them). A fully masked row is all zeros, as Keras 3's output, which
///   it multiplies by the mask (older Keras gave a uniform row).
/// - Non-finite logits on purpose: NaN anywhere in a row, or `+inf` (`inf − inf`), makes the
///   whole row NaN, as PyTorch and TensorFlow; `-inf` is probability 0, like a masked position;
///   a row of only `-inf` is all zeros.
/// - The normalisation multiplies by `1/Σ` (two roundings in f32 instead of a division's one;
///   the division is several times slower in vector lanes).
/// - On CPUs with AVX-512 each row runs on one fused kernel (widen, maximum, `e^{x−m}` with
///   fused multiply-adds and its sum, scale and round): within a few f32 ulp of the portable
///   path before the one rounding, so equal or adjacent in a 16-bit compute type.
/// - Backward: `dx = y ⊙ (dy − Σ dy⊙y)` per row in f32 from the saved output, rounded once.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::Softmax;
/// let x = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, 70000.0, 70000.0, 0.0])?;
/// let softmax = Softmax::<MixedF16>::new();
/// let y = softmax.call(&x)?; // 70000 is inf in f16: an inf row is NaN
/// assert!((y.to_f64_vec()[2] - 0.6652).abs() < 1e-3);
/// assert!(y.to_f64_vec()[3].is_nan());
/// let masked = softmax.call_masked(&x, &[true, false, true, false, false, false])?;
/// assert_eq!(masked.to_f64_vec()[1], 0.0);
/// assert_eq!(&masked.to_f64_vec()[3..], &[0.0, 0.0, 0.0]); // fully masked row
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Softmax<P: Policy = DefaultPolicy> {
    saved: Saved<Tensor<P::Compute>>,
}

impl<P: Policy> PartialEq for Softmax<P> {
    /// Always equal: a softmax has no configuration beyond its type.
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<P: Policy> Default for Softmax<P> {
    fn default() -> Self {
        Self::new()
    }
}

crate::layers::ops::stateless::impl_stateless_module!(Softmax);

impl<P: Policy> Softmax<P> {
    /// Keras's `Softmax()`: over the last axis.
    pub fn new() -> Self {
        Softmax {
            saved: Saved::default(),
        }
    }

    fn to_policy_of<Q: Policy>(&self) -> Softmax<Q> {
        Softmax::new()
    }

    /// The softmax of each row of `x` (`[.., n]`, in the compute type).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] for a rank-0 tensor.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        softmax(x, None)
    }

    /// The softmax of each row of `x` where `mask` is true, 0 where it is false: `mask` has one
    /// entry per element of `x`, row-major (`x`'s shape).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] for a rank-0 tensor or a mask of another length.
    pub fn forward_masked(
        &self,
        x: &Tensor<P::Compute>,
        mask: &[bool],
    ) -> Result<Tensor<P::Compute>> {
        softmax(x, Some(mask))
    }

    /// Keras's `layer(x)`: casts `x` (any float type) to the compute type, then
    /// [`forward`](Self::forward).
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward).
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        self.forward(&x.cast_ref::<P::Compute>())
    }

    /// Keras's `layer(x, mask=mask)`: casts `x`, then [`forward_masked`](Self::forward_masked).
    ///
    /// # Errors
    ///
    /// As [`forward_masked`](Self::forward_masked).
    pub fn call_masked<T: Element>(
        &self,
        x: &Tensor<T>,
        mask: &[bool],
    ) -> Result<Tensor<P::Compute>> {
        self.forward_masked(&x.cast_ref::<P::Compute>(), mask)
    }

    /// The training pass with a mask: as [`forward_masked`](Self::forward_masked), saving the
    /// output for [`backward`](Layer::backward) (masked positions get no gradient).
    ///
    /// # Errors
    ///
    /// As [`forward_masked`](Self::forward_masked).
    pub fn train_forward_masked(
        &mut self,
        x: Tensor<P::Compute>,
        mask: &[bool],
    ) -> Result<Tensor<P::Compute>> {
        let y = softmax(&x, Some(mask))?;
        self.saved.save(y.clone());
        Ok(y)
    }
}

/// The width of the last axis, checking rank >= 1.
fn last_dim(what: &'static str, shape: &[usize]) -> Result<usize> {
    shape
        .last()
        .copied()
        .ok_or_else(|| Error::shape(what, "[.., n] (rank >= 1)".into(), shape))
}

fn softmax<C: Element>(x: &Tensor<C>, mask: Option<&[bool]>) -> Result<Tensor<C>> {
    let n = last_dim("softmax input", x.shape())?;
    if let Some(m) = mask {
        if m.len() != x.len() {
            return Err(Error::shape(
                "softmax mask",
                format!(
                    "{} entries (the input's shape {})",
                    x.len(),
                    fmt_shape(x.shape())
                ),
                &[m.len()],
            ));
        }
    }
    if x.is_empty() {
        return Ok(x.clone());
    }
    let (y, _) = map_rows(x.as_slice(), None, n, &Forward { mask, n });
    Ok(Tensor::from_parts(x.shape().to_vec(), y))
}

/// One row's softmax, in place, in the accumulator type.
struct Forward<'a> {
    mask: Option<&'a [bool]>,
    n: usize,
}

impl<A: Element> RowOp<A> for Forward<'_> {
    type State = ();

    fn state(&self, _rows: usize) {}

    #[inline(always)]
    fn row(&self, _: &mut (), row: usize, a: &mut [A], _: &[A]) {
        if let Some(mask) = self.mask {
            let mask = &mask[row * self.n..][..self.n];
            for (x, &keep) in a.iter_mut().zip(mask) {
                *x = if keep { *x } else { A::neg_infinity() };
            }
        }
        let m = row_max(a);
        // A row of only -inf (or masked) entries: subtract nothing, so each exp is 0.
        let m = if m == A::neg_infinity() { A::zero() } else { m };
        a.iter_mut().for_each(|x| *x = *x - m);
        exp_in_place(a);
        // The sum is >= 1 (the maximum's exp) unless every entry is 0; then scale by 0. A
        // multiply by the reciprocal (one more rounding than a division, which is several
        // times slower in vector lanes).
        let s = row_sum(a);
        let inv = if s == A::zero() {
            A::zero()
        } else {
            A::one() / s
        };
        a.iter_mut().for_each(|x| *x = *x * inv);
    }

    fn direct(
        &self,
        kernels: Kernels,
        _: &mut (),
        _row: usize,
        x: SliceRef<'_>,
        out: SliceMut<'_>,
        buf: &mut Vec<f32>,
    ) -> bool {
        self.mask.is_none() && rowwise::softmax_row(kernels, x, out, buf)
    }
}

/// One row's input gradient `y ⊙ (dy − Σ dy⊙y)`: `a` holds `dy`, `b` holds `y`.
struct Backward;

impl<A: Element> RowOp<A> for Backward {
    type State = ();

    fn state(&self, _rows: usize) {}

    #[inline(always)]
    fn row(&self, _: &mut (), _row: usize, a: &mut [A], b: &[A]) {
        let dot = row_dot(a, b);
        a.iter_mut().zip(b).for_each(|(d, &y)| *d = y * (*d - dot));
    }
}

impl<P: Policy> Layer for Softmax<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let y = self.forward(&x)?;
        self.saved.save(y.clone());
        Ok(y)
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let y = self.saved.take("Softmax")?;
        if dy.shape() != y.shape() {
            return Err(Error::shape(
                "softmax output gradient",
                fmt_shape(y.shape()),
                dy.shape(),
            ));
        }
        if !need_input_grad {
            return Ok(None);
        }
        if y.is_empty() {
            return Ok(Some(dy));
        }
        let n = last_dim("softmax output gradient", y.shape())?;
        // dx is written over dy, row by row: no new vector.
        let shape = dy.shape().to_vec();
        let mut dx = dy.into_vec();
        map_rows_in_place(&mut dx, y.as_slice(), n, &Backward);
        Ok(Some(Tensor::from_parts(shape, dx)))
    }

    saved_slot!();

    fn output_dim(&self, input: usize) -> Option<usize> {
        Some(input)
    }
}
