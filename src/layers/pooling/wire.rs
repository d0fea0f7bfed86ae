//! The JSON the pooling and `Flatten` configs are read from: their own keys, or a Keras
//! `get_config()` of `MaxPooling2D` / `AveragePooling2D`, `GlobalAveragePooling2D`, `Flatten`.

use super::global::GlobalPooling2DConfig;
use super::Pool2DConfig;
use crate::layers::flatten::FlattenConfig;
use crate::layers::ops::window::Padding;
use crate::layers::ops::wire::{check_format, keras_config, Pair};

keras_config! {
    /// Keras 3's `MaxPooling2D` / `AveragePooling2D` config (`name`, `dtype` and `trainable` are
    /// ignored: these layers have no variables and their policy is their type).
    pub(crate) struct KerasPool2D {
        #[serde(default)]
        pool_size: Option<Pair>,
        #[serde(default)]
        strides: Option<Option<Pair>>,
        #[serde(default)]
        padding: Option<Padding>,
        #[serde(default)]
        data_format: Option<String>,
    }
}

impl TryFrom<KerasPool2D> for Pool2DConfig {
    type Error = String;

    fn try_from(k: KerasPool2D) -> Result<Self, String> {
        check_format(k.data_format.as_deref())?;
        let d = Pool2DConfig::new();
        let c = Pool2DConfig {
            pool_size: k.pool_size.map_or(d.pool_size, Into::into),
            strides: k.strides.flatten().map(Into::into),
            padding: k.padding.unwrap_or(d.padding),
        };
        c.validate().map_err(|e| e.to_string())?;
        Ok(c)
    }
}

keras_config! {
    /// Keras 3's `GlobalAveragePooling2D` config.
    pub(crate) struct KerasGlobalPool {
        #[serde(default)]
        keepdims: Option<bool>,
        #[serde(default)]
        data_format: Option<String>,
    }
}

impl TryFrom<KerasGlobalPool> for GlobalPooling2DConfig {
    type Error = String;

    fn try_from(k: KerasGlobalPool) -> Result<Self, String> {
        check_format(k.data_format.as_deref())?;
        Ok(GlobalPooling2DConfig::new().keepdims(k.keepdims.unwrap_or(false)))
    }
}

keras_config! {
    /// Keras 3's `Flatten` config.
    pub(crate) struct KerasFlatten {
        #[serde(default)]
        data_format: Option<String>,
    }
}

impl TryFrom<KerasFlatten> for FlattenConfig {
    type Error = String;

    fn try_from(k: KerasFlatten) -> Result<Self, String> {
        check_format(k.data_format.as_deref())?;
        Ok(FlattenConfig::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keras_configs_and_round_trips() {
        // keras.layers.MaxPooling2D(pool_size=3, strides=2, padding="same").get_config()
        let keras = r#"{"name": "max_pooling2d", "trainable": true, "dtype": "float32",
            "pool_size": [3, 3], "padding": "same", "strides": [2, 2], "data_format": "channels_last"}"#;
        let c: Pool2DConfig = serde_json::from_str(keras).unwrap();
        assert_eq!(
            c,
            Pool2DConfig::new()
                .pool_size((3, 3))
                .strides((2, 2))
                .padding(Padding::Same)
        );
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(
            json,
            r#"{"pool_size":[3,3],"strides":[2,2],"padding":"same"}"#
        );
        assert_eq!(serde_json::from_str::<Pool2DConfig>(&json).unwrap(), c);
        let d: Pool2DConfig = serde_json::from_str(r#"{"strides": null}"#).unwrap();
        assert_eq!(d, Pool2DConfig::new());
        let g: GlobalPooling2DConfig = serde_json::from_str(
            r#"{"name": "gap", "data_format": "channels_last", "keepdims": true}"#,
        )
        .unwrap();
        assert!(g.keepdims);
        let f: FlattenConfig =
            serde_json::from_str(r#"{"name": "flatten", "data_format": "channels_last"}"#).unwrap();
        assert_eq!(f, FlattenConfig::new());
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        let err = |j: &str| {
            serde_json::from_str::<Pool2DConfig>(j)
                .unwrap_err()
                .to_string()
        };
        assert!(err(r#"{"pool_size": [0, 2]}"#).contains("invalid pool_size: (0, 2)"));
        assert!(err(r#"{"data_format": "channels_first"}"#).contains("channels_first"));
        assert!(err(r#"{"pool": 2}"#).contains("unknown field"));
        let e = serde_json::from_str::<FlattenConfig>(r#"{"data_format": "channels_first"}"#);
        assert!(e.unwrap_err().to_string().contains("not supported"));
    }
}
