//! [`LayerNormalizationConfig`]: Keras's `LayerNormalization(...)` arguments.

use super::LayerNormalization;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::init::{Initializer, DEFAULT_SEED};
use crate::layers::ops::saved::Saved;
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;

/// The arguments of Keras's `LayerNormalization`, with its names and defaults, without the
/// input width (Keras builds on the first input; here [`init`](Self::init) takes `dim`) and the
/// policy (the type parameter of `init::<P>`).
///
/// | field | default |
/// | --- | --- |
/// | `axis` | `-1` (the only one supported) |
/// | `epsilon` | `1e-3` |
/// | `center` | `true` (a `beta` variable) |
/// | `scale` | `true` (a `gamma` variable) |
/// | `beta_initializer` | [`Initializer::Zeros`] |
/// | `gamma_initializer` | [`Initializer::Ones`] |
/// | `seed` | [`DEFAULT_SEED`] (for random initialisers; mixprec's) |
///
/// With the `serde` feature it reads and writes Keras's `get_config()` keys; `name`, `dtype` are
/// ignored, `trainable` must be true, `rms_scaling` false and the regularizers and constraints
/// null; any other key is an error.
///
/// ```
/// use mixprec::layers::LayerNormalizationConfig;
/// use mixprec::policy::MixedBf16;
/// let ln = LayerNormalizationConfig::new().epsilon(1e-5).center(false).init::<MixedBf16>(8)?;
/// assert_eq!((ln.dim(), ln.epsilon()), (8, 1e-5));
/// assert!(ln.beta().is_none() && ln.gamma().is_some());
/// assert!(LayerNormalizationConfig::new().init::<MixedBf16>(0).is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "wire::KerasLayerNormalization"))]
#[non_exhaustive]
pub struct LayerNormalizationConfig {
    /// The normalised axis; only `-1`.
    pub axis: i64,
    /// Added to the variance (finite, at least 0).
    pub epsilon: f64,
    /// Whether the layer has the offset `beta`.
    pub center: bool,
    /// Whether the layer has the scale `gamma`.
    pub scale: bool,
    /// How `beta` is drawn.
    pub beta_initializer: Initializer,
    /// How `gamma` is drawn.
    pub gamma_initializer: Initializer,
    /// The seed of random initialisers.
    pub seed: u64,
}

impl Default for LayerNormalizationConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl LayerNormalizationConfig {
    /// Keras's defaults.
    pub const fn new() -> Self {
        LayerNormalizationConfig {
            axis: -1,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            seed: DEFAULT_SEED,
        }
    }

    /// Sets `epsilon`.
    pub const fn epsilon(self, epsilon: f64) -> Self {
        LayerNormalizationConfig { epsilon, ..self }
    }

    /// Sets `center`.
    pub const fn center(self, center: bool) -> Self {
        LayerNormalizationConfig { center, ..self }
    }

    /// Sets `scale`.
    pub const fn scale(self, scale: bool) -> Self {
        LayerNormalizationConfig { scale, ..self }
    }

    /// Sets `gamma_initializer`.
    pub const fn gamma_initializer(self, gamma_initializer: Initializer) -> Self {
        LayerNormalizationConfig {
            gamma_initializer,
            ..self
        }
    }

    /// Sets `beta_initializer`.
    pub const fn beta_initializer(self, beta_initializer: Initializer) -> Self {
        LayerNormalizationConfig {
            beta_initializer,
            ..self
        }
    }

    /// Checks the arguments that do not depend on the input.
    fn validate(&self) -> Result<()> {
        if self.axis != -1 {
            return Err(Error::InvalidArgument {
                what: "layer normalization axis",
                found: self.axis.to_string(),
                expected: "-1: mixprec normalises over the last axis only",
            });
        }
        if !(self.epsilon.is_finite() && self.epsilon >= 0.0) {
            return Err(Error::InvalidArgument {
                what: "layer normalization epsilon",
                found: self.epsilon.to_string(),
                expected: "a finite number >= 0",
            });
        }
        Ok(())
    }

    /// The layer for rows of `dim` features.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for `dim` 0, an axis other than `-1`, or an epsilon that is
    /// negative or not finite.
    pub fn init<P: Policy>(&self, dim: usize) -> Result<LayerNormalization<P>> {
        self.validate()?;
        if dim == 0 {
            return Err(Error::InvalidArgument {
                what: "layer normalization dim",
                found: "0".into(),
                expected: "at least 1 feature on the last axis",
            });
        }
        let dtype = <P::Variable as Element>::DTYPE;
        let var = |on: bool, init: Initializer, name: &str, stream| -> Result<Option<Param<P>>> {
            if !on {
                return Ok(None);
            }
            let what = || format!("layer normalization {name} [{dim}] of {dtype}");
            let v = init.values(what, &[dim], self.seed, stream)?;
            Ok(Some(Param::new(Tensor::from_parts(vec![dim], v))))
        };
        Ok(LayerNormalization {
            gamma: var(self.scale, self.gamma_initializer, "gamma", 0)?,
            beta: var(self.center, self.beta_initializer, "beta", 1)?,
            dim,
            epsilon: self.epsilon,
            saved: Saved::default(),
        })
    }
}

#[cfg(feature = "serde")]
mod wire {
    use serde_json::Value;

    use super::LayerNormalizationConfig;
    use crate::init::Initializer;
    use crate::layers::ops::wire::{keras_config, last_axis, KerasCommon};

    keras_config! {
        /// Every key a Keras 3 `LayerNormalization` config holds, plus mixprec's `seed`.
        pub(super) struct KerasLayerNormalization {
            #[serde(default)]
            axis: Option<Value>,
            #[serde(default)]
            epsilon: Option<f64>,
            #[serde(default)]
            center: Option<bool>,
            #[serde(default)]
            scale: Option<bool>,
            #[serde(default)]
            rms_scaling: Option<bool>,
            #[serde(default)]
            beta_initializer: Option<Initializer>,
            #[serde(default)]
            gamma_initializer: Option<Initializer>,
            #[serde(default)]
            seed: Option<u64>,
        }
        unsupported { beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint }
    }

    impl TryFrom<KerasLayerNormalization> for LayerNormalizationConfig {
        type Error = String;

        fn try_from(k: KerasLayerNormalization) -> Result<Self, String> {
            k.refuse_unsupported()?;
            if k.rms_scaling == Some(true) {
                return Err("rms_scaling: true is not supported".into());
            }
            let axis = last_axis(k.axis)?;
            let d = LayerNormalizationConfig::new();
            let c = LayerNormalizationConfig {
                axis,
                epsilon: k.epsilon.unwrap_or(d.epsilon),
                center: k.center.unwrap_or(d.center),
                scale: k.scale.unwrap_or(d.scale),
                beta_initializer: k.beta_initializer.unwrap_or(d.beta_initializer),
                gamma_initializer: k.gamma_initializer.unwrap_or(d.gamma_initializer),
                seed: k.seed.unwrap_or(d.seed),
            };
            c.validate().map_err(|e| e.to_string())?;
            Ok(c)
        }
    }
}
