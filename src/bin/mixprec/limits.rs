//! The limits on what a flag or a file may ask the CLI to allocate or to run for, checked before
//! anything is allocated, so that a typo (`--hidden 100000000`, `--seconds 1e30`) or an ID column
//! taken for labels is an error naming the flag and the size instead of an abort or a hang.
//!
//! The limits are far above what the CLI is for (MLPs on data that fits in memory) and are listed
//! in `--help`.

use mixprec::models::{CnnSpec, MlpSpec};

use crate::arch::Arch;
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
///
/// For the CNN: the same 28 bytes per parameter, and per image 12 bytes per input, convolution
/// output, pooled output and logit, 16 per element of its window matrix (saved, and its
/// gradient) and 8 per pooled output (the argmax index).
pub fn training_bytes(spec: &Arch, batch: usize) -> Result<u128> {
    let batch = batch as u128;
    Ok(match spec {
        Arch::Mlp(spec) => 28 * parameters(spec) + 12 * batch * units(spec),
        Arch::Cnn(spec) => {
            let (units, cols, pooled) = cnn_elements(spec)?;
            28 * spec.param_count_wide()? + batch * (12 * units + 16 * cols + 8 * pooled)
        }
    })
}

/// Bytes running `spec` forward on batches of `batch` rows will need, roughly: per parameter
/// the value, a compute copy and two packed copies (16 bytes), and per batch row and unit the
/// output and its f32 accumulator (8 bytes).
///
/// For the CNN: 16 bytes per parameter, and per image 8 per input, convolution output, pooled
/// output and logit, and 4 per element of its window matrix.
pub fn inference_bytes(spec: &Arch, batch: usize) -> Result<u128> {
    let batch = batch as u128;
    Ok(match spec {
        Arch::Mlp(spec) => 16 * parameters(spec) + 8 * batch * units(spec),
        Arch::Cnn(spec) => {
            let (units, cols, _) = cnn_elements(spec)?;
            16 * spec.param_count_wide()? + batch * (8 * units + 4 * cols)
        }
    })
}

/// Per image: the elements of the input, the convolution output, the pooled output and the
/// logits; of the window matrix; and of the pooled output.
fn cnn_elements(spec: &CnnSpec) -> Result<(u128, u128, u128)> {
    let wide = |s: [usize; 3]| s.iter().map(|&d| d as u128).product::<u128>();
    let (conv, pooled) = (wide(spec.conv_output()?), wide(spec.pool_output()?));
    let (kh, kw) = spec.kernel_size;
    let positions = conv / spec.filters as u128;
    let cols = positions * kh as u128 * kw as u128 * spec.input[2] as u128;
    let units = wide(spec.input) + conv + pooled + spec.outputs as u128;
    Ok((units, cols, pooled))
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
