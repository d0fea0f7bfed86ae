//! [`BatchNormalizationConfig`]: Keras's `BatchNormalization(...)` arguments.

use super::BatchNormalization;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::init::{Initializer, DEFAULT_SEED};
use crate::layers::ops::saved::Saved;
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;

/// The arguments of Keras's `BatchNormalization`, with its names and defaults, without the
/// feature count (Keras builds on the first input; here [`init`](Self::init) takes `dim`).
///
/// | field | default |
/// | --- | --- |
/// | `axis` | `-1` (the only one supported) |
/// | `momentum` | `0.99` |
/// | `epsilon` | `1e-3` |
/// | `center` | `true` (a `beta` variable) |
/// | `scale` | `true` (a `gamma` variable) |
/// | `beta_initializer` | [`Initializer::Zeros`] |
/// | `gamma_initializer` | [`Initializer::Ones`] |
/// | `moving_mean_initializer` | [`Initializer::Zeros`] |
/// | `moving_variance_initializer` | [`Initializer::Ones`] |
/// | `seed` | [`DEFAULT_SEED`] (for random initialisers; mixprec's) |
///
/// With the `serde` feature it reads and writes Keras's `get_config()` keys; `name`, `dtype` are
/// ignored, `trainable` must be true, `synchronized` false and the regularizers and constraints
/// null; any other key is an error.
///
/// ```
/// use mixprec::layers::BatchNormalizationConfig;
/// use mixprec::policy::Bf16;
/// let bn = BatchNormalizationConfig::new().momentum(0.9).center(false).init::<Bf16>(8)?;
/// assert_eq!((bn.dim(), bn.momentum(), bn.epsilon()), (8, 0.9, 1e-3));
/// assert!(bn.beta().is_none() && bn.gamma().is_some());
/// let err = BatchNormalizationConfig::new().momentum(1.5).init::<Bf16>(8).unwrap_err();
/// assert!(err.to_string().contains("momentum"), "{err}");
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "wire::KerasBatchNormalization"))]
#[non_exhaustive]
pub struct BatchNormalizationConfig {
    /// The feature axis; only `-1`.
    pub axis: i64,
    /// The moving averages' weight of the old value, in `[0, 1]`.
    pub momentum: f64,
    /// Added to the variance (finite, > 0).
    pub epsilon: f64,
    /// Whether the layer has the offset `beta`.
    pub center: bool,
    /// Whether the layer has the scale `gamma`.
    pub scale: bool,
    /// How `beta` is drawn.
    pub beta_initializer: Initializer,
    /// How `gamma` is drawn.
    pub gamma_initializer: Initializer,
    /// How the moving mean starts.
    pub moving_mean_initializer: Initializer,
    /// How the moving variance starts.
    pub moving_variance_initializer: Initializer,
    /// The seed of random initialisers.
    pub seed: u64,
}

impl Default for BatchNormalizationConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchNormalizationConfig {
    /// Keras's defaults.
    pub const fn new() -> Self {
        BatchNormalizationConfig {
            axis: -1,
            momentum: 0.99,
            epsilon: 1e-3,
            center: true,
            scale: true,
            beta_initializer: Initializer::Zeros,
            gamma_initializer: Initializer::Ones,
            moving_mean_initializer: Initializer::Zeros,
            moving_variance_initializer: Initializer::Ones,
            seed: DEFAULT_SEED,
        }
    }

    /// Sets `momentum`.
    pub const fn momentum(self, momentum: f64) -> Self {
        BatchNormalizationConfig { momentum, ..self }
    }

    /// Sets `epsilon`.
    pub const fn epsilon(self, epsilon: f64) -> Self {
        BatchNormalizationConfig { epsilon, ..self }
    }

    /// Sets `center`.
    pub const fn center(self, center: bool) -> Self {
        BatchNormalizationConfig { center, ..self }
    }

    /// Sets `scale`.
    pub const fn scale(self, scale: bool) -> Self {
        BatchNormalizationConfig { scale, ..self }
    }

    /// Sets `axis` (only `-1` is accepted by [`init`](Self::init)).
    pub const fn axis(self, axis: i64) -> Self {
        BatchNormalizationConfig { axis, ..self }
    }

    /// Checks the arguments that do not depend on the input.
    fn validate(&self) -> Result<()> {
        if self.axis != -1 {
            return Err(Error::InvalidArgument {
                what: "batch normalization axis",
                found: self.axis.to_string(),
                expected: "-1: mixprec normalises the last axis (NHWC, or [batch, features])",
            });
        }
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::InvalidArgument {
                what: "batch normalization momentum",
                found: self.momentum.to_string(),
                expected: "a number in [0, 1] (Keras's default 0.99)",
            });
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(Error::InvalidArgument {
                what: "batch normalization epsilon",
                found: self.epsilon.to_string(),
                expected: "a finite number > 0 (Keras's default 1e-3)",
            });
        }
        Ok(())
    }

    /// The layer for `dim` features.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for `dim` 0, an axis other than `-1`, a momentum outside
    /// `[0, 1]` or an epsilon that is not a finite number > 0.
    pub fn init<P: Policy>(&self, dim: usize) -> Result<BatchNormalization<P>> {
        self.validate()?;
        if dim == 0 {
            return Err(Error::InvalidArgument {
                what: "batch normalization dim",
                found: "0".into(),
                expected: "at least 1 feature on the last axis",
            });
        }
        let values = |init: Initializer, name: &str, dtype, stream| -> Result<Vec<P::Variable>> {
            let what = || format!("batch normalization {name} [{dim}] of {dtype}");
            init.values(what, &[dim], self.seed, stream)
        };
        let dtype = <P::Variable as Element>::DTYPE;
        let var = |on: bool, init, name, stream| -> Result<Option<Param<P>>> {
            match on {
                false => Ok(None),
                true => Ok(Some(Param::new(Tensor::from_parts(
                    vec![dim],
                    values(init, name, dtype, stream)?,
                )))),
            }
        };
        let stats_dtype = <P::Stats as Policy>::VARIABLE_DTYPE;
        let stat = |init: Initializer, name: &str, stream| -> Result<Param<P::Stats>> {
            let what = || format!("batch normalization {name} [{dim}] of {stats_dtype}");
            let v = init.values(what, &[dim], self.seed, stream)?;
            Ok(Param::statistic::<P>(Tensor::from_parts(vec![dim], v)))
        };
        Ok(BatchNormalization {
            gamma: var(self.scale, self.gamma_initializer, "gamma", 0)?,
            beta: var(self.center, self.beta_initializer, "beta", 1)?,
            moving_mean: stat(self.moving_mean_initializer, "moving_mean", 2)?,
            moving_variance: stat(self.moving_variance_initializer, "moving_variance", 3)?,
            dim,
            momentum: self.momentum,
            epsilon: self.epsilon,
            saved: Saved::default(),
        })
    }
}

#[cfg(feature = "serde")]
mod wire {
    use serde_json::Value;

    use super::BatchNormalizationConfig;
    use crate::init::Initializer;
    use crate::layers::ops::wire::{keras_config, last_axis, KerasCommon};

    keras_config! {
        /// Every key a Keras 3 `BatchNormalization` config holds, plus mixprec's `seed`.
        pub(super) struct KerasBatchNormalization {
            #[serde(default)]
            axis: Option<Value>,
            #[serde(default)]
            momentum: Option<f64>,
            #[serde(default)]
            epsilon: Option<f64>,
            #[serde(default)]
            center: Option<bool>,
            #[serde(default)]
            scale: Option<bool>,
            #[serde(default)]
            synchronized: Option<bool>,
            #[serde(default)]
            beta_initializer: Option<Initializer>,
            #[serde(default)]
            gamma_initializer: Option<Initializer>,
            #[serde(default)]
            moving_mean_initializer: Option<Initializer>,
            #[serde(default)]
            moving_variance_initializer: Option<Initializer>,
            #[serde(default)]
            seed: Option<u64>,
        }
        unsupported { beta_regularizer, gamma_regularizer, beta_constraint, gamma_constraint }
    }

    impl TryFrom<KerasBatchNormalization> for BatchNormalizationConfig {
        type Error = String;

        fn try_from(k: KerasBatchNormalization) -> Result<Self, String> {
            k.refuse_unsupported()?;
            if k.synchronized == Some(true) {
                return Err("synchronized: true is not supported (one process)".into());
            }
            let axis = last_axis(k.axis)?;
            let d = BatchNormalizationConfig::new();
            let c = BatchNormalizationConfig {
                axis,
                momentum: k.momentum.unwrap_or(d.momentum),
                epsilon: k.epsilon.unwrap_or(d.epsilon),
                center: k.center.unwrap_or(d.center),
                scale: k.scale.unwrap_or(d.scale),
                beta_initializer: k.beta_initializer.unwrap_or(d.beta_initializer),
                gamma_initializer: k.gamma_initializer.unwrap_or(d.gamma_initializer),
                moving_mean_initializer: k
                    .moving_mean_initializer
                    .unwrap_or(d.moving_mean_initializer),
                moving_variance_initializer: k
                    .moving_variance_initializer
                    .unwrap_or(d.moving_variance_initializer),
                seed: k.seed.unwrap_or(d.seed),
            };
            c.validate().map_err(|e| e.to_string())?;
            Ok(c)
        }
    }
}
