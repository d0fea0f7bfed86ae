//! [`Dataset`]: features (f32, one row per sample) with class labels or real targets, checked
//! on construction (matching rows, finite values, labels in range), split and batched for
//! [`fit`](crate::train::fit). Loaders for files and the embedded digits data are in
//! [`io`](crate::io).

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::error::{Error, Result};
use crate::losses::Targets;
use crate::tensor::Tensor;

/// The targets of a whole data set.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetData {
    /// One class index per row, each below `classes`.
    Classes {
        /// The labels.
        labels: Vec<u32>,
        /// The number of classes.
        classes: usize,
    },
    /// Real targets, one row per sample.
    Values(Tensor<f32>),
}

/// Samples for training or evaluation: `x` is `[rows, features]`.
///
/// ```
/// use mixprec::{data::Dataset, Tensor};
/// let x = Tensor::from_vec(vec![3, 2], vec![0.0f32, 1.0, 1.0, 0.0, 0.5, 0.5])?;
/// let d = Dataset::classification(x.clone(), vec![0, 1, 1], 2)?;
/// assert_eq!(d.len(), 3);
/// assert!(Dataset::classification(x, vec![0, 1, 2], 2).is_err()); // label 2 with 2 classes
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    x: Tensor<f32>,
    y: TargetData,
}

impl Dataset {
    /// A classification set.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] unless `x` is `[rows, features]` with one label per row;
    /// [`Error::Empty`] for no rows; [`Error::LabelOutOfRange`] for a label `>= classes`;
    /// [`Error::NonFiniteData`] for NaN or inf in `x`.
    pub fn classification(x: Tensor<f32>, labels: Vec<u32>, classes: usize) -> Result<Self> {
        let rows = check_features(&x)?;
        if labels.len() != rows {
            return Err(Error::shape(
                "labels",
                format!("[{rows}] (one per row of x)"),
                &[labels.len()],
            ));
        }
        if let Some(&label) = labels.iter().find(|&&l| l as usize >= classes) {
            return Err(Error::LabelOutOfRange {
                label: label.into(),
                classes,
            });
        }
        Ok(Dataset {
            x,
            y: TargetData::Classes { labels, classes },
        })
    }

    /// A regression set with targets `[rows, outputs]`.
    ///
    /// # Errors
    ///
    /// As [`classification`](Self::classification), for the targets' rows and values.
    pub fn regression(x: Tensor<f32>, y: Tensor<f32>) -> Result<Self> {
        let rows = check_features(&x)?;
        match *y.shape() {
            [r, c] if r == rows && c > 0 => {}
            _ => {
                return Err(Error::shape(
                    "targets",
                    format!("[{rows}, outputs]"),
                    y.shape(),
                ))
            }
        }
        check_finite("targets", y.as_slice())?;
        Ok(Dataset {
            x,
            y: TargetData::Values(y),
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.x.shape()[0]
    }

    /// Always false: a data set has at least one row.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Features per row.
    pub fn features(&self) -> usize {
        self.x.shape()[1]
    }

    /// The features.
    pub fn x(&self) -> &Tensor<f32> {
        &self.x
    }

    /// The targets.
    pub fn targets(&self) -> &TargetData {
        &self.y
    }

    /// The number of classes, for a classification set.
    pub fn classes(&self) -> Option<usize> {
        match &self.y {
            TargetData::Classes { classes, .. } => Some(*classes),
            TargetData::Values(_) => None,
        }
    }

    /// The rows at `indices`, in that order.
    ///
    /// # Panics
    ///
    /// If an index is out of range (internal callers pass permutations of `0..len`).
    pub fn select(&self, indices: &[usize]) -> Dataset {
        let f = self.features();
        let mut x = Vec::with_capacity(indices.len() * f);
        for &i in indices {
            x.extend_from_slice(&self.x.as_slice()[i * f..(i + 1) * f]);
        }
        let x = Tensor::from_parts(vec![indices.len(), f], x);
        let y = match &self.y {
            TargetData::Classes { labels, classes } => TargetData::Classes {
                labels: indices.iter().map(|&i| labels[i]).collect(),
                classes: *classes,
            },
            TargetData::Values(v) => {
                let c = v.shape()[1];
                let mut out = Vec::with_capacity(indices.len() * c);
                for &i in indices {
                    out.extend_from_slice(&v.as_slice()[i * c..(i + 1) * c]);
                }
                TargetData::Values(Tensor::from_parts(vec![indices.len(), c], out))
            }
        };
        Dataset { x, y }
    }

    /// The batch targets for rows `start..end` of this set.
    pub(crate) fn targets_of(&self, start: usize, end: usize) -> Targets<'_> {
        match &self.y {
            TargetData::Classes { labels, .. } => Targets::Classes(&labels[start..end]),
            TargetData::Values(v) => {
                let c = v.shape()[1];
                Targets::Values(&v.as_slice()[start * c..end * c])
            }
        }
    }

    /// The features of rows `start..end`.
    pub(crate) fn x_of(&self, start: usize, end: usize) -> Tensor<f32> {
        let f = self.features();
        Tensor::from_parts(
            vec![end - start, f],
            self.x.as_slice()[start * f..end * f].to_vec(),
        )
    }

    /// Splits off the last `fraction` of the rows (Keras's `validation_split`: no shuffling).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] unless `0 < fraction < 1` and both parts keep at least one row.
    pub fn split_tail(&self, fraction: f32) -> Result<(Dataset, Dataset)> {
        let n = self.len();
        let tail = (f64::from(fraction) * n as f64).round() as usize;
        if !(fraction > 0.0 && fraction < 1.0) || tail == 0 || tail >= n {
            return Err(Error::InvalidArgument {
                what: "split fraction",
                found: format!("{fraction} of {n} rows"),
                expected: "between 0 and 1, leaving at least one row on each side",
            });
        }
        let head: Vec<usize> = (0..n - tail).collect();
        let rest: Vec<usize> = (n - tail..n).collect();
        Ok((self.select(&head), self.select(&rest)))
    }

    /// Shuffles the rows with a seeded RNG, then splits off the last `fraction` as a test set.
    ///
    /// # Errors
    ///
    /// As [`split_tail`](Self::split_tail).
    pub fn shuffle_split(&self, fraction: f32, seed: u64) -> Result<(Dataset, Dataset)> {
        self.select(&permutation(self.len(), seed))
            .split_tail(fraction)
    }
}

/// A seeded permutation of `0..n`.
pub(crate) fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    idx
}

fn check_features(x: &Tensor<f32>) -> Result<usize> {
    let rows = match *x.shape() {
        [r, f] if f > 0 => r,
        _ => {
            return Err(Error::shape(
                "features",
                "[rows, features >= 1]".into(),
                x.shape(),
            ))
        }
    };
    if rows == 0 {
        return Err(Error::Empty {
            what: "data set",
            why: "it has no rows".into(),
        });
    }
    check_finite("features", x.as_slice())?;
    Ok(rows)
}

fn check_finite(what: &'static str, values: &[f32]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(index) => Err(Error::NonFiniteData {
            what,
            index,
            value: values[index],
        }),
        None => Ok(()),
    }
}
