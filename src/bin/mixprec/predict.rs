//! `predict` and `inspect`: run a saved model, or describe a checkpoint.

use std::path::Path;

use mixprec::data::TargetData;
use mixprec::io::{checkpoint, Checkpoint};
use mixprec::models::MlpSpec;
use mixprec::policy::Policy;
use mixprec::prelude::*;
use mixprec::train::predict as predict_rows;

use crate::cli::PredictArgs;

/// Builds the checkpoint's model in policy `P`, loads (casting) its variables and predicts.
struct Predict<'a> {
    ckpt: &'a Checkpoint,
    spec: MlpSpec,
    x: &'a Tensor<f32>,
}

impl PolicyVisitor for Predict<'_> {
    type Output = Result<Tensor<f32>>;

    fn visit<P: Policy>(self) -> Result<Tensor<f32>> {
        let mut model = self.spec.build::<P>(0)?;
        checkpoint::load_into(&mut model, self.ckpt)?;
        predict_rows(&model, self.x, 256)
    }
}

/// `mixprec predict`.
pub fn predict(args: &PredictArgs) -> Result<()> {
    let ckpt = checkpoint::read(&args.model)?;
    let spec = MlpSpec::from_json(&ckpt.meta().architecture)?;
    let (data, name) = crate::data::load(&args.data)?;
    if data.features() != spec.inputs {
        return Err(Error::ShapeMismatch {
            what: "data features",
            expected: format!("[rows, {}] for model {}", spec.inputs, spec.describe()),
            found: data.x().shape().to_vec(),
        });
    }
    let stored = ckpt.meta().policy;
    let policy = args.policy.unwrap_or(stored);
    let logits = policy.visit(Predict {
        ckpt: &ckpt,
        spec: spec.clone(),
        x: data.x(),
    })?;
    let classes = argmax_rows(&logits);
    println!(
        "model {} ({}, stored as {stored}, run as {policy}) on {name}: {} rows",
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
        println!(
            "accuracy {:.2}% ({correct}/{})",
            100.0 * correct as f64 / data.len() as f64,
            data.len()
        );
        for (i, (p, l)) in classes.iter().zip(labels).take(args.show).enumerate() {
            println!("row {i:>5}: predicted {p}, label {l}");
        }
    }
    Ok(())
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
    println!("{}", checkpoint::inspect(file)?);
    Ok(())
}
