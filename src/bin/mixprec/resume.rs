//! `train --resume`: the training settings a checkpoint records, and reading them back.

use mixprec::io::{checkpoint, Checkpoint};
use mixprec::prelude::*;

use crate::arch::Arch;
use crate::cli::{OptimizerKind, TrainingArgs};

/// The training settings a checkpoint records (metadata key `mixprec.train`), so `--resume`
/// continues with exactly the same run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainRecord {
    epoch: usize,
    seed: u64,
    batch_size: u32,
    optimizer: OptimizerKind,
    lr: f32,
    #[serde(flatten)]
    data: crate::cli::DataArgs,
    test_split: f32,
}

impl TrainRecord {
    pub const KEY: &'static str = "mixprec.train";

    pub fn new(args: &TrainingArgs, epoch: usize) -> Self {
        TrainRecord {
            epoch,
            seed: args.seed,
            batch_size: args.batch_size,
            optimizer: args.optimizer,
            lr: args.lr,
            data: args.data.clone(),
            test_split: args.test_split,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a TrainRecord always serializes")
    }
}

/// A checkpoint to resume from, with the settings it was trained with.
pub struct Resume {
    pub path: std::path::PathBuf,
    pub ckpt: Checkpoint,
    pub spec: Arch,
    pub args: TrainingArgs,
    pub done: usize,
}

impl Resume {
    pub fn read(path: &std::path::Path, flags: &TrainingArgs) -> Result<Self> {
        crate::data::regular_file(path)?;
        let ckpt = checkpoint::read(path)?;
        let spec = crate::predict::architecture(&ckpt, path)?;
        let raw =
            ckpt.meta()
                .extra
                .get(TrainRecord::KEY)
                .ok_or_else(|| Error::InvalidArgument {
                    what: "--resume",
                    found: format!("{} has no {} metadata", path.display(), TrainRecord::KEY),
                    expected: "a checkpoint written by `mixprec train --save`",
                })?;
        let rec: TrainRecord = serde_json::from_str(raw).map_err(|e| Error::InvalidArgument {
            what: "--resume",
            found: format!("{} in {}: {e}", TrainRecord::KEY, path.display()),
            expected: "a checkpoint written by `mixprec train --save`",
        })?;
        if flags.epochs as usize <= rec.epoch {
            return Err(Error::InvalidArgument {
                what: "--epochs",
                found: format!(
                    "{} but {} has done {} epochs",
                    flags.epochs,
                    path.display(),
                    rec.epoch
                ),
                expected: "the total number of epochs to reach, more than the checkpoint has done",
            });
        }
        let args = TrainingArgs {
            epochs: flags.epochs,
            batch_size: rec.batch_size,
            lr: rec.lr,
            optimizer: rec.optimizer,
            model: spec.kind(),
            // The CNN has no hidden widths; its architecture comes from the checkpoint.
            hidden: crate::cli::Widths(spec.mlp().map_or_else(Vec::new, |s| s.hidden.clone())),
            seed: rec.seed,
            data: rec.data,
            continue_on_divergence: flags.continue_on_divergence,
            test_split: rec.test_split,
            layer_policy: Vec::new(),
        };
        Ok(Resume {
            path: path.to_path_buf(),
            ckpt,
            spec,
            args,
            done: rec.epoch,
        })
    }
}
