//! Keras's initialisers, from a seeded, portable RNG (ChaCha8: the same numbers on every
//! platform and version of this crate).

use std::fmt;
use std::str::FromStr;

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::tensor::alloc;

/// The seed [`Dense::new`](crate::layers::Dense::new) and
/// [`DenseConfig::new`](crate::layers::DenseConfig::new) initialise with.
pub const DEFAULT_SEED: u64 = 0;

/// How a variable's first values are drawn: Keras's initialisers of the same names.
///
/// The random ones are Keras's `VarianceScaling` with a uniform distribution: `U(-limit, limit)`
/// with `limit = sqrt(3 · scale / fan)`. The fans follow Keras's `compute_fans`: a `[n]` shape
/// has `fan_in = fan_out = n`; `[in, out]` has `fan_in = in`, `fan_out = out`; a longer shape
/// `[k₁, …, in, out]` multiplies both by the receptive field `k₁ ⋯` (as a convolution kernel).
///
/// ```
/// use mixprec::layers::Initializer;
/// let init: Initializer = "he_uniform".parse()?;
/// assert_eq!(init, Initializer::HeUniform);
/// assert_eq!(init.to_string(), "he_uniform");
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Initializer {
    /// `"glorot_uniform"`: `limit = sqrt(6 / (fan_in + fan_out))` (Keras's default kernel
    /// initialiser).
    GlorotUniform,
    /// `"he_uniform"`: `limit = sqrt(6 / fan_in)`.
    HeUniform,
    /// `"lecun_uniform"`: `limit = sqrt(3 / fan_in)`.
    LecunUniform,
    /// `"zeros"` (Keras's default bias initialiser).
    Zeros,
    /// `"ones"`.
    Ones,
    /// `"uniform"`: Keras's `RandomUniform()` with its defaults, `U(-0.05, 0.05)` (the default
    /// of `Embedding`'s `embeddings_initializer`).
    Uniform,
}

impl Initializer {
    /// Every initialiser.
    pub const ALL: [Initializer; 6] = [
        Initializer::GlorotUniform,
        Initializer::HeUniform,
        Initializer::LecunUniform,
        Initializer::Zeros,
        Initializer::Ones,
        Initializer::Uniform,
    ];

    /// Keras's string name (`"glorot_uniform"`).
    pub const fn name(self) -> &'static str {
        match self {
            Initializer::GlorotUniform => "glorot_uniform",
            Initializer::HeUniform => "he_uniform",
            Initializer::LecunUniform => "lecun_uniform",
            Initializer::Zeros => "zeros",
            Initializer::Ones => "ones",
            Initializer::Uniform => "uniform",
        }
    }

    /// Keras's class name (`"GlorotUniform"`), as its JSON configs write it.
    pub const fn class_name(self) -> &'static str {
        match self {
            Initializer::GlorotUniform => "GlorotUniform",
            Initializer::HeUniform => "HeUniform",
            Initializer::LecunUniform => "LecunUniform",
            Initializer::Zeros => "Zeros",
            Initializer::Ones => "Ones",
            Initializer::Uniform => "RandomUniform",
        }
    }

    /// The bound of the uniform distribution for `shape`, or `None` for a constant.
    pub(crate) fn limit(self, shape: &[usize]) -> Option<f64> {
        let (fan_in, fan_out) = fans(shape);
        match self {
            Initializer::GlorotUniform => Some((6.0 / (fan_in + fan_out)).sqrt()),
            Initializer::HeUniform => Some((6.0 / fan_in).sqrt()),
            Initializer::LecunUniform => Some((3.0 / fan_in).sqrt()),
            Initializer::Uniform => Some(0.05),
            Initializer::Zeros | Initializer::Ones => None,
        }
    }

    /// The values of a variable of `shape`, row-major, in `T`. A random initialiser draws from
    /// ChaCha8 seeded with `seed` on `stream` (so a layer's variables can share one seed), each
    /// value drawn in f64, rounded to f32, then to `T` (nearest even). `what` names the variable
    /// in the error.
    ///
    /// # Errors
    ///
    /// [`Error::TooLarge`] / [`Error::AllocationFailed`] when the variable would not fit (checked
    /// before anything is allocated).
    pub(crate) fn values<T: Element>(
        self,
        what: impl Fn() -> String,
        shape: &[usize],
        seed: u64,
        stream: u64,
    ) -> Result<Vec<T>> {
        let n = alloc::check_shape::<T>(&what, shape)?;
        let mut out = alloc::try_with_capacity(&what, n)?;
        match self.limit(shape) {
            Some(limit) => {
                let mut rng = ChaCha8Rng::seed_from_u64(seed);
                rng.set_stream(stream);
                out.extend(
                    (0..n).map(|_| {
                        T::from_f32_rne(((rng.random::<f64>() * 2.0 - 1.0) * limit) as f32)
                    }),
                );
            }
            None => {
                let v = if self == Initializer::Ones { 1.0 } else { 0.0 };
                out.resize(n, T::from_f32_rne(v));
            }
        }
        Ok(out)
    }
}

/// Keras's `compute_fans`: `(fan_in, fan_out)` of a variable of `shape`.
fn fans(shape: &[usize]) -> (f64, f64) {
    match shape {
        [] => (1.0, 1.0),
        &[n] => (n as f64, n as f64),
        &[.., i, o] => {
            let field: f64 = shape[..shape.len() - 2].iter().map(|&k| k as f64).product();
            (i as f64 * field, o as f64 * field)
        }
    }
}

impl fmt::Display for Initializer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Initializer {
    type Err = Error;

    /// Keras's string name (`"glorot_uniform"`) or class name (`"GlorotUniform"`).
    fn from_str(s: &str) -> Result<Self, Error> {
        Initializer::ALL
            .into_iter()
            .find(|i| i.name() == s || i.class_name() == s)
            .ok_or_else(|| Error::InvalidArgument {
                what: "initializer",
                found: format!("{s:?}"),
                expected: "one of: glorot_uniform, he_uniform, lecun_uniform, zeros, ones, uniform",
            })
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! Keras's string name, or its object `{"class_name": "GlorotUniform", "config": {"seed":
    //! null}, ...}`.

    use super::Initializer;
    use serde::{de, Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Config {
        #[serde(default)]
        seed: Option<serde_json::Value>,
        /// `RandomUniform`'s bounds: only its defaults (-0.05, 0.05) are supported.
        #[serde(default)]
        minval: Option<f64>,
        #[serde(default)]
        maxval: Option<f64>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Keras {
        #[serde(default, rename = "module")]
        _module: Option<de::IgnoredAny>,
        class_name: String,
        #[serde(default)]
        config: Option<Config>,
        #[serde(default, rename = "registered_name")]
        _registered_name: Option<de::IgnoredAny>,
    }

    struct Visitor;

    impl<'de> de::Visitor<'de> for Visitor {
        type Value = Initializer;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(
                "an initializer name such as \"glorot_uniform\", or Keras's object \
                 {\"class_name\": \"GlorotUniform\", \"config\": {\"seed\": null}}",
            )
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Initializer, E> {
            v.parse().map_err(E::custom)
        }

        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Initializer, A::Error> {
            let k = Keras::deserialize(de::value::MapAccessDeserializer::new(map))?;
            let init: Initializer = k.class_name.parse().map_err(de::Error::custom)?;
            let bounds = k
                .config
                .as_ref()
                .map_or((None, None), |c| (c.minval, c.maxval));
            match (init, bounds) {
                (_, (None, None)) | (Initializer::Uniform, (Some(-0.05), Some(0.05))) => {}
                (_, (lo, hi)) => {
                    return Err(de::Error::custom(format_args!(
                        "{} with minval {lo:?}, maxval {hi:?} is not supported (expected \
                         RandomUniform's defaults, minval -0.05 and maxval 0.05)",
                        init.class_name()
                    )))
                }
            }
            if let Some(seed) = k.config.and_then(|c| c.seed).filter(|s| !s.is_null()) {
                return Err(de::Error::custom(format_args!(
                    "{} with seed {seed}: Keras's seeded numbers cannot be reproduced here \
                     (expected \"seed\": null; set the layer's seed instead)",
                    init.class_name()
                )));
            }
            Ok(init)
        }
    }

    impl Serialize for Initializer {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.name())
        }
    }

    impl<'de> Deserialize<'de> for Initializer {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(Visitor)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draw(init: Initializer, shape: &[usize], seed: u64) -> Vec<f32> {
        init.values(|| "test".into(), shape, seed, 0).unwrap()
    }

    /// Mean and variance of `w` against `U(-limit, limit)` (mean 0, variance limit² / 3), and
    /// every value within the limit.
    fn assert_uniform(w: &[f32], limit: f64) {
        assert!(w.iter().all(|&x| f64::from(x.abs()) <= limit));
        let n = w.len() as f64;
        let mean = w.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n;
        // Standard errors: limit / sqrt(3n) for the mean, about 0.3 limit² / sqrt(n) for the
        // second moment; allow five of each.
        assert!(mean.abs() < 5.0 * limit / (3.0 * n).sqrt(), "mean {mean}");
        let var_err = (var / limit.powi(2) - 1.0 / 3.0).abs();
        assert!(
            var_err < 5.0 * 0.3 / n.sqrt(),
            "variance {var} for limit {limit}"
        );
    }

    #[test]
    fn random_initializers_follow_their_definitions() {
        // Keras: glorot sqrt(6 / (in + out)), he sqrt(6 / in), lecun sqrt(3 / in).
        let (i, o) = (64.0f64, 128.0f64);
        for (init, limit) in [
            (Initializer::GlorotUniform, (6.0 / (i + o)).sqrt()),
            (Initializer::HeUniform, (6.0 / i).sqrt()),
            (Initializer::LecunUniform, (3.0 / i).sqrt()),
            (Initializer::Uniform, 0.05),
        ] {
            assert_eq!(init.limit(&[64, 128]), Some(limit));
            let w = draw(init, &[64, 128], 7);
            assert_uniform(&w, limit);
            assert_eq!(w, draw(init, &[64, 128], 7), "{init}: seeded");
            assert_ne!(w, draw(init, &[64, 128], 8), "{init}: the seed matters");
        }
        // A wrong limit (He's on a Glorot draw) fails the variance check's bound.
        let w = draw(Initializer::HeUniform, &[64, 128], 7);
        let glorot = Initializer::GlorotUniform.limit(&[64, 128]).unwrap();
        let var = w.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / w.len() as f64;
        assert!((var / glorot.powi(2) - 1.0 / 3.0).abs() > 5.0 * 0.3 / (w.len() as f64).sqrt());
    }

    #[cfg(feature = "serde")]
    #[test]
    fn random_uniform_reads_keras_defaults_only() {
        let keras = r#"{"module": "keras.initializers", "class_name": "RandomUniform",
            "config": {"minval": -0.05, "maxval": 0.05, "seed": null}, "registered_name": null}"#;
        let init: Initializer = serde_json::from_str(keras).unwrap();
        assert_eq!(init, Initializer::Uniform);
        assert_eq!(
            "uniform".parse::<Initializer>().unwrap(),
            Initializer::Uniform
        );
        let other = keras.replace("0.05, \"seed", "0.5, \"seed");
        let err = serde_json::from_str::<Initializer>(&other)
            .unwrap_err()
            .to_string();
        assert!(err.contains("maxval Some(0.5)"), "{err}");
        let bounds_on_glorot = r#"{"class_name": "GlorotUniform", "config": {"minval": -1.0}}"#;
        assert!(serde_json::from_str::<Initializer>(bounds_on_glorot).is_err());
    }

    #[test]
    fn glorot_uniform_draws_the_values_dense_always_had() {
        // ChaCha8 from the seed, one f64 per element in row-major order, scaled to the limit.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let limit = (6.0f64 / 5.0).sqrt();
        let want: Vec<f32> = (0..6)
            .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * limit) as f32)
            .collect();
        assert_eq!(draw(Initializer::GlorotUniform, &[2, 3], 7), want);
        // Another stream gives other values from the same seed.
        let other: Vec<f32> = Initializer::GlorotUniform
            .values(|| "test".into(), &[2, 3], 7, 1)
            .unwrap();
        assert_ne!(other, want);
    }

    #[test]
    fn fans_follow_keras() {
        assert_eq!(fans(&[]), (1.0, 1.0));
        assert_eq!(fans(&[5]), (5.0, 5.0));
        assert_eq!(fans(&[3, 7]), (3.0, 7.0));
        // A 3x3 convolution from 4 to 8 channels: receptive field 9.
        assert_eq!(fans(&[3, 3, 4, 8]), (36.0, 72.0));
    }

    #[test]
    fn constants_and_names() {
        assert!(draw(Initializer::Zeros, &[3, 2], 1)
            .iter()
            .all(|&x| x == 0.0));
        assert!(draw(Initializer::Ones, &[4], 1).iter().all(|&x| x == 1.0));
        for init in Initializer::ALL {
            assert_eq!(init.name().parse::<Initializer>().unwrap(), init);
            assert_eq!(init.class_name().parse::<Initializer>().unwrap(), init);
        }
        let err = "normal".parse::<Initializer>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid initializer: \"normal\" (one of: glorot_uniform, he_uniform, lecun_uniform, zeros, ones, uniform)"
        );
    }

    #[test]
    fn refuses_a_variable_beyond_the_limit() {
        let what = || "dense kernel [1048576, 1048576] of float32".to_string();
        let err = Initializer::GlorotUniform
            .values::<f32>(what, &[1 << 20, 1 << 20], 0, 0)
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("dense kernel [1048576, 1048576] of float32"),
            "{err}"
        );
    }
}
