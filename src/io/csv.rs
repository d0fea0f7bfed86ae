//! CSV data sets: one row per sample, numeric features and one integer label column.

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

/// The default of [`CsvOptions::max_classes`]: 65,536 classes (labels 0..=65535). A label column
/// holding larger numbers is more often an ID or a measurement chosen by mistake than a class.
pub const DEFAULT_MAX_CLASSES: usize = 1 << 16;

/// How to read a CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvOptions {
    /// The label column (default: last).
    pub label_column: LabelColumn,
    /// Features are multiplied by this (default 1; the digits data uses 1/16 to reach [0, 1]).
    pub scale: f32,
    /// Skip the first line (default false).
    pub header: bool,
    /// The most classes accepted: every label must be below it (default
    /// [`DEFAULT_MAX_CLASSES`]). The model's output layer gets `max label + 1` units, so this
    /// bounds its size.
    pub max_classes: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_column: LabelColumn::Last,
            scale: 1.0,
            header: false,
            max_classes: DEFAULT_MAX_CLASSES,
        }
    }
}

/// Reads a CSV file, gzip-compressed or plain (told by the gzip magic `1f 8b`, not the name).
///
/// # Errors
///
/// [`Error::Io`] when the file cannot be read or decompressed; [`Error::TooLarge`] when it
/// decompresses to more than [`MAX_ALLOCATION_BYTES`](crate::tensor::MAX_ALLOCATION_BYTES);
/// [`Error::Parse`] for text that is not UTF-8 or a malformed line; as [`parse_csv`].
pub fn read_csv(path: &Path, options: &CsvOptions) -> Result<Dataset> {
    let name = path.display().to_string();
    let bytes = super::read_maybe_gzip(path)?;
    let text = String::from_utf8(bytes).map_err(|e| Error::Parse {
        source_name: name.clone(),
        line: 0,
        message: format!("not UTF-8 text ({e})"),
    })?;
    parse_csv(&text, &name, options)
}

/// Parses CSV text into a classification [`Dataset`]; the number of classes is the largest
/// label plus one. A leading byte-order mark, CRLF line ends and blank lines are accepted.
///
/// # Errors
///
/// [`Error::Parse`] naming the line for a wrong column count or a feature that is not a finite
/// number; [`Error::InvalidLabel`] naming the line and column for a label that is not an integer
/// in `0..max_classes` (negative, fractional, NaN, too large); [`Error::Empty`] for no rows;
/// [`Error::InvalidArgument`] for a non-finite `scale` or zero `max_classes`.
pub fn parse_csv(text: &str, source_name: &str, options: &CsvOptions) -> Result<Dataset> {
    check_options(options)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
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
                    format!(
                        "label column {c} but only {w} columns (expected 0..={})",
                        w - 1
                    ),
                ))
            }
        };
        for (c, f) in fields.iter().enumerate() {
            if c == label_at {
                labels.push(parse_label(
                    f,
                    source_name,
                    line_no,
                    c + 1,
                    options.max_classes,
                )?);
            } else {
                let v = f
                    .parse::<f32>()
                    .ok()
                    .map(|v| v * options.scale)
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| {
                        bad(
                            line_no,
                            format!(
                                "column {} value {f:?} is not a finite number (expected a decimal \
                                 number whose scaled value fits in f32)",
                                c + 1
                            ),
                        )
                    })?;
                x.push(v);
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

fn check_options(options: &CsvOptions) -> Result<()> {
    if !options.scale.is_finite() {
        return Err(Error::InvalidArgument {
            what: "CSV scale",
            found: options.scale.to_string(),
            expected: "a finite number",
        });
    }
    if options.max_classes == 0 || options.max_classes > u32::MAX as usize {
        return Err(Error::InvalidArgument {
            what: "CSV max_classes",
            found: options.max_classes.to_string(),
            expected: "between 1 and 4294967295",
        });
    }
    Ok(())
}

/// A label field as a class index below `max_classes`.
fn parse_label(
    field: &str,
    source_name: &str,
    line: usize,
    column: usize,
    max_classes: usize,
) -> Result<u32> {
    let mut hint = String::new();
    match field.parse::<u64>() {
        Ok(v) if v < max_classes as u64 => return Ok(v as u32),
        Ok(v) => {
            hint = format!(
                "; {v} would make a model with {} output classes: is the label column right? \
                 choose it with --label-column, or raise CsvOptions::max_classes",
                u128::from(v) + 1
            )
        }
        Err(_) => {
            if let Ok(v) = field.parse::<f64>() {
                hint = if v.is_nan() {
                    "; NaN is not a class".into()
                } else if v < 0.0 {
                    "; labels are not negative".into()
                } else if v.fract() != 0.0 {
                    "; labels are whole numbers: is the label column right? choose it with \
                     --label-column"
                        .into()
                } else {
                    "; write it as a plain integer".into()
                };
            }
        }
    }
    Err(Error::InvalidLabel {
        source_name: source_name.to_string(),
        line,
        column,
        found: shorten(field),
        max_classes,
        hint,
    })
}

/// A field quoted back in an error, cut to 40 characters.
fn shorten(s: &str) -> String {
    match s.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &s[..cut]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_csv_reports_line_of_bad_field() {
        let err = parse_csv("1,2,0\n3,x,1\n", "t.csv", &CsvOptions::default()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "t.csv line 2: column 2 value \"x\" is not a finite number (expected a decimal \
             number whose scaled value fits in f32)"
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
            ..CsvOptions::default()
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
