//! What every reader of a Keras `get_config()` shares: [`keras_config!`] (a strict serde struct
//! with the layer's own keys plus the keys every Keras layer writes), the `(h, w)` sizes Keras
//! writes as a list or one integer ([`Pair`]), and the `data_format` check ([`check_format`]).
//!
//! Every Keras layer config holds `name` and `dtype` (ignored: a mixprec layer has a path
//! instead of a name, and its policy is its type) and `trainable`. A layer with variables
//! refuses `trainable: false` (mixprec trains every trainable variable) and the keys of features
//! it does not have (regularizers, constraints, LoRA) unless they are `null`; unknown keys are
//! refused, so a config is never half-understood.

use serde::Deserialize;

/// A strict (`deny_unknown_fields`) serde struct for one Keras layer's config: the fields given
/// (each with its own serde attributes), then `name`, `dtype`, `trainable`, and each key of
/// `unsupported { … }` as an `Option<serde_json::Value>` that
/// [`refuse_unsupported`](KerasCommon::refuse_unsupported) accepts only as absent or `null`.
macro_rules! keras_config {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $( $(#[$fmeta:meta])* $field:ident : $ty:ty ),* $(,)?
        }
        $( unsupported { $($key:ident),* $(,)? } )?
    ) => {
        $(#[$meta])*
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        $vis struct $name {
            $( $(#[$fmeta])* $field: $ty, )*
            #[serde(default, rename = "name")]
            _name: Option<serde::de::IgnoredAny>,
            #[serde(default, rename = "dtype")]
            _dtype: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            trainable: Option<bool>,
            $($( #[serde(default)] $key: Option<serde_json::Value>, )*)?
        }

        impl $crate::layers::ops::wire::KerasCommon for $name {
            fn refuse_unsupported(&self) -> Result<(), String> {
                $crate::layers::ops::wire::refuse(
                    self.trainable,
                    &[$($( (stringify!($key), &self.$key) ),*)?],
                )
            }
        }
    };
}

pub(crate) use keras_config;

/// The checks [`keras_config!`] writes for a layer with variables.
pub(crate) trait KerasCommon {
    /// `Err` for `trainable: false` or an unsupported key that is not `null`, naming it.
    fn refuse_unsupported(&self) -> Result<(), String>;
}

/// What a layer with variables refuses: `trainable: false` and any of `keys` that is set.
pub(crate) fn refuse(
    trainable: Option<bool>,
    keys: &[(&str, &Option<serde_json::Value>)],
) -> Result<(), String> {
    if trainable == Some(false) {
        return Err("trainable: false is not supported (mixprec trains every variable)".into());
    }
    for (key, value) in keys {
        if let Some(v) = value {
            return Err(format!("{key} is not supported (expected null, found {v})"));
        }
    }
    Ok(())
}

/// The `axis` of a normalisation's config: Keras writes `-1` or `[-1]` (absent: -1). Which
/// axes are supported is the layer's check; this only reads one integer.
pub(crate) fn last_axis(axis: Option<serde_json::Value>) -> Result<i64, String> {
    use serde_json::Value;
    match axis {
        None => Ok(-1),
        Some(Value::Number(n)) => n.as_i64().ok_or(format!("invalid axis {n}")),
        Some(Value::Array(a)) if a.len() == 1 => {
            a[0].as_i64().ok_or(format!("invalid axis {}", a[0]))
        }
        Some(other) => Err(format!("invalid axis {other} (expected -1)")),
    }
}

/// A size Keras writes as a list `[3, 3]` (its `get_config()`) or accepts as one integer.
#[derive(Deserialize)]
#[serde(untagged)]
pub(crate) enum Pair {
    One(usize),
    Two((usize, usize)),
}

impl From<Pair> for (usize, usize) {
    fn from(p: Pair) -> Self {
        match p {
            Pair::One(v) => (v, v),
            Pair::Two(v) => v,
        }
    }
}

/// The `data_format` check of the NHWC layers: only `"channels_last"`.
pub(crate) fn check_format(data_format: Option<&str>) -> Result<(), String> {
    match data_format {
        Some(f) if f != "channels_last" => Err(format!(
            "data_format {f:?} is not supported (expected \"channels_last\")"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    keras_config! {
        #[derive(Debug)]
        struct Probe {
            #[serde(default)]
            units: Option<usize>,
        }
        unsupported { kernel_regularizer }
    }

    fn read(json: &str) -> Result<Probe, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn takes_the_common_keys_and_refuses_the_rest() {
        let p = read(r#"{"name": "d", "dtype": {"class_name": "DTypePolicy"}, "trainable": true, "units": 3, "kernel_regularizer": null}"#).unwrap();
        assert_eq!(p.units, Some(3));
        assert_eq!(p.refuse_unsupported(), Ok(()));
        let off = read(r#"{"trainable": false}"#).unwrap();
        assert!(off
            .refuse_unsupported()
            .unwrap_err()
            .contains("trainable: false"));
        let reg = read(r#"{"kernel_regularizer": {"class_name": "L2"}}"#).unwrap();
        let err = reg.refuse_unsupported().unwrap_err();
        assert!(err.contains("kernel_regularizer is not supported"), "{err}");
        assert!(read(r#"{"unit": 3}"#)
            .unwrap_err()
            .contains("unknown field"));
    }

    #[test]
    fn sizes_and_formats() {
        let one: (usize, usize) = serde_json::from_str::<Pair>("3").unwrap().into();
        let two: (usize, usize) = serde_json::from_str::<Pair>("[2, 5]").unwrap().into();
        assert_eq!((one, two), ((3, 3), (2, 5)));
        assert_eq!(check_format(Some("channels_last")), Ok(()));
        assert!(check_format(Some("channels_first"))
            .unwrap_err()
            .contains("not supported"));
    }
}
