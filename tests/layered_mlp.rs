//! `LayeredMlp` (issue 11, item 5): an MLP whose layers' policies come from a `DTypePolicyMap` at
//! run time computes bit for bit what the typed tuple of the same layers computes (forward,
//! backward, an Adam step), trains exactly as the uniform `Vec<Dense<P>>` when the map is
//! uniform, and asks for loss scaling exactly when one of its layers computes in float16.

use mixprec::models::{LayeredMlp, MlpSpec};
use mixprec::optimizers::{AutoOptimizer, Optimizer};
mod common;

use common::{
    assert_scales_exactly_when, assert_trains_alike, grads, policy_map as map,
    ramp_values as values,
};
use mixprec::prelude::*;

#[test]
fn matches_the_typed_tuple_bit_for_bit_forward_backward_and_adam() {
    let spec = MlpSpec::new(5, vec![7], 3);
    let seed = 11;
    let mut layered = spec
        .build_layered(&map("mixed_bfloat16", &[("1", "float32")]), seed)
        .unwrap();
    // MlpSpec::build's layers: layer i from seed + i, ReLU hidden, linear output.
    let mut typed = (
        DenseConfig::new(7)
            .activation(Activation::Relu)
            .seed(seed)
            .init::<MixedBf16>(5)
            .unwrap(),
        DenseConfig::new(3).seed(seed + 1).init::<F32>(7).unwrap(),
    );
    assert_eq!(layered.param_names(), typed.param_names());
    assert_eq!(
        layered.variables(),
        typed.variables(),
        "names, shapes, policies"
    );
    assert_eq!(layered.get_weights(), typed.get_weights());

    let x = Tensor::from_vec(vec![4, 5], values(20, 1)).unwrap();
    let dy = Tensor::from_vec(vec![4, 3], values(12, 2)).unwrap();
    // The first layer casts the f32 data to bf16, as the tuple's caller does here.
    assert_eq!(layered.infer(&x).unwrap(), typed.infer(&x.cast()).unwrap());
    let y = layered.train_forward(x.clone()).unwrap();
    assert_eq!(y, typed.train_forward(x.cast()).unwrap());
    let dx = layered.backward(dy.clone(), true).unwrap().unwrap();
    let dx_typed: Tensor<bf16> = typed.backward(dy, true).unwrap().unwrap();
    // The data's gradient comes back in f32: the bf16 gradient widened (exact).
    assert_eq!(dx, dx_typed.cast::<f32>());
    assert_eq!(grads(&layered), grads(&typed));
    assert_eq!(layered.saved_bytes(), 0);

    let mut adam = Adam::new(1e-2);
    let mut adam_typed = Adam::new(1e-2);
    let applied = mixprec::optimizers::StepOutcome::Applied;
    assert_eq!(adam.step(&mut layered).unwrap(), applied);
    assert_eq!(adam_typed.step(&mut typed).unwrap(), applied);
    assert_eq!(layered.get_weights(), typed.get_weights());
    assert_ne!(
        layered.get_weights(),
        spec.build::<F32>(seed).unwrap().get_weights()
    );
}

#[test]
fn auto_optimizer_scales_exactly_when_a_layer_computes_in_float16() {
    let spec = MlpSpec::new(6, vec![8, 8], 2);
    let cases = [
        (map("mixed_bfloat16", &[("2", "float32")]), false),
        (map("float32", &[("1", "mixed_float16")]), true),
        (map("bfloat16", &[("[01]", "float16")]), true),
        (map("float64", &[("0", "float32")]), false),
    ];
    assert_scales_exactly_when(&cases, |m| -> LayeredMlp {
        spec.build_layered(m, 0).unwrap()
    });
    // The type alone cannot tell: it may hold a float16 layer.
    assert!(AutoOptimizer::new::<LayeredMlp>(Adam::new(1e-3)).scales_loss());
    // A stack ORs its parts' run-time answers.
    let bf16_pair = spec
        .build_layered(&map("mixed_bfloat16", &[("2", "float32")]), 0)
        .unwrap();
    let f16_one = spec
        .build_layered(&map("float32", &[("1", "mixed_float16")]), 0)
        .unwrap();
    assert!(!vec![bf16_pair.clone()].needs_loss_scale());
    assert!((bf16_pair, f16_one).needs_loss_scale());
}

#[test]
fn a_uniform_map_trains_exactly_as_the_uniform_vec() {
    let spec = MlpSpec::new(64, vec![16], 10);
    let mut layered = spec.build_layered(&map("mixed_bfloat16", &[]), 3).unwrap();
    let mut typed = spec.build::<MixedBf16>(3).unwrap();
    // The run-time answer: no float16 layer, so the optimizer is plain Adam, as for the Vec.
    assert_trains_alike(&mut layered, &mut typed, 1e-3, 2, 0.5);
}

#[test]
fn map_errors_name_the_layer_or_the_key() {
    let spec = MlpSpec::new(4, vec![3, 3], 2);
    let err = spec
        .build_layered(&map("float32", &[("7", "bfloat16")]), 0)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(r#"key "7" matches no layer of the mlp 4-3-3-2 (layers 0 to 2)"#),
        "{err}"
    );
    let err = spec
        .build_layered(
            &map("float32", &[("[01]", "bfloat16"), ("[12]", "float16")]),
            0,
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            r#"path "1" matches multiple dtype policy specification keys: ["[01]", "[12]"]"#
        ),
        "{err}"
    );
    let m = map("float32", &[("[12]", "bfloat16")]);
    assert_eq!(spec.uniform_policy(&m).unwrap(), None);
    assert_eq!(
        spec.layer_policies(&m).unwrap(),
        [
            DTypePolicy::Float32,
            DTypePolicy::BFloat16,
            DTypePolicy::BFloat16
        ]
    );
    let all = map("float32", &[(".*", "bfloat16")]);
    assert_eq!(
        spec.uniform_policy(&all).unwrap(),
        Some(DTypePolicy::BFloat16)
    );
}

#[test]
fn to_policy_gives_the_uniform_vec_with_the_same_names() {
    let spec = MlpSpec::new(4, vec![3], 2);
    let layered = spec
        .build_layered(&map("mixed_float16", &[("1", "float32")]), 5)
        .unwrap();
    let uniform: Vec<Dense<F32>> = layered.to_policy();
    assert_eq!(uniform.param_names(), layered.param_names());
    assert_eq!(uniform.get_weights(), layered.get_weights());
    assert!(uniform
        .variables()
        .iter()
        .all(|v| v.policy == DTypePolicy::Float32));
}

/// A derived struct ORs its fields' run-time answers: its own `Dense<P>` by `P`, the
/// `LayeredMlp` by the layers it holds.
#[derive(Debug, Clone, Module)]
#[module(no_layer)]
struct Wrapper<P: Policy> {
    extra: Dense<P>,
    inner: LayeredMlp,
}

#[test]
fn a_derived_struct_answers_from_its_fields_at_run_time() {
    let spec = MlpSpec::new(4, vec![3], 2);
    let bf16_f32 = spec
        .build_layered(&map("mixed_bfloat16", &[("1", "float32")]), 0)
        .unwrap();
    let f16_f32 = spec
        .build_layered(&map("mixed_float16", &[("1", "float32")]), 0)
        .unwrap();
    let w = |inner: &LayeredMlp| Wrapper::<F32> {
        extra: Dense::new(2, 2),
        inner: inner.clone(),
    };
    assert!(!w(&bf16_f32).needs_loss_scale());
    assert!(!AutoOptimizer::for_model(&w(&bf16_f32), Adam::new(1e-3)).scales_loss());
    assert!(w(&f16_f32).needs_loss_scale());
    let f16_extra = Wrapper::<MixedF16> {
        extra: Dense::new(2, 2),
        inner: bf16_f32,
    };
    assert!(f16_extra.needs_loss_scale());
    assert_eq!(f16_extra.param_names()[2], "inner.0.kernel");
}
