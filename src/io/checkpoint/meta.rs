//! A checkpoint's metadata: the `mixprec.*` keys, [`CheckpointMeta`] and [`LossScaleState`],
//! and their conversion to and from safetensors' `__metadata__` string map. The tensors are in
//! the parent module.

use std::collections::{BTreeMap, HashMap};

use crate::error::{Error, Result};
use crate::{DTypePolicy, DTypePolicyMap};

/// The value of `mixprec.format` this version writes and reads.
pub const FORMAT_VERSION: &str = "1";

/// Metadata key: format version.
pub const KEY_FORMAT: &str = "mixprec.format";
/// Metadata key: the policy, Keras JSON.
pub const KEY_POLICY: &str = "mixprec.policy";
/// Metadata key: the caller's architecture string.
pub const KEY_ARCHITECTURE: &str = "mixprec.architecture";
/// Metadata key: the loss-scale state, JSON.
pub const KEY_LOSS_SCALE: &str = "mixprec.loss_scale";
/// Metadata key: optimizer iterations.
pub const KEY_ITERATIONS: &str = "mixprec.iterations";
/// Metadata key: each layer's policy, as Keras's `DTypePolicyMap` JSON whose default is
/// `mixprec.policy`. Absent in files written before per-layer policies: every layer then has
/// `mixprec.policy`.
pub const KEY_LAYER_POLICIES: &str = "mixprec.layer_policies";
/// Metadata key: the names of the statistics (non-trainable variables, BatchNormalization's
/// moving mean and variance) stored in float32 inside a layer of a 16-bit policy, as a JSON
/// array of strings. Absent when there are none. Only these tensors may differ from their
/// layer's variable type, and only to float32.
pub const KEY_STATISTICS: &str = "mixprec.statistics";

const RESERVED: [&str; 7] = [
    KEY_STATISTICS,
    KEY_FORMAT,
    KEY_POLICY,
    KEY_ARCHITECTURE,
    KEY_LOSS_SCALE,
    KEY_ITERATIONS,
    KEY_LAYER_POLICIES,
];

pub use crate::optimizers::LossScaleState;

/// What a checkpoint records besides the variables.
///
/// [`layer_policies`](Self::layer_policies) is filled in by [`save`](super::save) from the
/// model, and read back by [`read`](super::read): the caller sets the model's policy only.
///
/// ```
/// use mixprec::io::{CheckpointMeta, LossScaleState};
/// use mixprec::DTypePolicy;
/// let meta = CheckpointMeta::new(DTypePolicy::MixedFloat16)
///     .with_architecture(r#"{"hidden":[32]}"#)
///     .with_loss_scale(LossScaleState { scale: 1024.0, good_steps: 7 })
///     .with_iterations(300)
///     .with_extra("dataset", "digits");
/// assert_eq!(meta.extra["dataset"], "digits");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointMeta {
    /// The model's policy: that of all its layers, or, for a model of several policies, the one
    /// its per-layer map falls back to (its body's, by convention).
    pub policy: DTypePolicy,
    /// Each layer's policy, keyed by layer path (`hidden`, `0`: a variable's name without its
    /// last component), with [`policy`](Self::policy) as default. [`save`](super::save)
    /// replaces it with the saved model's layers; [`read`](super::read) fills it from the file.
    pub layer_policies: DTypePolicyMap,
    /// The statistics stored in float32 in a layer of a 16-bit policy (the `mixprec.statistics` key);
    /// [`save`](super::save) fills it from the model.
    pub statistics: Vec<String>,
    /// The architecture, as the caller describes it (JSON by convention; stored as given).
    pub architecture: String,
    /// The loss-scale state, for float16 training.
    pub loss_scale: Option<LossScaleState>,
    /// Optimizer steps taken.
    pub iterations: u64,
    /// Further pairs, stored under their own keys (not one of the `mixprec.*` keys above).
    pub extra: BTreeMap<String, String>,
}

impl CheckpointMeta {
    /// Metadata for `policy`, with an empty architecture, no loss scale and no iterations.
    pub fn new(policy: DTypePolicy) -> Self {
        CheckpointMeta {
            policy,
            layer_policies: DTypePolicyMap::with_default(policy),
            statistics: Vec::new(),
            architecture: String::new(),
            loss_scale: None,
            iterations: 0,
            extra: BTreeMap::new(),
        }
    }

    /// Sets the architecture string.
    pub fn with_architecture(self, architecture: impl Into<String>) -> Self {
        CheckpointMeta {
            architecture: architecture.into(),
            ..self
        }
    }

    /// Sets the loss-scale state.
    pub fn with_loss_scale(self, state: LossScaleState) -> Self {
        CheckpointMeta {
            loss_scale: Some(state),
            ..self
        }
    }

    /// Sets the iteration count.
    pub fn with_iterations(self, iterations: u64) -> Self {
        CheckpointMeta { iterations, ..self }
    }

    /// Adds an extra metadata pair.
    pub fn with_extra(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.extra.insert(key.into(), value.into());
        self
    }

    pub(super) fn to_map(&self) -> Result<HashMap<String, String>> {
        let mut map = HashMap::new();
        for (k, v) in &self.extra {
            if RESERVED.contains(&k.as_str()) {
                return Err(Error::InvalidArgument {
                    what: "extra checkpoint metadata key",
                    found: format!("{k:?}"),
                    expected: "a key other than mixprec.format, mixprec.policy, \
                               mixprec.architecture, mixprec.loss_scale, mixprec.iterations, \
                               mixprec.layer_policies, mixprec.statistics",
                });
            }
            map.insert(k.clone(), v.clone());
        }
        map.insert(KEY_FORMAT.into(), FORMAT_VERSION.into());
        map.insert(KEY_POLICY.into(), self.policy.to_keras_json());
        map.insert(KEY_ARCHITECTURE.into(), self.architecture.clone());
        map.insert(KEY_ITERATIONS.into(), self.iterations.to_string());
        map.insert(
            KEY_LAYER_POLICIES.into(),
            self.layer_policies.to_keras_json(),
        );
        if !self.statistics.is_empty() {
            let json = serde_json::to_string(&self.statistics).expect("strings serialize");
            map.insert(KEY_STATISTICS.into(), json);
        }
        if let Some(ls) = &self.loss_scale {
            let json = serde_json::to_string(ls).expect("a LossScaleState always serializes");
            map.insert(KEY_LOSS_SCALE.into(), json);
        }
        Ok(map)
    }

    pub(super) fn from_map(path: &str, map: &HashMap<String, String>) -> Result<Self> {
        let get = |key: &'static str, expected: &'static str| {
            map.get(key).ok_or_else(|| Error::MissingMetadata {
                path: path.to_string(),
                key,
                expected,
            })
        };
        let invalid = |key, found: &str, expected, source| Error::InvalidMetadata {
            path: path.to_string(),
            key,
            found: shorten(found),
            expected,
            source,
        };
        let format = get(KEY_FORMAT, "\"1\"")?;
        if format != FORMAT_VERSION {
            return Err(invalid(KEY_FORMAT, format, "\"1\"", None));
        }
        let policy_json = get(KEY_POLICY, "a Keras DTypePolicy JSON config")?;
        let policy = DTypePolicy::from_keras_json(policy_json).map_err(|e| {
            invalid(
                KEY_POLICY,
                policy_json,
                "a Keras DTypePolicy JSON config",
                Some(Box::new(e)),
            )
        })?;
        const MAP_EXPECTED: &str =
            "a Keras DTypePolicyMap JSON config whose default_policy is mixprec.policy";
        let layer_policies = match map.get(KEY_LAYER_POLICIES) {
            None => DTypePolicyMap::with_default(policy),
            Some(json) => {
                let m = DTypePolicyMap::from_keras_json(json).map_err(|e| {
                    invalid(KEY_LAYER_POLICIES, json, MAP_EXPECTED, Some(Box::new(e)))
                })?;
                if m.default_policy() != policy {
                    return Err(invalid(KEY_LAYER_POLICIES, json, MAP_EXPECTED, None));
                }
                m
            }
        };
        let statistics = match map.get(KEY_STATISTICS) {
            None => Vec::new(),
            Some(json) => serde_json::from_str::<Vec<String>>(json).map_err(|e| {
                invalid(
                    KEY_STATISTICS,
                    json,
                    "a JSON array of tensor names",
                    Some(Box::new(e)),
                )
            })?,
        };
        let architecture = get(KEY_ARCHITECTURE, "the architecture string")?.clone();
        let it = get(KEY_ITERATIONS, "an unsigned integer")?;
        let iterations = it
            .parse()
            .map_err(|e| invalid(KEY_ITERATIONS, it, "an unsigned integer", Some(Box::new(e))))?;
        let loss_scale = match map.get(KEY_LOSS_SCALE) {
            None => None,
            Some(json) => Some(parse_loss_scale(json).map_err(|e| {
                invalid(
                    KEY_LOSS_SCALE,
                    json,
                    "{\"scale\": finite f32 >= 2^-126, \"good_steps\": u64}",
                    e,
                )
            })?),
        };
        let extra = map
            .iter()
            .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Ok(CheckpointMeta {
            policy,
            layer_policies,
            statistics,
            architecture,
            loss_scale,
            iterations,
            extra,
        })
    }
}

type BoxedCause = Option<Box<dyn std::error::Error + Send + Sync>>;

fn parse_loss_scale(json: &str) -> std::result::Result<LossScaleState, BoxedCause> {
    let state: LossScaleState = serde_json::from_str(json).map_err(|e| Some(e.into()))?;
    if crate::optimizers::valid_scale(state.scale) {
        Ok(state)
    } else {
        Err(None)
    }
}

/// A value quoted back in an error, cut to 80 characters so the error stays one line.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(80) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}
