//! The JSON [`DropoutConfig`](super::DropoutConfig) is read from: its own keys, or a Keras
//! `Dropout` `get_config()`.

use super::DropoutConfig;
use crate::layers::ops::wire::keras_config;

keras_config! {
    /// Every key a Keras 3 `Dropout` config holds (`trainable` is ignored: no variables).
    /// `seed: null` (Keras's default) takes the next seed of the process-wide sequence.
    pub(crate) struct KerasDropout {
        rate: f64,
        #[serde(default)]
        seed: Option<u64>,
        #[serde(default)]
        noise_shape: Option<serde_json::Value>,
    }
}

impl TryFrom<KerasDropout> for DropoutConfig {
    type Error = String;

    fn try_from(k: KerasDropout) -> Result<Self, String> {
        if let Some(v) = k.noise_shape.filter(|v| !v.is_null()) {
            return Err(format!(
                "noise_shape is not supported (expected null, found {v})"
            ));
        }
        let c = match k.seed {
            Some(seed) => DropoutConfig::with_seed(k.rate, seed),
            None => DropoutConfig::new(k.rate),
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}
