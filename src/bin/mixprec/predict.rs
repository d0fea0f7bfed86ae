//! `predict` and `inspect`: run a saved model, or describe a checkpoint.

use crate::output::outln;
use std::path::Path;

use mixprec::data::{Dataset, TargetData};
use mixprec::io::{checkpoint, Checkpoint};
use mixprec::policy::Policy;
use mixprec::prelude::*;
use mixprec::train::predict as predict_rows;
use mixprec::DTypePolicyMap;

use crate::arch::Arch;
use crate::cli::PredictArgs;

/// Builds the checkpoint's model in policy `P`, loads its variables and predicts.
struct Predict<'a> {
    ckpt: &'a Checkpoint,
    /// Cast the variables to `P` (`--policy`); otherwise every layer must have its stored policy.
    convert: bool,
    /// The stored per-layer policies, when they are not uniform.
    layers: Option<&'a DTypePolicyMap>,
    spec: &'a Arch,
    x: &'a Tensor<f32>,
}

impl PolicyVisitor for Predict<'_> {
    type Output = Result<Tensor<f32>>;

    fn visit<P: Policy>(self) -> Result<Tensor<f32>> {
        match (self.spec, self.layers, self.convert) {
            // Each layer in its stored policy.
            (Arch::Mlp(spec), Some(map), false) => self.run(spec.build_layered(map, 0)?),
            (Arch::Cnn(spec), Some(map), false) => self.run(spec.build_layered(map, 0)?),
            (Arch::Mlp(spec), ..) => self.run(spec.build::<P>(0)?),
            (Arch::Cnn(spec), ..) => self.run(spec.build::<P>(0)?),
        }
    }
}

impl Predict<'_> {
    /// Loads the checkpoint into `model` (strictly, or cast with `--policy`) and predicts.
    fn run<M: Layer>(self, mut model: M) -> Result<Tensor<f32>> {
        if self.convert {
            checkpoint::load_into_converting(&mut model, self.ckpt)?;
        } else {
            checkpoint::load_into(&mut model, self.ckpt)?;
        }
        predict_rows(&model, self.x, 256)
    }
}

/// `mixprec predict`.
pub fn predict(args: &PredictArgs) -> Result<()> {
    crate::data::regular_file(&args.model)?;
    let ckpt = checkpoint::read(&args.model)?;
    let spec = architecture(&ckpt, &args.model)?;
    let model = args.model.display();
    let kind = match spec {
        Arch::Mlp(_) => "an MLP",
        Arch::Cnn(_) => "a",
    };
    crate::limits::check_memory(
        "--model",
        format!("{model}'s architecture, {kind} {},", spec.describe()),
        crate::limits::inference_bytes(&spec, 256)?,
    )?;
    let (data, name) = crate::data::load(&args.data)?;
    // The logits of every row are held at once.
    crate::limits::check_memory(
        "--data",
        format!(
            "{} rows of {name} through {model}'s {} outputs",
            data.len(),
            spec.outputs()
        ),
        4 * data.len() as u128 * spec.outputs() as u128,
    )?;
    if data.features() != spec.inputs() {
        return Err(Error::ShapeMismatch {
            what: "data features",
            expected: format!("[rows, {}] for model {}", spec.inputs(), spec.describe()),
            found: data.x().shape().to_vec(),
        });
    }
    check_labels(&data, &name, spec.outputs(), &model.to_string())?;
    let (stored, layers) = crate::layers::stored_plan(ckpt.meta(), &spec)?;
    let policy = args.policy.unwrap_or(stored);
    let stored_as = match &layers {
        Some(map) => {
            crate::layers::describe_layers(&spec.layer_paths(), &spec.layer_policies(map)?)
        }
        None => stored.to_string(),
    };
    let run_as = match (&layers, args.policy) {
        (Some(_), None) => "its layers' policies".to_string(),
        _ => policy.to_string(),
    };
    let logits = policy.visit(Predict {
        ckpt: &ckpt,
        convert: args.policy.is_some(),
        layers: layers.as_ref(),
        spec: &spec,
        x: data.x(),
    })?;
    let classes = argmax_rows(&logits);
    outln!(
        "model {} ({}, stored as {stored_as}, run as {run_as}) on {name}: {} rows",
        args.model.display(),
        spec.describe(),
        data.len()
    );
    if let TargetData::Classes { labels, .. } = data.targets() {
        let correct = classes
            .iter()
            .zip(labels)
            .filter(|(p, l)| **p == **l as usize)
            .count();
        outln!(
            "accuracy {:.2}% ({correct}/{})",
            100.0 * correct as f64 / data.len() as f64,
            data.len()
        );
        for (i, (p, l)) in classes.iter().zip(labels).take(args.show).enumerate() {
            outln!("row {i:>5}: predicted {p}, label {l}");
        }
    }
    Ok(())
}

/// The model a checkpoint describes, or an error naming the file and the metadata key.
pub fn architecture(ckpt: &Checkpoint, path: &Path) -> Result<Arch> {
    let json = &ckpt.meta().architecture;
    Arch::from_json(json).map_err(|e| Error::InvalidMetadata {
        path: path.display().to_string(),
        key: "mixprec.architecture",
        found: json.chars().take(80).collect(),
        expected: r#"an MLP: {"model":"mlp","inputs":N,"hidden":[..],"outputs":N,"activation":"relu"}, or a CNN: {"model":"cnn","input":[H,W,C],...}"#,
        source: Some(Box::new(e)),
    })
}

/// Fails, naming the data file, the row and the model's classes, when a label is not one of the
/// model's classes (accuracy against it would mean nothing).
pub fn check_labels(data: &Dataset, name: &str, outputs: usize, model: &str) -> Result<()> {
    let TargetData::Classes { labels, .. } = data.targets() else {
        return Ok(());
    };
    match labels.iter().position(|&l| l as usize >= outputs) {
        None => Ok(()),
        Some(row) => Err(Error::InvalidArgument {
            what: "--data",
            found: format!(
                "{name} row {} has label {}, but model {model} has {} class{} (labels 0..={})",
                row + 1,
                labels[row],
                outputs,
                if outputs == 1 { "" } else { "es" },
                outputs.saturating_sub(1)
            ),
            expected: "labels the model was trained on",
        }),
    }
}

fn argmax_rows(logits: &Tensor<f32>) -> Vec<usize> {
    let width = logits.shape().last().copied().unwrap_or(1).max(1);
    logits
        .as_slice()
        .chunks_exact(width)
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(0, |b, (j, v)| if *v > row[b] { j } else { b })
        })
        .collect()
}

/// `mixprec inspect`.
pub fn inspect(file: &Path) -> Result<()> {
    crate::data::regular_file(file)?;
    outln!("{}", checkpoint::inspect(file)?);
    Ok(())
}
