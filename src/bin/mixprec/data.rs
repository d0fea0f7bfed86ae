//! Loading the data a command names: the embedded digits, a CSV file, or IDX files.

use std::path::Path;

use mixprec::data::Dataset;
use mixprec::io::{read_csv, CsvOptions, LabelColumn};
use mixprec::{Error, Result};

use crate::cli::TrainingArgs;

/// The data set `args.data` names, split into (train, test) with `args.seed`.
pub fn load_split(args: &TrainingArgs) -> Result<(Dataset, Dataset, String)> {
    let (data, name) = load(args)?;
    let (train, test) = data.shuffle_split(args.test_split, args.seed)?;
    Ok((train, test, name))
}

fn load(args: &TrainingArgs) -> Result<(Dataset, String)> {
    if args.data == "digits" {
        return Ok((
            mixprec::io::digits()?,
            "digits (embedded, 1797 8x8 images)".to_string(),
        ));
    }
    let path = Path::new(&args.data);
    let name = path.display().to_string();
    if name.contains("idx") {
        let labels = args.labels.as_deref().ok_or(Error::InvalidArgument {
            what: "--labels",
            found: "missing".into(),
            expected: "the IDX labels file that goes with the images",
        })?;
        let _ = labels;
        return Err(Error::InvalidArgument {
            what: "--data",
            found: name,
            expected: "digits or a CSV file (IDX support is being added)",
        });
    }
    let label_column = match args.label_column.as_str() {
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
