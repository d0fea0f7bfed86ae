//! Reading data from outside: the embedded digits data set ([`digits`]) and CSV files
//! ([`read_csv`]), gzip or plain. Every malformed input is an [`Error`] naming the file, the line
//! and what was expected.

mod csv;

pub use csv::{parse_csv, read_csv, CsvOptions, LabelColumn};

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
