//! [`ReLU`]: Keras's `ReLU` layer with its defaults.

use crate::layers::elementwise::activation_layer;
use crate::layers::Activation;
use crate::policy::Policy;

activation_layer! {
    /// `max(x, 0)` element-wise: Keras's `ReLU()` (its defaults `max_value=None`,
    /// `negative_slope=0.0`, `threshold=0.0`; other values are not supported). Exact in every
    /// type, so its output is its input's `max(x, 0)`; NaN stays NaN. The gradient is `dy` where
    /// `y > 0` and 0 elsewhere (Keras's 0 at `x = 0`).
    ///
    /// ```
    /// use mixprec::prelude::*;
    /// use mixprec::layers::ReLU;
    /// let x = Tensor::from_vec(vec![1, 3], vec![-1.0f32, 0.5, 2.0])?;
    /// let y = ReLU::<MixedBf16>::new().call(&x);
    /// assert_eq!(y.to_f64_vec(), vec![0.0, 0.5, 2.0]);
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    ReLU
}

impl<P: Policy> ReLU<P> {
    /// Keras's `ReLU()`.
    pub fn new() -> Self {
        Self::with(Activation::Relu)
    }
}

impl<P: Policy> Default for ReLU<P> {
    fn default() -> Self {
        Self::new()
    }
}
