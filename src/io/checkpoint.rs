//! Checkpoints in the [safetensors](https://huggingface.co/docs/safetensors) format: [`save`] a
//! model's variables (each in its own variable type), [`read`] a file back, [`load_into`] a model
//! whose every layer has the recorded policy (or [`load_into_converting`] a model of other
//! policies, casting), and [`inspect`] a file for printing.
//!
//! Layout: one tensor per variable, named as [`Module::visit_params`] names it (`0.kernel`,
//! `hidden.bias`), in the variable type of its layer's policy (`F32` for mixed policies,
//! `F16`/`BF16`/`F32`/`F64` for pure ones), little-endian, row-major. A model of several
//! policies (a bfloat16 body, a float32 head) stores each variable in its own type. The
//! header's `__metadata__` holds:
//!
//! | key | value |
//! | --- | --- |
//! | `mixprec.format` | `"1"` |
//! | `mixprec.policy` | the model's policy in Keras's JSON form ([`DTypePolicy::to_keras_json`](crate::DTypePolicy::to_keras_json)) |
//! | `mixprec.layer_policies` | each layer's policy: Keras's `DTypePolicyMap` JSON ([`DTypePolicyMap::to_keras_json`](crate::DTypePolicyMap::to_keras_json)), one key per layer path (a variable's name without its last component), default `mixprec.policy` |
//! | `mixprec.architecture` | the caller's JSON string, stored as given |
//! | `mixprec.loss_scale` | `{"scale": f32, "good_steps": u64}`, only when training used one |
//! | `mixprec.iterations` | optimizer steps taken, decimal |
//!
//! plus any extra pairs of the caller's. Files load in Python with
//! `safetensors.numpy.load_file(path)`. Writes are atomic: the bytes go to a temporary file in
//! the same directory, which is synced and then renamed over the target.

mod atomic;
mod info;
mod meta;
mod tensor;
mod validate;

use std::collections::HashMap;
use std::path::Path;

use safetensors::SafeTensors;

use crate::dtype::{DType, Element, VecOf};
use crate::error::{Error, Result};
use crate::module::{Module, ParamVisitor, ParamVisitorMut};
use crate::optimizers::OptimizerState;
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;
use crate::DTypePolicy;

pub use atomic::{cleanup_temp_files_on_signal, temp_files_in_flight, STALE_AFTER};
pub use info::CheckpointInfo;
pub use meta::{
    CheckpointMeta, LossScaleState, FORMAT_VERSION, KEY_ARCHITECTURE, KEY_FORMAT, KEY_ITERATIONS,
    KEY_LAYER_POLICIES, KEY_LOSS_SCALE, KEY_POLICY, KEY_STATISTICS,
};
pub use tensor::CheckpointTensor;
use tensor::{from_safetensors_dtype, le_bytes, vec_of_le_bytes};

/// A checkpoint read from a file: its tensors (sorted by name) and its metadata.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    path: String,
    tensors: Vec<CheckpointTensor>,
    meta: CheckpointMeta,
}

impl Checkpoint {
    /// The file it was read from.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tensors, sorted by name.
    pub fn tensors(&self) -> &[CheckpointTensor] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&CheckpointTensor> {
        self.tensors
            .binary_search_by(|t| t.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.tensors[i])
    }

    /// The metadata.
    pub fn meta(&self) -> &CheckpointMeta {
        &self.meta
    }

    /// Each layer's path and recorded policy: the per-layer map's keys in its order, then (for
    /// files from before per-layer policies) the layers of the tensors it has no key for, in
    /// the tensors' order.
    pub fn layers(&self) -> Vec<(String, DTypePolicy)> {
        let map = &self.meta.layer_policies;
        let mut layers: Vec<(String, DTypePolicy)> =
            map.iter().map(|(k, p)| (k.to_string(), p)).collect();
        for t in &self.tensors {
            let layer = crate::module::layer_path(&t.name);
            if !t.name.starts_with(OPTIMIZER_PREFIX) && !layers.iter().any(|(l, _)| l == layer) {
                let p = map.get(layer).unwrap_or(map.default_policy());
                layers.push((layer.to_string(), p));
            }
        }
        layers
    }

    /// A printable summary.
    pub fn info(&self) -> CheckpointInfo {
        CheckpointInfo {
            path: self.path.clone(),
            tensors: self
                .tensors
                .iter()
                .map(|t| (t.name.clone(), t.dtype, t.shape.clone()))
                .collect(),
            layers: self.layers(),
            meta: self.meta.clone(),
        }
    }
}

/// Saves `model`'s variables and `meta` to `path` as safetensors, atomically.
///
/// Each variable is stored under its [`Module`] name in the policy's variable type. The file is
/// first written in full to `.<name>.tmp-<pid>-<n>` beside `path`, synced, then renamed over
/// `path`; on any error the temporary file is removed and an existing `path` is left as it was.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::io::{checkpoint, CheckpointMeta};
/// let dir = std::env::temp_dir().join(format!("mixprec-doc-save-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("mlp.safetensors");
/// let model = vec![Dense::<MixedBf16>::new(4, 8), Dense::<MixedBf16>::new(8, 3)];
/// let meta = CheckpointMeta::new(DTypePolicy::MixedBFloat16).with_architecture("[4, 8, 3]");
/// checkpoint::save(&model, &path, &meta)?;
///
/// let mut other = vec![DenseConfig::new(8).seed(9).init::<F32>(4).unwrap(), Dense::<F32>::new(8, 3)];
/// let ckpt = checkpoint::read(&path)?;
/// checkpoint::load_into_converting(&mut other, &ckpt)?; // into a float32 model
/// assert_eq!(other[0].kernel(), model[0].kernel());
/// assert_eq!(ckpt.meta().architecture, "[4, 8, 3]");
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::CheckpointPolicyMismatch`] when `meta.policy` is not the model's policy;
/// [`Error::InvalidArgument`] when an extra key is one of the `mixprec.*` keys;
/// [`Error::UnsavableCheckpoint`] for what [`read`], [`load_into`] or [`optimizer_state`] would
/// refuse: a NaN or infinite weight or optimizer value (naming the variable), a loss scale that
/// is not finite and positive, two variables of one name, an optimizer slot for no variable or
/// of another size, a header beyond safetensors' limit;
/// [`Error::Io`] (naming `path`) when the file cannot be written or renamed. Every check runs
/// before anything is written, so after an error an existing `path` is byte-identical.
pub fn save<M: Module>(model: &M, path: &Path, meta: &CheckpointMeta) -> Result<()> {
    save_impl(model, None, path, meta)
}

/// Like [`save`], plus the optimizer's state (its slots as tensors named
/// `optimizer.slot<j>.<variable>`, in the accumulator type; its step count and loss scale in the
/// metadata, overriding `meta`'s), so [`optimizer_state`] and `Optimizer::import_state` resume
/// training exactly where it stopped.
///
/// # Errors
///
/// As [`save`].
pub fn save_training<M: Module>(
    model: &M,
    optimizer: &OptimizerState,
    path: &Path,
    meta: &CheckpointMeta,
) -> Result<()> {
    save_impl(model, Some(optimizer), path, meta)
}

/// The prefix of optimizer-state tensors.
const OPTIMIZER_PREFIX: &str = "optimizer.slot";

fn save_impl<M: Module>(
    model: &M,
    optimizer: Option<&OptimizerState>,
    path: &Path,
    meta: &CheckpointMeta,
) -> Result<()> {
    let mut meta = meta.clone();
    if let Some(o) = optimizer {
        meta.iterations = o.iterations;
        meta.loss_scale = o.loss_scale;
    }
    let shown = path.display().to_string();
    /// Each variable as stored: in its own variable type, with its layer's policy.
    struct Collect<'a> {
        shown: &'a str,
        tensors: Vec<CheckpointTensor>,
        policies: Vec<DTypePolicy>,
        statistics: Vec<String>,
        bad: Result<()>,
    }
    impl ParamVisitor for Collect<'_> {
        fn visit<P: Policy>(&mut self, name: &str, p: &Param<P>) {
            if self.bad.is_ok() {
                let what = format!("variable {name:?}");
                self.bad = validate::finite(self.shown, &what, p.value().as_slice());
            }
            self.policies.push(p.layer_policy());
            if P::VARIABLE_DTYPE != p.layer_policy().variable_dtype() {
                self.statistics.push(name.to_string());
            }
            self.tensors.push(CheckpointTensor {
                name: name.to_string(),
                dtype: P::VARIABLE_DTYPE,
                shape: p.shape().to_vec(),
                bytes: le_bytes(p.value().as_slice()),
            });
        }
    }
    let mut collect = Collect {
        shown: &shown,
        tensors: Vec::new(),
        policies: Vec::new(),
        statistics: Vec::new(),
        bad: Ok(()),
    };
    model.visit_params("", &mut collect);
    meta.layer_policies = validate::layer_policies(
        &shown,
        meta.policy,
        collect
            .tensors
            .iter()
            .map(|t| t.name.as_str())
            .zip(&collect.policies),
    )?;
    meta.statistics = std::mem::take(&mut collect.statistics);
    let meta = &meta;
    validate::meta(&shown, meta)?;
    let map = meta.to_map()?;
    let Collect {
        mut tensors, bad, ..
    } = collect;
    bad?;
    validate::variable_names(&shown, &tensors)?;
    if let Some(o) = optimizer {
        let names = model.param_names();
        validate::slots(&shown, &names, &tensors, o)?;
        for (var, slot, values) in &o.slots {
            let name = &names[*var];
            let shape = tensors[*var].shape.clone();
            tensors.push(CheckpointTensor {
                name: format!("{OPTIMIZER_PREFIX}{slot}.{name}"),
                dtype: values.dtype(),
                shape,
                bytes: vec_of_le_bytes(values),
            });
        }
    }
    let bytes = safetensors::serialize(tensors.iter().map(|t| (t.name.as_str(), t)), Some(map))
        .map_err(|e| Error::UnsavableCheckpoint {
            path: shown.clone(),
            what: "the safetensors file".into(),
            found: format!("cannot be serialized ({e})"),
            expected: "a header within safetensors' 100,000,000-byte limit",
        })?;
    // What `read` refuses, `save` refuses first: the header as `read` parses it.
    validate::header(&shown, &bytes, meta)?;
    atomic::write_atomic(path, &bytes)
}

/// Reads a checkpoint written by [`save`] (or any safetensors file with mixprec's metadata and
/// float tensors).
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read; [`Error::InvalidCheckpoint`] when it is not a
/// well-formed safetensors file (truncated, corrupted header); [`Error::UnsupportedTensorDType`]
/// for a tensor that is not F16, BF16, F32 or F64; [`Error::MissingMetadata`] /
/// [`Error::InvalidMetadata`] naming the key for metadata that is absent or unreadable.
pub fn read(path: &Path) -> Result<Checkpoint> {
    let shown = path.display().to_string();
    let bytes = crate::io::read_limited(path)?;
    let (data, header, meta) = parse_header(&shown, &bytes)?;
    let mut tensors = Vec::new();
    for (name, info) in header.tensors() {
        let dtype = from_safetensors_dtype(info.dtype).expect("parse_header checked the dtypes");
        let (start, end) = info.data_offsets;
        tensors.push(CheckpointTensor {
            name,
            dtype,
            shape: info.shape.clone(),
            bytes: data[start..end].to_vec(),
        });
    }
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(Checkpoint {
        path: shown,
        tensors,
        meta,
    })
}

/// The checks of [`read`] that need only the bytes: a well-formed safetensors header (whose
/// offsets `read_metadata` checks against the file's actual length, so no size in it is
/// trusted), float tensors, mixprec's metadata. Returns the data section, the header and the
/// metadata.
fn parse_header<'a>(
    shown: &str,
    bytes: &'a [u8],
) -> Result<(&'a [u8], safetensors::tensor::Metadata, CheckpointMeta)> {
    let (header_len, header) =
        SafeTensors::read_metadata(bytes).map_err(|source| Error::InvalidCheckpoint {
            path: shown.to_string(),
            source,
        })?;
    let empty = HashMap::new();
    let meta = CheckpointMeta::from_map(shown, header.metadata().as_ref().unwrap_or(&empty))?;
    for (name, info) in header.tensors() {
        if from_safetensors_dtype(info.dtype).is_none() {
            return Err(Error::UnsupportedTensorDType {
                path: shown.to_string(),
                tensor: name.clone(),
                found: info.dtype.to_string(),
            });
        }
    }
    // Each variable in its layer's variable type, so loading can trust the recorded policies.
    for (name, info) in header.tensors() {
        if name.starts_with(OPTIMIZER_PREFIX) {
            continue;
        }
        let layer = crate::module::layer_path(name.as_str());
        let policy = meta
            .layer_policies
            .get(layer)
            .map_err(|e| Error::InvalidMetadata {
                path: shown.to_string(),
                key: KEY_LAYER_POLICIES,
                found: format!("keys that are ambiguous for tensor {name:?}"),
                expected: "keys that match each layer at most once",
                source: Some(Box::new(e)),
            })?;
        let found = from_safetensors_dtype(info.dtype).expect("checked above");
        // A recorded statistic is float32 in a 16-bit layer; any other tensor is in its
        // layer's variable type.
        let expected = match meta.statistics.contains(&name) {
            true if policy.variable_dtype().size_of() == 2 => DType::Float32,
            _ => policy.variable_dtype(),
        };
        if found != expected {
            return Err(Error::CheckpointDTypeMismatch {
                path: shown.to_string(),
                tensor: name.clone(),
                layer: layer.to_string(),
                policy,
                found,
                expected,
            });
        }
    }
    // `read_metadata` has checked that the offsets tile the data exactly and match each shape.
    Ok((&bytes[8 + header_len..], header, meta))
}

/// Sets every variable of `model` from `ckpt`, after checking that every layer of `model` has
/// the policy the checkpoint recorded for it. All or nothing: every check passes before any
/// variable changes.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::io::{checkpoint, CheckpointMeta};
/// let dir = tempfile_dir();
/// # fn tempfile_dir() -> std::path::PathBuf {
/// #     let d = std::env::temp_dir().join(format!("mixprec-doc-load-{}", std::process::id()));
/// #     std::fs::create_dir_all(&d).unwrap();
/// #     d
/// # }
/// let path = dir.join("net.safetensors");
/// // A bfloat16 body and a float32 head.
/// let model = (Dense::<MixedBf16>::new(4, 8), Dense::<F32>::new(8, 3));
/// checkpoint::save(&model, &path, &CheckpointMeta::new(DTypePolicy::MixedBFloat16))?;
/// let ckpt = checkpoint::read(&path)?;
/// assert_eq!(ckpt.meta().layer_policies.get("1")?, DTypePolicy::Float32);
///
/// // The same layers in other policies: refused, naming the layer...
/// let mut uniform = (Dense::<MixedBf16>::new(4, 8), Dense::<MixedBf16>::new(8, 3));
/// let err = checkpoint::load_into(&mut uniform, &ckpt).unwrap_err();
/// assert!(err.to_string().contains(r#"layer "1" was saved in policy "float32""#), "{err}");
/// // ...unless a conversion is asked for.
/// checkpoint::load_into_converting(&mut uniform, &ckpt)?;
/// assert_eq!(uniform.1.kernel(), model.1.kernel());
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::MissingTensor`] for a model variable the checkpoint lacks;
/// [`Error::TensorShapeMismatch`] for a tensor of another shape; [`Error::LayerPolicyMismatch`]
/// naming the first layer whose policy differs from the recorded one;
/// [`Error::UnexpectedTensors`] listing the tensors the model has no variable for. The model is
/// then unchanged.
pub fn load_into<M: Module>(model: &mut M, ckpt: &Checkpoint) -> Result<()> {
    load_impl(model, ckpt, false)
}

/// Like [`load_into`], but a layer whose policy differs from the recorded one is converted: its
/// variables are cast from the stored type to the model's variable type (rounded to nearest
/// even when narrowing), as Keras loads weights into a model of another policy.
///
/// # Errors
///
/// As [`load_into`], without the policy check; and [`Error::NonFiniteTensor`] when a value does
/// not fit the model's variable type (an f32 weight beyond 65504 into float16 variables).
pub fn load_into_converting<M: Module>(model: &mut M, ckpt: &Checkpoint) -> Result<()> {
    load_impl(model, ckpt, true)
}

fn load_impl<M: Module>(model: &mut M, ckpt: &Checkpoint, convert: bool) -> Result<()> {
    let wanted = model.variables();
    let mut values = Vec::with_capacity(wanted.len());
    for v in &wanted {
        let t = ckpt.tensor(&v.name).ok_or_else(|| Error::MissingTensor {
            path: ckpt.path.clone(),
            tensor: v.name.clone(),
            expected: v.shape.clone(),
        })?;
        if t.shape != v.shape {
            return Err(Error::TensorShapeMismatch {
                path: ckpt.path.clone(),
                tensor: v.name.clone(),
                expected: v.shape.clone(),
                found: t.shape.clone(),
            });
        }
        let recorded = ckpt.meta.layer_policies.get(v.layer())?;
        if !convert && recorded != v.policy {
            return Err(Error::LayerPolicyMismatch {
                path: ckpt.path.clone(),
                layer: v.layer().to_string(),
                found: recorded,
                expected: v.policy,
            });
        }
        // Each tensor in its variable's own type: a statistic recorded as float32 must be one
        // in the model too (and the reverse), so a crafted file cannot widen a trainable one.
        if !convert && t.dtype != v.dtype {
            return Err(Error::CheckpointDTypeMismatch {
                path: ckpt.path.clone(),
                tensor: v.name.clone(),
                layer: v.layer().to_string(),
                policy: v.policy,
                found: t.dtype,
                expected: v.dtype,
            });
        }
        values.push(t);
    }
    let unexpected: Vec<String> = ckpt
        .tensors
        .iter()
        .filter(|t| !t.name.starts_with(OPTIMIZER_PREFIX))
        .filter(|t| !wanted.iter().any(|v| v.name == t.name))
        .map(|t| t.name.clone())
        .collect();
    if !unexpected.is_empty() {
        let names: Vec<&str> = wanted.iter().map(|v| v.name.as_str()).collect();
        return Err(Error::UnexpectedTensors {
            path: ckpt.path.clone(),
            found: unexpected,
            expected: names.join(", "),
        });
    }
    // Each tensor decoded into its variable's own type, and checked: nothing non-finite reaches
    // a variable, not from a damaged file, nor from a cast into a narrower type (an f32 weight
    // beyond 65504 loaded as float16).
    let mut decoded = Vec::with_capacity(values.len());
    for (v, t) in wanted.iter().zip(&values) {
        let dtype = v.dtype;
        let vec = match dtype {
            DType::Float16 => VecOf::F16(t.to_vec()),
            DType::BFloat16 => VecOf::Bf16(t.to_vec()),
            DType::Float32 => VecOf::F32(t.to_vec()),
            DType::Float64 => VecOf::F64(t.to_vec()),
        };
        let as_f64: Vec<f64> = cast_vec_of(&vec);
        if let Some(index) = as_f64.iter().position(|x| !x.is_finite()) {
            let stored = t.to_vec::<f64>().get(index).copied().unwrap_or(f64::NAN);
            return Err(Error::NonFiniteTensor {
                path: ckpt.path.clone(),
                tensor: v.name.clone(),
                index,
                stored,
                dtype,
            });
        }
        decoded.push((v.shape.clone(), vec));
    }
    struct Set(std::vec::IntoIter<(Vec<usize>, VecOf)>);
    impl ParamVisitorMut for Set {
        fn visit<P: Policy>(&mut self, p: &mut Param<P>) {
            let (shape, v) = self.0.next().expect("one tensor per variable");
            let v = P::Variable::from_vec_of(v).expect("decoded in the variable's type");
            p.set(Tensor::from_parts(shape, v))
                .expect("shapes were checked above");
        }
    }
    model.visit_params_mut(&mut Set(decoded.into_iter()));
    Ok(())
}

/// The elements of `v` widened to f64 (exact).
fn cast_vec_of(v: &VecOf) -> Vec<f64> {
    match v {
        VecOf::F16(v) => crate::dtype::cast_to_vec(v),
        VecOf::Bf16(v) => crate::dtype::cast_to_vec(v),
        VecOf::F32(v) => crate::dtype::cast_to_vec(v),
        VecOf::F64(v) => v.clone(),
    }
}

/// The optimizer state [`save_training`] stored, for `model`'s variables (matched by name).
///
/// # Errors
///
/// [`Error::InvalidArgument`] when an optimizer tensor names a variable the model does not have,
/// or has another number of elements than that variable.
pub fn optimizer_state<M: Module>(model: &M, ckpt: &Checkpoint) -> Result<OptimizerState> {
    let variables = model.variables();
    let names: Vec<String> = variables.iter().map(|v| v.name.clone()).collect();
    let lens: Vec<usize> = variables.iter().map(|v| v.len()).collect();
    let mut slots = Vec::new();
    for t in ckpt
        .tensors
        .iter()
        .filter(|t| t.name.starts_with(OPTIMIZER_PREFIX))
    {
        let rest = &t.name[OPTIMIZER_PREFIX.len()..];
        let parsed = rest.split_once('.').and_then(|(slot, var)| {
            let var = names.iter().position(|n| n == var)?;
            Some((slot.parse::<usize>().ok()?, var))
        });
        let bad = |why: &str| Error::InvalidArgument {
            what: "optimizer state",
            found: format!("tensor {:?} in {}: {why}", t.name, ckpt.path),
            expected: "optimizer.slot<j>.<a variable of the model> with the variable's size",
        };
        let (slot, var) = parsed.ok_or_else(|| bad("no such variable"))?;
        let values = match t.dtype {
            DType::Float64 => VecOf::F64(t.to_vec::<f64>()),
            _ => VecOf::F32(t.to_vec::<f32>()),
        };
        if values.len() != lens[var] {
            return Err(bad("wrong size"));
        }
        slots.push((var, slot, values));
    }
    Ok(OptimizerState {
        iterations: ckpt.meta.iterations,
        slots,
        loss_scale: ckpt.meta.loss_scale,
    })
}

/// Reads `path` and summarises it: tensors, policy, architecture, loss scale.
///
/// # Errors
///
/// As [`read`].
pub fn inspect(path: &Path) -> Result<CheckpointInfo> {
    Ok(read(path)?.info())
}
