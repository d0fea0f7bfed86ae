//! The JSON [`DenseConfig`] is read from: its own keys, or a Keras `Dense` `get_config()`.

use super::DenseConfig;
use crate::init::{Initializer, DEFAULT_SEED};
use crate::layers::ops::wire::{keras_config, KerasCommon};
use crate::layers::Activation;

keras_config! {
    /// Every key a Keras 3 `Dense` config holds, plus mixprec's `seed`.
    pub(super) struct KerasDense {
        units: usize,
        #[serde(default)]
        activation: Option<Activation>,
        #[serde(default)]
        use_bias: Option<bool>,
        #[serde(default)]
        kernel_initializer: Option<Initializer>,
        #[serde(default)]
        bias_initializer: Option<Initializer>,
        #[serde(default)]
        seed: Option<u64>,
    }
    unsupported {
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint, lora_rank, lora_alpha, quantization_config,
    }
}

impl TryFrom<KerasDense> for DenseConfig {
    type Error = String;

    fn try_from(k: KerasDense) -> Result<Self, String> {
        if k.units == 0 {
            return Err("invalid units: 0 (at least 1)".into());
        }
        k.refuse_unsupported()?;
        let d = DenseConfig::new(k.units);
        Ok(DenseConfig {
            activation: k.activation.unwrap_or(d.activation),
            use_bias: k.use_bias.unwrap_or(d.use_bias),
            kernel_initializer: k.kernel_initializer.unwrap_or(d.kernel_initializer),
            bias_initializer: k.bias_initializer.unwrap_or(d.bias_initializer),
            seed: k.seed.unwrap_or(DEFAULT_SEED),
            ..d
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<DenseConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn round_trips_with_keras_names() {
        let c = DenseConfig::new(8)
            .activation(Activation::Relu)
            .use_bias(false)
            .kernel_initializer(Initializer::HeUniform)
            .bias_initializer(Initializer::Ones)
            .seed(7);
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"units":8,"activation":"relu","use_bias":false,"kernel_initializer":"he_uniform","bias_initializer":"ones","seed":7}"#
        );
        assert_eq!(read(&json).unwrap(), c);
        assert_eq!(read(r#"{"units": 3}"#).unwrap(), DenseConfig::new(3));
    }

    /// The config of `keras.layers.Dense(16, activation="tanh")` from Keras 3.
    const KERAS: &str = r#"{"name": "dense", "trainable": true,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}, "registered_name": null},
        "units": 16, "activation": "tanh", "use_bias": true,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
        "kernel_regularizer": null, "bias_regularizer": null, "kernel_constraint": null, "bias_constraint": null,
        "lora_rank": null}"#;

    #[test]
    fn reads_a_keras_get_config() {
        assert_eq!(
            read(KERAS).unwrap(),
            DenseConfig::new(16).activation(Activation::Tanh)
        );
        let linear = KERAS.replace(r#""activation": "tanh""#, r#""activation": null"#);
        assert_eq!(read(&linear).unwrap(), DenseConfig::new(16));
    }

    #[test]
    fn refuses_what_it_cannot_honour_and_names_it() {
        let cases = [
            (
                r#""lora_rank": null"#,
                r#""lora_rank": 4"#,
                "lora_rank is not supported (expected null, found 4)",
            ),
            (
                r#""trainable": true"#,
                r#""trainable": false"#,
                "trainable: false is not supported",
            ),
            (
                r#""units": 16"#,
                r#""units": 0"#,
                "invalid units: 0 (at least 1)",
            ),
            (
                r#""activation": "tanh""#,
                r#""activation": "softsign""#,
                "invalid activation: \"softsign\"",
            ),
            (
                r#""units": 16"#,
                r#""units": 16, "groups": 2"#,
                "unknown field `groups`",
            ),
            (
                r#""seed": null}, "registered_name": null}"#,
                r#""seed": 3}, "registered_name": null}"#,
                "seed",
            ),
            (
                r#""class_name": "Zeros""#,
                r#""class_name": "RandomNormal""#,
                "\"RandomNormal\"",
            ),
        ];
        for (from, to, want) in cases {
            let json = KERAS.replacen(from, to, 1);
            assert_ne!(json, KERAS, "{from}");
            let err = read(&json).unwrap_err();
            assert!(err.contains(want), "{to}: {err}");
        }
        assert!(read(r#"{"activation": "relu"}"#)
            .unwrap_err()
            .contains("missing field `units`"));
    }
}
