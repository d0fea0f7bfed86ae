//! `DTypePolicyMap`: Keras's lookup rules (exact key, then full-match regex keys, then the
//! default; no prefix matching), its errors, and its JSON (Keras's exact text, Keras's own
//! output read back, duplicates and bad values refused, round trips).
//!
//! The tests that read or set the global policy hold `LOCK` and put it back, since this file's
//! tests run on parallel threads of one process.

use std::sync::{Mutex, MutexGuard};

use mixprec::{set_global_policy, DTypePolicy, DTypePolicyMap, Error};
use DTypePolicy::{BFloat16, Float16, Float32, Float64, MixedBFloat16, MixedFloat16};

static LOCK: Mutex<()> = Mutex::new(());

/// Holds `LOCK` and sets the global policy, restoring the old one on drop.
struct Global {
    before: DTypePolicy,
    _lock: MutexGuard<'static, ()>,
}

fn global(policy: DTypePolicy) -> Global {
    let lock = LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    Global {
        before: set_global_policy(policy).unwrap(),
        _lock: lock,
    }
}

impl Drop for Global {
    fn drop(&mut self) {
        set_global_policy(self.before).unwrap();
    }
}

/// Keras's docstring example: exact, regex, no prefix, default.
fn keras_example() -> DTypePolicyMap {
    let mut map = DTypePolicyMap::with_default(Float32);
    map.insert("encoder/layer_0/dense", BFloat16).unwrap();
    map.insert("encoder/.*", Float16).unwrap();
    map.insert("decoder", BFloat16).unwrap();
    map
}

#[test]
fn exact_key_wins_over_a_matching_regex() {
    let map = keras_example();
    assert_eq!(map.get("encoder/layer_0/dense").unwrap(), BFloat16);
    assert_eq!(map.get("decoder").unwrap(), BFloat16);
}

#[test]
fn a_regex_key_gives_its_policy_to_every_path_it_fully_matches() {
    let map = keras_example();
    assert_eq!(map.get("encoder/attention/query").unwrap(), Float16);
    assert_eq!(map.get("encoder/layer_0/dense_1").unwrap(), Float16);
    // Not fully matched: the regex must cover the whole path.
    assert_eq!(map.get("my_encoder/attention").unwrap(), Float32);
    assert_eq!(map.get("encoder").unwrap(), Float32);
}

#[test]
fn no_prefix_matching() {
    let mut map = DTypePolicyMap::with_default(Float64);
    map.insert("dense", MixedBFloat16).unwrap();
    map.insert("0", Float16).unwrap();
    assert_eq!(map.get("dense").unwrap(), MixedBFloat16);
    for path in ["dense_1", "dense/kernel", "xdense", "00", "0/kernel", "10"] {
        assert_eq!(map.get(path).unwrap(), Float64, "{path}");
    }
    assert_eq!(keras_example().get("decoder/attention").unwrap(), Float32);
}

#[test]
fn default_on_no_match_and_on_an_empty_map() {
    let map = DTypePolicyMap::with_default(MixedFloat16);
    assert!(map.is_empty());
    assert_eq!(map.get("anything").unwrap(), MixedFloat16);
    assert_eq!(map.get("").unwrap(), MixedFloat16);
    assert_eq!(keras_example().get("head").unwrap(), Float32);
}

#[test]
fn a_path_matching_two_regex_keys_is_an_error_naming_the_path_and_both_keys() {
    let mut map = keras_example();
    map.insert("encoder/attention/.*", BFloat16).unwrap();
    map.insert("decoder/.*", Float64).unwrap();
    let err = map.get("encoder/attention/query").unwrap_err();
    let Error::PolicyMapAmbiguous { path, keys } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(path, "encoder/attention/query");
    assert_eq!(keys, &["encoder/.*", "encoder/attention/.*"]);
    assert_eq!(
        err.to_string(),
        "path \"encoder/attention/query\" matches multiple dtype policy specification keys: \
         [\"encoder/.*\", \"encoder/attention/.*\"]; please make sure each path only matches at \
         most one dtype policy specification key in the DTypePolicyMap"
    );
    // Other paths are unaffected, and an exact key still settles the question.
    assert_eq!(map.get("encoder/ffn").unwrap(), Float16);
    map.insert("encoder/attention/query", MixedBFloat16)
        .unwrap();
    assert_eq!(map.get("encoder/attention/query").unwrap(), MixedBFloat16);
    // Three keys are all named, in insertion order.
    map.insert(".*/attention/.*", Float32).unwrap();
    let Err(Error::PolicyMapAmbiguous { keys, .. }) = map.get("encoder/attention/key") else {
        panic!("expected an ambiguity");
    };
    assert_eq!(
        keys,
        ["encoder/.*", "encoder/attention/.*", ".*/attention/.*"]
    );
}

#[test]
fn a_duplicate_key_is_refused_with_keras_message() {
    let mut map = keras_example();
    let err = map.insert("decoder", Float16).unwrap_err();
    assert!(
        matches!(&err, Error::PolicyMapDuplicateKey { key, existing: BFloat16 } if key == "decoder"),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "key \"decoder\" already exists in the DTypePolicyMap with value \"bfloat16\"; please \
         make sure to not use duplicated keys"
    );
    assert_eq!(map.get("decoder").unwrap(), BFloat16);
    assert!(
        DTypePolicyMap::try_from_pairs([("a", "float16"), ("b", "float32"), ("a", "float16")])
            .is_err()
    );
}

#[test]
fn an_invalid_regex_key_is_refused_at_insert_naming_the_key() {
    let mut map = DTypePolicyMap::with_default(Float32);
    let err = map.insert("encoder/(.*", Float16).unwrap_err();
    let Error::PolicyMapInvalidKey { key, source } = &err else {
        panic!("{err:?}");
    };
    assert_eq!(key, "encoder/(.*");
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "dtype policy key \"encoder/(.*\" is not a valid regular expression (expected a layer \
             path, or a regex that fully matches layer paths): "
        ),
        "{msg}"
    );
    assert!(msg.ends_with(&source.to_string()), "{msg}");
    assert!(msg.contains("unclosed group"), "{msg}");
    assert!(map.is_empty());
}

#[test]
fn keys_iterate_in_insertion_order() {
    let map = DTypePolicyMap::try_from_pairs([
        ("z", Float16),
        ("a.*", BFloat16),
        ("m", Float32),
        ("b", MixedFloat16),
    ])
    .unwrap();
    let keys: Vec<&str> = map.iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["z", "a.*", "m", "b"]);
    assert_eq!(map.len(), 4);
    assert!(map.contains_key("a.*"));
    assert!(!map.contains_key("abc")); // `contains_key` compares strings, as Keras's `in`
}

#[test]
fn new_and_try_from_pairs_take_the_global_policy_as_default_when_called() {
    let g = global(MixedBFloat16);
    let map = DTypePolicyMap::new();
    assert_eq!(map.default_policy(), MixedBFloat16);
    assert_eq!(DTypePolicyMap::default().default_policy(), MixedBFloat16);
    let pairs = DTypePolicyMap::try_from_pairs([("head", Float32)]).unwrap();
    assert_eq!(pairs.default_policy(), MixedBFloat16);
    set_global_policy(Float16).unwrap();
    // Read once, at construction, like every run-time constructor.
    assert_eq!(map.default_policy(), MixedBFloat16);
    assert_eq!(map.get("x").unwrap(), MixedBFloat16);
    drop(g);
}

#[cfg(feature = "serde")]
mod json {
    use super::*;
    use proptest::prelude::*;

    fn policy_json(name: &str) -> String {
        format!(
            r#"{{"module":"keras","class_name":"DTypePolicy","config":{{"name":"{name}"}},"registered_name":null}}"#
        )
    }

    #[test]
    fn keras_json_of_a_small_map_exactly() {
        let mut map = DTypePolicyMap::with_default(MixedBFloat16);
        map.insert("head", Float32).unwrap();
        map.insert("body/.*", MixedBFloat16).unwrap();
        map.insert("0", Float16).unwrap();
        let expected = format!(
            r#"{{"module":"keras.dtype_policies","class_name":"DTypePolicyMap","config":{{"default_policy":{},"policy_map":{{"head":{},"body/.*":{},"0":{}}}}},"registered_name":null}}"#,
            policy_json("mixed_bfloat16"),
            policy_json("float32"),
            policy_json("mixed_bfloat16"),
            policy_json("float16"),
        );
        assert_eq!(map.to_keras_json(), expected);
        assert_eq!(serde_json::to_string(&map).unwrap(), expected);
        let empty = DTypePolicyMap::with_default(Float64).to_keras_json();
        assert_eq!(
            empty,
            format!(
                r#"{{"module":"keras.dtype_policies","class_name":"DTypePolicyMap","config":{{"default_policy":{},"policy_map":{{}}}},"registered_name":null}}"#,
                policy_json("float64")
            )
        );
    }

    /// `json.dumps(keras.dtype_policies.serialize(m), indent=2)` for
    /// `m = DTypePolicyMap(default_policy="mixed_bfloat16")` with
    /// `m["sequential/dense"] = DTypePolicy("float32")` and
    /// `m["sequential/dense_.*"] = DTypePolicy("mixed_float16")`: Keras writes the default as it
    /// was given (a string here), each policy through `serialize_keras_object`.
    const KERAS_OUTPUT: &str = r#"{
  "module": "keras.dtype_policies",
  "class_name": "DTypePolicyMap",
  "config": {
    "default_policy": "mixed_bfloat16",
    "policy_map": {
      "sequential/dense": {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {
          "name": "float32"
        },
        "registered_name": null
      },
      "sequential/dense_.*": {
        "module": "keras",
        "class_name": "DTypePolicy",
        "config": {
          "name": "mixed_float16"
        },
        "registered_name": null
      }
    }
  },
  "registered_name": null
}"#;

    #[test]
    fn reads_what_keras_writes() {
        let map = DTypePolicyMap::from_keras_json(KERAS_OUTPUT).unwrap();
        assert_eq!(map.default_policy(), MixedBFloat16);
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            [
                ("sequential/dense", Float32),
                ("sequential/dense_.*", MixedFloat16)
            ]
        );
        assert_eq!(map.get("sequential/dense").unwrap(), Float32);
        assert_eq!(map.get("sequential/dense_1").unwrap(), MixedFloat16);
        assert_eq!(map.get("sequential/dropout").unwrap(), MixedBFloat16);
        // Written back in our form, the same map.
        assert_eq!(
            DTypePolicyMap::from_keras_json(&map.to_keras_json()).unwrap(),
            map
        );
    }

    /// Keras 3's `get_config` of a map built without a default writes `"default_policy": null`
    /// and sets every policy's name to null, so both follow `keras.config.dtype_policy()` when
    /// loaded.
    #[test]
    fn reads_keras_maps_without_a_default_as_the_global_policy() {
        let _g = global(Float16);
        let json = r#"{"module": "keras.dtype_policies", "class_name": "DTypePolicyMap",
            "config": {"default_policy": null, "policy_map": {"layer/dense_0":
            {"module": "keras", "class_name": "DTypePolicy", "config": {"name": null},
            "registered_name": null}, "layer/dense_1": "bfloat16"}}, "registered_name": null}"#;
        let map = DTypePolicyMap::from_keras_json(json).unwrap();
        assert_eq!(map.default_policy(), Float16);
        assert_eq!(
            map.iter().collect::<Vec<_>>(),
            [("layer/dense_0", Float16), ("layer/dense_1", BFloat16)]
        );
        // `default_policy` may be absent too; Keras 3.0-3.3's class name is read.
        let json = r#"{"module": "keras", "class_name": "DTypePolicyMap", "config":
            {"policy_map": {"a": {"module": "keras", "class_name": "FloatDTypePolicy",
            "config": {"name": "float64"}, "registered_name": null}}}}"#;
        let map = DTypePolicyMap::from_keras_json(json).unwrap();
        assert_eq!(map.default_policy(), Float16);
        assert_eq!(map.get("a").unwrap(), Float64);
    }

    fn read_err(json: &str) -> String {
        let err = DTypePolicyMap::from_keras_json(json).unwrap_err();
        assert!(matches!(err, Error::PolicyConfig(_)), "{err:?}");
        err.to_string()
    }

    fn with_policy_map(policy_map: &str) -> String {
        format!(
            r#"{{"module": "keras.dtype_policies", "class_name": "DTypePolicyMap", "config": {{"default_policy": "float32", "policy_map": {policy_map}}}, "registered_name": null}}"#
        )
    }

    #[test]
    fn a_duplicate_key_in_json_is_refused() {
        let msg = read_err(&with_policy_map(
            r#"{"a": "float16", "b": "float32", "a": "bfloat16"}"#,
        ));
        assert!(
            msg.contains(
                "key \"a\" already exists in the DTypePolicyMap with value \"float16\"; please make \
                 sure to not use duplicated keys"
            ),
            "{msg}"
        );
    }

    #[test]
    fn a_value_that_is_not_a_policy_names_its_key() {
        for (value, why) in [
            (r#""mixed_fp16""#, "unknown policy \"mixed_fp16\""),
            ("3", "invalid type: integer `3`"),
            ("null", "null is not a policy"),
            (
                r#"{"module": "keras", "class_name": "QuantizedDTypePolicy", "config": {"name": "int8_from_float32"}}"#,
                "unknown class_name \"QuantizedDTypePolicy\" (expected \"DTypePolicy\")",
            ),
        ] {
            let msg = read_err(&with_policy_map(&format!(
                r#"{{"ok": "float16", "dense_7": {value}}}"#
            )));
            assert!(
                msg.contains(&format!("policy_map key \"dense_7\": {why}")),
                "{value}: {msg}"
            );
        }
        let msg = read_err(
            r#"{"class_name": "DTypePolicyMap", "config": {"default_policy": "f32", "policy_map": {}}}"#,
        );
        assert!(
            msg.contains("default_policy: unknown policy \"f32\""),
            "{msg}"
        );
    }

    #[test]
    fn an_invalid_regex_key_in_json_is_refused() {
        let msg = read_err(&with_policy_map(r#"{"dense_[0-9": "float16"}"#));
        assert!(
            msg.contains("dtype policy key \"dense_[0-9\" is not a valid regular expression"),
            "{msg}"
        );
    }

    #[test]
    fn another_class_or_module_or_shape_is_refused_saying_what_is_expected() {
        let policy = r#"{"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": null}"#;
        let msg = read_err(policy);
        assert!(
            msg.contains("unknown class_name \"DTypePolicy\" (expected \"DTypePolicyMap\")"),
            "{msg}"
        );
        let msg =
            read_err(&with_policy_map("{}").replace("keras.dtype_policies", "keras_hub.layers"));
        assert!(
            msg.contains("unknown module \"keras_hub.layers\" for a DTypePolicyMap (expected \"keras.dtype_policies\")"),
            "{msg}"
        );
        let msg = read_err(&with_policy_map("{}").replace(r#""keras.dtype_policies""#, "null"));
        assert!(msg.contains("unknown module null"), "{msg}");
        let msg = read_err(r#"{"module": "keras.dtype_policies", "config": {"policy_map": {}}}"#);
        assert!(msg.contains("missing field `class_name`"), "{msg}");
        let msg = read_err(r#"{"class_name": "DTypePolicyMap"}"#);
        assert!(msg.contains("missing field `config`"), "{msg}");
        let msg = read_err(
            r#"{"class_name": "DTypePolicyMap", "config": {"default_policy": "float32"}}"#,
        );
        assert!(msg.contains("missing field `policy_map`"), "{msg}");
        let msg = read_err(
            r#"{"class_name": "DTypePolicyMap", "config": {"policy_map": {}, "name": "x"}}"#,
        );
        assert!(
            msg.contains("unknown field `name`, expected `default_policy` or `policy_map`"),
            "{msg}"
        );
        let msg = read_err(
            r#"{"class_name": "DTypePolicyMap", "class_name": "DTypePolicyMap", "config": {"policy_map": {}}}"#,
        );
        assert!(msg.contains("duplicate field `class_name`"), "{msg}");
        let msg = read_err(r#""mixed_bfloat16""#);
        assert!(
            msg.contains("expected Keras's DTypePolicyMap config"),
            "{msg}"
        );
        let msg = read_err(&with_policy_map(r#"["a", "float32"]"#));
        assert!(
            msg.contains("expected an object from layer paths (or regexes) to policies"),
            "{msg}"
        );
        // `policy_map: null` is Keras's empty map, and unknown outer fields are not the map's.
        let map = DTypePolicyMap::from_keras_json(
            r#"{"class_name": "DTypePolicyMap", "config": {"default_policy": "float64", "policy_map": null}, "build_config": {}}"#,
        )
        .unwrap();
        assert_eq!(map, DTypePolicyMap::with_default(Float64));
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z_]{1,8}(/[a-z0-9_]{1,6}){0,2}",
            "[a-z]{1,5}/(\\.\\*|[0-9]\\+|\\[0-9\\]|\\(a\\|b\\))",
            "[0-9]{1,2}",
        ]
    }

    fn policy() -> impl Strategy<Value = DTypePolicy> {
        prop::sample::select(DTypePolicy::ALL.to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn prop_json_round_trips_keys_order_and_policies(
            default in policy(),
            pairs in prop::collection::vec((key(), policy()), 0..12),
        ) {
            let mut map = DTypePolicyMap::with_default(default);
            let mut expected = Vec::new();
            for (k, p) in pairs {
                if !map.contains_key(&k) {
                    map.insert(k.clone(), p).unwrap();
                    expected.push((k, p));
                }
            }
            let json = map.to_keras_json();
            let back = DTypePolicyMap::from_keras_json(&json).unwrap();
            prop_assert_eq!(&back, &map);
            let got: Vec<(String, DTypePolicy)> =
                back.iter().map(|(k, p)| (k.to_string(), p)).collect();
            prop_assert_eq!(got, expected);
            prop_assert_eq!(back.to_keras_json(), json);
            // Pretty-printed JSON (as Python's `indent=2`) reads the same.
            let pretty = serde_json::to_string_pretty(&map).unwrap();
            prop_assert_eq!(DTypePolicyMap::from_keras_json(&pretty).unwrap(), map);
        }
    }
}
