//! `train` and `compare`: one generic training run per policy, reached from the run-time policy
//! through `DTypePolicy::visit` (no `dyn` in the model or the optimizer).

use crate::output::{errln, outln};
use std::time::Instant;

use mixprec::data::Dataset;
use mixprec::io::{checkpoint, Checkpoint, CheckpointMeta};
use mixprec::models::MlpSpec;
use mixprec::optimizers::{Adam, AutoOptimizer, PlainOptimizer, Sgd};
use mixprec::policy::Policy;
use mixprec::prelude::*;
use mixprec::train::{evaluate, fit_with_callback, FitOptions};

use crate::cli::{CompareArgs, OptimizerKind, TrainArgs, TrainingArgs};
use crate::progress::Progress;

/// What one training run measured.
#[derive(Debug, Clone)]
pub struct Report {
    pub policy: DTypePolicy,
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

/// A training run for a policy chosen at run time.
struct Run<'a> {
    save: Option<&'a std::path::Path>,
    /// A checkpoint to continue from, and the epochs it had done.
    resume: Option<(&'a Checkpoint, usize)>,
    spec: &'a MlpSpec,
    train: &'a Dataset,
    test: &'a Dataset,
    args: &'a TrainingArgs,
    progress: Progress,
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
    fn run<P: Policy, O: PlainOptimizer>(mut self, optimizer: O) -> Result<Report> {
        let mut model = self.spec.build::<P>(self.args.seed)?;
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
        self.progress.start(P::NAME);
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
            let meta = CheckpointMeta::new(P::RUNTIME)
                .with_architecture(self.spec.to_json())
                .with_extra(TrainRecord::KEY, record.to_json());
            checkpoint::save_training(&model, &optimizer.export_state(), path, &meta)?;
        }
        let trained: usize = history
            .epochs
            .iter()
            .map(|e| e.samples_per_sec * e.seconds)
            .sum::<f64>() as usize;
        Ok(Report {
            policy: P::RUNTIME,
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

fn spec_for(args: &TrainingArgs, train: &Dataset) -> MlpSpec {
    MlpSpec::new(
        train.features(),
        args.hidden.0.clone(),
        train.classes().unwrap_or(1),
    )
}

/// `mixprec train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    if let Some(p) = args.policy {
        set_global_policy(p)?;
    }
    if let Some(path) = &args.save {
        check_output_path(path)?;
    }
    let resume = match &args.resume {
        Some(path) => Some(Resume::read(path, &args.training)?),
        None => None,
    };
    if let (Some(r), Some(p)) = (&resume, args.policy) {
        if p != r.ckpt.meta().policy {
            return Err(Error::InvalidArgument {
                what: "--policy",
                found: format!(
                    "{p}, but {} was trained in {}",
                    r.path.display(),
                    r.ckpt.meta().policy
                ),
                expected: "no --policy with --resume (or the checkpoint's own)",
            });
        }
    }
    // Read once: whatever is built below keeps this policy.
    let policy = resume
        .as_ref()
        .map_or_else(global_policy, |r| r.ckpt.meta().policy);
    let t = resume.as_ref().map_or(&args.training, |r| &r.args);
    let (data, data_name) = crate::data::load(&t.data)?;
    if let Some(r) = &resume {
        let model = r.path.display().to_string();
        crate::predict::check_labels(&data, &data_name, &r.spec, &model)?;
    }
    let (train, test) = data.shuffle_split(t.test_split, t.seed)?;
    drop(data);
    let spec = match &resume {
        Some(r) => r.spec.clone(),
        None => spec_for(t, &train),
    };
    if resume.is_none() {
        warn_if_more_classes_than_rows(&spec, train.len() + test.len(), &data_name);
    }
    let what = if resume.is_some() {
        "--resume"
    } else {
        "--hidden"
    };
    check_model_memory(what, &spec, t, train.len(), &data_name)?;
    if let Some(r) = &resume {
        outln!(
            "resuming {} after epoch {} (its policy, architecture, optimizer state, learning rate, batch size, seed and data)",
            r.path.display(),
            r.done
        );
    }
    outln!(
        "mixprec train: policy {policy} (compute {}, variables {}), MLP {}, {data_name}: {} train / {} test rows",
        policy.compute_dtype(),
        policy.variable_dtype(),
        spec.describe(),
        train.len(),
        test.len()
    );
    let run = Run {
        save: args.save.as_deref(),
        resume: resume.as_ref().map(|r| (&r.ckpt, r.done)),
        spec: &spec,
        train: &train,
        test: &test,
        args: t,
        progress: Progress::per_epoch(t.epochs as usize),
    };
    let r = policy.visit(run)?;
    outln!(
        "\ntest accuracy   {:.2}%  (test loss {:.4})",
        100.0 * r.test_accuracy,
        r.test_loss
    );
    outln!("final loss      {:.4}", r.final_loss);
    outln!(
        "wall time       {:.2} s  ({:.0} samples/s)",
        r.seconds,
        r.samples_per_sec
    );
    outln!("variables       {}", bytes(r.variable_bytes));
    outln!(
        "activations     {} per batch of {}",
        bytes(r.activation_bytes),
        t.batch_size
    );
    if let Some(scale) = r.loss_scale {
        outln!(
            "loss scale      {scale} at the end, {} steps skipped",
            r.skipped_steps
        );
    }
    if !r.diverged_epochs.is_empty() {
        outln!("diverged        in epochs {}", list(&r.diverged_epochs));
    }
    if let Some(path) = &args.save {
        outln!("saved           {}", path.display());
    }
    Ok(())
}

/// `mixprec compare`.
pub fn compare(args: &CompareArgs) -> Result<()> {
    let policies = if args.policies.is_empty() {
        DTypePolicy::ALL.to_vec()
    } else {
        args.policies.clone()
    };
    if let Some(path) = &args.plot {
        crate::plot::check_path(path)?;
        check_output_path(path)?;
    }
    let t = &args.training;
    let (train, test, data_name) = crate::data::load_split(t)?;
    let spec = spec_for(t, &train);
    warn_if_more_classes_than_rows(&spec, train.len() + test.len(), &data_name);
    check_model_memory("--hidden", &spec, t, train.len(), &data_name)?;
    outln!(
        "mixprec compare: MLP {}, {data_name}, {} epochs, batch {}, {:?} lr {}, seed {}\n",
        spec.describe(),
        t.epochs,
        t.batch_size,
        t.optimizer,
        t.lr,
        t.seed
    );
    let mut reports = Vec::new();
    for policy in policies {
        let run = Run {
            save: None,
            resume: None,
            spec: &spec,
            train: &train,
            test: &test,
            args: t,
            progress: Progress::per_run(t.epochs as usize),
        };
        match policy.visit(run) {
            Ok(r) => reports.push(r),
            Err(e) => {
                errln!("compare stopped at policy {policy}:");
                return Err(e);
            }
        }
    }
    print_table(&reports);
    for r in reports.iter().filter(|r| !r.diverged_epochs.is_empty()) {
        errln!(
            "warning: {} diverged in epochs {} (--continue-on-divergence)",
            r.policy,
            list(&r.diverged_epochs)
        );
    }
    if let Some(path) = &args.plot {
        crate::plot::loss_curves(path, &reports, &spec.describe())?;
        outln!("\nloss curves written to {}", path.display());
    }
    Ok(())
}

fn print_table(reports: &[Report]) {
    let reference = reports
        .iter()
        .find(|r| r.policy == DTypePolicy::Float32)
        .map(|r| r.seconds);
    outln!(
        "\n{:<15} {:>9} {:>10} {:>8} {:>10} {:>10} {:>12}",
        "policy",
        "test acc",
        "final loss",
        "time",
        "vs f32",
        "variables",
        "activations"
    );
    for r in reports {
        let speed = reference.map_or("-".to_string(), |f| format!("{:.2}x", f / r.seconds));
        outln!(
            "{:<15} {:>8.2}% {:>10.4} {:>7.2}s {:>10} {:>10} {:>12}",
            r.policy.name(),
            100.0 * r.test_accuracy,
            r.final_loss,
            r.seconds,
            speed,
            bytes(r.variable_bytes),
            bytes(r.activation_bytes)
        );
    }
}

/// Fails, naming `what` (`--hidden`, or `--resume` for a checkpoint's architecture), the data's
/// width and class count and the bytes, when training
/// `spec` would plan more than [`limits::MEMORY_LIMIT`](crate::limits::MEMORY_LIMIT).
fn check_model_memory(
    what: &'static str,
    spec: &MlpSpec,
    t: &TrainingArgs,
    train_rows: usize,
    data_name: &str,
) -> Result<()> {
    if spec.outputs as u64 > crate::limits::MAX_DIM {
        return Err(Error::InvalidArgument {
            what: "--data",
            found: format!(
                "{data_name} has labels up to {}, so the model would need {} classes",
                spec.outputs - 1,
                spec.outputs
            ),
            expected: "class labels 0..=16777215; is --label-column the label column?",
        });
    }
    // A batch is never more than the training rows.
    let batch = (t.batch_size as usize).min(train_rows);
    crate::limits::check_memory(
        what,
        format!(
            "an MLP {} ({} inputs and {} classes from {data_name}) trained in batches of {batch}",
            spec.describe(),
            spec.inputs,
            spec.outputs
        ),
        crate::limits::training_bytes(spec, batch),
    )
}

/// A class count above the row count usually means the label column holds IDs, not classes
/// (a label of 1,000,000 builds a model with a million outputs); say so, once, on stderr.
fn warn_if_more_classes_than_rows(spec: &MlpSpec, rows: usize, data_name: &str) {
    if spec.outputs > rows.max(2) {
        errln!(
            "warning: {data_name} has labels up to {} ({} classes, an output layer that wide) but only {rows} rows; is --label-column the label column?",
            spec.outputs - 1,
            spec.outputs
        );
    }
}

/// `[1, 2, 5]` → `1, 2, 5`.
fn list(epochs: &[usize]) -> String {
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

/// The training settings a checkpoint records (metadata key `mixprec.train`), so `--resume`
/// continues with exactly the same run.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct TrainRecord {
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
    const KEY: &'static str = "mixprec.train";

    fn new(args: &TrainingArgs, epoch: usize) -> Self {
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

    fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a TrainRecord always serializes")
    }
}

/// A checkpoint to resume from, with the settings it was trained with.
struct Resume {
    path: std::path::PathBuf,
    ckpt: Checkpoint,
    spec: MlpSpec,
    args: TrainingArgs,
    done: usize,
}

impl Resume {
    fn read(path: &std::path::Path, flags: &TrainingArgs) -> Result<Self> {
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
            hidden: crate::cli::Widths(spec.hidden.clone()),
            seed: rec.seed,
            data: rec.data,
            continue_on_divergence: flags.continue_on_divergence,
            test_split: rec.test_split,
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
