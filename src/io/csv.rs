//! CSV data sets: one row per sample, numeric features and one integer label column.

use std::io::Read;
use std::path::Path;

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Which column holds the class label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelColumn {
    /// The first column.
    First,
    /// The last column.
    Last,
    /// Column `i` (0-based).
    Index(usize),
}

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// The label column (default: last).
    pub label_column: LabelColumn,
    /// Features are multiplied by this (default 1; the digits data uses 1/16 to reach [0, 1]).
    pub scale: f32,
    /// Skip the first line (default false).
    pub header: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_column: LabelColumn::Last,
            scale: 1.0,
            header: false,
        }
    }
}

/// Decompresses gzip data.
pub(crate) fn gunzip(source: &str, bytes: &[u8]) -> Result<String> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .map_err(|e| Error::Io {
            path: source.to_string(),
            source: e,
        })?;
    Ok(text)
}

/// Reads a CSV file (gzip when the name ends in `.gz`).
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read; [`Error::Parse`] for a malformed line;
/// the [`Dataset`] checks for the values.
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<Dataset> {
    let name = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| Error::Io {
        path: name.clone(),
        source: e,
    })?;
    let text = if name.ends_with(".gz") {
        gunzip(&name, &bytes)?
    } else {
        String::from_utf8(bytes).map_err(|e| Error::Parse {
            source_name: name.clone(),
            line: 0,
            message: format!("not UTF-8 text ({e})"),
        })?
    };
    parse_csv(&text, &name, options)
}

/// Parses CSV text into a classification [`Dataset`]; the number of classes is the largest
/// label plus one.
///
/// # Errors
///
/// [`Error::Parse`] naming the line for a wrong column count, a non-numeric field, or a label
/// that is not a non-negative integer; [`Error::Empty`] for no rows.
pub fn parse_csv(text: &str, source_name: &str, options: &CsvOptions) -> Result<Dataset> {
    let bad = |line: usize, message: String| Error::Parse {
        source_name: source_name.to_string(),
        line,
        message,
    };
    let (mut x, mut labels, mut width) = (Vec::new(), Vec::new(), None);
    for (i, line) in text.lines().enumerate().skip(usize::from(options.header)) {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let w = *width.get_or_insert(fields.len());
        if fields.len() != w || w < 2 {
            return Err(bad(
                line_no,
                format!(
                    "{} columns, expected {} (at least 2)",
                    fields.len(),
                    w.max(2)
                ),
            ));
        }
        let label_at = match options.label_column {
            LabelColumn::First => 0,
            LabelColumn::Last => w - 1,
            LabelColumn::Index(c) if c < w => c,
            LabelColumn::Index(c) => {
                return Err(bad(
                    line_no,
                    format!("label column {c} but only {w} columns"),
                ))
            }
        };
        for (c, f) in fields.iter().enumerate() {
            if c == label_at {
                let label: u32 = f.parse().map_err(|_| {
                    bad(
                        line_no,
                        format!("label {f:?} is not a non-negative integer"),
                    )
                })?;
                labels.push(label);
            } else {
                let v: f32 = f.parse().map_err(|_| {
                    bad(
                        line_no,
                        format!("column {} value {f:?} is not a number", c + 1),
                    )
                })?;
                x.push(v * options.scale);
            }
        }
    }
    let (rows, w) = (labels.len(), width.unwrap_or(0));
    if rows == 0 {
        return Err(Error::Empty {
            what: "data file",
            why: format!("{source_name} has no data rows"),
        });
    }
    let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
    Dataset::classification(Tensor::from_vec(vec![rows, w - 1], x)?, labels, classes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_csv_reports_line_of_bad_field() {
        let err = parse_csv("1,2,0\n3,x,1\n", "t.csv", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv line 2: column 2 value \"x\" is not a number"
        );
        let err = parse_csv("1,2,0\n3,1\n", "t.csv", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv line 2: 2 columns, expected 3 (at least 2)"
        );
        let err = parse_csv("1,2,-1\n", "t.csv", &CsvOptions::default()).unwrap_err();
        assert!(err.to_string().contains("label \"-1\""), "{err}");
    }

    #[test]
    fn parse_csv_label_first_and_header() {
        let opts = CsvOptions {
            label_column: LabelColumn::First,
            header: true,
            scale: 0.5,
        };
        let d = parse_csv("y,a,b\n1,2,4\n0,6,8\n", "t", &opts).unwrap();
        assert_eq!(d.x().as_slice(), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(d.classes(), Some(2));
    }

    #[test]
    fn embedded_digits_are_intact() {
        let d = crate::io::digits().unwrap();
        assert_eq!(d.len(), 1797);
        assert!(d.x().as_slice().iter().all(|&v| (0.0..=1.0).contains(&v)));
    }
}
