//! Safetensors checkpoints: round trips in every policy, casts between policies, the byte layout
//! (parsed here by hand, standing in for Python's loader), atomic writes, and one error per kind
//! of bad file.
#![cfg(feature = "serde")]

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use mixprec::io::checkpoint::{self, CheckpointMeta, LossScaleState};
use mixprec::policy::{Bf16, MixedBf16, MixedF16, Policy, F16, F32, F64};
use mixprec::prelude::*;
use mixprec::DTypePolicyMap;
use serde_json::Value;

fn mlp<P: Policy>(seed: u64) -> Vec<Dense<P>> {
    vec![
        DenseConfig::new(4).seed(seed).init::<P>(5).unwrap(),
        DenseConfig::new(3).seed(seed + 1).init::<P>(4).unwrap(),
    ]
}

/// Non-zero biases too, so a bias that is not loaded shows.
fn trained<P: Policy>(seed: u64) -> Vec<Dense<P>> {
    let mut m = mlp::<P>(seed);
    let mut k = 0.0f32;
    let mut w = m.get_weights();
    for t in &mut w {
        let shape = t.shape().to_vec();
        let moved: Vec<f64> = t
            .as_slice()
            .iter()
            .map(|x| {
                k += 0.37;
                // The sum as the variable type would form it: added there and rounded.
                let d = P::Variable::from_f32_rne(k.sin() / 8.0);
                (P::Variable::from_f64_rne(*x) + d).as_f64()
            })
            .collect();
        *t = Tensor::from_vec(shape, moved).unwrap();
    }
    m.set_weights(&w).unwrap();
    m
}

fn meta<P: Policy>() -> CheckpointMeta {
    CheckpointMeta::new(P::RUNTIME)
        .with_architecture(r#"{"layers":[5,4,3],"activation":"linear"}"#)
        .with_iterations(1234)
}

fn save_tmp<P: Policy>(dir: &Path, model: &Vec<Dense<P>>) -> PathBuf {
    let path = dir.join("model.safetensors");
    checkpoint::save(model, &path, &meta::<P>()).unwrap();
    path
}

fn values<P: Policy>(m: &Vec<Dense<P>>) -> Vec<(String, Vec<f64>)> {
    let names = m.param_names();
    let weights = m.get_weights();
    names
        .into_iter()
        .zip(weights)
        .map(|(n, w)| (n, w.into_vec()))
        .collect()
}

fn round_trip<P: Policy>() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained::<P>(1);
    let path = save_tmp(dir.path(), &model);
    let mut fresh = mlp::<P>(99);
    assert_ne!(fresh, model);
    checkpoint::load_into(&mut fresh, &checkpoint::read(&path).unwrap()).unwrap();
    // Bit for bit: compare the stored bytes through f64 (exact widening) and with PartialEq.
    assert_eq!(values(&fresh), values(&model), "{}", P::NAME);
    assert!(fresh == model);
}

#[test]
fn round_trip_is_exact_in_every_policy() {
    round_trip::<F32>();
    round_trip::<F64>();
    round_trip::<F16>();
    round_trip::<Bf16>();
    round_trip::<MixedF16>();
    round_trip::<MixedBf16>();
}

#[test]
fn variables_are_stored_in_the_variable_type() {
    fn stored<P: Policy>() -> Vec<DType> {
        let dir = tempfile::tempdir().unwrap();
        let path = save_tmp(dir.path(), &mlp::<P>(1));
        let c = checkpoint::read(&path).unwrap();
        c.tensors().iter().map(|t| t.dtype()).collect()
    }
    assert_eq!(stored::<MixedF16>(), [DType::Float32; 4]);
    assert_eq!(stored::<MixedBf16>(), [DType::Float32; 4]);
    assert_eq!(stored::<F16>(), [DType::Float16; 4]);
    assert_eq!(stored::<Bf16>(), [DType::BFloat16; 4]);
    assert_eq!(stored::<F64>(), [DType::Float64; 4]);
}

#[test]
fn mixed_float16_checkpoint_loads_into_float32_model_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let model = trained::<MixedF16>(3);
    let path = save_tmp(dir.path(), &model);
    let mut f32_model = mlp::<F32>(50);
    let ckpt = checkpoint::read(&path).unwrap();
    // Strict loading refuses another policy, naming the first layer; converting loads.
    let err = checkpoint::load_into(&mut f32_model, &ckpt).unwrap_err();
    assert!(
        err.to_string().contains(
            r#"layer "0" was saved in policy "mixed_float16" but the model's layer "0" is "float32""#
        ),
        "{err}"
    );
    assert_ne!(
        values(&f32_model),
        values(&model),
        "unchanged after the error"
    );
    checkpoint::load_into_converting(&mut f32_model, &ckpt).unwrap();
    assert_eq!(values(&f32_model), values(&model));
}

#[test]
fn float32_checkpoint_loads_into_bfloat16_rounding_to_nearest_even() {
    let dir = tempfile::tempdir().unwrap();
    // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: ties to even gives 1.0.
    // 1 + 3·2^-8 is halfway between 1 + 2^-7 and 1 + 2^-6: ties to even gives 1 + 2^-6.
    let tie_down = 1.0 + 2f32.powi(-8);
    let tie_up = 1.0 + 3.0 * 2f32.powi(-8);
    let kernel = Tensor::from_vec(vec![1, 3], vec![tie_down, tie_up, 0.1]).unwrap();
    let model = vec![Dense::<F32>::from_weights(kernel, None).unwrap()];
    let path = save_tmp(dir.path(), &model);
    let mut bf = vec![Dense::<Bf16>::new(1, 3).with_bias(false)];
    checkpoint::load_into_converting(&mut bf, &checkpoint::read(&path).unwrap()).unwrap();
    let k = bf[0].kernel().as_slice();
    assert_eq!(k[0], bf16::from_f32(1.0));
    assert_eq!(k[1], bf16::from_f32(1.0 + 2f32.powi(-6)));
    assert_eq!(k[2].to_bits(), 0x3dcd); // 0.1 rounded to nearest: 0.10009765625
}

#[test]
fn metadata_round_trips_with_keras_policy_json() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let meta = meta::<MixedF16>()
        .with_loss_scale(LossScaleState {
            scale: 8192.0,
            good_steps: 17,
        })
        .with_extra("dataset", "digits");
    checkpoint::save(&mlp::<MixedF16>(1), &path, &meta).unwrap();
    let back = checkpoint::read(&path).unwrap();
    // The caller's metadata, plus each layer's policy filled in by `save`.
    let mut want = meta.clone();
    want.layer_policies =
        DTypePolicyMap::try_from_pairs([("0", "mixed_float16"), ("1", "mixed_float16")]).unwrap();
    want.layer_policies
        .set_default_policy(DTypePolicy::MixedFloat16);
    assert_eq!(back.meta(), &want);

    let (header, _) = parse_header(&std::fs::read(&path).unwrap());
    let md = &header["__metadata__"];
    let policy: Value = serde_json::from_str(md["mixprec.policy"].as_str().unwrap()).unwrap();
    assert_eq!(
        policy,
        serde_json::json!({"module": "keras", "class_name": "DTypePolicy",
            "config": {"name": "mixed_float16"}, "registered_name": null})
    );
    let ls: Value = serde_json::from_str(md["mixprec.loss_scale"].as_str().unwrap()).unwrap();
    assert_eq!(ls, serde_json::json!({"scale": 8192.0, "good_steps": 17}));
    assert_eq!(md["mixprec.format"], "1");
    assert_eq!(md["mixprec.iterations"], "1234");
    assert_eq!(
        md["mixprec.architecture"],
        r#"{"layers":[5,4,3],"activation":"linear"}"#
    );
    assert_eq!(md["dataset"], "digits");
}

#[test]
fn save_rejects_metadata_for_another_policy_or_a_reserved_extra_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let err = checkpoint::save(&mlp::<MixedF16>(1), &path, &meta::<F32>()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "checkpoint metadata names policy \"float32\" but the model's policy is \"mixed_float16\""
    );
    let bad = meta::<F32>().with_extra("mixprec.policy", "x");
    let err = checkpoint::save(&mlp::<F32>(1), &path, &bad).unwrap_err();
    assert!(err.to_string().contains("\"mixprec.policy\""), "{err}");
    assert!(!path.exists());
}

#[test]
fn inspect_summarises_tensors_and_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let meta = meta::<MixedF16>().with_loss_scale(LossScaleState {
        scale: 512.0,
        good_steps: 3,
    });
    checkpoint::save(&mlp::<MixedF16>(1), &path, &meta).unwrap();
    let info = checkpoint::inspect(&path).unwrap();
    assert_eq!(info.tensors[0], ("0.bias".into(), DType::Float32, vec![4]));
    assert_eq!(info.tensors.len(), 4);
    let text = info.to_string();
    for want in [
        "policy        mixed_float16 (compute float16, variables float32)",
        "loss scale    512 (3 good steps)",
        "iterations    1234",
        "tensors       4 (39 scalars)",
        "  0.kernel  F32   [5, 4]",
        r#"architecture  {"layers":[5,4,3],"activation":"linear"}"#,
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
}

// ---- The layout, parsed by hand as any safetensors reader (Python's included) does. ----

fn parse_header(bytes: &[u8]) -> (Value, usize) {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
    (header, 8 + n)
}

fn layout_matches<P: Policy>(dtype: &str, encode: fn(f64) -> Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let model = trained::<P>(4);
    let path = save_tmp(dir.path(), &model);
    let bytes = std::fs::read(&path).unwrap();
    let (header, data_start) = parse_header(&bytes);
    let data = &bytes[data_start..];
    let mut spans = Vec::new();
    let expected: HashMap<String, Vec<f64>> = values(&model).into_iter().collect();
    let shapes: HashMap<String, Vec<usize>> = model
        .variables()
        .into_iter()
        .map(|v| (v.name, v.shape))
        .collect();
    for (name, entry) in header.as_object().unwrap() {
        if name == "__metadata__" {
            continue;
        }
        assert_eq!(entry["dtype"], dtype, "{name}");
        let shape: Vec<usize> = serde_json::from_value(entry["shape"].clone()).unwrap();
        assert_eq!(shape, shapes[name], "{name}");
        let [start, end]: [usize; 2] =
            serde_json::from_value(entry["data_offsets"].clone()).unwrap();
        let le: Vec<u8> = expected[name].iter().flat_map(|&v| encode(v)).collect();
        assert_eq!(&data[start..end], le.as_slice(), "{name} bytes");
        spans.push((start, end));
    }
    assert_eq!(spans.len(), 4);
    spans.sort();
    assert_eq!(spans[0].0, 0);
    assert!(spans.windows(2).all(|w| w[0].1 == w[1].0), "contiguous");
    assert_eq!(spans.last().unwrap().1, data.len(), "data ends the file");
    assert!(data_start.is_multiple_of(8), "header padded to 8 bytes");
}

#[test]
fn layout_is_standard_safetensors_in_every_variable_type() {
    layout_matches::<F32>("F32", |v| (v as f32).to_le_bytes().to_vec());
    layout_matches::<MixedF16>("F32", |v| (v as f32).to_le_bytes().to_vec());
    layout_matches::<MixedBf16>("F32", |v| (v as f32).to_le_bytes().to_vec());
    layout_matches::<F64>("F64", |v| v.to_le_bytes().to_vec());
    layout_matches::<F16>("F16", |v| f16::from_f64(v).to_le_bytes().to_vec());
    layout_matches::<Bf16>("BF16", |v| bf16::from_f64(v).to_le_bytes().to_vec());
}

/// Runs Python's own safetensors loader when it is installed; otherwise says so and passes.
/// Values are compared as bit patterns (numpy has no bfloat16, so F32, F64 and F16 files).
#[test]
fn python_safetensors_reads_the_same_values() {
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
    python_reads::<F32>("float32", |v| u64::from((v as f32).to_bits()));
    python_reads::<F64>("float64", f64::to_bits);
    python_reads::<F16>("float16", |v| u64::from(f16::from_f64(v).to_bits()));
}

fn python_reads<P: Policy>(dtype: &str, bits: fn(f64) -> u64) {
    let dir = tempfile::tempdir().unwrap();
    let model = trained::<P>(6);
    let path = save_tmp(dir.path(), &model);
    let script = "import sys, json; from safetensors.numpy import load_file; \
                  t = load_file(sys.argv[1]); \
                  u = {2: '<u2', 4: '<u4', 8: '<u8'}; \
                  print(json.dumps({k: [str(v.dtype), list(v.shape), \
                      [int(b) for b in v.view(u[v.itemsize]).flatten()]] for k, v in t.items()}))";
    let out = std::process::Command::new("python3")
        .args(["-c", script, path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: HashMap<String, (String, Vec<usize>, Vec<u64>)> =
        serde_json::from_slice(&out.stdout).unwrap();
    let mut want = HashMap::new();
    for (v, w) in model.variables().into_iter().zip(model.get_weights()) {
        let b = w.into_vec().into_iter().map(bits).collect();
        want.insert(v.name, (dtype.to_string(), v.shape, b));
    }
    assert_eq!(got, want);
}

// ---- Atomic writes. ----

fn dir_entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn save_leaves_no_temporary_file_and_overwrites_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_tmp(dir.path(), &mlp::<F32>(1));
    let first = std::fs::read(&path).unwrap();
    save_tmp(dir.path(), &trained::<F32>(2));
    assert_ne!(std::fs::read(&path).unwrap(), first);
    assert_eq!(dir_entries(dir.path()), ["model.safetensors"]);
}

#[test]
fn failed_save_into_missing_directory_reports_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("m.safetensors");
    let err = checkpoint::save(&mlp::<F32>(1), &path, &meta::<F32>()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot access {}: ", path.display())),
        "{err}"
    );
    assert!(dir_entries(dir.path()).is_empty());
}

#[test]
fn failed_rename_leaves_no_partial_file() {
    // The target is a directory: the temporary file is written in full, then the rename fails.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::create_dir(&path).unwrap();
    let err = checkpoint::save(&mlp::<F32>(1), &path, &meta::<F32>()).unwrap_err();
    assert!(matches!(err, Error::Io { .. }), "{err}");
    assert_eq!(dir_entries(dir.path()), ["m.safetensors"]);
    assert!(path.is_dir());
}

#[test]
fn failed_save_leaves_the_previous_checkpoint_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_tmp(dir.path(), &trained::<F32>(1));
    let before = std::fs::read(&path).unwrap();
    // Rejected metadata: nothing is written.
    let bad = meta::<F32>().with_extra("mixprec.format", "2");
    assert!(checkpoint::save(&mlp::<F32>(5), &path, &bad).is_err());
    // A read-only directory: the temporary file cannot be created.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let perms = |mode| std::fs::Permissions::from_mode(mode);
        std::fs::set_permissions(dir.path(), perms(0o555)).unwrap();
        let writable = std::fs::File::create(dir.path().join("probe")).is_ok();
        if writable {
            let _ = std::fs::remove_file(dir.path().join("probe"));
            eprintln!(
                "read-only case skipped: this user (root?) writes into read-only directories"
            );
        } else {
            let err = checkpoint::save(&mlp::<F32>(5), &path, &meta::<F32>()).unwrap_err();
            assert!(matches!(err, Error::Io { .. }), "{err}");
        }
        std::fs::set_permissions(dir.path(), perms(0o755)).unwrap();
    }
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(dir_entries(dir.path()), ["model.safetensors"]);
}

// ---- Bad files. ----

fn err_of(path: &Path) -> String {
    checkpoint::read(path).unwrap_err().to_string()
}

#[test]
fn missing_file_is_an_io_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.safetensors");
    let msg = err_of(&path);
    assert!(
        msg.starts_with(&format!("cannot access {}:", path.display())),
        "{msg}"
    );
}

#[test]
fn truncated_files_are_rejected_at_every_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_tmp(dir.path(), &trained::<F32>(1));
    let bytes = std::fs::read(&path).unwrap();
    let (_, data_start) = parse_header(&bytes);
    let cut_path = dir.path().join("cut.safetensors");
    for cut in [
        0,
        3,
        8,
        20,
        data_start - 1,
        data_start,
        data_start + 5,
        bytes.len() - 1,
    ] {
        std::fs::write(&cut_path, &bytes[..cut]).unwrap();
        let err = checkpoint::read(&cut_path).unwrap_err();
        assert!(
            matches!(err, Error::InvalidCheckpoint { .. }),
            "cut {cut}: {err}"
        );
        let prefix = format!(
            "{} is not a valid safetensors checkpoint: ",
            cut_path.display()
        );
        assert!(err.to_string().starts_with(&prefix), "cut {cut}: {err}");
        assert!(std::error::Error::source(&err).is_some());
    }
}

#[test]
fn corrupted_header_bytes_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_tmp(dir.path(), &trained::<F32>(1));
    let bytes = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.safetensors");
    for at in [0, 7, 8, 9, 30, 60] {
        let mut b = bytes.clone();
        b[at] ^= 0xff;
        std::fs::write(&bad, &b).unwrap();
        let msg = err_of(&bad);
        assert!(
            msg.contains("is not a valid safetensors checkpoint"),
            "byte {at}: {msg}"
        );
    }
}

#[test]
fn wrong_shape_names_tensor_and_both_shapes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_tmp(dir.path(), &trained::<F32>(1));
    let ckpt = checkpoint::read(&path).unwrap();
    let mut other = vec![Dense::<F32>::new(5, 4), Dense::<F32>::new(4, 6)];
    let before = other.clone();
    let err = checkpoint::load_into(&mut other, &ckpt).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint {}: tensor \"1.kernel\" has shape [4, 3], the model expects [4, 6]",
            path.display()
        )
    );
    assert!(other == before, "a failed load must not change the model");
}

#[test]
fn missing_and_extra_tensors_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = save_tmp(dir.path(), &trained::<F32>(1));
    let ckpt = checkpoint::read(&path).unwrap();

    let mut deeper = mlp::<F32>(1);
    deeper.push(Dense::<F32>::new(3, 2));
    let err = checkpoint::load_into(&mut deeper, &ckpt).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint {}: tensor \"2.kernel\" is missing (the model expects it with shape [3, 2])",
            path.display()
        )
    );

    let mut shallow = vec![Dense::<F32>::new(5, 4)];
    let before = shallow.clone();
    let err = checkpoint::load_into(&mut shallow, &ckpt).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "checkpoint {}: tensors [\"1.bias\", \"1.kernel\"] are not variables of the model \
             (expected only: 0.kernel, 0.bias)",
            path.display()
        )
    );
    assert!(shallow == before);
}

/// Writes a safetensors file by hand: `(name, dtype, shape, bytes)` and metadata.
fn write_raw(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)], md: &[(&str, &str)]) {
    let mut header = serde_json::Map::new();
    let mut data = Vec::new();
    for (name, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [start, data.len()]}),
        );
    }
    let md: serde_json::Map<String, Value> = md
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect();
    header.insert("__metadata__".into(), Value::Object(md));
    let mut h = serde_json::to_vec(&Value::Object(header)).unwrap();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = (h.len() as u64).to_le_bytes().to_vec();
    out.extend(h);
    out.extend(data);
    std::fs::write(path, out).unwrap();
}

fn good_md(policy: &'static str) -> Vec<(&'static str, &'static str)> {
    vec![
        ("mixprec.format", "1"),
        ("mixprec.policy", policy),
        ("mixprec.architecture", "{}"),
        ("mixprec.iterations", "0"),
    ]
}

const F32_POLICY: &str = r#"{"module":"keras","class_name":"DTypePolicy","config":{"name":"float32"},"registered_name":null}"#;
const F64_POLICY: &str = r#"{"module":"keras","class_name":"DTypePolicy","config":{"name":"float64"},"registered_name":null}"#;

#[test]
fn integer_tensor_is_an_unsupported_dtype() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i32.safetensors");
    write_raw(
        &path,
        &[("0.kernel", "I32", vec![2], vec![1, 0, 0, 0, 2, 0, 0, 0])],
        &good_md(F32_POLICY),
    );
    assert_eq!(
        err_of(&path),
        format!(
            "checkpoint {}: tensor \"0.kernel\" has dtype I32 (expected one of: F16, BF16, F32, F64)",
            path.display()
        )
    );
}

#[test]
fn hand_written_file_loads_and_casts_and_its_dtypes_must_match_its_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f64.safetensors");
    let k: Vec<u8> = [0.5f64, -2.0]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    write_raw(
        &path,
        &[("0.kernel", "F64", vec![1, 2], k.clone())],
        &good_md(F64_POLICY),
    );
    let mut m = vec![Dense::<MixedBf16>::new(1, 2).with_bias(false)];
    checkpoint::load_into_converting(&mut m, &checkpoint::read(&path).unwrap()).unwrap();
    assert_eq!(m[0].kernel().as_slice(), &[0.5f32, -2.0]);

    // float64 data under a float32 policy: the file contradicts itself.
    write_raw(
        &path,
        &[("0.kernel", "F64", vec![1, 2], k)],
        &good_md(F32_POLICY),
    );
    assert_eq!(
        err_of(&path),
        format!(
            "checkpoint {}: tensor \"0.kernel\" is stored as float64, but its layer \"0\" has policy \"float32\", whose variables are float32 (expected each variable in its layer's variable type; the file was not written by mixprec or was edited)",
            path.display()
        )
    );
}

#[test]
fn missing_or_invalid_metadata_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("md.safetensors");
    let t = [("0.bias", "F32", vec![1], vec![0, 0, 0, 0])];
    let shown = path.display().to_string();
    for (drop, key) in [
        (0, "mixprec.format"),
        (1, "mixprec.policy"),
        (2, "mixprec.architecture"),
        (3, "mixprec.iterations"),
    ] {
        let mut md = good_md(F32_POLICY);
        md.remove(drop);
        write_raw(&path, &t, &md);
        let msg = err_of(&path);
        assert!(
            msg.starts_with(&format!(
                "checkpoint {shown}: metadata key \"{key}\" is missing"
            )),
            "{msg}"
        );
    }
    let cases = [
        ("mixprec.format", "2", "(expected \"1\")"),
        (
            "mixprec.policy",
            "\"mixed_fp16\"",
            "(expected a Keras DTypePolicy JSON config)",
        ),
        ("mixprec.iterations", "-1", "(expected an unsigned integer)"),
        (
            "mixprec.loss_scale",
            r#"{"scale": 0, "good_steps": 1}"#,
            "finite f32 >= 2^-126",
        ),
        ("mixprec.loss_scale", r#"{"scale": 2}"#, "good_steps"),
    ];
    for (key, value, want) in cases {
        let mut md: Vec<(&str, &str)> = good_md(F32_POLICY)
            .into_iter()
            .filter(|(k, _)| *k != key)
            .collect();
        md.push((key, value));
        write_raw(&path, &t, &md);
        let msg = err_of(&path);
        let prefix = format!("checkpoint {shown}: metadata key \"{key}\" holds {value:?}");
        assert!(msg.starts_with(&prefix) && msg.contains(want), "{msg}");
    }
}

// ---- What save writes, read accepts (issue 10). ----

mod save_read_property {
    use super::*;
    use mixprec::dtype::VecOf;
    use mixprec::models::MlpSpec;
    use mixprec::optimizers::OptimizerState;
    use proptest::prelude::*;

    /// Loss scales a run can reach: the extremes of f32's positive range, powers of two in
    /// between, any positive finite value; and values it must never save.
    fn scale() -> impl Strategy<Value = f32> {
        prop_oneof![
            Just(f32::from_bits(1)), // 2^-149
            Just(f32::MIN_POSITIVE),
            Just(f32::MAX),
            Just(1.0),
            (-149i32..=127).prop_map(|e| 2f32.powi(e)),
            (1u32..0x7f80_0000).prop_map(f32::from_bits),
            Just(0.0),
            Just(-0.0),
            Just(-1.0),
            Just(f32::NAN),
            Just(f32::INFINITY),
        ]
    }

    fn good_steps() -> impl Strategy<Value = u64> {
        prop_oneof![Just(0), Just(u64::MAX), any::<u64>()]
    }

    fn slot_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            20 => -1e30f64..1e30,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
        ]
    }

    #[derive(Debug, Clone)]
    struct Case {
        spec: MlpSpec,
        seed: u64,
        iterations: u64,
        loss_scale: Option<(f32, u64)>,
        /// (variable, slot, wide accumulator, one value per element drawn from this cycle)
        slots: Vec<(usize, usize, bool, Vec<f64>)>,
        nan_weight: bool,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            1usize..12,
            prop::collection::vec(1usize..12, 0..3),
            1usize..6,
            any::<u64>(),
            prop_oneof![Just(0u64), Just(u64::MAX), any::<u64>()],
            prop::option::of((scale(), good_steps())),
            prop::collection::vec(
                (
                    0usize..8,
                    0usize..2,
                    any::<bool>(),
                    prop::collection::vec(slot_value(), 1..4),
                ),
                0..5,
            ),
            prop::bool::weighted(0.05),
        )
            .prop_map(
                |(i, h, o, seed, iterations, loss_scale, slots, nan_weight)| Case {
                    spec: MlpSpec::new(i, h, o),
                    seed,
                    iterations,
                    loss_scale,
                    slots,
                    nan_weight,
                },
            )
    }

    fn state_for(case: &Case, lens: &[usize]) -> OptimizerState {
        let mut slots: Vec<(usize, usize, VecOf)> = Vec::new();
        for (var, slot, wide, cycle) in &case.slots {
            let var = var % lens.len();
            if slots.iter().any(|(v, s, _)| *v == var && s == slot) {
                continue;
            }
            let vals = (0..lens[var]).map(|k| cycle[k % cycle.len()]);
            let values = if *wide {
                VecOf::F64(vals.collect())
            } else {
                VecOf::F32(vals.map(|v| v as f32).collect())
            };
            slots.push((var, *slot, values));
        }
        OptimizerState {
            iterations: case.iterations,
            slots,
            loss_scale: case
                .loss_scale
                .map(|(scale, good_steps)| LossScaleState { scale, good_steps }),
        }
    }

    fn finite(v: &VecOf) -> bool {
        match v {
            VecOf::F32(v) => v.iter().all(|x| x.is_finite()),
            VecOf::F64(v) => v.iter().all(|x| x.is_finite()),
            _ => false,
        }
    }

    fn check<P: Policy>(case: &Case) -> Result<(), TestCaseError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.safetensors");
        // An earlier good checkpoint, which a refused save must leave byte-identical.
        let mut model = case.spec.build::<P>(case.seed).unwrap();
        let meta = CheckpointMeta::new(P::RUNTIME).with_architecture(case.spec.to_json());
        checkpoint::save(&model, &path, &meta).unwrap();
        let before = std::fs::read(&path).unwrap();
        if case.nan_weight {
            struct Poison;
            impl mixprec::module::ParamVisitorMut for Poison {
                fn visit<Q: Policy>(&mut self, p: &mut mixprec::param::Param<Q>) {
                    p.update(|v| v[0] = mixprec::Element::from_f32_rne(f32::NAN))
                }
            }
            model[0].visit_params_mut(&mut Poison);
        }
        let lens: Vec<usize> = model.variables().iter().map(|v| v.len()).collect();
        let state = state_for(case, &lens);
        let valid = !case.nan_weight
            && state
                .loss_scale
                .is_none_or(|ls| ls.scale.is_finite() && ls.scale >= f32::MIN_POSITIVE)
            && state.slots.iter().all(|(_, _, v)| finite(v));
        let saved = checkpoint::save_training(&model, &state, &path, &meta);
        prop_assert_eq!(saved.is_ok(), valid, "save gave {:?}", saved.err());
        prop_assert_eq!(dir_entries(dir.path()), vec!["run.safetensors".to_string()]);
        if !valid {
            let msg = saved.unwrap_err().to_string();
            prop_assert!(msg.starts_with("refusing to save"), "{}", msg);
            prop_assert_eq!(std::fs::read(&path).unwrap(), before);
            return Ok(());
        }
        let ckpt = checkpoint::read(&path).unwrap();
        let mut fresh = case.spec.build::<P>(case.seed.wrapping_add(1)).unwrap();
        checkpoint::load_into(&mut fresh, &ckpt).unwrap();
        prop_assert!(fresh == model, "variables differ after the round trip");
        let mut got = checkpoint::optimizer_state(&fresh, &ckpt).unwrap();
        let mut want = state;
        got.slots.sort_by_key(|s| (s.0, s.1));
        want.slots.sort_by_key(|s| (s.0, s.1));
        prop_assert_eq!(got.iterations, want.iterations);
        prop_assert_eq!(
            got.loss_scale.map(|l| (l.scale.to_bits(), l.good_steps)),
            want.loss_scale.map(|l| (l.scale.to_bits(), l.good_steps))
        );
        prop_assert_eq!(got.slots, want.slots);
        // And resuming accepts it: the loss scale a checkpoint holds is one the optimizer holds.
        if let Some(ls) = got.loss_scale {
            let mut opt = LossScaleOptimizer::new(Adam::new(1e-3));
            prop_assert!(opt.restore_state(ls).is_ok(), "resume refuses {:?}", ls);
        }
        prop_assert_eq!(
            MlpSpec::from_json(&ckpt.meta().architecture).unwrap(),
            case.spec.clone()
        );
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("MIXPREC_PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300)
        ))]

        #[test]
        fn prop_save_then_read_round_trips_exactly_or_save_refuses_and_keeps_the_old_file(
            case in case(),
            policy in 0usize..6,
        ) {
            match policy {
                0 => check::<F32>(&case)?,
                1 => check::<F64>(&case)?,
                2 => check::<F16>(&case)?,
                3 => check::<Bf16>(&case)?,
                4 => check::<MixedF16>(&case)?,
                _ => check::<MixedBf16>(&case)?,
            }
        }
    }
}

// ---- No litter (issue 10). ----

fn stale_temp(dir: &Path, target: &str, pid: u32, n: u32) -> PathBuf {
    let p = dir.join(format!(".{target}.tmp-{pid}-{n}"));
    std::fs::write(&p, b"partial checkpoint").unwrap();
    p
}

#[test]
fn save_removes_stale_temp_files_of_dead_processes_for_its_target_only() {
    let dir = tempfile::tempdir().unwrap();
    // No process has this pid (above Linux's pid_max of 2^22).
    let dead = stale_temp(dir.path(), "model.safetensors", 999_999_999, 0);
    let other_target = stale_temp(dir.path(), "other.safetensors", 999_999_999, 1);
    // Process 1 is alive: its fresh temp file may be a save in progress.
    let live = stale_temp(dir.path(), "model.safetensors", 1, 2);
    let unrelated = dir.path().join(".model.safetensors.tmp-notes");
    std::fs::write(&unrelated, b"x").unwrap();
    save_tmp(dir.path(), &mlp::<F32>(1));
    if cfg!(target_os = "linux") {
        assert!(!dead.exists(), "a dead process's temp file was kept");
    }
    assert!(
        other_target.exists(),
        "another target's temp file was removed"
    );
    assert!(
        live.exists(),
        "a live process's fresh temp file was removed"
    );
    assert!(
        unrelated.exists(),
        "a file not named like a temp file was removed"
    );
}

#[test]
fn save_removes_temp_files_older_than_the_stale_limit_whatever_their_pid() {
    let dir = tempfile::tempdir().unwrap();
    let old = stale_temp(dir.path(), "model.safetensors", 1, 7);
    let long_ago = std::time::SystemTime::now() - checkpoint::STALE_AFTER * 2;
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(long_ago)
        .unwrap();
    save_tmp(dir.path(), &mlp::<F32>(1));
    assert!(!old.exists());
    assert_eq!(dir_entries(dir.path()), ["model.safetensors"]);
}

#[test]
fn refused_save_leaves_no_temp_file_in_flight() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    std::fs::create_dir(&path).unwrap();
    assert!(checkpoint::save(&mlp::<F32>(1), &path, &meta::<F32>()).is_err());
    assert!(checkpoint::temp_files_in_flight()
        .iter()
        .all(|p| !p.starts_with(dir.path())));
}

/// The child half of [`sigterm_during_save_removes_the_temp_file`]: installs the handler and
/// saves a 16 MB model into `MIXPREC_TEST_SIGNAL_DIR` until it is killed.
#[test]
fn signal_child_saves_until_killed() {
    let Some(dir) = std::env::var_os("MIXPREC_TEST_SIGNAL_DIR") else {
        return; // only meaningful as the child process
    };
    mixprec::io::cleanup_temp_files_on_signal().unwrap();
    let model = vec![Dense::<F32>::new(2048, 2048)];
    let meta = CheckpointMeta::new(DTypePolicy::Float32);
    let path = Path::new(&dir).join("big.safetensors");
    for _ in 0..10_000 {
        checkpoint::save(&model, &path, &meta).unwrap();
    }
    panic!("not killed within 10,000 saves");
}

#[cfg(unix)]
#[test]
fn sigterm_during_save_removes_the_temp_file() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "signal_child_saves_until_killed", "--nocapture"])
        .env("MIXPREC_TEST_SIGNAL_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let seen = loop {
        let names = dir_entries(dir.path());
        if names.iter().any(|n| n.contains(".tmp-")) {
            break true;
        }
        if start.elapsed() > Duration::from_secs(60) || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(seen, "no temp file appeared within 60 s");
    assert!(sent.success());
    assert_eq!(status.signal(), Some(15), "child ended with {status:?}");
    let left: Vec<String> = dir_entries(dir.path())
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "left {left:?}");
}

/// The same through the `mixprec` program: SIGTERM while `train --save` writes its checkpoint
/// leaves no temp file (`main` installs `mixprec::io::cleanup_temp_files_on_signal()`).
#[cfg(all(unix, feature = "cli"))]
#[test]
fn cli_sigterm_during_save_leaves_no_temp_file() {
    use std::os::unix::process::ExitStatusExt;
    use std::time::{Duration, Instant};
    let dir = tempfile::tempdir().unwrap();
    let save = dir.path().join("big.safetensors");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args(["train", "--epochs", "1", "--hidden", "2048,2048", "--save"])
        .arg(&save)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let seen = loop {
        if dir_entries(dir.path()).iter().any(|n| n.contains(".tmp-")) {
            break true;
        }
        if start.elapsed() > Duration::from_secs(300) || child.try_wait().unwrap().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    assert!(
        seen,
        "the save's temp file was never seen (finished: {status:?})"
    );
    assert_eq!(status.signal(), Some(15), "{status:?}");
    let left: Vec<String> = dir_entries(dir.path())
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(left.is_empty(), "left {left:?}");
}

/// Review of issue 10: `save` refuses NaN weights, so `load_into` must refuse them too (a file
/// damaged on disk), and so must a cast into a type too narrow for a weight.
#[test]
fn load_into_refuses_non_finite_weights_and_overflowing_casts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nan.safetensors");
    let marker = 1.234_567_9f32;
    let kernel = Tensor::from_vec(vec![2, 1], vec![marker, 70000.0]).unwrap();
    let model = vec![Dense::<F32>::from_weights(kernel, None).unwrap()];
    checkpoint::save(&model, &path, &meta::<F32>()).unwrap();

    // 70000 is beyond float16's 65504: loading into float16 variables is refused, not inf.
    let ckpt = checkpoint::read(&path).unwrap();
    let k = Tensor::from_vec(vec![2, 1], vec![0.0f32; 2]).unwrap();
    let mut narrow = vec![Dense::<F16>::from_weights(k, None).unwrap()];
    let err = checkpoint::load_into_converting(&mut narrow, &ckpt).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"0.kernel\" holds 70000 at flat index 1, not a finite float16"),
        "{msg}"
    );
    assert!(narrow[0]
        .kernel()
        .as_slice()
        .iter()
        .all(|w| w.to_f32() == 0.0));

    // A NaN written into the file by damage.
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes
        .windows(4)
        .position(|w| w == marker.to_le_bytes())
        .unwrap();
    bytes[at..at + 4].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let ckpt = checkpoint::read(&path).unwrap();
    let mut target = mlp_like(&model);
    let err = checkpoint::load_into(&mut target, &ckpt).unwrap_err();
    assert!(
        err.to_string().contains("holds NaN at flat index 0"),
        "{err}"
    );
    assert!(target[0].kernel().as_slice().iter().all(|w| w.is_finite()));
}

fn mlp_like(m: &[Dense<F32>]) -> Vec<Dense<F32>> {
    m.iter()
        .map(|d| {
            let k = Tensor::from_vec(d.kernel().shape().to_vec(), vec![0.5f32; d.kernel().len()]);
            Dense::<F32>::from_weights(k.unwrap(), None).unwrap()
        })
        .collect()
}

/// Review of issue 10: a plain file larger than the allocation limit is refused before it is
/// read (a sparse 5 GiB CSV used to be read whole and parsed for 40 s).
#[test]
fn files_beyond_the_allocation_limit_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["sparse.csv", "sparse.safetensors"] {
        let path = dir.path().join(name);
        let f = std::fs::File::create(&path).unwrap();
        std::fs::write(&path, b"1,2,0\n").unwrap();
        f.set_len(5 << 30).unwrap();
        let err = if name.ends_with(".csv") {
            mixprec::io::read_csv(&path, &Default::default())
                .map(|_| ())
                .unwrap_err()
        } else {
            checkpoint::read(&path).map(|_| ()).unwrap_err()
        };
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("reading {}", path.display())),
            "{msg}"
        );
        assert!(msg.contains("5368709120 bytes"), "{msg}");
    }
}
