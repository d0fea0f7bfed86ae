//! [`Sigmoid`]: the logistic function as a layer (Keras's `Activation("sigmoid")`).

use crate::layers::elementwise::activation_layer;
use crate::layers::Activation;
use crate::policy::Policy;

activation_layer! {
    /// `1 / (1 + e^-x)` element-wise, in f32 (f64 for `F64`), rounded once to the compute type:
    /// Keras's `Activation("sigmoid")` (Keras has no `Sigmoid` class). The gradient is
    /// `dy·y·(1 − y)`, formed in f32 from the saved output.
    ///
    /// ```
    /// use mixprec::prelude::*;
    /// use mixprec::layers::Sigmoid;
    /// let y = Sigmoid::<F32>::new().forward(&Tensor::from_vec(vec![2], vec![0.0f32, 100.0])?);
    /// assert_eq!(y.as_slice(), &[0.5, 1.0]);
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    Sigmoid
}

impl<P: Policy> Sigmoid<P> {
    /// The sigmoid layer.
    pub fn new() -> Self {
        Self::with(Activation::Sigmoid)
    }
}

impl<P: Policy> Default for Sigmoid<P> {
    fn default() -> Self {
        Self::new()
    }
}
