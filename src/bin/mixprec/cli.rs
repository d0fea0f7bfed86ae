//! The command line: subcommands and their flags (clap).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use mixprec::DTypePolicy;

pub use crate::layers::{LayerPolicies, PolicyChoice};

use crate::limits::{MAX_BATCH, MAX_DIM, MAX_EPOCHS, MAX_LAYERS, MAX_LR, MAX_SECONDS};

/// Keras 3 mixed precision in Rust: train, compare and benchmark the six dtype policies.
#[derive(Debug, Parser)]
#[command(
    name = "mixprec",
    version,
    about,
    after_help = "Limits: a command may plan at most 16 GiB for its model, optimizer state and \
                  activations (or bench's tensors); --epochs 1..=1000000, --batch-size \
                  1..=1048576, --hidden and --shape sizes 1..=16777216 (at most 64 layers), --lr \
                  in (0, 10], --seconds in (0, 3600]."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train an MLP (or --model cnn) under one policy and report test accuracy, speed and
    /// memory.
    Train(TrainArgs),
    /// Train the same model from the same seed under several policies and compare them.
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
    /// How many predictions to print (0 or more).
    #[arg(long, default_value_t = 10, value_parser = show, allow_negative_numbers = true)]
    pub show: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    Adam,
    Sgd,
}

/// Which architecture `train` and `compare` build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Dense layers of --hidden widths, ReLU, then a linear output layer.
    Mlp,
    /// Conv2D (32 3x3 "same" filters, ReLU), 2x2 MaxPooling2D, Flatten, Dense: each row read
    /// as a square one-channel image (the digits as [batch, 8, 8, 1]).
    Cnn,
}

/// `--lr`'s default for the CNN (the MLP's is 1e-3): tuned on the digits, README.
pub const CNN_LR: f32 = 3e-3;

/// What to train on and how; shared by `train` and `compare`.
#[derive(Debug, Clone, Args)]
pub struct TrainingArgs {
    /// The architecture: `mlp` (widths from --hidden) or `cnn` (Conv2D-ReLU-MaxPooling2D-
    /// Flatten-Dense on square images; no --hidden; its --layer-policy paths are conv and dense).
    #[arg(long, value_enum, default_value_t = ModelKind::Mlp)]
    pub model: ModelKind,
    /// Passes over the training data (1 to 1000000).
    #[arg(long, default_value_t = 20, value_parser = epochs, allow_negative_numbers = true)]
    pub epochs: u32,
    /// Rows per optimizer step (1 to 1048576; more than the data is one batch of all rows).
    #[arg(long, default_value_t = 32, value_parser = batch_size, allow_negative_numbers = true)]
    pub batch_size: u32,
    /// Learning rate, in (0, 10]; 0.003 with --model cnn unless given.
    #[arg(long, default_value_t = 1e-3, value_parser = learning_rate, allow_negative_numbers = true)]
    pub lr: f32,
    /// The optimizer (float16 policies wrap it in a LossScaleOptimizer, as Keras does).
    #[arg(long, value_enum, default_value_t = OptimizerKind::Adam)]
    pub optimizer: OptimizerKind,
    /// Hidden layer widths of the MLP, comma-separated (each 1 to 16777216, at most 64
    /// layers; not with --model cnn).
    #[arg(long, default_value = "128,128", value_parser = parse_widths, allow_negative_numbers = true)]
    pub hidden: Widths,
    /// Seed of the initial weights, the train/test split and the shuffles (0 to 2^64-1).
    #[arg(long, default_value_t = 0, value_parser = seed, allow_negative_numbers = true)]
    pub seed: u64,
    #[command(flatten)]
    pub data: DataArgs,
    /// Keep training after an epoch that diverged (every step skipped by loss scaling, or a
    /// NaN/infinite mean loss) instead of stopping with an error; `--save` then writes the
    /// model with a warning naming those epochs.
    #[arg(long)]
    pub continue_on_divergence: bool,
    /// Fraction of the data held out as the test set, between 0 and 1 (exclusive).
    #[arg(long, default_value_t = 0.2, value_parser = unit_fraction, allow_negative_numbers = true)]
    pub test_split: f32,
    /// A layer's own policy, PATH=POLICY (repeatable, or comma-separated). PATH is a layer
    /// path, 0 for the first layer to N for the output layer (N = the number of hidden layers;
    /// conv and dense for --model cnn, whose pooling runs in conv's policy), `head` for the
    /// output layer, or a regex that must match whole paths (`[0-9]+`); an exact
    /// path wins over regexes, and a path two regexes match is an error. Layers no key
    /// matches get --policy (or the global policy), and a key that matches no layer is an
    /// error. E.g. `--policy mixed_bfloat16 --layer-policy head=float32`.
    ///
    /// Without it every layer has --policy. Keras advises a float32 output layer under mixed
    /// precision; on this job (digits, 64-128-128-10, 20 epochs, seeds 1-3) it changed no test
    /// accuracy under mixed_bfloat16 and cost about 13% of its speed, and under mixed_float16
    /// it lost 0.56 points on one seed out of three, so it is not the default (README).
    #[arg(long = "layer-policy", value_name = "PATH=POLICY", value_parser = crate::layers::layer_policies)]
    pub layer_policy: Vec<LayerPolicies>,
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
    #[arg(long, default_value = "last", value_parser = label_column, allow_negative_numbers = true)]
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
    /// Policies to compare, comma-separated (default: all six). A policy followed by
    /// `+float32_head` (`mixed_bfloat16+float32_head`) runs it with a float32 output layer, as
    /// Keras advises for mixed precision; --layer-policy keys apply to every run.
    #[arg(long, value_delimiter = ',', value_parser = crate::layers::policy_choice)]
    pub policies: Vec<PolicyChoice>,
    /// Draw the per-epoch training loss of each policy to this file (.svg or .png).
    #[arg(long)]
    pub plot: Option<PathBuf>,
    #[command(flatten)]
    pub training: TrainingArgs,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Shapes `BATCHxINxOUT`, comma-separated (each size 1 to 16777216, at most 16 GiB of
    /// tensors per shape).
    #[arg(long = "shape", value_delimiter = ',', default_value = "256x1024x1024,1024x1024x1024", value_parser = parse_shape, allow_negative_numbers = true)]
    pub shapes: Vec<(usize, usize, usize)>,
    /// Policies to measure, comma-separated (float32 is always measured, as the reference).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "float32,mixed_bfloat16,mixed_float16,bfloat16"
    )]
    pub policies: Vec<DTypePolicy>,
    /// Seconds of timing per measurement, in (0, 3600].
    #[arg(long, default_value_t = 0.5, value_parser = seconds, allow_negative_numbers = true)]
    pub seconds: f32,
}

/// Hidden widths (a newtype so clap takes the whole comma list as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Widths(pub Vec<usize>);

fn parse_widths(s: &str) -> Result<Widths, String> {
    if s.trim().is_empty() {
        return Ok(Widths(Vec::new()));
    }
    let widths = s
        .split(',')
        .map(|w| {
            whole(w, 1, MAX_DIM)
                .map(|n| n as usize)
                .map_err(|e| format!("width {:?} {e} (expected e.g. 128,128)", w.trim()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if widths.len() > MAX_LAYERS {
        return Err(format!(
            "{} hidden layers; at most {MAX_LAYERS} are allowed",
            widths.len()
        ));
    }
    Ok(Widths(widths))
}

fn parse_shape(s: &str) -> Result<(usize, usize, usize), String> {
    let parts: Vec<&str> = s.split('x').collect();
    let [b, i, o] = parts[..] else {
        return Err(format!(
            "{s:?} is not BATCHxINxOUT (expected three sizes, e.g. 256x1024x1024)"
        ));
    };
    let dim = |name: &str, d: &str| {
        whole(d, 1, MAX_DIM).map(|n| n as usize).map_err(|e| {
            format!(
                "{name} {:?} {e} (expected BATCHxINxOUT, e.g. 256x1024x1024)",
                d.trim()
            )
        })
    };
    let shape = (dim("BATCH", b)?, dim("IN", i)?, dim("OUT", o)?);
    let bytes = crate::bench::bytes_needed(shape);
    if bytes > crate::limits::MEMORY_LIMIT {
        return Err(format!(
            "needs about {} for its inputs, outputs, weights and gradients; the limit is {}",
            crate::limits::human(bytes),
            crate::limits::human(crate::limits::MEMORY_LIMIT)
        ));
    }
    Ok(shape)
}

/// A whole number in `lo..=hi`, with a message that says which bound was crossed.
fn whole(s: &str, lo: u64, hi: u64) -> Result<u64, String> {
    let t = s.trim();
    let digits = t.strip_prefix('-').unwrap_or(t);
    let is_integer = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
    match t.parse::<i128>() {
        Ok(v) if v < i128::from(lo) => Err(format!("must be at least {lo}")),
        Ok(v) if v > i128::from(hi) => Err(format!("must be at most {hi}")),
        Ok(v) => Ok(v as u64),
        Err(_) if is_integer && t.starts_with('-') => Err(format!("must be at least {lo}")),
        Err(_) if is_integer => Err(format!("must be at most {hi}")),
        Err(_) => Err(format!("must be a whole number from {lo} to {hi}")),
    }
}

/// A number in `(0, hi]`; `unit` follows the bound in messages.
fn positive(s: &str, hi: f32, unit: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v.is_nan() => Err(format!("must be a number in (0, {hi}]{unit}")),
        Ok(v) if v == 0.0 && s.trim().parse::<f64>().is_ok_and(|x| x > 0.0) => Err(format!(
            "is positive but rounds to 0 in f32 (expected a number in [{:e}, {hi}]{unit})",
            f32::from_bits(1)
        )),
        Ok(v) if v <= 0.0 => Err(format!(
            "must be greater than 0 (a number in (0, {hi}]{unit})"
        )),
        Ok(v) if v > hi => Err(format!("must be at most {hi}{unit}")),
        Ok(v) => Ok(v),
        Err(_) => Err(format!("must be a number in (0, {hi}]{unit}")),
    }
}

fn epochs(s: &str) -> Result<u32, String> {
    whole(s, 1, MAX_EPOCHS).map(|n| n as u32)
}

fn batch_size(s: &str) -> Result<u32, String> {
    whole(s, 1, MAX_BATCH).map(|n| n as u32)
}

fn seed(s: &str) -> Result<u64, String> {
    whole(s, 0, u64::MAX)
}

fn show(s: &str) -> Result<usize, String> {
    whole(s, 0, u32::MAX.into()).map(|n| n as usize)
}

fn learning_rate(s: &str) -> Result<f32, String> {
    positive(s, MAX_LR, "")
}

fn seconds(s: &str) -> Result<f32, String> {
    positive(s, MAX_SECONDS, " seconds")
}

fn unit_fraction(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(v) if v > 0.0 && v < 1.0 => Ok(v),
        _ => Err("must be a fraction between 0 and 1, exclusive (e.g. 0.2)".to_string()),
    }
}

fn label_column(s: &str) -> Result<String, String> {
    match s {
        "last" | "first" => Ok(s.to_string()),
        _ if s.parse::<usize>().is_ok() => Ok(s.to_string()),
        _ => Err("must be last, first, or a 0-based column index (0, 1, ...)".to_string()),
    }
}
