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
#[path = "policy_map/json.rs"]
mod json;
