//! Layers. Each takes its policy as a type parameter (`Dense<MixedBf16>`), stores its variables in
//! `P::Variable`, and computes in `P::Compute` with products accumulated in f32.
//!
//! - [`Dense`] (`layers/dense.rs`): `y = activation(x·W + b)`.
//! - [`Activation`]: applied in the accumulator type before the one rounding to `P::Compute`.
//! - [`AnyDense`]: a `Dense` whose policy was chosen at run time.

mod dense;

pub use dense::{AnyDense, Dense, DenseFamily, DEFAULT_SEED};

use std::fmt;
use std::str::FromStr;

use num_traits::Float;

use crate::error::Error;

/// An element-wise activation, applied to the f32 (f64 for `F64`) accumulator before the output
/// is rounded to the compute type, so it costs no extra rounding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Activation {
    /// `x` (Keras `"linear"`, the default).
    #[default]
    Linear,
    /// `max(x, 0)`; NaN stays NaN.
    Relu,
    /// `1 / (1 + e^-x)`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
}

impl Activation {
    /// All activations.
    pub const ALL: [Activation; 4] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
    ];

    /// Keras's name.
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
        }
    }

    /// The activation of one value.
    #[inline]
    pub fn apply<F: Float>(self, x: F) -> F {
        match self {
            Activation::Linear => x,
            // `x > 0 ? x : 0` would turn NaN into 0; keep NaN visible.
            Activation::Relu => {
                if x < F::zero() {
                    F::zero()
                } else {
                    x
                }
            }
            Activation::Sigmoid => F::one() / (F::one() + (-x).exp()),
            Activation::Tanh => x.tanh(),
        }
    }

    /// Applies the activation in place.
    pub fn apply_slice<F: Float>(self, xs: &mut [F]) {
        if self != Activation::Linear {
            xs.iter_mut().for_each(|x| *x = self.apply(*x));
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Activation {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Activation::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                what: "activation",
                found: format!("{s:?}"),
                expected: "one of: linear, relu, sigmoid, tanh",
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relu_keeps_nan() {
        assert!(Activation::Relu.apply(f32::NAN).is_nan());
        assert_eq!(Activation::Relu.apply(-2.0f32), 0.0);
        assert_eq!(Activation::Relu.apply(3.0f32), 3.0);
    }

    #[test]
    fn activation_names_round_trip() {
        for a in Activation::ALL {
            assert_eq!(a.name().parse::<Activation>().unwrap(), a);
        }
        assert!("Relu".parse::<Activation>().is_err());
    }
}
