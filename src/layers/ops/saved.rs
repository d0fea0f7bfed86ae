//! What a layer's training pass keeps for its backward pass: a [`Saved`] slot that is filled by
//! `train_forward`, emptied by `backward` (an empty slot is
//! [`Error::BackwardWithoutForward`]), and counts its bytes for `Layer::saved_bytes`.

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Bytes of activations held, for `Layer::saved_bytes`.
pub(crate) trait SavedBytes {
    /// Bytes of tensor data held (not counting the small headers).
    fn saved_bytes(&self) -> usize;
}

impl<T: Element> SavedBytes for Tensor<T> {
    fn saved_bytes(&self) -> usize {
        self.len() * T::DTYPE.size_of()
    }
}

impl<S: SavedBytes> SavedBytes for Option<S> {
    fn saved_bytes(&self) -> usize {
        self.as_ref().map_or(0, S::saved_bytes)
    }
}

impl<A: SavedBytes, B: SavedBytes> SavedBytes for (A, B) {
    fn saved_bytes(&self) -> usize {
        self.0.saved_bytes() + self.1.saved_bytes()
    }
}

/// What a layer saves that is not activation data (a shape, a window geometry, a step): it
/// counts no bytes.
#[derive(Debug, Clone)]
pub(crate) struct Geometry<G>(pub(crate) G);

impl<G> SavedBytes for Geometry<G> {
    fn saved_bytes(&self) -> usize {
        0
    }
}

/// A layer's input and what its activation's derivative reads (the output `y`, or for GELU the
/// pre-activation `z`: [`Activation::derivative_needs_input`](crate::layers::Activation::derivative_needs_input)),
/// both in the compute type: what a product layer (Dense, a convolution) saves.
#[derive(Debug, Clone)]
pub(crate) struct InputOutput<T: Element> {
    /// The input, `rows × inputs` (leading dimensions flattened).
    pub(crate) x: Tensor<T>,
    /// The output `y` (or GELU's `z`), kept only for a non-linear activation.
    pub(crate) deriv: Option<Tensor<T>>,
}

impl<T: Element> SavedBytes for InputOutput<T> {
    fn saved_bytes(&self) -> usize {
        self.x.saved_bytes() + self.deriv.saved_bytes()
    }
}

/// The slot for what the last training pass saved. Empty by default and after
/// [`take`](Self::take) or [`clear`](Self::clear), so one backward pass consumes one forward
/// pass.
#[derive(Debug, Clone)]
pub(crate) struct Saved<S> {
    value: Option<S>,
}

impl<S> Default for Saved<S> {
    fn default() -> Self {
        Saved { value: None }
    }
}

impl<S: SavedBytes> Saved<S> {
    /// Keeps `value` for the backward pass, replacing what an earlier pass saved.
    pub(crate) fn save(&mut self, value: S) {
        self.value = Some(value);
    }

    /// What the last training pass saved, leaving the slot empty.
    ///
    /// # Errors
    ///
    /// [`Error::BackwardWithoutForward`] naming `layer` when nothing is saved.
    pub(crate) fn take(&mut self, layer: &'static str) -> Result<S> {
        self.value
            .take()
            .ok_or(Error::BackwardWithoutForward { layer })
    }

    /// Bytes held.
    pub(crate) fn bytes(&self) -> usize {
        self.value.saved_bytes()
    }

    /// Drops what is held (after an aborted step).
    pub(crate) fn clear(&mut self) {
        self.value = None;
    }
}

/// In a `Layer` impl for a layer in policy `P` that takes and returns the compute type:
/// `Input` and `Output`, and `infer` through the layer's own `forward` (which returns a
/// `Result`).
macro_rules! compute_io {
    () => {
        type Input = P::Compute;
        type Output = P::Compute;

        fn infer(
            &self,
            x: &$crate::tensor::Tensor<P::Compute>,
        ) -> $crate::Result<$crate::tensor::Tensor<P::Compute>> {
            self.forward(x)
        }
    };
}

/// In a `Layer` impl for a layer whose training pass keeps a `saved: Saved<_>` slot:
/// `saved_bytes` and `clear_saved` over it.
macro_rules! saved_slot {
    () => {
        fn saved_bytes(&self) -> usize {
            self.saved.bytes()
        }

        fn clear_saved(&mut self) {
            self.saved.clear();
        }
    };
}

pub(crate) use {compute_io, saved_slot};

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    fn saved(rows: usize, y: bool) -> InputOutput<bf16> {
        InputOutput {
            x: Tensor::zeros(vec![rows, 4]).unwrap(),
            deriv: y.then(|| Tensor::zeros(vec![rows, 3]).unwrap()),
        }
    }

    #[test]
    fn counts_the_bytes_of_what_it_holds() {
        let mut slot = Saved::default();
        assert_eq!(slot.bytes(), 0);
        slot.save(saved(8, true));
        assert_eq!(slot.bytes(), (8 * 4 + 8 * 3) * 2);
        slot.save(saved(2, false));
        assert_eq!(slot.bytes(), 2 * 4 * 2, "a new pass replaces the old one");
        let pair = (
            Tensor::<f32>::zeros(vec![5]).unwrap(),
            Some(Tensor::<f64>::zeros(vec![2]).unwrap()),
        );
        assert_eq!(pair.saved_bytes(), 5 * 4 + 2 * 8);
    }

    #[test]
    fn one_backward_per_forward() {
        let mut slot = Saved::default();
        slot.save(saved(1, false));
        assert_eq!(slot.take("Dense").unwrap().x.shape(), &[1, 4]);
        let err = slot.take("Dense").unwrap_err();
        assert!(
            matches!(err, Error::BackwardWithoutForward { layer: "Dense" }),
            "{err}"
        );
        slot.save(saved(1, true));
        slot.clear();
        assert_eq!(slot.bytes(), 0);
        assert!(slot.take("Dense").is_err());
    }
}
