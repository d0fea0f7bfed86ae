//! [`GELU`]: the Gaussian error linear unit as a layer (Keras's `Activation("gelu")` and
//! `keras.activations.gelu(x, approximate=...)`).

use crate::layers::elementwise::activation_layer;
use crate::layers::Activation;
use crate::policy::Policy;

activation_layer! {
    /// GELU element-wise, in f32 (f64 for `F64`), rounded once to the compute type. Keras has no
    /// `GELU` class; this is `keras.activations.gelu(x, approximate)` as a layer, with Keras's
    /// default `approximate = false`:
    ///
    /// - exact ([`Activation::Gelu`]): `x·Φ(x) = x/2 · (1 + erf(x/√2))`, evaluated as
    ///   `x/2 · erfc(−x/√2)` (libm's `erfcf`, within 1 ulp), so it keeps its relative accuracy
    ///   for negative `x`;
    /// - `approximate = true` ([`Activation::GeluTanh`]): Keras's tanh form
    ///   `x/2 · (1 + tanh(√(2/π)(x + 0.044715x³)))`, evaluated as `x·σ(2t)`.
    ///
    /// The training pass saves the input (GELU's derivative `Φ(x) + x·φ(x)` needs it); the
    /// gradient is formed in f32 and rounded once. `GELU(+inf) = +inf`, `GELU(−inf)` is NaN (as
    /// Keras's formula), NaN stays NaN.
    ///
    /// ```
    /// use mixprec::prelude::*;
    /// use mixprec::layers::GELU;
    /// let gelu = GELU::<F64>::new();
    /// assert!(!gelu.approximate());
    /// let y = gelu.forward(&Tensor::from_vec(vec![2], vec![0.0, 1.0])?);
    /// assert_eq!(y.as_slice()[0], 0.0);
    /// assert!((y.as_slice()[1] - 0.8413447460685429).abs() < 1e-15);
    /// let tanh_form = GELU::<F64>::new().with_approximate(true);
    /// assert!((tanh_form.forward(&Tensor::from_vec(vec![1], vec![1.0])?).as_slice()[0] - 0.8412).abs() < 1e-4);
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    GELU
}

impl<P: Policy> GELU<P> {
    /// Exact GELU (Keras's default `approximate=False`).
    pub fn new() -> Self {
        Self::with(Activation::Gelu)
    }

    /// Sets Keras's `approximate`: the tanh form when true.
    pub fn with_approximate(self, approximate: bool) -> Self {
        Self::with(if approximate {
            Activation::GeluTanh
        } else {
            Activation::Gelu
        })
    }

    /// Keras's `approximate`: true for the tanh form.
    pub fn approximate(&self) -> bool {
        self.activation == Activation::GeluTanh
    }
}

impl<P: Policy> Default for GELU<P> {
    fn default() -> Self {
        Self::new()
    }
}
