//! The limits on what a flag or a file may ask the CLI to allocate or to run for, checked before
//! anything is allocated, so that a typo (`--hidden 100000000`, `--seconds 1e30`) or an ID column
//! taken for labels is an error naming the flag and the size instead of an abort or a hang.
//!
//! The limits are far above what the CLI is for (MLPs on data that fits in memory) and are listed
//! in `--help`.

use mixprec::models::MlpSpec;
use mixprec::{Error, Result};

/// Most bytes one command may plan to allocate for its model, optimizer state and activations
/// (16 GiB).
pub const MEMORY_LIMIT: u128 = 16 << 30;
/// Most seconds `bench --seconds` may time each measurement for (one hour).
pub const MAX_SECONDS: f32 = 3600.0;
/// Largest `--lr`.
pub const MAX_LR: f32 = 10.0;
/// Most `--epochs`.
pub const MAX_EPOCHS: u64 = 1_000_000;
/// Largest `--batch-size` (2^20 rows).
pub const MAX_BATCH: u64 = 1 << 20;
/// Widest hidden layer or `bench --shape` dimension (2^24).
pub const MAX_DIM: u64 = 1 << 24;
/// Most hidden layers.
pub const MAX_LAYERS: usize = 64;

/// `17179869184` → `16.0 GiB`.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// Parameters of `spec` (kernels and biases), exactly, without overflow.
pub fn parameters(spec: &MlpSpec) -> u128 {
    let mut widths = vec![spec.inputs as u128];
    widths.extend(spec.hidden.iter().map(|&w| w as u128));
    widths.push(spec.outputs as u128);
    widths.windows(2).map(|w| w[0] * w[1] + w[1]).sum()
}

/// Bytes training `spec` on batches of `batch` rows will need, roughly: per parameter the f32
/// master value, its gradient, two optimizer slots, a compute copy and two packed copies
/// (28 bytes), and per batch row and unit the forward output, its f32 accumulator and the
/// backward's gradient (12 bytes).
pub fn training_bytes(spec: &MlpSpec, batch: usize) -> u128 {
    28 * parameters(spec) + 12 * batch as u128 * units(spec)
}

/// Bytes running `spec` forward on batches of `batch` rows will need, roughly: per parameter
/// the value, a compute copy and two packed copies (16 bytes), and per batch row and unit the
/// output and its f32 accumulator (8 bytes).
pub fn inference_bytes(spec: &MlpSpec, batch: usize) -> u128 {
    16 * parameters(spec) + 8 * batch as u128 * units(spec)
}

fn units(spec: &MlpSpec) -> u128 {
    spec.hidden.iter().map(|&w| w as u128).sum::<u128>()
        + spec.inputs as u128
        + spec.outputs as u128
}

/// Fails unless `bytes` fits in [`MEMORY_LIMIT`]; `what` names the flag or file and `needs` says
/// what asks for the memory (`"--hidden 100000000 with 64 inputs and 10 classes"`).
pub fn check_memory(what: &'static str, needs: String, bytes: u128) -> Result<()> {
    if bytes <= MEMORY_LIMIT {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        what,
        found: format!("{needs} needs about {}", human(bytes)),
        expected: "the limit is 16.0 GiB; use smaller sizes",
    })
}
