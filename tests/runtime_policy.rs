//! The run-time `DTypePolicy`: Keras's six names, exact parsing, the JSON config, and the bridge
//! from a run-time value to the marker type (`visit`, `with_policy!`, `AnyDense`).

use std::any::TypeId;

use mixprec::layers::FamilyVisitor;
use mixprec::layers::{AnyDense, Dense, DenseFamily};
use mixprec::policy::{Bf16, MixedBf16, MixedF16, Policy, F16, F32, F64};
use mixprec::{DTypePolicy, Error, ParsePolicyError, PolicyVisitor, Tensor};

const NAMES: [&str; 6] = [
    "float32",
    "float64",
    "float16",
    "bfloat16",
    "mixed_float16",
    "mixed_bfloat16",
];

const EXPECTED_LIST: &str =
    "(expected one of: float32, float64, float16, bfloat16, mixed_float16, mixed_bfloat16)";

/// The marker type of each policy, in `DTypePolicy::ALL`'s order.
fn marker_ids() -> [TypeId; 6] {
    [
        TypeId::of::<F32>(),
        TypeId::of::<F64>(),
        TypeId::of::<F16>(),
        TypeId::of::<Bf16>(),
        TypeId::of::<MixedF16>(),
        TypeId::of::<MixedBf16>(),
    ]
}

fn rejected() -> Vec<String> {
    let mut v: Vec<String> = [
        "invalid_name",
        "",
        "@mixed_float16!",
        "mixed_float15",
        "Float32",
        "fp16",
        "half",
        "float",
        "mixed_float32",
        // Near misses a lenient parser would accept.
        " float32",
        "float32 ",
        "MIXED_BFLOAT16",
        "mixed-bfloat16",
        "float32\0",
    ]
    .map(String::from)
    .to_vec();
    v.push("mixed_float16".repeat(100));
    v
}

#[test]
fn all_names_are_kerass_six_in_order() {
    let names: Vec<&str> = DTypePolicy::ALL.iter().map(|p| p.name()).collect();
    assert_eq!(names, NAMES);
}

#[test]
fn every_name_round_trips_through_parse_display_and_name() {
    for name in NAMES {
        let p: DTypePolicy = name.parse().unwrap();
        assert_eq!(p.name(), name);
        assert_eq!(p.to_string(), name);
        assert_eq!(p.to_string().parse::<DTypePolicy>().unwrap(), p);
    }
}

#[cfg(feature = "serde")]
#[test]
fn every_name_round_trips_through_keras_json() {
    for p in DTypePolicy::ALL {
        let json = p.to_keras_json();
        assert_eq!(DTypePolicy::from_keras_json(&json).unwrap(), p);
        // serde_json directly, both ways.
        let value = serde_json::to_value(p).unwrap();
        assert_eq!(serde_json::from_value::<DTypePolicy>(value).unwrap(), p);
        assert_eq!(serde_json::from_str::<DTypePolicy>(&json).unwrap(), p);
    }
}

#[cfg(feature = "serde")]
#[test]
fn keras_json_has_exactly_kerass_shape() {
    let value: serde_json::Value =
        serde_json::from_str(&DTypePolicy::MixedBFloat16.to_keras_json()).unwrap();
    let expected: serde_json::Value = serde_json::from_str(
        r#"{"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": "mixed_bfloat16"}, "registered_name": null}"#,
    )
    .unwrap();
    assert_eq!(value, expected);
    for p in DTypePolicy::ALL {
        let v = serde_json::to_value(p).unwrap();
        assert_eq!(v["config"]["name"], p.name());
        assert_eq!(v.as_object().unwrap().len(), 4, "{v}");
    }
}

#[cfg(feature = "serde")]
#[test]
fn keras_json_reads_a_plain_name_string() {
    for p in DTypePolicy::ALL {
        let json = format!("\"{}\"", p.name());
        assert_eq!(DTypePolicy::from_keras_json(&json).unwrap(), p);
    }
}

#[cfg(feature = "serde")]
#[test]
fn keras_json_reads_keras_3_0_class_name() {
    let json = r#"{"module": "keras", "class_name": "FloatDTypePolicy",
                   "config": {"name": "float16"}, "registered_name": null}"#;
    assert_eq!(
        DTypePolicy::from_keras_json(json).unwrap(),
        DTypePolicy::Float16
    );
}

#[cfg(feature = "serde")]
#[test]
fn keras_json_rejects_bad_names_and_shapes() {
    for bad in rejected() {
        let config = serde_json::json!({
            "module": "keras", "class_name": "DTypePolicy",
            "config": {"name": bad}, "registered_name": null
        });
        let err = DTypePolicy::from_keras_json(&config.to_string()).unwrap_err();
        assert!(matches!(err, Error::PolicyConfig(_)), "{err}");
        let plain = serde_json::Value::String(bad.clone()).to_string();
        assert!(DTypePolicy::from_keras_json(&plain).is_err(), "{bad:?}");
    }
    for bad in [
        r#"{"module": "keras", "class_name": "Dense", "config": {"name": "float32"}}"#,
        r#"{"module": "keras", "class_name": "DTypePolicy", "config": {}}"#,
        r#"{"module": "keras", "class_name": "DTypePolicy"}"#,
        r#"{"config": {"name": 32}}"#,
        "32",
        "null",
        "[\"float32\"]",
        "{",
        "",
    ] {
        assert!(DTypePolicy::from_keras_json(bad).is_err(), "{bad}");
    }
}

#[cfg(feature = "serde")]
#[test]
fn keras_json_error_names_the_bad_policy() {
    let err = DTypePolicy::from_keras_json("\"mixed_fp16\"").unwrap_err();
    let msg = err.to_string();
    assert!(msg.starts_with("invalid policy config: "), "{msg}");
    assert!(msg.contains(r#"unknown policy "mixed_fp16""#), "{msg}");
}

#[test]
fn parse_rejects_unknown_names() {
    for bad in rejected() {
        let err: ParsePolicyError = bad.parse::<DTypePolicy>().unwrap_err();
        assert_eq!(err.found(), bad, "the error keeps the whole bad string");
        let msg = err.to_string();
        assert!(msg.ends_with(EXPECTED_LIST), "{msg}");
        for name in NAMES {
            assert!(msg.contains(name), "{msg} does not list {name}");
        }
    }
}

#[test]
fn parse_error_message_is_exact() {
    let err = "mixed_float15".parse::<DTypePolicy>().unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"unknown policy "mixed_float15" (expected one of: float32, float64, float16, bfloat16, mixed_float16, mixed_bfloat16)"#
    );
    let err = "".parse::<DTypePolicy>().unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(r#"unknown policy "" {EXPECTED_LIST}"#)
    );
    // Escapes stay escaped: the quoted value is unambiguous.
    let err = "a\"b".parse::<DTypePolicy>().unwrap_err();
    assert!(err.to_string().starts_with(r#"unknown policy "a\"b" "#));
}

#[test]
fn parse_error_quotes_a_long_name_cut_to_one_line() {
    let long = "mixed_float16".repeat(100);
    let msg = long.parse::<DTypePolicy>().unwrap_err().to_string();
    // The first 64 characters are quoted, then an ellipsis; the list of names follows.
    let shown: String = long.chars().take(64).collect();
    assert_eq!(msg, format!("unknown policy \"{shown}…\" {EXPECTED_LIST}"));
}

#[test]
fn parse_error_converts_into_error_with_same_message() {
    let parse_err = "half".parse::<DTypePolicy>().unwrap_err();
    let err: Error = parse_err.clone().into();
    assert!(matches!(&err, Error::ParsePolicy(e) if *e == parse_err));
    assert_eq!(err.to_string(), parse_err.to_string());
}

#[test]
fn dtypes_of_each_policy_match_keras() {
    let expected = [
        ("float32", "float32"),
        ("float64", "float64"),
        ("float16", "float16"),
        ("bfloat16", "bfloat16"),
        ("float16", "float32"),
        ("bfloat16", "float32"),
    ];
    for (p, (compute, variable)) in DTypePolicy::ALL.into_iter().zip(expected) {
        assert_eq!(p.compute_dtype().name(), compute, "{p}");
        assert_eq!(p.variable_dtype().name(), variable, "{p}");
        assert_eq!(p.needs_loss_scale(), compute == "float16", "{p}");
    }
}

struct MarkerOf;

impl PolicyVisitor for MarkerOf {
    type Output = (TypeId, &'static str);
    fn visit<P: Policy>(self) -> Self::Output {
        (TypeId::of::<P>(), P::NAME)
    }
}

#[test]
fn visit_reaches_the_matching_marker_type() {
    for (p, id) in DTypePolicy::ALL.into_iter().zip(marker_ids()) {
        assert_eq!(p.visit(MarkerOf), (id, p.name()));
    }
}

#[test]
fn with_policy_binds_the_matching_marker_type() {
    for (p, id) in DTypePolicy::ALL.into_iter().zip(marker_ids()) {
        let got = mixprec::with_policy!(p, Q => (TypeId::of::<Q>(), Q::NAME));
        assert_eq!(got, (id, p.name()));
    }
}

struct LayerPolicy;

impl FamilyVisitor<DenseFamily> for LayerPolicy {
    type Output = (TypeId, usize);
    fn visit<P: Policy>(self, dense: &Dense<P>) -> Self::Output {
        (
            TypeId::of::<P>(),
            std::mem::size_of_val(dense.kernel().as_slice()),
        )
    }
}

#[test]
fn any_dense_has_the_policy_it_was_built_with() {
    let x = Tensor::from_vec(vec![2, 3], vec![0.5f32, -1.0, 2.0, 0.0, 1.0, -0.25]).unwrap();
    for (p, id) in DTypePolicy::ALL.into_iter().zip(marker_ids()) {
        let dense = AnyDense::with_policy(p, 3, 4).unwrap();
        assert_eq!(dense.policy(), p);
        let bytes = 3 * 4 * p.variable_dtype().size_of(); // the stored kernel
        assert_eq!(dense.visit(LayerPolicy), (id, bytes));
        let y = dense.call_f32(&x).unwrap();
        assert_eq!(y.shape(), &[2, 4]);
        let err = dense
            .call_f32(&Tensor::zeros(vec![2, 5]).unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "shape mismatch in dense input: expected [.., 3], found [2, 5]"
        );
    }
}
