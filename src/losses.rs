//! Losses, computed in f32 whatever the policy (f64 for `F64`): the predictions are widened once,
//! the loss and its gradient are formed in the wide type, and only the gradient handed back to the
//! model is rounded (once) to the compute type, after multiplying by the loss scale.
//!
//! - [`Loss::SparseCategoricalCrossentropy`]: integer class labels, from logits (a stable
//!   log-softmax: the row maximum is subtracted, so any finite f16 logit is safe) or from
//!   probabilities (clipped to `[1e-7, 1 - 1e-7]` and renormalised, as Keras does).
//! - [`Loss::MeanSquaredError`]: real targets.

use crate::dtype::{cast_to_vec, cast_vec, Element};
use crate::error::{Error, Result};
use crate::tensor::Tensor;

/// Keras's clipping epsilon for probabilities.
const EPSILON: f64 = 1e-7;

/// The targets of one batch.
#[derive(Debug, Clone, Copy)]
pub enum Targets<'a> {
    /// One class index per row.
    Classes(&'a [u32]),
    /// One value per prediction element, row-major like the predictions.
    Values(&'a [f32]),
}

/// A loss function: the mean over the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Loss {
    /// `-log softmax(z)[y]` (from logits) or `-log(p[y] / Σp)` (from probabilities).
    SparseCategoricalCrossentropy {
        /// Whether the predictions are logits (true) or probabilities (false).
        from_logits: bool,
    },
    /// `mean((p - t)²)` over every element.
    MeanSquaredError,
}

/// The loss of a batch and the gradient of the (scaled) loss with respect to the predictions.
#[derive(Debug, Clone)]
pub struct LossAndGrad<C: Element> {
    /// The mean loss, unscaled.
    pub loss: f64,
    /// `scale · ∂loss/∂pred`, rounded once to the compute type.
    pub grad: Tensor<C>,
    /// Rows whose arg-max equals the label (classification only).
    pub correct: Option<usize>,
}

impl Loss {
    /// Keras's name (`"sparse_categorical_crossentropy"`, `"mean_squared_error"`).
    pub fn name(self) -> &'static str {
        match self {
            Loss::SparseCategoricalCrossentropy { .. } => "sparse_categorical_crossentropy",
            Loss::MeanSquaredError => "mean_squared_error",
        }
    }

    /// The mean loss of `pred` against `targets`, and `scale · ∂loss/∂pred` in the compute type.
    ///
    /// ```
    /// use mixprec::losses::{Loss, Targets};
    /// use mixprec::Tensor;
    /// let logits = Tensor::from_vec(vec![1, 3], vec![half::f16::MAX, half::f16::MAX, half::f16::MIN])?;
    /// let scce = Loss::SparseCategoricalCrossentropy { from_logits: true };
    /// let out = scce.loss_and_grad(&logits, Targets::Classes(&[0]), 1.0)?;
    /// assert!((out.loss - std::f64::consts::LN_2).abs() < 1e-6); // finite at the f16 maximum
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `pred` is not `[batch, classes]` or the targets do not fit;
    /// [`Error::LabelOutOfRange`] for a class index `>= classes`;
    /// [`Error::InvalidArgument`] for the wrong kind of targets.
    pub fn loss_and_grad<C: Element>(
        self,
        pred: &Tensor<C>,
        targets: Targets<'_>,
        scale: f32,
    ) -> Result<LossAndGrad<C>> {
        let (rows, cols) = match *pred.shape() {
            [r, c] if r > 0 && c > 0 => (r, c),
            _ => {
                return Err(Error::shape(
                    "loss predictions",
                    "[batch >= 1, classes >= 1]".into(),
                    pred.shape(),
                ))
            }
        };
        let p: Vec<C::Acc> = cast_to_vec(pred.as_slice());
        let (loss, grad, correct) = match (self, targets) {
            (Loss::SparseCategoricalCrossentropy { from_logits }, Targets::Classes(labels)) => {
                check_labels(labels, rows, cols)?;
                let (loss, grad) = if from_logits {
                    scce_logits(&p, labels, cols, scale)
                } else {
                    scce_probs(&p, labels, cols, scale)
                };
                (loss, grad, Some(count_correct(&p, labels, cols)))
            }
            (Loss::MeanSquaredError, Targets::Values(t)) => {
                if t.len() != p.len() {
                    return Err(Error::shape("mse targets", format!("{} values", p.len()), &[t.len()]));
                }
                let (loss, grad) = mse(&p, t, scale);
                (loss, grad, None)
            }
            (_, _) => {
                return Err(Error::InvalidArgument {
                    what: "targets",
                    found: format!("{targets:?}").chars().take(40).collect(),
                    expected: "class labels for sparse_categorical_crossentropy, values for mean_squared_error",
                })
            }
        };
        Ok(LossAndGrad {
            loss,
            grad: Tensor::from_parts(vec![rows, cols], cast_vec(grad)),
            correct,
        })
    }

    /// The mean loss only.
    ///
    /// # Errors
    ///
    /// As [`loss_and_grad`](Self::loss_and_grad).
    pub fn loss<C: Element>(self, pred: &Tensor<C>, targets: Targets<'_>) -> Result<f64> {
        Ok(self.loss_and_grad(pred, targets, 1.0)?.loss)
    }
}

fn check_labels(labels: &[u32], rows: usize, classes: usize) -> Result<()> {
    if labels.len() != rows {
        return Err(Error::shape("labels", format!("[{rows}]"), &[labels.len()]));
    }
    match labels.iter().find(|&&l| l as usize >= classes) {
        Some(&label) => Err(Error::LabelOutOfRange {
            label: label as u64,
            classes,
        }),
        None => Ok(()),
    }
}

/// Rows whose first arg-max equals the label.
pub(crate) fn count_correct<A: Element>(p: &[A], labels: &[u32], cols: usize) -> usize {
    p.chunks_exact(cols)
        .zip(labels)
        .filter(|(row, &l)| {
            let best = row
                .iter()
                .enumerate()
                .fold(0, |b, (j, v)| if *v > row[b] { j } else { b });
            best == l as usize
        })
        .count()
}

/// Stable log-softmax cross-entropy: `loss_i = logsumexp(z_i - m_i) - (z_iy - m_i)`, gradient
/// `(softmax(z_i) - onehot(y_i)) · scale / rows`.
fn scce_logits<A: Element>(z: &[A], labels: &[u32], cols: usize, scale: f32) -> (f64, Vec<A>) {
    let rows = labels.len();
    let k = A::from_f64_rne(f64::from(scale) / rows as f64);
    let mut grad = vec![A::zero(); z.len()];
    let mut total = 0f64;
    for ((row, g), &y) in z
        .chunks_exact(cols)
        .zip(grad.chunks_exact_mut(cols))
        .zip(labels)
    {
        let m = row.iter().fold(A::neg_infinity(), |m, &v| m.max(v));
        let mut sum = A::zero();
        for (gj, &v) in g.iter_mut().zip(row) {
            *gj = (v - m).exp();
            sum = sum + *gj;
        }
        total += (sum.ln() - (row[y as usize] - m)).as_f64();
        for gj in g.iter_mut() {
            *gj = *gj / sum * k;
        }
        g[y as usize] = g[y as usize] - k;
    }
    (total / rows as f64, grad)
}

/// Cross-entropy from probabilities, Keras-style: clip to `[ε, 1-ε]`, renormalise by the row sum.
/// `loss_i = ln Σp - ln p_y`; `∂/∂p_j = 1/Σp - [j = y]/p_y` (zero where clipping was active).
fn scce_probs<A: Element>(p: &[A], labels: &[u32], cols: usize, scale: f32) -> (f64, Vec<A>) {
    let rows = labels.len();
    let k = A::from_f64_rne(f64::from(scale) / rows as f64);
    let (lo, hi) = (A::from_f64_rne(EPSILON), A::from_f64_rne(1.0 - EPSILON));
    let mut grad = vec![A::zero(); p.len()];
    let mut total = 0f64;
    for ((row, g), &y) in p
        .chunks_exact(cols)
        .zip(grad.chunks_exact_mut(cols))
        .zip(labels)
    {
        let clipped = |v: A| v.max(lo).min(hi);
        let sum = row.iter().fold(A::zero(), |s, &v| s + clipped(v));
        let py = clipped(row[y as usize]);
        total += (sum.ln() - py.ln()).as_f64();
        for (j, (gj, &v)) in g.iter_mut().zip(row).enumerate() {
            let active = v >= lo && v <= hi;
            let d = if j == y as usize {
                sum.recip() - py.recip()
            } else {
                sum.recip()
            };
            *gj = if active { d * k } else { A::zero() };
        }
    }
    (total / rows as f64, grad)
}

/// `mean((p - t)²)`, gradient `2 (p - t) · scale / n`.
fn mse<A: Element>(p: &[A], t: &[f32], scale: f32) -> (f64, Vec<A>) {
    let n = p.len() as f64;
    let k = A::from_f64_rne(2.0 * f64::from(scale) / n);
    let mut total = A::zero();
    let grad = p
        .iter()
        .zip(t)
        .map(|(&p, &t)| {
            let d = p - A::from_f32_rne(t);
            total = total + d * d;
            d * k
        })
        .collect();
    (total.as_f64() / n, grad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fd_check(loss: Loss, pred: Vec<f64>, cols: usize, targets: Targets<'_>) {
        let rows = pred.len() / cols;
        let t = Tensor::from_vec(vec![rows, cols], pred.clone()).unwrap();
        let out = loss.loss_and_grad(&t, targets, 1.0).unwrap();
        let h = 1e-6;
        for i in 0..pred.len() {
            let (mut a, mut b) = (pred.clone(), pred.clone());
            a[i] += h;
            b[i] -= h;
            let la = loss
                .loss(&Tensor::from_vec(vec![rows, cols], a).unwrap(), targets)
                .unwrap();
            let lb = loss
                .loss(&Tensor::from_vec(vec![rows, cols], b).unwrap(), targets)
                .unwrap();
            let fd = (la - lb) / (2.0 * h);
            let g = out.grad.as_slice()[i];
            assert!((fd - g).abs() < 1e-6, "{loss:?} [{i}]: fd {fd} vs {g}");
        }
    }

    #[test]
    fn gradients_match_finite_differences_in_f64() {
        let labels = [2u32, 0];
        let logits = vec![0.5, -1.0, 2.0, 0.1, 3.0, -0.5];
        fd_check(
            Loss::SparseCategoricalCrossentropy { from_logits: true },
            logits,
            3,
            Targets::Classes(&labels),
        );
        let probs = vec![0.2, 0.3, 0.5, 0.6, 0.3, 0.1];
        fd_check(
            Loss::SparseCategoricalCrossentropy { from_logits: false },
            probs,
            3,
            Targets::Classes(&labels),
        );
        let values = [0.5f32, 1.0, -2.0, 0.0, 0.25, 3.0];
        fd_check(
            Loss::MeanSquaredError,
            vec![0.1, 0.9, -1.0, 0.3, 0.2, 2.0],
            3,
            Targets::Values(&values),
        );
    }

    #[test]
    fn scce_matches_hand_computed_value() {
        // Uniform logits over 4 classes: loss ln 4, gradient (1/4 - onehot) / rows.
        let t = Tensor::from_vec(vec![1, 4], vec![1.0f32; 4]).unwrap();
        let scce = Loss::SparseCategoricalCrossentropy { from_logits: true };
        let out = scce.loss_and_grad(&t, Targets::Classes(&[1]), 8.0).unwrap();
        assert!((out.loss - 4f64.ln()).abs() < 1e-7);
        assert_eq!(out.grad.as_slice(), &[2.0, -6.0, 2.0, 2.0]); // scaled by 8
    }

    #[test]
    fn labels_out_of_range_are_an_error() {
        let t = Tensor::from_vec(vec![1, 3], vec![0f32; 3]).unwrap();
        let scce = Loss::SparseCategoricalCrossentropy { from_logits: true };
        let err = scce.loss(&t, Targets::Classes(&[3])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "label 3 is out of range for a model with 3 output classes (expected 0..=2)"
        );
    }
}
