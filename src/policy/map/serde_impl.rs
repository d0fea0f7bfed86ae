//! Keras's JSON form of a [`DTypePolicyMap`], as `keras.dtype_policies.serialize` writes it:
//!
//! ```json
//! {"module": "keras.dtype_policies", "class_name": "DTypePolicyMap",
//!  "config": {"default_policy": <policy>, "policy_map": {"<key>": <policy>, ...}},
//!  "registered_name": null}
//! ```
//!
//! `<policy>` is what [`DTypePolicy`]'s serde impl reads (a bare name or Keras's `DTypePolicy`
//! object) and writes (the object). Reading also takes what Keras writes for a map built without
//! a default: `"default_policy": null` (or absent) and `{"name": null}` policies, both meaning
//! the global policy at load time. `policy_map` is read entry by entry, so a duplicate key is an
//! error (serde_json would keep the last) and insertion order is kept without `preserve_order`.

use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{DTypePolicyMap, Entry};
use crate::error::Error;
use crate::policy::runtime::{global_policy, DTypePolicy};

/// The `module` Keras writes: the map's canonical export is `keras.dtype_policies.DTypePolicyMap`.
const MODULE: &str = "keras.dtype_policies";
/// Modules read as this class: Keras's own, and the top-level `keras` that `DTypePolicy` uses
/// (Keras's `dtype_policies.deserialize` does not check the module at all).
const MODULES: [&str; 2] = [MODULE, "keras"];
const CLASS_NAME: &str = "DTypePolicyMap";
const CONFIG_FIELDS: &[&str] = &["default_policy", "policy_map"];

impl Serialize for DTypePolicyMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut outer = s.serialize_struct(CLASS_NAME, 4)?;
        outer.serialize_field("module", MODULE)?;
        outer.serialize_field("class_name", CLASS_NAME)?;
        outer.serialize_field("config", &Config(self))?;
        outer.serialize_field("registered_name", &None::<&str>)?;
        outer.end()
    }
}

/// `{"default_policy": …, "policy_map": {…}}`.
struct Config<'a>(&'a DTypePolicyMap);

impl Serialize for Config<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut config = s.serialize_struct("Config", 2)?;
        config.serialize_field("default_policy", &self.0.default_policy)?;
        config.serialize_field("policy_map", &PolicyMap(&self.0.entries))?;
        config.end()
    }
}

/// The keys in insertion order.
struct PolicyMap<'a>(&'a [Entry]);

impl Serialize for PolicyMap<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for e in self.0 {
            map.serialize_entry(&e.key, &e.policy)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for DTypePolicyMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(OuterVisitor)
    }
}

struct OuterVisitor;

impl<'de> Visitor<'de> for OuterVisitor {
    type Value = DTypePolicyMap;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(
            "Keras's DTypePolicyMap config {\"module\": \"keras.dtype_policies\", \
             \"class_name\": \"DTypePolicyMap\", \"config\": {\"default_policy\": ..., \
             \"policy_map\": {...}}, \"registered_name\": null}",
        )
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DTypePolicyMap, A::Error> {
        let (mut module, mut class_name, mut config, mut registered) = (false, false, None, false);
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "module" => {
                    once(&mut module, "module")?;
                    // Keras's own reader accepts a missing module, but not a null one.
                    let m: Option<String> = map.next_value()?;
                    if !m.as_deref().is_some_and(|m| MODULES.contains(&m)) {
                        let shown = m.map_or_else(|| "null".to_string(), |m| format!("{m:?}"));
                        return Err(de::Error::custom(format_args!(
                            "unknown module {shown} for a DTypePolicyMap (expected \"{MODULE}\")"
                        )));
                    }
                }
                "class_name" => {
                    once(&mut class_name, "class_name")?;
                    let c: String = map.next_value()?;
                    if c != CLASS_NAME {
                        return Err(de::Error::custom(format_args!(
                            "unknown class_name {c:?} (expected \"{CLASS_NAME}\")"
                        )));
                    }
                }
                "config" => {
                    if config.is_some() {
                        return Err(de::Error::duplicate_field("config"));
                    }
                    config = Some(map.next_value_seed(ConfigSeed)?);
                }
                "registered_name" => {
                    // Null for Keras's own class; a registered subclass's name says nothing
                    // this reader could use.
                    once(&mut registered, "registered_name")?;
                    map.next_value::<IgnoredAny>()?;
                }
                // Fields Keras adds to some objects (`build_config`, …) are not the map's.
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        if !class_name {
            return Err(de::Error::missing_field("class_name"));
        }
        config.ok_or_else(|| de::Error::missing_field("config"))
    }
}

/// Marks a field as seen, refusing a second one.
fn once<E: de::Error>(seen: &mut bool, field: &'static str) -> Result<(), E> {
    if std::mem::replace(seen, true) {
        return Err(E::duplicate_field(field));
    }
    Ok(())
}

/// `config`: Keras's `from_config` passes it as keyword arguments, so an unknown field is an
/// error, `policy_map` is required and `default_policy` is not.
struct ConfigSeed;

impl<'de> DeserializeSeed<'de> for ConfigSeed {
    type Value = DTypePolicyMap;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<DTypePolicyMap, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ConfigSeed {
    type Value = DTypePolicyMap;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DTypePolicyMap config {\"default_policy\": ..., \"policy_map\": {...}}")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DTypePolicyMap, A::Error> {
        let (mut default, mut entries) = (None, None);
        while let Some(field) = map.next_key::<String>()? {
            match field.as_str() {
                "default_policy" => {
                    if default.is_some() {
                        return Err(de::Error::duplicate_field("default_policy"));
                    }
                    let value: Value = map.next_value()?;
                    let policy = policy_from_value(value)
                        .map_err(|e| de::Error::custom(format_args!("default_policy: {e}")))?;
                    default = Some(policy);
                }
                "policy_map" => {
                    if entries.is_some() {
                        return Err(de::Error::duplicate_field("policy_map"));
                    }
                    entries = Some(map.next_value_seed(EntriesSeed)?);
                }
                other => return Err(de::Error::unknown_field(other, CONFIG_FIELDS)),
            }
        }
        let entries = entries.ok_or_else(|| de::Error::missing_field("policy_map"))?;
        Ok(DTypePolicyMap {
            default_policy: default.flatten().unwrap_or_else(global_policy),
            entries,
        })
    }
}

/// A policy as JSON; `None` for null (the global policy, resolved by the caller). A
/// `DTypePolicy` object whose name is null is the global policy too: what Keras writes for the
/// entries of a map built without a default.
fn policy_from_value(value: Value) -> Result<Option<DTypePolicy>, serde_json::Error> {
    if value.is_null() {
        return Ok(None);
    }
    let null_name = value
        .get("config")
        .is_some_and(|c| c.get("name").is_some_and(Value::is_null));
    if null_name
        && matches!(
            value.get("class_name").and_then(Value::as_str),
            Some("DTypePolicy" | "FloatDTypePolicy")
        )
    {
        return Ok(Some(global_policy()));
    }
    DTypePolicy::deserialize(value).map(Some)
}

/// `policy_map`: entries in file order, each inserted as [`DTypePolicyMap::insert`] would.
struct EntriesSeed;

impl<'de> DeserializeSeed<'de> for EntriesSeed {
    type Value = Vec<Entry>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for EntriesSeed {
    type Value = Vec<Entry>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object from layer paths (or regexes) to policies")
    }

    /// `"policy_map": null` is an empty map, as in Keras.
    fn visit_none<E: de::Error>(self) -> Result<Vec<Entry>, E> {
        Ok(Vec::new())
    }

    fn visit_unit<E: de::Error>(self) -> Result<Vec<Entry>, E> {
        Ok(Vec::new())
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Vec<Entry>, D::Error> {
        d.deserialize_map(self)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<Entry>, A::Error> {
        // Built through `insert` so a file is held to the same rules as code.
        let mut out = DTypePolicyMap::with_default(DTypePolicy::Float32);
        while let Some(key) = map.next_key::<String>()? {
            let value: Value = map.next_value()?;
            let policy = match policy_from_value(value) {
                Ok(Some(policy)) => policy,
                Ok(None) => {
                    return Err(de::Error::custom(format_args!(
                        "policy_map key {key:?}: null is not a policy (expected a policy name \
                         such as \"mixed_float16\", or Keras's DTypePolicy config)"
                    )))
                }
                Err(e) => {
                    return Err(de::Error::custom(format_args!(
                        "policy_map key {key:?}: {e}"
                    )))
                }
            };
            out.insert(key, policy).map_err(de::Error::custom)?;
        }
        Ok(out.entries)
    }
}

impl DTypePolicyMap {
    /// Keras's JSON config of this map, keys in insertion order, as
    /// `keras.dtype_policies.serialize(map)` writes it.
    ///
    /// ```
    /// use mixprec::{DTypePolicy, DTypePolicyMap};
    /// let mut map = DTypePolicyMap::with_default(DTypePolicy::Float32);
    /// map.insert("body/.*", DTypePolicy::MixedBFloat16)?;
    /// let json = map.to_keras_json();
    /// assert_eq!(
    ///     json,
    ///     concat!(
    ///         r#"{"module":"keras.dtype_policies","class_name":"DTypePolicyMap","config":{"#,
    ///         r#""default_policy":{"module":"keras","class_name":"DTypePolicy","config":{"name":"float32"},"registered_name":null},"#,
    ///         r#""policy_map":{"body/.*":{"module":"keras","class_name":"DTypePolicy","config":{"name":"mixed_bfloat16"},"registered_name":null}}"#,
    ///         r#"},"registered_name":null}"#
    ///     )
    /// );
    /// assert_eq!(DTypePolicyMap::from_keras_json(&json)?, map);
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    pub fn to_keras_json(&self) -> String {
        serde_json::to_string(self).expect("a DTypePolicyMap always serializes")
    }

    /// Reads Keras's JSON config of a `DTypePolicyMap`.
    ///
    /// # Errors
    ///
    /// [`Error::PolicyConfig`] when the JSON is malformed, is not a `DTypePolicyMap` config
    /// (another `class_name` or `module`, an unknown `config` field, no `policy_map`), holds a
    /// value that is not a policy (the message names its key), or holds a key that
    /// [`insert`](Self::insert) refuses (a duplicate, an invalid regex).
    pub fn from_keras_json(json: &str) -> Result<Self, Error> {
        serde_json::from_str(json).map_err(Error::PolicyConfig)
    }
}
