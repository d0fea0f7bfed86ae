//! Loading the data a command names: the embedded digits, a CSV file, or IDX files.

use std::path::Path;

use mixprec::data::Dataset;
use mixprec::io::{read_csv, sniff_format, CsvOptions, DataFormat, LabelColumn};
use mixprec::{Error, Result};

use crate::cli::{DataArgs, TrainingArgs};

/// The data set `args.data` names, split into (train, test) with `args.seed`.
pub fn load_split(args: &TrainingArgs) -> Result<(Dataset, Dataset, String)> {
    let (data, name) = load(&args.data)?;
    let (train, test) = data.shuffle_split(args.test_split, args.seed)?;
    Ok((train, test, name))
}

/// The data set `args` names (`digits`, a CSV file, or IDX images with `--labels`).
pub fn load(args: &DataArgs) -> Result<(Dataset, String)> {
    let (data, label_column, labels) = (
        args.data.as_str(),
        args.label_column.as_str(),
        args.labels.as_deref(),
    );
    if data == "digits" {
        return Ok((
            mixprec::io::digits()?,
            "digits (embedded, 1797 8x8 images)".to_string(),
        ));
    }
    let path = Path::new(data);
    let name = path.display().to_string();
    regular_file(path)?;
    if let Some(labels) = labels {
        regular_file(labels)?;
    }
    match (sniff_format(path)?, labels) {
        (DataFormat::Idx, Some(labels)) => Ok((mixprec::io::read_idx_dataset(path, labels)?, name)),
        (DataFormat::Idx, None) => Err(Error::InvalidArgument {
            what: "--labels",
            found: format!("missing, but {name} is an IDX images file"),
            expected: "the IDX labels file that goes with the images",
        }),
        (_, Some(labels)) => Err(Error::InvalidArgument {
            what: "--labels",
            found: format!("{} given, but {name} is a CSV file", labels.display()),
            expected: "--labels only with IDX images; a CSV file holds its labels in a column, see --label-column",
        }),
        (_, None) => {
            let options = CsvOptions {
                label_column: parse_label_column(label_column)?,
                ..CsvOptions::default()
            };
            Ok((read_csv(path, &options)?, name))
        }
    }
}

fn parse_label_column(s: &str) -> Result<LabelColumn> {
    match s {
        "last" => Ok(LabelColumn::Last),
        "first" => Ok(LabelColumn::First),
        other => match other.parse() {
            Ok(index) => Ok(LabelColumn::Index(index)),
            Err(_) => Err(Error::InvalidArgument {
                what: "--label-column",
                found: format!("{other:?}"),
                expected: "last, first, or a 0-based column index",
            }),
        },
    }
}

/// Fails unless `path` is a regular file (or a link to one): a directory is named as such, and a
/// FIFO, socket or device is refused before it is opened, since reading one could block forever
/// and the loaders read a file more than once.
pub fn regular_file(path: &Path) -> Result<()> {
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.display().to_string(),
        source,
    })?;
    let problem = if meta.is_file() {
        return Ok(());
    } else if meta.is_dir() {
        "is a directory (expected a file)"
    } else {
        "is not a regular file but a FIFO, socket or device (expected a file)"
    };
    Err(Error::Io {
        path: path.display().to_string(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, problem),
    })
}
