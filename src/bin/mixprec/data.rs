//! Loading the data a command names: the embedded digits, a CSV file, or IDX files.

use std::path::Path;

use mixprec::data::Dataset;
use mixprec::io::{read_csv, CsvOptions, LabelColumn};
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
    if name.contains("idx") {
        let labels = labels.ok_or(Error::InvalidArgument {
            what: "--labels",
            found: "missing".into(),
            expected: "the IDX labels file that goes with the images",
        })?;
        return Ok((mixprec::io::read_idx_dataset(path, labels)?, name));
    }
    let label_column = match label_column {
        "last" => LabelColumn::Last,
        "first" => LabelColumn::First,
        other => LabelColumn::Index(other.parse().map_err(|_| Error::InvalidArgument {
            what: "--label-column",
            found: format!("{other:?}"),
            expected: "last, first, or a 0-based column index",
        })?),
    };
    Ok((
        read_csv(
            path,
            &CsvOptions {
                label_column,
                ..CsvOptions::default()
            },
        )?,
        name,
    ))
}
