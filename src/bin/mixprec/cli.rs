//! The command line: subcommands and their flags (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mixprec::DTypePolicy;

/// Keras 3 mixed precision in Rust: train, compare and benchmark the six dtype policies.
#[derive(Debug, Parser)]
#[command(name = "mixprec", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train an MLP under one policy and report test accuracy, speed and memory.
    Train(TrainArgs),
    /// Train the same MLP from the same seed under several policies and compare them.
    Compare(CompareArgs),
    /// Dense forward and backward throughput per policy, side by side.
    Bench(BenchArgs),
    /// Run a saved model on data and report its accuracy.
    Predict(PredictArgs),
    /// List a checkpoint's tensors, dtypes, shapes, policy and architecture.
    Inspect {
        /// The checkpoint (.safetensors).
        file: PathBuf,
    },
    /// The CPU's 16-bit features and what each policy will run on.
    Info,
}

#[derive(Debug, Clone, Args)]
pub struct PredictArgs {
    /// The checkpoint written by `train --save`.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Run in another policy than the stored one (the variables are cast explicitly).
    #[arg(long)]
    pub policy: Option<DTypePolicy>,
    /// How many predictions to print.
    #[arg(long, default_value_t = 10)]
    pub show: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

/// What to train on and how; shared by `train` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct TrainingArgs {
    /// Passes over the training data.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
    pub epochs: u32,
    /// Rows per optimizer step.
    #[arg(long, default_value_t = 32, value_parser = clap::value_parser!(u32).range(1..))]
    pub batch_size: u32,
    /// Learning rate (> 0).
    #[arg(long, default_value_t = 1e-3, value_parser = positive_f32)]
    pub lr: f32,
    /// The optimizer (float16 policies wrap it in a LossScaleOptimizer, as Keras does).
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    pub optimizer: OptimizerKind,
    /// Hidden layer widths, comma-separated.
    #[arg(long, default_value = "128,128", value_parser = parse_widths)]
    pub hidden: Widths,
    /// Seed of the initial weights, the train/test split and the shuffles.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataArgs,
    /// Fraction of the data held out as the test set.
    #[arg(long, default_value_t = 0.2, value_parser = unit_fraction)]
    pub test_split: f32,
}

/// Where the data comes from; shared by `train`, `compare` and `predict`, and recorded in
/// checkpoints so `--resume` reads the same data.
#[derive(Debug, Clone, Args, serde::Serialize, serde::Deserialize)]
pub struct DataArgs {
    /// `digits` (embedded, the default), a CSV file (label in the last column unless
    /// --label-column), or an MNIST-style IDX images file with --labels.
    #[arg(long, default_value = "digits")]
    pub data: String,
    /// The label column of a CSV file: `last`, `first` or a 0-based index.
    #[arg(long, default_value = "last")]
    pub label_column: String,
    /// The labels file for IDX images.
    #[arg(long)]
    pub labels: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct TrainArgs {
    /// The Keras policy: float32, float64, float16, bfloat16, mixed_float16, mixed_bfloat16
    /// (default: the global policy, float32 unless a default-policy feature says otherwise).
    #[arg(long, env = "MIXPREC_POLICY")]
    pub policy: Option<DTypePolicy>,
    /// Save the trained model with its optimizer state (safetensors, written atomically).
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Continue a run saved with --save, exactly where it stopped: the checkpoint's policy,
    /// architecture, optimizer state, learning rate, batch size, seed, data and split are used,
    /// and --epochs is the total to reach (as Keras's initial_epoch/epochs).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub training: TrainingArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CompareArgs {
    /// Policies to compare, comma-separated (default: all six).
    #[arg(long, value_delimiter = ',')]
    pub policies: Vec<DTypePolicy>,
    /// Draw the per-epoch training loss of each policy to this file (.svg or .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub training: TrainingArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Shapes `BATCHxINxOUT`, comma-separated.
    #[arg(long = "shape", value_delimiter = ',', default_value = "256x1024x1024,1024x1024x1024", value_parser = parse_shape)]
    pub shapes: Vec<(usize, usize, usize)>,
    /// Policies to measure, comma-separated (float32 is always measured, as the reference).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "float32,mixed_bfloat16,mixed_float16,bfloat16"
    )]
    pub policies: Vec<DTypePolicy>,
    /// Seconds of timing per measurement.
    #[arg(long, default_value_t = 0.5, value_parser = positive_f32)]
    pub seconds: f32,
}

/// Hidden widths (a newtype so clap takes the whole comma list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(pub Vec<usize>);

fn parse_widths(s: &str) -> Result<Widths, String> {
    if s.trim().is_empty() {
        return Ok(Widths(Vec::new()));
    }
    s.split(',')
        .map(|w| match w.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "{w:?} is not a positive width (expected e.g. 128,128)"
            )),
        })
        .collect::<Result<_, _>>()
        .map(Widths)
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize), String> {
    let dims: Vec<usize> = s
        .split('x')
        .filter_map(|d| d.parse().ok())
        .filter(|&d| d > 0)
        .collect();
    match dims[..] {
        [b, i, o] if s.split('x').count() == 3 => Ok((b, i, o)),
        _ => Err(format!(
            "{s:?} is not BATCHxINxOUT with positive sizes (expected e.g. 256x1024x1024)"
        )),
    }
}

fn positive_f32(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a finite number > 0")),
    }
}

fn unit_fraction(s: &str) -> Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err(format!("{s:?} is not a fraction between 0 and 1")),
    }
}
