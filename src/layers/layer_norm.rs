//! [`LayerNormalization`]: Keras's `LayerNormalization` over the last axis, statistics and
//! normalisation in the accumulator type; [`LayerNormalizationConfig`] its arguments.

use crate::dtype::{cast_to_vec, Element, SliceMut, SliceRef};
use crate::error::{fmt_shape, Error, Result};
use crate::kernels::rowwise::{self, NormRow};
use crate::kernels::Kernels;
use crate::layers::ops::math::{row_sum, row_sum_by};
use crate::layers::ops::rows::{map_rows, RowOp};
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::ops::saved::{Saved, SavedBytes};
use crate::layers::ops::workspace::AccOf;
use crate::layers::Layer;
use crate::param::Param;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;
use crate::Module;

mod backward;
mod config;
#[cfg(test)]
mod tests;

pub use config::LayerNormalizationConfig;

/// Layer normalisation over the last axis: `y = (x − μ)/√(σ² + ε) · γ + β`, with `μ` and `σ²`
/// the mean and (biased) variance of each row: Keras's `LayerNormalization` (`axis=-1`,
/// `epsilon=1e-3`, `center=True`, `scale=True`; see [`LayerNormalizationConfig`]).
///
/// - `gamma` (`[dim]`, ones) and `beta` (`[dim]`, zeros) are variables in `P::Variable`, read
///   in the variable type widened to f32 (as Keras's layer reads its float32 variables under a
///   mixed policy); either can be left out (`scale=False`, `center=False`).
/// - Statistics and normalisation are computed in f32 (f64 for `F64`) whatever the policy: the
///   row is widened once, `μ`, then `σ² = mean((x − μ)²)` (two passes over the row in cache,
///   so no cancellation), and the output rounded once to the compute type. Under a mixed
///   policy the output is therefore the f32 computation on the rounded input, rounded once.
/// - Backward: the standard gradient `dx = (g − mean(g) − x̂·mean(g·x̂))/√(σ² + ε)` with
///   `g = dy·γ`, in f32 from the saved input and per-row statistics; `dγ = Σ dy·x̂` and
///   `dβ = Σ dy` summed in f32 over fixed row blocks (independent of the thread count).
/// - NaN or inf in a row makes that row's output NaN.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::LayerNormalization;
/// let ln = LayerNormalization::<MixedBf16>::new(4);
/// let x = Tensor::from_vec(vec![1, 4], vec![1.0f32, 2.0, 3.0, 4.0])?;
/// let y = ln.call(&x)?.to_f64_vec();
/// // (x − 2.5)/√(1.25 + 0.001), rounded once to bf16.
/// assert_eq!(y, vec![-1.34375, -0.447265625, 0.447265625, 1.34375]);
/// assert_eq!(ln.param_names(), ["gamma", "beta"]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct LayerNormalization<P: Policy = DefaultPolicy> {
    #[module(param)]
    gamma: Option<Param<P>>,
    #[module(param)]
    beta: Option<Param<P>>,
    #[module(skip)]
    dim: usize,
    #[module(skip)]
    epsilon: f64,
    #[module(reset)]
    saved: Saved<Normalized<P::Compute>>,
}

impl<P: Policy> PartialEq for LayerNormalization<P> {
    /// Equal variables, width and epsilon; saved activations and gradients are transient.
    fn eq(&self, other: &Self) -> bool {
        (self.gamma == other.gamma && self.beta == other.beta)
            && (self.dim, self.epsilon) == (other.dim, other.epsilon)
    }
}

/// What the training pass keeps: the input and each row's `(μ, 1/√(σ² + ε))` in the
/// accumulator type.
#[derive(Debug, Clone)]
struct Normalized<C: Element> {
    x: Tensor<C>,
    stats: Vec<(C::Acc, C::Acc)>,
}

impl<C: Element> SavedBytes for Normalized<C> {
    fn saved_bytes(&self) -> usize {
        self.x.saved_bytes() + self.stats.len() * 2 * C::Acc::DTYPE.size_of()
    }
}

impl<P: Policy> LayerNormalization<P> {
    /// Keras's `LayerNormalization()` for rows of `dim` features: `epsilon = 1e-3`, gamma ones,
    /// beta zeros.
    ///
    /// # Panics
    ///
    /// If `dim` is 0; [`try_new`](Self::try_new) returns that as an error instead.
    pub fn new(dim: usize) -> Self {
        Self::try_new(dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), with a bad width as an error:
    /// `LayerNormalizationConfig::new().init(dim)`.
    ///
    /// # Errors
    ///
    /// As [`LayerNormalizationConfig::init`].
    pub fn try_new(dim: usize) -> Result<Self> {
        LayerNormalizationConfig::new().init(dim)
    }

    /// The width of the normalised (last) axis.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Keras's `epsilon`.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The scale `gamma` (`[dim]`, variable type), when the layer has one (`scale=True`).
    pub fn gamma(&self) -> Option<&Param<P>> {
        self.gamma.as_ref()
    }

    /// The offset `beta` (`[dim]`, variable type), when the layer has one (`center=True`).
    pub fn beta(&self) -> Option<&Param<P>> {
        self.beta.as_ref()
    }

    /// The normalised rows of `x` (`[.., dim]`, compute type).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., dim]`.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        Ok(self.normalize(x, false)?.0)
    }

    /// Keras's `layer(x)`: casts `x` (any float type) to the compute type, then
    /// [`forward`](Self::forward).
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward).
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        self.forward(&x.cast_ref::<P::Compute>())
    }

    fn check(&self, what: &'static str, shape: &[usize]) -> Result<()> {
        match shape.last() {
            Some(&last) if last == self.dim => Ok(()),
            _ => Err(Error::shape(what, format!("[.., {}]", self.dim), shape)),
        }
    }

    /// A variable widened to the accumulator type.
    fn widened(p: &Option<Param<P>>) -> Option<Vec<AccOf<P>>> {
        p.as_ref().map(|p| cast_to_vec(p.value().as_slice()))
    }

    /// The output, and each row's statistics when `keep_stats`.
    #[allow(clippy::type_complexity)]
    fn normalize(
        &self,
        x: &Tensor<P::Compute>,
        keep_stats: bool,
    ) -> Result<(Tensor<P::Compute>, Vec<(AccOf<P>, AccOf<P>)>)> {
        self.check("layer normalization input", x.shape())?;
        let (gamma, beta) = (Self::widened(&self.gamma), Self::widened(&self.beta));
        let op = Forward {
            gamma: gamma.as_deref(),
            beta: beta.as_deref(),
            epsilon: AccOf::<P>::from_f64_rne(self.epsilon),
            keep_stats,
        };
        let (y, blocks) = map_rows(x.as_slice(), None, self.dim, &op);
        let stats = blocks.into_iter().flatten().collect();
        Ok((Tensor::from_parts(x.shape().to_vec(), y), stats))
    }
}

/// One row's normalisation, in place, in the accumulator type.
struct Forward<'a, A> {
    gamma: Option<&'a [A]>,
    beta: Option<&'a [A]>,
    epsilon: A,
    keep_stats: bool,
}

impl<A: Element> RowOp<A> for Forward<'_, A> {
    type State = Vec<(A, A)>;

    fn state(&self, rows: usize) -> Vec<(A, A)> {
        Vec::with_capacity(if self.keep_stats { rows } else { 0 })
    }

    #[inline(always)]
    fn row(&self, stats: &mut Vec<(A, A)>, _row: usize, a: &mut [A], _: &[A]) {
        let n = A::from_f64_rne(a.len() as f64);
        let mean = row_sum(a) / n;
        let var = row_sum_by(a, |x| (x - mean) * (x - mean)) / n;
        let rstd = A::one() / (var + self.epsilon).sqrt();
        match (self.gamma, self.beta) {
            (Some(g), Some(b)) => a
                .iter_mut()
                .zip(g.iter().zip(b))
                .for_each(|(x, (&g, &b))| *x = (*x - mean) * rstd * g + b),
            (Some(g), None) => a
                .iter_mut()
                .zip(g)
                .for_each(|(x, &g)| *x = (*x - mean) * rstd * g),
            (None, Some(b)) => a
                .iter_mut()
                .zip(b)
                .for_each(|(x, &b)| *x = (*x - mean) * rstd + b),
            (None, None) => a.iter_mut().for_each(|x| *x = (*x - mean) * rstd),
        }
        if self.keep_stats {
            stats.push((mean, rstd));
        }
    }

    fn direct(
        &self,
        kernels: Kernels,
        stats: &mut Vec<(A, A)>,
        _row: usize,
        x: SliceRef<'_>,
        out: SliceMut<'_>,
        buf: &mut Vec<f32>,
    ) -> bool {
        // The kernels work in f32: only for an f32 accumulator (not F64).
        fn f32s<A: Element>(p: &[A]) -> Option<&[f32]> {
            f32::from_view(A::view(p))
        }
        let Some(&[epsilon]) = f32s(std::slice::from_ref(&self.epsilon)) else {
            return false;
        };
        let norm = NormRow {
            gamma: self.gamma.and_then(f32s),
            beta: self.beta.and_then(f32s),
            epsilon,
        };
        let Some((mean, rstd)) = rowwise::layer_norm_row(kernels, x, out, buf, norm) else {
            return false;
        };
        if self.keep_stats {
            stats.push((A::from_f64_rne(mean.into()), A::from_f64_rne(rstd.into())));
        }
        true
    }
}

impl<P: Policy> Layer for LayerNormalization<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let (y, stats) = self.normalize(&x, true)?;
        self.saved.save(Normalized { x, stats });
        Ok(y)
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let saved = self.saved.take("LayerNormalization")?;
        if dy.shape() != saved.x.shape() {
            let expected = fmt_shape(saved.x.shape());
            return Err(Error::shape(
                "layer normalization output gradient",
                expected,
                dy.shape(),
            ));
        }
        let gamma = Self::widened(&self.gamma);
        let shape = dy.shape().to_vec();
        let grads = backward::grads(&saved.x, &saved.stats, dy, gamma.as_deref(), self.dim);
        if let Some(g) = &mut self.gamma {
            g.write_grad::<AccOf<P>>(f64::INFINITY, |d| d.copy_from_slice(&grads.dgamma));
        }
        if let Some(b) = &mut self.beta {
            b.write_grad::<AccOf<P>>(f64::INFINITY, |d| d.copy_from_slice(&grads.dbeta));
        }
        Ok(need_input_grad.then(|| Tensor::from_parts(shape, grads.dx)))
    }

    saved_slot!();

    fn output_dim(&self, input: usize) -> Option<usize> {
        (input == self.dim).then_some(input)
    }
}
