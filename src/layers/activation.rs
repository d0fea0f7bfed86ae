//! [`Activation`]: the element-wise functions a layer applies in its accumulator type before
//! the one rounding to the compute type (Keras's activation names).

use std::fmt;
use std::str::FromStr;

use num_traits::Float;

use crate::error::Error;
use crate::layers::ops::math::erfc;

/// An element-wise activation, applied to the f32 (f64 for `F64`) accumulator before the output
/// is rounded to the compute type, so it costs no extra rounding.
///
/// | variant | name | Keras |
/// | --- | --- | --- |
/// | `Linear` | `"linear"` | `"linear"` |
/// | `Relu` | `"relu"` | `"relu"` |
/// | `Sigmoid` | `"sigmoid"` | `"sigmoid"` |
/// | `Tanh` | `"tanh"` | `"tanh"` |
/// | `Gelu` | `"gelu"` | `"gelu"` (`keras.activations.gelu(x, approximate=False)`) |
/// | `GeluTanh` | `"gelu_tanh"` | `gelu(x, approximate=True)`, which has no string in Keras |
///
/// ```
/// use mixprec::layers::Activation;
/// assert_eq!("gelu".parse::<Activation>()?, Activation::Gelu);
/// assert_eq!(Activation::GeluTanh.to_string(), "gelu_tanh");
/// assert!((Activation::Gelu.apply(1.0f64) - 0.8413447460685429).abs() < 1e-15);
/// # Ok::<(), mixprec::Error>(())
/// ```
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
    /// GELU, exact: `x·Φ(x) = x/2 · (1 + erf(x/√2))`, evaluated as `x/2 · erfc(−x/√2)` so it
    /// keeps its relative accuracy for negative `x`. `GELU(−inf)` is NaN, as Keras's formula.
    Gelu,
    /// GELU, tanh approximation: `x/2 · (1 + tanh(√(2/π)·(x + 0.044715·x³)))`, evaluated as
    /// `x · σ(2t)` (the same function, without the cancellation of `1 + tanh` for negative `x`,
    /// and with `σ` evaluated so that it underflows gradually).
    GeluTanh,
}

/// `√(2/π)`, `1/√2`, `1/√(2π)` and the cubic coefficient of the tanh approximation.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
const GELU_CUBIC: f64 = 0.044_715;
const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// `v` in `F`.
#[inline(always)]
fn c<F: Float>(v: f64) -> F {
    F::from(v).unwrap_or_else(F::nan)
}

impl Activation {
    /// All activations.
    pub const ALL: [Activation; 6] = [
        Activation::Linear,
        Activation::Relu,
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Gelu,
        Activation::GeluTanh,
    ];

    /// mixprec's name (Keras's, and `"gelu_tanh"` for the approximation; see the table above).
    pub const fn name(self) -> &'static str {
        match self {
            Activation::Linear => "linear",
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Gelu => "gelu",
            Activation::GeluTanh => "gelu_tanh",
        }
    }

    /// True when the derivative is written in the activation's input `z`
    /// ([`derivative`](Self::derivative)): GELU's, which has no closed form in its output. A
    /// layer then saves `z` for its backward pass instead of `y`.
    pub const fn derivative_needs_input(self) -> bool {
        matches!(self, Activation::Gelu | Activation::GeluTanh)
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
            Activation::Gelu => c::<F>(0.5) * x * erfc(-x * c(std::f64::consts::FRAC_1_SQRT_2)),
            Activation::GeluTanh => x * sigmoid(c::<F>(2.0) * gelu_t(x)),
        }
    }

    /// The derivative at the activation's input `z`, for every activation: relu `z > 0`,
    /// sigmoid `σ(1 − σ)`, tanh `1 − tanh²`, GELU `Φ(z) + z·φ(z)` (its tanh form differentiated
    /// as written). NaN in gives NaN out.
    #[inline]
    pub fn derivative<F: Float>(self, z: F) -> F {
        match self {
            Activation::Gelu => {
                let phi = c::<F>(FRAC_1_SQRT_2PI) * (-c::<F>(0.5) * z * z).exp();
                c::<F>(0.5) * erfc(-z * c(std::f64::consts::FRAC_1_SQRT_2)) + z * phi
            }
            Activation::GeluTanh => {
                let s = sigmoid(c::<F>(2.0) * gelu_t(z));
                let dt = c::<F>(SQRT_2_OVER_PI) * (F::one() + c::<F>(3.0 * GELU_CUBIC) * z * z);
                s + z * s * (F::one() - s) * c::<F>(2.0) * dt
            }
            Activation::Relu if z.is_nan() => z,
            other => other.derivative_from_output(other.apply(z)),
        }
    }

    /// The derivative, written in terms of the activation's output `y` (so the backward pass
    /// needs only the saved output): relu `y > 0`, sigmoid `y(1 - y)`, tanh `1 - y²`.
    /// NaN in gives NaN out. GELU has no such form
    /// ([`derivative_needs_input`](Self::derivative_needs_input)): for it this is NaN; use
    /// [`derivative`](Self::derivative).
    #[inline]
    pub fn derivative_from_output<F: Float>(self, y: F) -> F {
        match self {
            Activation::Linear => F::one(),
            Activation::Relu => {
                if y > F::zero() {
                    F::one()
                } else if y.is_nan() {
                    y
                } else {
                    F::zero()
                }
            }
            Activation::Sigmoid => y * (F::one() - y),
            Activation::Tanh => F::one() - y * y,
            Activation::Gelu | Activation::GeluTanh => F::nan(),
        }
    }

    /// The derivative from what a layer saved for it: the input `z` when
    /// [`derivative_needs_input`](Self::derivative_needs_input), the output `y` otherwise.
    #[inline(always)]
    pub(crate) fn derivative_from_saved<F: Float>(self, saved: F) -> F {
        if self.derivative_needs_input() {
            self.derivative(saved)
        } else {
            self.derivative_from_output(saved)
        }
    }

    /// Applies the activation in place.
    pub fn apply_slice<F: Float>(self, xs: &mut [F]) {
        if self != Activation::Linear {
            xs.iter_mut().for_each(|x| *x = self.apply(*x));
        }
    }
}

/// `σ(u) = 1/(1 + e^-u)`, as `e^u/(1 + e^u)` for negative `u` so that it underflows gradually
/// instead of dividing by an overflowed `e^-u` (both sides computed, then selected).
#[inline(always)]
fn sigmoid<F: Float>(u: F) -> F {
    let e = (-u.abs()).exp();
    let (pos, neg) = (F::one() / (F::one() + e), e / (F::one() + e));
    if u < F::zero() {
        neg
    } else {
        pos
    }
}

/// `t = √(2/π)·(x + 0.044715·x³)`, the argument of the tanh approximation.
#[inline(always)]
fn gelu_t<F: Float>(x: F) -> F {
    c::<F>(SQRT_2_OVER_PI) * (x + c::<F>(GELU_CUBIC) * x * x * x)
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
                expected: "one of: linear, relu, sigmoid, tanh, gelu, gelu_tanh",
            })
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for Activation {
    /// Keras's name (`"relu"`).
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

#[cfg(feature = "serde")]
impl<'de> serde::Deserialize<'de> for Activation {
    /// Keras's name (`"relu"`).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
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
            assert_eq!(a.to_string(), a.name());
        }
        assert!("Relu".parse::<Activation>().is_err());
        let err = "gelu_erf".parse::<Activation>().unwrap_err().to_string();
        assert!(err.contains("gelu_tanh"), "{err}");
    }

    /// Published values: GELU(1) = Φ(1) = 0.8413447460685429, GELU(−3) = −3·Φ(−3); the tanh
    /// form is within 1e-3 of the exact one (Hendrycks & Gimpel).
    #[test]
    fn gelu_matches_published_values_in_both_forms() {
        let g = |x: f64| Activation::Gelu.apply(x);
        assert!((g(1.0) - 0.841_344_746_068_542_9).abs() < 1e-15);
        assert!((g(-3.0) / (-3.0 * 0.001_349_898_031_630_094_6) - 1.0).abs() < 1e-13);
        assert_eq!(g(0.0), 0.0);
        for i in -60..=60 {
            let x = f64::from(i) / 10.0;
            let (e, t) = (g(x), Activation::GeluTanh.apply(x));
            assert!((e - t).abs() < 1e-3, "{x}: {e} vs {t}");
            // Keras's literal tanh formula.
            let keras = 0.5 * x * (1.0 + (SQRT_2_OVER_PI * (x + GELU_CUBIC * x * x * x)).tanh());
            assert!((t - keras).abs() < 1e-15, "{x}: {t} vs {keras}");
        }
        // Relative accuracy far into the negative tail, in f32 too.
        let tail = Activation::Gelu.apply(-10.0f32);
        assert!((f64::from(tail) / (-10.0 * 7.619_853_024_160_527e-24) - 1.0).abs() < 1e-5);
        assert!(Activation::Gelu.apply(f32::NAN).is_nan());
        assert_eq!(Activation::Gelu.apply(f32::INFINITY), f32::INFINITY);
    }

    /// Every derivative against central differences of `apply`, in f64.
    #[test]
    fn derivatives_match_finite_differences() {
        for a in Activation::ALL {
            for i in -40..=40 {
                let z = f64::from(i) / 8.0 + 0.01;
                let h = 1e-6;
                let fd = (a.apply(z + h) - a.apply(z - h)) / (2.0 * h);
                let d = a.derivative(z);
                assert!((fd - d).abs() < 1e-7, "{a} at {z}: {fd} vs {d}");
                if !a.derivative_needs_input() {
                    assert!((a.derivative_from_output(a.apply(z)) - d).abs() < 1e-12);
                    assert_eq!(
                        a.derivative_from_saved(a.apply(z)),
                        a.derivative_from_output(a.apply(z))
                    );
                } else {
                    assert!(a.derivative_from_output(z).is_nan());
                    assert_eq!(a.derivative_from_saved(z), d);
                }
            }
        }
    }
}
