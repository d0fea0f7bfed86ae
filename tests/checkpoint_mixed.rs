//! Checkpoints of models of several policies (issue 11): each variable stored in its own
//! variable type, each layer's policy recorded as Keras's `DTypePolicyMap` JSON, strict loading
//! that names the layer whose policy differs, converting loading, `inspect` per layer, Python's
//! safetensors reading the per-variable dtypes, and `save` refusing what `read` would.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mixprec::io::checkpoint::{self, CheckpointMeta};
use mixprec::module::ParamVisitor;
use mixprec::optimizers::{Adam, AutoOptimizer};
use mixprec::param::Param;
use mixprec::prelude::*;
use mixprec::train::{fit, FitOptions};
use mixprec::DTypePolicyMap;
use serde_json::Value;

#[derive(Debug, Clone, Module)]
struct Net<P: Policy> {
    hidden: Dense<P>,
    head: Dense<F32>,
}

impl<P: Policy> Net<P> {
    fn new() -> Self {
        Net {
            hidden: DenseConfig::new(16)
                .seed(1)
                .activation(Activation::Relu)
                .init(64)
                .unwrap(),
            head: DenseConfig::new(10).seed(2).init(16).unwrap(),
        }
    }
}

/// A model in four variable types: bfloat16, float16, float32 (mixed), float64.
type FourTypes = (Dense<Bf16>, Dense<F16>, Dense<MixedBf16>, Dense<F64>);

fn four_types() -> FourTypes {
    (
        DenseConfig::new(6).seed(1).init(5).unwrap(),
        DenseConfig::new(4).seed(2).init(6).unwrap(),
        DenseConfig::new(3).seed(3).init(4).unwrap(),
        DenseConfig::new(2).seed(4).init(3).unwrap(),
    )
}

fn trained_net() -> Net<MixedBf16> {
    let (train, _) = mixprec::io::digits()
        .unwrap()
        .shuffle_split(0.5, 0)
        .unwrap();
    let mut net = Net::<MixedBf16>::new();
    let options = FitOptions {
        epochs: 1,
        batch_size: 64,
        ..FitOptions::default()
    };
    fit(&mut net, &mut Adam::new(1e-3), &train, &options).unwrap();
    net
}

fn save(dir: &Path, name: &str, model: &impl Module, policy: DTypePolicy) -> PathBuf {
    let path = dir.join(name);
    checkpoint::save(model, &path, &CheckpointMeta::new(policy)).unwrap();
    path
}

/// The file's header as JSON, and where its data starts.
fn header(bytes: &[u8]) -> (Value, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    (serde_json::from_slice(&bytes[8..8 + n]).unwrap(), 8 + n)
}

/// Rewrites the file with `edit` applied to its `__metadata__`, keeping the tensors.
fn edit_metadata(path: &Path, edit: impl FnOnce(&mut serde_json::Map<String, Value>)) {
    let bytes = std::fs::read(path).unwrap();
    let (mut h, start) = header(&bytes);
    edit(h["__metadata__"].as_object_mut().unwrap());
    let mut text = serde_json::to_vec(&h).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&bytes[start..]);
    std::fs::write(path, out).unwrap();
}

fn weights_bits<M: Module>(m: &M) -> Vec<Vec<u64>> {
    m.get_weights()
        .into_iter()
        .map(|w| w.as_slice().iter().map(|v| v.to_bits()).collect())
        .collect()
}

#[test]
fn a_bf16_body_with_an_f32_head_round_trips_exactly_and_records_each_layer() {
    let dir = tempfile::tempdir().unwrap();
    let net = trained_net();
    let path = save(
        dir.path(),
        "net.safetensors",
        &net,
        DTypePolicy::MixedBFloat16,
    );
    let ckpt = checkpoint::read(&path).unwrap();

    let mut want = DTypePolicyMap::with_default(DTypePolicy::MixedBFloat16);
    want.insert("hidden", "mixed_bfloat16").unwrap();
    want.insert("head", "float32").unwrap();
    assert_eq!(ckpt.meta().layer_policies, want);
    assert_eq!(
        ckpt.layers(),
        [
            ("hidden".to_string(), DTypePolicy::MixedBFloat16),
            ("head".to_string(), DTypePolicy::Float32)
        ]
    );

    let mut back = Net::<MixedBf16>::new();
    checkpoint::load_into(&mut back, &ckpt).unwrap();
    assert_eq!(weights_bits(&back), weights_bits(&net));
    let x: Tensor<bf16> = mixprec::io::digits().unwrap().x().cast();
    assert_eq!(
        back.infer(&x).unwrap().as_slice(),
        net.infer(&x).unwrap().as_slice(),
        "the reloaded model predicts bit for bit"
    );
}

#[test]
fn a_layer_of_another_policy_is_refused_by_name_or_converted_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::<MixedBf16>::new();
    let path = save(
        dir.path(),
        "net.safetensors",
        &net,
        DTypePolicy::MixedBFloat16,
    );
    let ckpt = checkpoint::read(&path).unwrap();

    // The generic part in another policy: the error names that layer.
    let mut other = Net::<F32>::new();
    let before = weights_bits(&other);
    let err = checkpoint::load_into(&mut other, &ckpt).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint {}: layer \"hidden\" was saved in policy \"mixed_bfloat16\" but the model's layer \"hidden\" is \"float32\" (build that layer in mixed_bfloat16, or load with checkpoint::load_into_converting to cast its variables); nothing was loaded",
            path.display()
        )
    );
    assert!(matches!(err, Error::LayerPolicyMismatch { ref layer, .. } if layer == "hidden"));
    assert_eq!(weights_bits(&other), before, "nothing was loaded");

    // The head alone differs: a uniform bfloat16 tuple of the same shapes.
    let mut uniform = (
        Dense::<MixedBf16>::new(64, 16).with_activation(Activation::Relu),
        Dense::<MixedBf16>::new(16, 10),
    );
    let path2 = dir.path().join("tuple.safetensors");
    let tuple = (net.hidden.clone(), net.head.clone());
    checkpoint::save(
        &tuple,
        &path2,
        &CheckpointMeta::new(DTypePolicy::MixedBFloat16),
    )
    .unwrap();
    let err = checkpoint::load_into(&mut uniform, &checkpoint::read(&path2).unwrap()).unwrap_err();
    assert!(
        err.to_string()
            .contains(r#"layer "1" was saved in policy "float32" but the model's layer "1" is "mixed_bfloat16""#),
        "{err}"
    );

    // Converting: the f32 variables cast into the model's (here: the same) variable types.
    checkpoint::load_into_converting(&mut other, &ckpt).unwrap();
    assert_eq!(weights_bits(&other), weights_bits(&net));
    let mut pure = Net::<Bf16>::new();
    checkpoint::load_into_converting(&mut pure, &ckpt).unwrap();
    let rounded: Vec<f64> = net
        .hidden
        .kernel()
        .as_slice()
        .iter()
        .map(|v| f64::from(bf16::from_f32(*v).to_f32()))
        .collect();
    assert_eq!(pure.get_weights()[0].as_slice(), &rounded[..]);
}

#[test]
fn each_variable_is_stored_in_its_own_type() {
    let dir = tempfile::tempdir().unwrap();
    let model = four_types();
    let path = save(
        dir.path(),
        "four.safetensors",
        &model,
        DTypePolicy::BFloat16,
    );
    let (h, _) = header(&std::fs::read(&path).unwrap());
    for (layer, dtype) in [("0", "BF16"), ("1", "F16"), ("2", "F32"), ("3", "F64")] {
        for var in ["kernel", "bias"] {
            assert_eq!(h[format!("{layer}.{var}")]["dtype"], dtype, "{layer}.{var}");
        }
    }
    let map: Value = serde_json::from_str(
        h["__metadata__"]["mixprec.layer_policies"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let policy = |name: &str| {
        serde_json::json!({"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": name}, "registered_name": null})
    };
    assert_eq!(
        map,
        serde_json::json!({"module": "keras.dtype_policies", "class_name": "DTypePolicyMap",
            "config": {"default_policy": policy("bfloat16"), "policy_map": {
                "0": policy("bfloat16"), "1": policy("float16"),
                "2": policy("mixed_bfloat16"), "3": policy("float64")}},
            "registered_name": null})
    );
    let mut back = four_types();
    back.0 = DenseConfig::new(6).seed(9).init(5).unwrap();
    checkpoint::load_into(&mut back, &checkpoint::read(&path).unwrap()).unwrap();
    assert_eq!(weights_bits(&back), weights_bits(&model));
}

#[test]
fn inspect_shows_the_policy_of_each_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = save(
        dir.path(),
        "net.safetensors",
        &Net::<MixedBf16>::new(),
        DTypePolicy::MixedBFloat16,
    );
    let shown = checkpoint::inspect(&path).unwrap().to_string();
    assert!(
        shown.contains(
            "layers        2 (policy per layer)\n  hidden  mixed_bfloat16 (compute bfloat16, variables float32)\n  head    float32 (compute float32, variables float32)\n"
        ),
        "{shown}"
    );
    let uniform = vec![Dense::<F16>::new(3, 2), Dense::<F16>::new(2, 2)];
    let path = save(dir.path(), "u.safetensors", &uniform, DTypePolicy::Float16);
    let shown = checkpoint::inspect(&path).unwrap().to_string();
    assert!(shown.contains("layers        2 (all float16)\n"), "{shown}");
}

#[test]
fn optimizer_state_of_a_mixed_model_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let (train, _) = mixprec::io::digits()
        .unwrap()
        .shuffle_split(0.5, 0)
        .unwrap();
    let options = FitOptions {
        epochs: 1,
        batch_size: 64,
        ..FitOptions::default()
    };
    // A float16 layer among float32 ones: scaled, so the loss scale is saved too.
    let mut model = (Dense::<F32>::new(64, 16), Dense::<MixedF16>::new(16, 10));
    let mut opt = AutoOptimizer::for_model(&model, Adam::new(1e-3));
    fit(&mut model, &mut opt, &train, &options).unwrap();
    let path = dir.path().join("resume.safetensors");
    let meta = CheckpointMeta::new(DTypePolicy::Float32);
    checkpoint::save_training(&model, &opt.export_state(), &path, &meta).unwrap();
    let ckpt = checkpoint::read(&path).unwrap();
    assert!(ckpt.meta().loss_scale.is_some());
    assert_eq!(
        ckpt.meta().layer_policies.get("1").unwrap(),
        DTypePolicy::MixedFloat16
    );

    let mut again = (Dense::<F32>::new(64, 16), Dense::<MixedF16>::new(16, 10));
    checkpoint::load_into(&mut again, &ckpt).unwrap();
    let mut opt2 = AutoOptimizer::for_model(&again, Adam::new(1e-3));
    opt2.import_state(checkpoint::optimizer_state(&again, &ckpt).unwrap())
        .unwrap();
    fit(&mut model, &mut opt, &train, &options).unwrap();
    fit(&mut again, &mut opt2, &train, &options).unwrap();
    assert_eq!(
        weights_bits(&again),
        weights_bits(&model),
        "resumed exactly"
    );
}

/// A hand-written module whose one layer path holds variables of two policies.
struct TwoPolicyLayer {
    a: Param<F32>,
    b: Param<Bf16>,
}

impl Module for TwoPolicyLayer {
    type NeedsLossScale = typenum::B0;
    type At<Q: Policy> = TwoPolicyLayer;
    fn visit_params<V: ParamVisitor>(&self, prefix: &str, visitor: &mut V) {
        visitor.visit(&format!("{prefix}layer.a"), &self.a);
        visitor.visit(&format!("{prefix}layer.b"), &self.b);
    }
    fn visit_params_mut<V: mixprec::module::ParamVisitorMut>(&mut self, visitor: &mut V) {
        visitor.visit(&mut self.a);
        visitor.visit(&mut self.b);
    }
    fn to_policy<Q: Policy>(&self) -> TwoPolicyLayer {
        TwoPolicyLayer {
            a: self.a.clone(),
            b: self.b.clone(),
        }
    }
}

#[test]
fn save_refuses_what_the_map_cannot_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.safetensors");
    let two = TwoPolicyLayer {
        a: Param::new(Tensor::from_vec(vec![1], vec![1.0f32]).unwrap()),
        b: Param::new(Tensor::from_vec(vec![1], vec![bf16::ONE]).unwrap()),
    };
    let err =
        checkpoint::save(&two, &path, &CheckpointMeta::new(DTypePolicy::Float32)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("refusing to save {}: layer \"layer\" holds variables in policies float32 and bfloat16 (expected one policy per layer (its variables' names share the layer path)); nothing was written", path.display())
    );
    // The metadata's policy must be one of the layers'.
    let err = checkpoint::save(
        &Net::<MixedBf16>::new(),
        &path,
        &CheckpointMeta::new(DTypePolicy::Float64),
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(
            r#"metadata policy float64, but the model's layers are "hidden": mixed_bfloat16, "head": float32"#
        ),
        "{err}"
    );
    // A uniform model keeps the plain mismatch error.
    let err = checkpoint::save(
        &vec![Dense::<F16>::new(2, 2)],
        &path,
        &CheckpointMeta::new(DTypePolicy::Float32),
    )
    .unwrap_err();
    assert!(
        matches!(err, Error::CheckpointPolicyMismatch { .. }),
        "{err}"
    );
    assert!(!path.exists(), "nothing written");
}

#[test]
fn read_refuses_a_layer_map_that_contradicts_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let net = Net::<MixedBf16>::new();
    let good = save(
        dir.path(),
        "net.safetensors",
        &net,
        DTypePolicy::MixedBFloat16,
    );
    let original = std::fs::read(&good).unwrap();
    let map_key = "mixprec.layer_policies";
    let reset = || std::fs::write(&good, &original).unwrap();
    let err = |path: &Path| checkpoint::read(path).unwrap_err().to_string();

    // A head recorded as bfloat16 while its tensors are float32.
    let mut m = net_map();
    m.remove("head");
    m.insert("head", "bfloat16").unwrap();
    edit_metadata(&good, |md| {
        md.insert(map_key.into(), m.to_keras_json().into());
    });
    assert!(
        err(&good).contains(r#"is stored as float32, but its layer "head" has policy "bfloat16", whose variables are bfloat16"#),
        "{}",
        err(&good)
    );

    // A default that is not mixprec.policy.
    reset();
    let mut m = net_map();
    m.set_default_policy(DTypePolicy::Float16);
    edit_metadata(&good, |md| {
        md.insert(map_key.into(), m.to_keras_json().into());
    });
    assert!(
        err(&good).contains(
            "expected a Keras DTypePolicyMap JSON config whose default_policy is mixprec.policy"
        ),
        "{}",
        err(&good)
    );

    // Two regex keys for one layer, and no exact key.
    reset();
    let mut m = DTypePolicyMap::with_default(DTypePolicy::MixedBFloat16);
    m.insert("h.*", "mixed_bfloat16").unwrap();
    m.insert("hid.*", "mixed_bfloat16").unwrap();
    m.insert("head", "float32").unwrap();
    edit_metadata(&good, |md| {
        md.insert(map_key.into(), m.to_keras_json().into());
    });
    assert!(
        err(&good).contains("keys that match each layer at most once"),
        "{}",
        err(&good)
    );

    // Not JSON.
    reset();
    edit_metadata(&good, |md| {
        md.insert(map_key.into(), "{".into());
    });
    assert!(
        err(&good).contains(r#"metadata key "mixprec.layer_policies""#),
        "{}",
        err(&good)
    );

    // A file from before per-layer policies (no map): every layer has mixprec.policy.
    reset();
    let uniform = vec![Dense::<MixedBf16>::new(3, 2)];
    let old = save(
        dir.path(),
        "old.safetensors",
        &uniform,
        DTypePolicy::MixedBFloat16,
    );
    edit_metadata(&old, |md| {
        md.remove(map_key);
    });
    let ckpt = checkpoint::read(&old).unwrap();
    assert_eq!(
        ckpt.layers(),
        [("0".to_string(), DTypePolicy::MixedBFloat16)]
    );
    let mut back = vec![Dense::<MixedBf16>::new(3, 2)];
    checkpoint::load_into(&mut back, &ckpt).unwrap();
    assert_eq!(weights_bits(&back), weights_bits(&uniform));
}

fn net_map() -> DTypePolicyMap {
    let mut m = DTypePolicyMap::with_default(DTypePolicy::MixedBFloat16);
    m.insert("hidden", "mixed_bfloat16").unwrap();
    m.insert("head", "float32").unwrap();
    m
}

/// Python's safetensors reads every variable in its own dtype with the same bits, and the
/// per-layer map is Keras's JSON. numpy has no bfloat16, so the script reads each tensor's raw
/// bytes through the header's offsets and `safe_open` the others. Runs whenever python3 has
/// safetensors and numpy; under CI (`CI=true`, which installs them) it must run.
#[test]
fn python_reads_each_variable_in_its_own_dtype_and_the_layer_map() {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .output();
    if !matches!(&probe, Ok(o) if o.status.success()) {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI must have python3 with safetensors and numpy (.ci/run installs them)"
        );
        eprintln!("skipped: python3 with the safetensors and numpy modules is not available");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let model = four_types();
    let path = save(
        dir.path(),
        "four.safetensors",
        &model,
        DTypePolicy::BFloat16,
    );
    let script = r#"
import sys, json, struct
import numpy as np
from safetensors import safe_open
path = sys.argv[1]
raw = open(path, 'rb').read()
n = struct.unpack('<Q', raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
meta = header.pop('__metadata__')
u = {'BF16': '<u2', 'F16': '<u2', 'F32': '<u4', 'F64': '<u8'}
out = {}
numpy_ok = {}
with safe_open(path, framework='numpy') as f:
    for k in f.keys():
        if header[k]['dtype'] != 'BF16':
            numpy_ok[k] = f.get_tensor(k)
for k, info in header.items():
    a, b = info['data_offsets']
    bits = np.frombuffer(data[a:b], dtype=u[info['dtype']])
    if k in numpy_ok:
        assert (numpy_ok[k].view(u[info['dtype']]).flatten() == bits).all(), k
        assert list(numpy_ok[k].shape) == info['shape'], k
    out[k] = [info['dtype'], info['shape'], [int(x) for x in bits]]
m = json.loads(meta['mixprec.layer_policies'])
assert m['class_name'] == 'DTypePolicyMap', m
layers = {k: v['config']['name'] for k, v in m['config']['policy_map'].items()}
print(json.dumps({'tensors': out, 'layers': layers,
                  'default': m['config']['default_policy']['config']['name']}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();

    struct Bits(HashMap<String, Value>);
    impl ParamVisitor for Bits {
        fn visit<P: Policy>(&mut self, name: &str, p: &Param<P>) {
            let (dtype, bits): (&str, fn(f64) -> u64) = match P::VARIABLE_DTYPE {
                mixprec::DType::BFloat16 => ("BF16", |v| u64::from(bf16::from_f64(v).to_bits())),
                mixprec::DType::Float16 => ("F16", |v| u64::from(f16::from_f64(v).to_bits())),
                mixprec::DType::Float32 => ("F32", |v| u64::from((v as f32).to_bits())),
                mixprec::DType::Float64 => ("F64", f64::to_bits),
            };
            // Each value is exact in its own type, so the round trip through f64 is too.
            let bits: Vec<u64> = p
                .value()
                .as_slice()
                .iter()
                .map(|v| bits(v.as_f64()))
                .collect();
            self.0.insert(
                name.to_string(),
                serde_json::json!([dtype, p.shape(), bits]),
            );
        }
    }
    let mut want = Bits(HashMap::new());
    model.visit_params("", &mut want);
    let want: serde_json::Map<String, Value> = want.0.into_iter().collect();
    assert_eq!(got["tensors"], Value::Object(want));
    assert_eq!(
        got["layers"],
        serde_json::json!({"0": "bfloat16", "1": "float16", "2": "mixed_bfloat16", "3": "float64"})
    );
    assert_eq!(got["default"], "bfloat16");
}
