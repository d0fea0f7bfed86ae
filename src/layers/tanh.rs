//! [`Tanh`]: the hyperbolic tangent as a layer (Keras's `Activation("tanh")`).

use crate::layers::elementwise::activation_layer;
use crate::layers::Activation;
use crate::policy::Policy;

activation_layer! {
    /// `tanh(x)` element-wise, in f32 (f64 for `F64`), rounded once to the compute type: Keras's
    /// `Activation("tanh")` (Keras has no `Tanh` class). The gradient is `dy·(1 − y²)`, formed in
    /// f32 from the saved output.
    ///
    /// ```
    /// use mixprec::prelude::*;
    /// use mixprec::layers::Tanh;
    /// let x = Tensor::from_vec(vec![2], vec![bf16::from_f32(0.0), bf16::from_f32(20.0)])?;
    /// assert_eq!(Tanh::<Bf16>::new().forward(&x).to_f64_vec(), vec![0.0, 1.0]);
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    Tanh
}

impl<P: Policy> Tanh<P> {
    /// The tanh layer.
    pub fn new() -> Self {
        Self::with(Activation::Tanh)
    }
}

impl<P: Policy> Default for Tanh<P> {
    fn default() -> Self {
        Self::new()
    }
}
