//! The JSON half of `tests/policy_map.rs`: Keras's exact text, Keras 3's own output read back,
//! what a reader refuses and why, and round trips.

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
    let msg = read_err(&with_policy_map("{}").replace("keras.dtype_policies", "keras_hub.layers"));
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
    let msg =
        read_err(r#"{"class_name": "DTypePolicyMap", "config": {"default_policy": "float32"}}"#);
    assert!(msg.contains("missing field `policy_map`"), "{msg}");
    let msg =
        read_err(r#"{"class_name": "DTypePolicyMap", "config": {"policy_map": {}, "name": "x"}}"#);
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
