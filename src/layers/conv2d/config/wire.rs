//! The JSON [`Conv2DConfig`] is read from: its own keys, or a Keras `Conv2D` `get_config()`.

use super::Conv2DConfig;
use crate::init::{Initializer, DEFAULT_SEED};
use crate::layers::ops::window::Padding;
use crate::layers::ops::wire::{check_format, keras_config, KerasCommon, Pair};
use crate::layers::Activation;

keras_config! {
    /// Every key a Keras 3 `Conv2D` config holds, plus mixprec's `seed`.
    pub(super) struct KerasConv2D {
        filters: usize,
        kernel_size: Pair,
        #[serde(default)]
        strides: Option<Pair>,
        #[serde(default)]
        padding: Option<Padding>,
        #[serde(default)]
        dilation_rate: Option<Pair>,
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
        #[serde(default)]
        data_format: Option<String>,
        #[serde(default)]
        groups: Option<usize>,
    }
    unsupported {
        kernel_regularizer, bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint,
    }
}

impl TryFrom<KerasConv2D> for Conv2DConfig {
    type Error = String;

    fn try_from(k: KerasConv2D) -> Result<Self, String> {
        check_format(k.data_format.as_deref())?;
        if let Some(g) = k.groups.filter(|&g| g != 1) {
            return Err(format!("groups {g} is not supported (expected 1)"));
        }
        k.refuse_unsupported()?;
        let d = Conv2DConfig::new(k.filters, k.kernel_size.into());
        let c = Conv2DConfig {
            strides: k.strides.map_or(d.strides, Into::into),
            padding: k.padding.unwrap_or(d.padding),
            dilation_rate: k.dilation_rate.map_or(d.dilation_rate, Into::into),
            activation: k.activation.unwrap_or(d.activation),
            use_bias: k.use_bias.unwrap_or(d.use_bias),
            kernel_initializer: k.kernel_initializer.unwrap_or(d.kernel_initializer),
            bias_initializer: k.bias_initializer.unwrap_or(d.bias_initializer),
            seed: k.seed.unwrap_or(DEFAULT_SEED),
            ..d
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<Conv2DConfig, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// The config of `keras.layers.Conv2D(32, 3, padding="same", activation="relu")`, Keras 3.
    const KERAS: &str = r#"{"name": "conv2d", "trainable": true,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}, "registered_name": null},
        "filters": 32, "kernel_size": [3, 3], "strides": [1, 1], "padding": "same",
        "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1, "activation": "relu",
        "use_bias": true,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform", "config": {"seed": null}, "registered_name": null},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": null},
        "kernel_regularizer": null, "bias_regularizer": null, "activity_regularizer": null,
        "kernel_constraint": null, "bias_constraint": null}"#;

    #[test]
    fn reads_a_keras_get_config_and_round_trips() {
        let want = Conv2DConfig::new(32, (3, 3))
            .padding(Padding::Same)
            .activation(Activation::Relu);
        assert_eq!(read(KERAS).unwrap(), want);
        let json = serde_json::to_string(&want.strides((2, 1)).seed(4)).unwrap();
        assert!(json.contains(r#""kernel_size":[3,3],"strides":[2,1],"padding":"same""#));
        assert_eq!(read(&json).unwrap(), want.strides((2, 1)).seed(4));
        assert_eq!(
            read(r#"{"filters": 4, "kernel_size": 5, "strides": 2}"#).unwrap(),
            Conv2DConfig::new(4, (5, 5)).strides((2, 2))
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour_and_names_it() {
        for (from, to, want) in [
            (
                r#""groups": 1"#,
                r#""groups": 2"#,
                "groups 2 is not supported",
            ),
            (
                r#""data_format": "channels_last""#,
                r#""data_format": "channels_first""#,
                "data_format \"channels_first\" is not supported",
            ),
            (r#""filters": 32"#, r#""filters": 0"#, "invalid filters: 0"),
            (
                r#""strides": [1, 1]"#,
                r#""strides": [0, 1]"#,
                "invalid strides: (0, 1)",
            ),
            (
                r#""padding": "same""#,
                r#""padding": "causal""#,
                "invalid padding",
            ),
            (
                r#""bias_constraint": null"#,
                r#""bias_constraint": 1"#,
                "bias_constraint",
            ),
        ] {
            let json = KERAS.replacen(from, to, 1);
            assert_ne!(json, KERAS, "{from}");
            let err = read(&json).unwrap_err();
            assert!(err.contains(want), "{to}: {err}");
        }
    }
}
