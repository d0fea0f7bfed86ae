//! `LayeredCnn` (issue 12, per-layer policies for the CNN): a CNN whose layers' policies come
//! from a `DTypePolicyMap` at run time computes bit for bit what its typed layers run one by one
//! compute (a bfloat16 body, a float32 head: forward, backward, an Adam step), trains exactly as
//! the typed `Cnn<P>` when the map is uniform, asks for loss scaling exactly when a layer
//! computes in float16, and names a bad key with the layers it could have named.

use mixprec::layers::{Conv2D, MaxPooling2D};
use mixprec::models::{Cnn, CnnSpec, LayeredCnn};
use mixprec::optimizers::{Optimizer, StepOutcome};
mod common;

use common::{
    assert_scales_exactly_when, assert_trains_alike, grads, policy_map as map,
    ramp_values as values,
};
use mixprec::prelude::*;

/// The typed layers of a bf16 body with an f32 head, as `CnnSpec::build` seeds them.
#[derive(Debug, Clone, Module)]
#[module(no_layer)]
struct Parts<P: Policy> {
    conv: Conv2D<P>,
    pool: MaxPooling2D<P>,
    dense: Dense<F32>,
}

#[test]
fn a_bf16_body_with_an_f32_head_matches_its_typed_layers_bit_for_bit() {
    let spec = CnnSpec::new([6, 6, 2], 3);
    let seed = 7;
    let mut layered = spec
        .build_layered(&map("mixed_bfloat16", &[("dense", "float32")]), seed)
        .unwrap();
    let body: Cnn<MixedBf16> = spec.build(seed).unwrap();
    let head: Cnn<F32> = spec.build(seed).unwrap();
    let mut typed = Parts::<MixedBf16> {
        conv: body.conv().clone(),
        pool: MaxPooling2D::new(),
        dense: head.dense().clone(),
    };
    assert_eq!(layered.param_names(), typed.param_names());
    assert_eq!(
        layered.variables(),
        typed.variables(),
        "names, shapes, policies"
    );
    assert_eq!(layered.get_weights(), typed.get_weights());
    assert_eq!(
        layered.policies(),
        [DTypePolicy::MixedBFloat16, DTypePolicy::Float32]
    );

    let x = Tensor::from_vec(vec![4, 72], values(4 * 72, 1)).unwrap();
    let dy = Tensor::from_vec(vec![4, 3], values(12, 2)).unwrap();
    let images = Tensor::from_vec(vec![4, 6, 6, 2], x.as_slice().to_vec())
        .unwrap()
        .cast::<bf16>();
    let h = typed.conv.train_forward(images).unwrap();
    let h = typed.pool.train_forward(h).unwrap();
    let flat = Tensor::from_vec(vec![4, 3 * 3 * 32], h.into_vec()).unwrap();
    // The head casts the bf16 features to its f32 compute type (exact).
    let want = typed.dense.train_forward(flat.cast::<f32>()).unwrap();
    assert_eq!(layered.infer(&x).unwrap(), want);
    assert_eq!(layered.train_forward(x).unwrap(), want);

    let dx = layered.backward(dy.clone(), true).unwrap().unwrap();
    let d = typed.dense.backward(dy, true).unwrap().unwrap();
    // The head's f32 input gradient goes back to the bf16 body, rounded once.
    let d = Tensor::from_vec(vec![4, 3, 3, 32], d.cast::<bf16>().into_vec()).unwrap();
    let d = typed.pool.backward(d, true).unwrap().unwrap();
    let d = typed.conv.backward(d, true).unwrap().unwrap();
    assert_eq!(dx.shape(), &[4, 72]);
    assert_eq!(dx.as_slice(), d.cast::<f32>().as_slice());
    assert_eq!(grads(&layered), grads(&typed));
    assert_eq!(layered.saved_bytes(), 0);

    let (mut adam, mut adam_typed) = (Adam::new(1e-2), Adam::new(1e-2));
    assert_eq!(adam.step(&mut layered).unwrap(), StepOutcome::Applied);
    assert_eq!(adam_typed.step(&mut typed).unwrap(), StepOutcome::Applied);
    assert_eq!(layered.get_weights(), typed.get_weights());
    assert_ne!(layered.get_weights(), head.get_weights());
}

#[test]
fn a_uniform_map_trains_exactly_as_the_typed_cnn() {
    let spec = CnnSpec::new([8, 8, 1], 10);
    let mut layered = spec.build_layered(&map("mixed_bfloat16", &[]), 3).unwrap();
    let mut typed = spec.build::<MixedBf16>(3).unwrap();
    assert_trains_alike(&mut layered, &mut typed, 3e-3, 1, 0.7);
    let uniform: Cnn<F32> = layered.to_policy();
    assert_eq!(uniform.param_names(), layered.param_names());
    assert!(uniform
        .variables()
        .iter()
        .all(|v| v.policy == DTypePolicy::Float32));
}

#[test]
fn loss_scaling_is_asked_for_exactly_when_a_layer_computes_in_float16() {
    let spec = CnnSpec::new([4, 4, 1], 2);
    let cases = [
        (map("mixed_bfloat16", &[("dense", "float32")]), false),
        (map("mixed_float16", &[("dense", "float32")]), true),
        (map("float32", &[("conv", "float16")]), true),
        (map("float64", &[("conv|dense", "bfloat16")]), false),
    ];
    assert_scales_exactly_when(&cases, |m| -> LayeredCnn {
        spec.build_layered(m, 0).unwrap()
    });
}

#[test]
fn a_key_that_names_no_layer_is_an_error_naming_the_layers() {
    let spec = CnnSpec::new([4, 4, 1], 2);
    for key in ["pool", "flatten", "head", "0"] {
        let err = spec
            .build_layered(&map("float32", &[(key, "bfloat16")]), 0)
            .unwrap_err()
            .to_string();
        let want = format!("key {key:?} matches no layer of the cnn 4x4x1 conv");
        assert!(err.contains(&want), "{err}");
        assert!(err.contains("(layers conv, dense)"), "{err}");
    }
    let err = spec
        .build_layered(
            &map(
                "float32",
                &[("conv|dense", "bfloat16"), ("dense|x", "float16")],
            ),
            0,
        )
        .unwrap_err()
        .to_string();
    assert!(err.starts_with(r#"path "dense" matches multiple"#), "{err}");
    let m = map("float32", &[("conv", "bfloat16")]);
    assert_eq!(spec.uniform_policy(&m).unwrap(), None);
    let all = map("float32", &[(".*", "mixed_float16")]);
    assert_eq!(
        spec.uniform_policy(&all).unwrap(),
        Some(DTypePolicy::MixedFloat16)
    );
}
