//! The run `train` and `compare` share: one generic training run per policy, reached from the
//! run-time policy through `DTypePolicy::visit` (no `dyn` in the model or the optimizer), with a
//! typed `Vec<Dense<P>>` or, for per-layer policies, a `LayeredMlp`, or the typed `Cnn<P>`; and
//! their common checks.

use crate::output::errln;
use std::time::Instant;

use mixprec::data::Dataset;
use mixprec::io::{checkpoint, Checkpoint, CheckpointMeta};
use mixprec::optimizers::{Adam, AutoOptimizer, PlainOptimizer, Sgd};
use mixprec::policy::Policy;
use mixprec::prelude::*;
use mixprec::train::{evaluate, fit_with_callback, FitOptions};
use mixprec::DTypePolicyMap;

use crate::arch::Arch;
use crate::cli::{OptimizerKind, TrainingArgs};
use crate::progress::Progress;
use crate::resume::TrainRecord;

/// What one training run measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// The policy of the layers no `--layer-policy` key names (of every layer when uniform).
    pub policy: DTypePolicy,
    /// The run's name in tables and plots: the policy, or `policy+float32_head`.
    pub label: String,
    /// Each layer's policy, when they are not all `policy`.
    pub layer_policies: Option<Vec<DTypePolicy>>,
    pub test_accuracy: f64,
    pub test_loss: f64,
    pub final_loss: f64,
    pub epoch_losses: Vec<f64>,
    pub seconds: f64,
    pub samples_per_sec: f64,
    pub variable_bytes: usize,
    pub activation_bytes: usize,
    pub loss_scale: Option<f32>,
    pub skipped_steps: u64,
    /// The 1-based epochs that diverged (only with `--continue-on-divergence`).
    pub diverged_epochs: Vec<usize>,
}

/// A training run for a policy chosen at run time: every layer in the visited policy `P`
/// (a typed `Vec<Dense<P>>` or `Cnn<P>`), or, with `layers`, each layer in its own policy (a
/// `LayeredMlp` or `LayeredCnn`, `P` then being the map's default).
pub struct Run<'a> {
    pub save: Option<&'a std::path::Path>,
    /// A checkpoint to continue from, and the epochs it had done.
    pub resume: Option<(&'a Checkpoint, usize)>,
    pub spec: &'a Arch,
    /// Per-layer policies, when they are not uniform.
    pub layers: Option<&'a DTypePolicyMap>,
    /// The name of the run in the progress bar and the report.
    pub label: String,
    pub train: &'a Dataset,
    pub test: &'a Dataset,
    pub args: &'a TrainingArgs,
    pub progress: Progress,
}

impl PolicyVisitor for Run<'_> {
    type Output = Result<Report>;

    fn visit<P: Policy>(self) -> Result<Report> {
        let lr = self.args.lr;
        match self.args.optimizer {
            OptimizerKind::Adam => self.run::<P, _>(Adam::try_new(lr)?),
            OptimizerKind::Sgd => self.run::<P, _>(Sgd::try_new(lr)?),
        }
    }
}

impl Run<'_> {
    fn run<P: Policy, O: PlainOptimizer>(self, optimizer: O) -> Result<Report> {
        let seed = self.args.seed;
        match (self.spec, self.layers) {
            (Arch::Mlp(spec), None) => {
                let model = spec.build::<P>(seed)?;
                self.train_model(model, optimizer, P::RUNTIME)
            }
            (Arch::Mlp(spec), Some(map)) => {
                let model = spec.build_layered(map, seed)?;
                self.train_model(model, optimizer, P::RUNTIME)
            }
            (Arch::Cnn(spec), None) => {
                let model = spec.build::<P>(seed)?;
                self.train_model(model, optimizer, P::RUNTIME)
            }
            (Arch::Cnn(spec), Some(map)) => {
                let model = spec.build_layered(map, seed)?;
                self.train_model(model, optimizer, P::RUNTIME)
            }
        }
    }

    fn train_model<M, O>(
        mut self,
        mut model: M,
        optimizer: O,
        policy: DTypePolicy,
    ) -> Result<Report>
    where
        M: Layer + Send,
        O: PlainOptimizer,
    {
        // What Keras's `compile` would do, but for any float16-compute layer (`AutoOptimizer`).
        let mut optimizer = AutoOptimizer::for_model(&model, optimizer);
        let mut initial_epoch = 0;
        if let Some((ckpt, done)) = self.resume {
            checkpoint::load_into(&mut model, ckpt)?;
            optimizer.import_state(checkpoint::optimizer_state(&model, ckpt)?)?;
            initial_epoch = done;
        }
        let options = FitOptions {
            epochs: self.args.epochs as usize,
            batch_size: self.args.batch_size as usize,
            seed: self.args.seed,
            initial_epoch,
            stop_on_divergence: !self.args.continue_on_divergence,
            ..FitOptions::default()
        };
        self.progress.start(&self.label);
        let start = Instant::now();
        let history = fit_with_callback(
            &mut model,
            &mut optimizer,
            self.train,
            &options,
            &mut self.progress,
        )?;
        let seconds = start.elapsed().as_secs_f64();
        self.progress.finish();
        let test = evaluate(&model, self.test, 256, None)?;
        let diverged_epochs = history.diverged_epochs();
        if let Some(path) = self.save {
            if !diverged_epochs.is_empty() {
                errln!(
                    "warning: saving {} although training diverged in epoch{} {} (--continue-on-divergence); its weights are those of the last step that could be applied",
                    path.display(),
                    if diverged_epochs.len() == 1 { "" } else { "s" },
                    list(&diverged_epochs)
                );
            }
            let record = TrainRecord::new(self.args, options.epochs);
            // The checkpoint's policy must be one of its layers' (`save` refuses another): the
            // default, unless keys gave every layer another policy, then the first layer's.
            let layers = model.variables();
            let stored = match layers.iter().find(|v| v.policy == policy) {
                Some(_) => policy,
                None => layers.first().map_or(policy, |v| v.policy),
            };
            let meta = CheckpointMeta::new(stored)
                .with_architecture(self.spec.to_json())
                .with_extra(TrainRecord::KEY, record.to_json());
            checkpoint::save_training(&model, &optimizer.export_state(), path, &meta)?;
        }
        let trained: usize = history
            .epochs
            .iter()
            .map(|e| e.samples_per_sec * e.seconds)
            .sum::<f64>() as usize;
        let layer_policies = match self.layers {
            Some(map) => Some(self.spec.layer_policies(map)?),
            None => None,
        };
        Ok(Report {
            policy,
            label: self.label,
            layer_policies,
            test_accuracy: test.accuracy.unwrap_or(f64::NAN),
            test_loss: test.loss,
            final_loss: history.last().map_or(f64::NAN, |e| e.loss),
            epoch_losses: history.epochs.iter().map(|e| e.loss).collect(),
            seconds,
            samples_per_sec: trained as f64
                / history
                    .epochs
                    .iter()
                    .map(|e| e.seconds)
                    .sum::<f64>()
                    .max(1e-9),
            variable_bytes: model.variable_bytes(),
            activation_bytes: history.activation_bytes,
            loss_scale: optimizer.scales_loss().then(|| optimizer.loss_scale()),
            skipped_steps: optimizer.skipped_steps(),
            diverged_epochs,
        })
    }
}

/// Fails, naming `what` (`--hidden`, or `--resume` for a checkpoint's architecture), the data's
/// width and class count and the bytes, when training
/// `spec` would plan more than [`limits::MEMORY_LIMIT`](crate::limits::MEMORY_LIMIT).
pub fn check_model_memory(
    what: &'static str,
    spec: &Arch,
    t: &TrainingArgs,
    train_rows: usize,
    data_name: &str,
) -> Result<()> {
    let outputs = spec.outputs();
    if outputs as u64 > crate::limits::MAX_DIM {
        return Err(Error::InvalidArgument {
            what: "--data",
            found: format!(
                "{data_name} has labels up to {}, so the model would need {} classes",
                outputs - 1,
                outputs
            ),
            expected: "class labels 0..=16777215; is --label-column the label column?",
        });
    }
    // A batch is never more than the training rows.
    let batch = (t.batch_size as usize).min(train_rows);
    let kind = match spec {
        Arch::Mlp(_) => "an MLP",
        Arch::Cnn(_) => "a",
    };
    crate::limits::check_memory(
        what,
        format!(
            "{kind} {} ({} inputs and {outputs} classes from {data_name}) trained in batches of {batch}",
            spec.describe(),
            spec.inputs(),
        ),
        crate::limits::training_bytes(spec, batch)?,
    )
}

/// A class count above the row count usually means the label column holds IDs, not classes
/// (a label of 1,000,000 builds a model with a million outputs); say so, once, on stderr.
pub fn warn_if_more_classes_than_rows(spec: &Arch, rows: usize, data_name: &str) {
    let outputs = spec.outputs();
    if outputs > rows.max(2) {
        errln!(
            "warning: {data_name} has labels up to {} ({outputs} classes, an output layer that wide) but only {rows} rows; is --label-column the label column?",
            outputs - 1,
        );
    }
}

/// `[1, 2, 5]` → `1, 2, 5`.
pub fn list(epochs: &[usize]) -> String {
    epochs
        .iter()
        .map(usize::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `1234567` → `1.18 MiB`.
pub fn bytes(n: usize) -> String {
    match n {
        n if n >= 1 << 20 => format!("{:.2} MiB", n as f64 / f64::from(1 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// Fails early (before training) when `path`'s directory does not exist or `path` is a
/// directory, so a run is not lost at the end for want of a place to write it.
pub fn check_output_path(path: &std::path::Path) -> Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let problem = if !dir.is_dir() {
        format!("directory {} does not exist", dir.display())
    } else if path.is_dir() {
        format!("{} is a directory (expected a file name)", path.display())
    } else {
        return Ok(());
    };
    Err(Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, problem),
    })
}
