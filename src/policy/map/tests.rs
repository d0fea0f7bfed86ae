//! The map's internals: how a key becomes a full-match regex, and what a refused insert leaves.

use super::*;
use DTypePolicy::{BFloat16, Float16, Float32, MixedBFloat16};

fn full(key: &str, path: &str) -> bool {
    compile_full_match(key).unwrap().is_match(path)
}

#[test]
fn plain_names_are_not_compiled() {
    for key in [
        "dense_1",
        "body/0",
        "0",
        "hidden",
        "encoder/layer_0/dense",
        "",
    ] {
        assert!(
            Entry::new(key.into(), Float32).unwrap().regex.is_none(),
            "{key}"
        );
    }
    for key in ["dense.*", "a|b", "x+", "dense-1", "(a)"] {
        assert!(
            Entry::new(key.into(), Float32).unwrap().regex.is_some(),
            "{key}"
        );
    }
}

#[test]
fn a_regex_must_match_the_whole_path() {
    assert!(full("dense_.*", "dense_1"));
    assert!(!full("dense_.", "dense_12"));
    assert!(!full("ense_1", "dense_1"));
    assert!(!full("dense", "dense_1"));
    // Alternation inside the anchors: Python's fullmatch("a|ab", "ab") matches, though a
    // leftmost-first search would stop after "a".
    assert!(full("a|ab", "ab"));
    assert!(full("a|ab", "a"));
    assert!(!full("a|ab", "xab"));
    // `$` and `^` in the key do not end the anchoring, and `(?m)` stays inside its group.
    assert!(!full("(?m)a$", "a\nb"));
    assert!(!full("a\n|b", "a\nb"));
}

#[test]
fn a_key_that_is_no_regex_on_its_own_is_refused() {
    // Wrapped textually this would be `\A(?:a)|(b)\z`, valid and matching any path starting "a".
    for key in ["a)|(b", "a)", "(a", "[a", r"a\", "a{2", "(?<=x)a", r"(a)\1"] {
        let err = compile_full_match(key).unwrap_err();
        let Error::PolicyMapInvalidKey { key: k, .. } = &err else {
            panic!("{key}: {err:?}");
        };
        assert_eq!(k, key);
        assert!(
            err.to_string()
                .contains("is not a valid regular expression"),
            "{err}"
        );
    }
}

#[test]
fn a_key_ending_in_an_x_mode_comment_still_compiles() {
    assert!(full("(?x) dense _ 1 # layer one", "dense_1"));
    assert!(!full("(?x) dense _ 1 # layer one", "dense_12"));
    assert!(full("(?x) a (?-x) b", "a b"));
    assert!(!full("(?x) a (?-x) b", "a b\n"));
}

#[test]
fn refused_inserts_leave_the_map_unchanged() {
    let mut map = DTypePolicyMap::with_default(Float32);
    map.insert("a", BFloat16).unwrap();
    assert!(matches!(
        map.insert("a", Float16),
        Err(Error::PolicyMapDuplicateKey { ref key, existing: BFloat16 }) if key == "a"
    ));
    assert!(matches!(
        map.insert("b(", Float16),
        Err(Error::PolicyMapInvalidKey { .. })
    ));
    assert!(matches!(
        map.insert("c", "mixed_fp16"),
        Err(Error::ParsePolicy(_))
    ));
    assert_eq!(map.iter().collect::<Vec<_>>(), [("a", BFloat16)]);

    let err = map.try_extend([("x", "float16"), ("y", "float32"), ("a", "float16")]);
    assert!(matches!(err, Err(Error::PolicyMapDuplicateKey { .. })));
    assert_eq!(map.iter().collect::<Vec<_>>(), [("a", BFloat16)]);
    map.try_extend([("x", "float16"), ("y.*", "float32")])
        .unwrap();
    assert_eq!(map.len(), 3);
}

#[test]
fn remove_compares_keys_as_strings() {
    let mut map = DTypePolicyMap::with_default(Float32);
    map.try_extend([("a.*", BFloat16), ("b", Float16), ("c", MixedBFloat16)])
        .unwrap();
    assert_eq!(map.remove("abc"), None);
    assert_eq!(map.remove("a.*"), Some(BFloat16));
    assert_eq!(map.get("abc").unwrap(), Float32);
    assert_eq!(map.remove("a.*"), None);
    assert_eq!(map.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["b", "c"]);
    // The key is free again.
    map.insert("b", BFloat16).unwrap_err();
    map.remove("b");
    map.insert("b", BFloat16).unwrap();
    assert_eq!(map.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["c", "b"]);
}

#[test]
fn display_and_debug_list_keys_in_order() {
    let mut map = DTypePolicyMap::with_default(Float32);
    assert_eq!(
        map.to_string(),
        "<DTypePolicyMap default_policy=float32, mapping=[]>"
    );
    map.try_extend([("head", Float32), ("body/.*", MixedBFloat16)])
        .unwrap();
    assert_eq!(
        map.to_string(),
        r#"<DTypePolicyMap default_policy=float32, mapping=[("head", float32), ("body/.*", mixed_bfloat16)]>"#
    );
    assert_eq!(
        format!("{map:?}"),
        r#"DTypePolicyMap { default_policy: Float32, policy_map: {"head": Float32, "body/.*": MixedBFloat16} }"#
    );
    let mut rest = map.iter();
    rest.next();
    assert_eq!(format!("{rest:?}"), r#"[("body/.*", MixedBFloat16)]"#);
}

#[test]
fn equality_ignores_order_but_not_default_or_policies() {
    let a = {
        let mut m = DTypePolicyMap::with_default(Float32);
        m.try_extend([("x", Float16), ("y", BFloat16)]).unwrap();
        m
    };
    let mut b = DTypePolicyMap::with_default(Float32);
    b.try_extend([("y", BFloat16), ("x", Float16)]).unwrap();
    assert_eq!(a, b);
    b.set_default_policy(Float16);
    assert_ne!(a, b);
    b.set_default_policy(Float32);
    b.remove("x");
    assert_ne!(a, b);
    b.insert("x", BFloat16).unwrap();
    assert_ne!(a, b);
    b.remove("x");
    b.insert("z", Float16).unwrap();
    assert_ne!(a, b);
}

#[test]
fn iter_is_exact_size_and_double_ended() {
    let mut map = DTypePolicyMap::with_default(Float32);
    map.try_extend([("a", Float16), ("b", BFloat16), ("c", Float32)])
        .unwrap();
    let it = map.iter();
    assert_eq!(it.len(), 3);
    assert_eq!(it.rev().map(|(k, _)| k).collect::<String>(), "cba");
    assert_eq!((&map).into_iter().count(), 3);
}

#[test]
fn maps_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync + 'static>(_: &T) {}
    let mut map = DTypePolicyMap::with_default(Float32);
    map.insert("body/.*", MixedBFloat16).unwrap();
    shareable(&map);
    let got = std::thread::scope(|s| s.spawn(|| map.get("body/3")).join().unwrap()).unwrap();
    assert_eq!(got, MixedBFloat16);
}
