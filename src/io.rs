//! Reading and writing data from outside: the embedded digits data set ([`digits`]), CSV files
//! ([`read_csv`]) and MNIST-style IDX files ([`read_idx_dataset`]), gzip or plain, and model
//! checkpoints in safetensors ([`checkpoint`], with the `serde` feature, on by default). Every
//! malformed input is an [`Error`](crate::Error) naming the file and what was expected.

#[cfg(feature = "serde")]
pub mod checkpoint;
mod csv;
mod idx;

#[cfg(feature = "serde")]
pub use checkpoint::{
    Checkpoint, CheckpointInfo, CheckpointMeta, CheckpointTensor, LossScaleState,
};
pub use csv::{parse_csv, read_csv, CsvOptions, LabelColumn};
pub use idx::{read_idx_dataset, read_idx_images, read_idx_labels};

use crate::data::Dataset;
use crate::error::Result;

/// The digits data (UCI optical digits as scikit-learn ships it: 1,797 8x8 images, labels 0..9),
/// gzip-compressed CSV, embedded in the crate. Attribution and licence: `data/README.md`.
pub const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// The embedded digits data: 1,797 rows of 64 pixels scaled to [0, 1], 10 classes.
///
/// ```
/// let digits = mixprec::io::digits()?;
/// assert_eq!((digits.len(), digits.features(), digits.classes()), (1797, 64, Some(10)));
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// # Errors
///
/// Only if the embedded file were corrupt (it is checked by the tests).
pub fn digits() -> Result<Dataset> {
    let opts = CsvOptions {
        label_column: csv::LabelColumn::Last,
        scale: 1.0 / 16.0,
        header: false,
    };
    parse_csv(
        &csv::gunzip("embedded digits", DIGITS_CSV_GZ)?,
        "embedded digits",
        &opts,
    )
}
