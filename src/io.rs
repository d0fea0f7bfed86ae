//! Reading and writing data from outside: the embedded digits data set ([`digits`]), CSV files
//! ([`read_csv`]) and MNIST-style IDX files ([`read_idx_dataset`]), gzip or plain, and model
//! checkpoints in safetensors ([`checkpoint`], with the `serde` feature, on by default). Every
//! malformed input is an [`Error`] naming the file and what was expected.

#[cfg(feature = "serde")]
pub mod checkpoint;
mod csv;
mod idx;

#[cfg(feature = "serde")]
pub use checkpoint::{
    cleanup_temp_files_on_signal, Checkpoint, CheckpointInfo, CheckpointMeta, CheckpointTensor,
    LossScaleState,
};
pub use csv::{parse_csv, read_csv, CsvOptions, LabelColumn, DEFAULT_MAX_CLASSES};
pub use idx::{read_idx_dataset, read_idx_images, read_idx_labels};

use std::io::Read;
use std::path::Path;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::tensor::MAX_ALLOCATION_BYTES;

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
        ..CsvOptions::default()
    };
    let bytes = gunzip("embedded digits", DIGITS_CSV_GZ, MAX_ALLOCATION_BYTES)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Parse {
        source_name: "embedded digits".into(),
        line: 0,
        message: format!("not UTF-8 text ({e})"),
    })?;
    parse_csv(&text, "embedded digits", &opts)
}

/// gzip's magic number, the first two bytes of every gzip file.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// A data file's format, told by its content ([`sniff_format`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DataFormat {
    /// Comma-separated text ([`read_csv`]).
    Csv,
    /// An MNIST-style IDX file ([`read_idx_images`], [`read_idx_labels`]).
    Idx,
}

/// Tells a data file's format from its first bytes, not its name. gzip data (magic `1f 8b`) is
/// judged by its decompressed start. An IDX file starts `00 00 <type> <ndims>`; text never starts
/// with a NUL byte, so any file starting `00 00` is taken for IDX (the IDX reader then names a
/// type byte or dimension count it cannot read, which says more about a damaged IDX file than a
/// CSV parse error would); anything else is taken for CSV, whose reader says what is wrong.
///
/// ```
/// use mixprec::io::{sniff_format, DataFormat};
/// # let dir = std::env::temp_dir().join(format!("mixprec-doc-sniff-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir).unwrap();
/// let (idx, csv) = (dir.join("labels.bin"), dir.join("idx-named.csv"));
/// std::fs::write(&idx, [0, 0, 8, 1, 0, 0, 0, 1, 3]).unwrap();
/// std::fs::write(&csv, "1,2,0\n").unwrap();
/// assert_eq!(sniff_format(&idx)?, DataFormat::Idx);
/// assert_eq!(sniff_format(&csv)?, DataFormat::Csv);
/// # std::fs::remove_dir_all(&dir).unwrap();
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// # Errors
///
/// [`Error::Io`] naming the file when it cannot be opened or read; [`Error::CorruptGzip`] when
/// its gzip data is damaged before the first 4 bytes.
pub fn sniff_format(path: &Path) -> Result<DataFormat> {
    let io = |source| Error::Io {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut start = Vec::with_capacity(4);
    (&mut file).take(4).read_to_end(&mut start).map_err(io)?;
    if start.starts_with(&GZIP_MAGIC) {
        let raw = std::fs::File::open(path).map_err(io)?;
        start.clear();
        flate2::read::MultiGzDecoder::new(raw)
            .take(4)
            .read_to_end(&mut start)
            .map_err(|source| Error::CorruptGzip {
                path: path.display().to_string(),
                source,
            })?;
    }
    Ok(match start[..] {
        [0, 0, ..] => DataFormat::Idx,
        _ => DataFormat::Csv,
    })
}

/// A file's bytes, decompressed when they start with gzip's magic (whatever the name), the
/// decompressed size capped by [`MAX_ALLOCATION_BYTES`].
pub(crate) fn read_maybe_gzip(path: &Path) -> Result<Vec<u8>> {
    let name = path.display().to_string();
    let raw = read_limited(path)?;
    if raw.starts_with(&GZIP_MAGIC) {
        gunzip(&name, &raw, MAX_ALLOCATION_BYTES)
    } else {
        Ok(raw)
    }
}

/// A file's bytes, refused before reading when the file is larger than
/// [`MAX_ALLOCATION_BYTES`] (a 5 GB sparse CSV used to be read whole, then parsed).
pub(crate) fn read_limited(path: &Path) -> Result<Vec<u8>> {
    let name = path.display().to_string();
    let io = |source| Error::Io {
        path: name.clone(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    crate::tensor::alloc::check_bytes(|| format!("reading {name}"), u128::from(len), 1)?;
    std::fs::read(path).map_err(io)
}

/// Decompresses gzip data (every member), refusing more than `limit` bytes of output: the
/// output is read through a `take(limit + 1)`, so no more is ever allocated.
pub(crate) fn gunzip(source: &str, bytes: &[u8], limit: u128) -> Result<Vec<u8>> {
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .take(cap)
        .read_to_end(&mut out)
        .map_err(|e| Error::CorruptGzip {
            path: source.to_string(),
            source: e,
        })?;
    if out.len() as u128 > limit {
        return Err(Error::TooLarge {
            what: format!("decompressing {source} (stopped at the limit)"),
            bytes: out.len() as u128,
            limit,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn gunzip_stops_at_the_budget_and_names_the_source() {
        let packed = gz(&[0u8; 100_000]);
        assert!(packed.len() < 1_000, "{}", packed.len());
        let err = gunzip("bomb.gz", &packed, 4096).unwrap_err();
        assert!(
            matches!(
                err,
                Error::TooLarge {
                    bytes: 4097,
                    limit: 4096,
                    ..
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("decompressing bomb.gz"),
            "{err}"
        );
        assert_eq!(gunzip("ok.gz", &packed, 100_000).unwrap().len(), 100_000);
    }

    #[test]
    fn gunzip_reads_every_member() {
        let mut two = gz(b"1,2,0\n");
        two.extend(gz(b"3,4,1\n"));
        assert_eq!(gunzip("two.gz", &two, 1 << 20).unwrap(), b"1,2,0\n3,4,1\n");
    }
}
