//! [`CheckpointInfo`]: what `mixprec inspect` prints of a checkpoint.

use std::fmt;

use super::tensor::to_safetensors_dtype;
use super::CheckpointMeta;
use crate::dtype::DType;
use crate::DTypePolicy;

/// A checkpoint's summary, printed by `mixprec inspect`.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointInfo {
    /// The file.
    pub path: String,
    /// Name, stored type and shape of each tensor, sorted by name.
    pub tensors: Vec<(String, DType, Vec<usize>)>,
    /// Each layer's path and policy, in the order the model visits them (as recorded).
    pub layers: Vec<(String, DTypePolicy)>,
    /// The metadata.
    pub meta: CheckpointMeta,
}

impl fmt::Display for CheckpointInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = self.meta.policy;
        let scalars: usize = self
            .tensors
            .iter()
            .map(|t| t.2.iter().product::<usize>())
            .sum();
        writeln!(f, "checkpoint    {}", self.path)?;
        writeln!(
            f,
            "policy        {p} (compute {}, variables {})",
            p.compute_dtype(),
            p.variable_dtype()
        )?;
        let uniform = self.layers.iter().all(|(_, lp)| *lp == p);
        if !uniform {
            let width = self.layers.iter().map(|l| l.0.len()).max().unwrap_or(0);
            writeln!(f, "layers        {} (policy per layer)", self.layers.len())?;
            for (layer, lp) in &self.layers {
                writeln!(
                    f,
                    "  {layer:<width$}  {lp} (compute {}, variables {})",
                    lp.compute_dtype(),
                    lp.variable_dtype()
                )?;
            }
        } else {
            writeln!(f, "layers        {} (all {p})", self.layers.len())?;
        }
        writeln!(f, "architecture  {}", self.meta.architecture)?;
        match &self.meta.loss_scale {
            Some(ls) => writeln!(
                f,
                "loss scale    {} ({} good steps)",
                ls.scale, ls.good_steps
            )?,
            None => writeln!(f, "loss scale    none")?,
        }
        writeln!(f, "iterations    {}", self.meta.iterations)?;
        for (k, v) in &self.meta.extra {
            writeln!(f, "{k:<13} {v}")?;
        }
        write!(
            f,
            "tensors       {} ({scalars} scalars)",
            self.tensors.len()
        )?;
        let width = self.tensors.iter().map(|t| t.0.len()).max().unwrap_or(0);
        for (name, dtype, shape) in &self.tensors {
            let st = to_safetensors_dtype(*dtype);
            write!(f, "\n  {name:<width$}  {:<4}  {shape:?}", st.to_string())?;
        }
        Ok(())
    }
}
