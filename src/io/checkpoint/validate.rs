//! What [`read`](super::read), [`load_into`](super::load_into) and
//! [`optimizer_state`](super::optimizer_state) refuse, checked by [`save`](super::save) before it
//! writes anything: each function here mirrors a check of the reading side and names it.

use crate::dtype::{Element, VecOf};
use crate::error::{Error, Result};
use crate::module::layer_path;
use crate::optimizers::OptimizerState;
use crate::{DTypePolicy, DTypePolicyMap};

use super::{CheckpointMeta, CheckpointTensor, OPTIMIZER_PREFIX};

fn unsavable(path: &str, what: String, found: String, expected: &'static str) -> Error {
    Error::UnsavableCheckpoint {
        path: path.to_string(),
        what,
        found,
        expected,
    }
}

/// `meta.rs`'s `parse_loss_scale`: a scale `LossScaleOptimizer` can hold (finite, at least
/// `f32::MIN_POSITIVE`), the same predicate `restore_state` applies on resume.
pub(super) fn meta(path: &str, meta: &CheckpointMeta) -> Result<()> {
    if let Some(ls) = &meta.loss_scale {
        if !crate::optimizers::valid_scale(ls.scale) {
            return Err(unsavable(
                path,
                "loss scale".into(),
                ls.scale.to_string(),
                "a finite number >= 2^-126 (f32::MIN_POSITIVE); the run's loss scale collapsed, so its weights are suspect",
            ));
        }
    }
    Ok(())
}

/// The per-layer policy map `save` records, from each variable's name and policy: one entry per
/// layer path, in the model's order, with `default` (the metadata's policy) as its default.
///
/// Refused, as `read` and `load_into` could not use them: two variables of one layer in different
/// policies (the map holds one policy per layer), a layer path that is not a valid map key, and a
/// metadata policy that is none of the layers' ([`Error::CheckpointPolicyMismatch`] when all
/// layers share one policy).
pub(super) fn layer_policies<'a>(
    path: &str,
    default: DTypePolicy,
    variables: impl Iterator<Item = (&'a str, &'a DTypePolicy)>,
) -> Result<DTypePolicyMap> {
    let mut layers: Vec<(&str, DTypePolicy)> = Vec::new();
    for (name, &policy) in variables {
        let layer = layer_path(name);
        match layers.iter().find(|(l, _)| *l == layer) {
            None => layers.push((layer, policy)),
            Some(&(_, p)) if p == policy => {}
            Some(&(_, p)) => {
                return Err(unsavable(
                    path,
                    format!("layer {layer:?}"),
                    format!("holds variables in policies {p} and {policy}"),
                    "one policy per layer (its variables' names share the layer path)",
                ))
            }
        }
    }
    let mut policies: Vec<DTypePolicy> = Vec::new();
    for &(_, p) in &layers {
        if !policies.contains(&p) {
            policies.push(p);
        }
    }
    match policies[..] {
        [] => {}
        [only] if only != default => {
            return Err(Error::CheckpointPolicyMismatch {
                found: default,
                expected: only,
            })
        }
        _ if !policies.contains(&default) => {
            let per_layer: Vec<String> =
                layers.iter().map(|(l, p)| format!("{l:?}: {p}")).collect();
            return Err(unsavable(
                path,
                "metadata policy".into(),
                format!(
                    "{default}, but the model's layers are {}",
                    per_layer.join(", ")
                ),
                "the policy of one of the model's layers (its body's, by convention)",
            ));
        }
        _ => {}
    }
    let mut map = DTypePolicyMap::with_default(default);
    for (layer, policy) in layers {
        map.insert(layer, policy).map_err(|e| {
            unsavable(
                path,
                format!("layer path {layer:?}"),
                format!("is not a DTypePolicyMap key ({e})"),
                "layer names that are valid regular expressions (Rust identifiers and indices are)",
            )
        })?;
    }
    Ok(map)
}

/// No NaN or infinity in a variable or an optimizer slot: such a model would load and predict
/// NaN, and a resumed run would spread it.
pub(super) fn finite<T: Element>(path: &str, what: &str, values: &[T]) -> Result<()> {
    match values.iter().position(|v| !v.as_f64().is_finite()) {
        None => Ok(()),
        Some(i) => Err(unsavable(
            path,
            what.to_string(),
            format!("holds {} at flat index {i}", values[i].as_f64()),
            "finite values; training diverged, so the previous checkpoint is kept",
        )),
    }
}

/// `load_into` finds each variable by name: names are unique, and none looks like an optimizer
/// tensor (those are skipped when loading variables).
pub(super) fn variable_names(path: &str, tensors: &[CheckpointTensor]) -> Result<()> {
    for (i, t) in tensors.iter().enumerate() {
        if t.name.starts_with(OPTIMIZER_PREFIX) || t.name == "__metadata__" {
            return Err(unsavable(
                path,
                "variable name".into(),
                format!("{:?}", t.name),
                "a name that does not start with \"optimizer.slot\" and is not \"__metadata__\"",
            ));
        }
        if tensors[..i].iter().any(|u| u.name == t.name) {
            return Err(unsavable(
                path,
                "variable name".into(),
                format!("{:?} given twice", t.name),
                "one variable per name",
            ));
        }
    }
    Ok(())
}

/// `optimizer_state`: each slot names a variable of the model, has its size, is f32 or f64 (it
/// is read back as f64 when stored so and as f32 otherwise), is finite, and appears once.
pub(super) fn slots(
    path: &str,
    names: &[String],
    tensors: &[CheckpointTensor],
    state: &OptimizerState,
) -> Result<()> {
    for (k, (var, slot, values)) in state.slots.iter().enumerate() {
        let Some(name) = names.get(*var) else {
            return Err(unsavable(
                path,
                format!("optimizer slot {slot}"),
                format!("for variable #{var}, but the model has {}", names.len()),
                "slots only for the model's variables",
            ));
        };
        let what = format!("optimizer slot {slot} of variable {name:?}");
        let want: usize = tensors[*var].shape.iter().product();
        if values.len() != want {
            return Err(unsavable(
                path,
                what,
                format!("has {} values", values.len()),
                "as many values as its variable",
            ));
        }
        match values {
            VecOf::F32(v) => finite(path, &what, v)?,
            VecOf::F64(v) => finite(path, &what, v)?,
            other => {
                return Err(unsavable(
                    path,
                    what,
                    format!("is {}", other.dtype()),
                    "float32 or float64 (the accumulator types)",
                ))
            }
        }
        if state.slots[..k]
            .iter()
            .any(|(v2, s2, _)| v2 == var && s2 == slot)
        {
            return Err(unsavable(
                path,
                what,
                "given twice".into(),
                "one entry per slot",
            ));
        }
    }
    Ok(())
}

/// The serialized file as `read` would parse it: a header safetensors accepts (its size limit
/// included), float tensors, and metadata that reads back exactly as `meta`.
pub(super) fn header(path: &str, bytes: &[u8], meta: &CheckpointMeta) -> Result<()> {
    let (_, _, parsed) = super::parse_header(path, bytes).map_err(|e| {
        unsavable(
            path,
            "the file".into(),
            format!("would be refused by read: {e}"),
            "a file read accepts",
        )
    })?;
    let field = if parsed.architecture != meta.architecture {
        Some("architecture")
    } else if parsed.loss_scale != meta.loss_scale {
        Some("loss scale")
    } else if parsed.iterations != meta.iterations || parsed.policy != meta.policy {
        Some("iterations or policy")
    } else if parsed.extra != meta.extra {
        Some("extra metadata")
    } else if parsed.statistics != meta.statistics {
        Some("statistics")
    } else if parsed.layer_policies != meta.layer_policies {
        Some("layer policies")
    } else {
        None
    };
    match field {
        None => Ok(()),
        Some(f) => Err(unsavable(
            path,
            format!("metadata {f}"),
            "does not read back as written".into(),
            "metadata that survives a save and read unchanged",
        )),
    }
}
