//! [`BatchNormalization`]: Keras's `BatchNormalization` over the last axis (NHWC, or
//! `[batch, features]`): batch statistics and normalisation in the accumulator type, moving
//! statistics as non-trainable f32 variables; [`BatchNormalizationConfig`] its arguments.

use num_traits::{Float, One};

use crate::dtype::{cast_to_vec, Element};
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::rows::map_rows;
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::ops::saved::{Saved, SavedBytes};
use crate::layers::ops::workspace::AccOf;
use crate::layers::Layer;
use crate::module::{join_name, Module, ParamVisitor, ParamVisitorMut};
use crate::param::Param;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

mod config;
mod stats;

pub use config::BatchNormalizationConfig;

/// Batch normalisation over the last axis: `y = (x − μ)/√(σ² + ε) · γ + β` per feature, Keras's
/// `BatchNormalization` (`axis=-1`, `momentum=0.99`, `epsilon=1e-3`, `center=True`,
/// `scale=True`; see [`BatchNormalizationConfig`]).
///
/// - Training ([`Layer::train_forward`]): `μ` and `σ²` are the batch mean and biased variance of
///   each feature over every axis but the last, computed in f32 (f64 for `F64`) by two passes
///   over fixed row blocks added in order; the output is normalised in f32 and rounded once to
///   the compute type. The moving statistics are then updated as Keras does:
///   `moving = moving·momentum + batch·(1 − momentum)`.
/// - Inference ([`forward`](Self::forward), [`Layer::infer`]) normalises with the moving mean
///   and variance.
/// - `gamma` (ones) and `beta` (zeros) are trainable, in `P::Variable`. `moving_mean` (zeros) and
///   `moving_variance` (ones) are non-trainable ([`Param::statistic`]) and kept in
///   [`Policy::Stats`], f32 (f64 for `F64`) whatever the policy, because a 0.01-weighted update
///   of a bfloat16 average is rounded away. Optimizers skip them; checkpoints,
///   [`get_weights`](Module::get_weights) and [`param_count`](Module::param_count) include them,
///   in Keras's order `gamma, beta, moving_mean, moving_variance`.
/// - Backward: the standard gradient through the batch statistics,
///   `dx = γ/√(σ² + ε)·(dy − mean(dy) − x̂·mean(dy·x̂))`; `dγ = Σ dy·x̂`, `dβ = Σ dy` in f32 over
///   fixed row blocks.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::BatchNormalization;
/// let mut bn = BatchNormalization::<MixedBf16>::new(2);
/// let x = Tensor::from_vec(vec![2, 2], vec![1.0f32, 10.0, 3.0, 30.0])?;
/// let y = bn.train_forward(x.cast())?.to_f64_vec();
/// // Feature 0 has mean 2 and variance 1: (1 − 2)/√(1 + 0.001) rounds to −1 in bf16.
/// assert_eq!(y, vec![-1.0, -1.0, 1.0, 1.0]);
/// // moving_mean = 0·0.99 + 2·0.01
/// assert_eq!(bn.moving_mean().value().as_slice()[0], 0.02f32);
/// assert_eq!(bn.param_names(), ["gamma", "beta", "moving_mean", "moving_variance"]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BatchNormalization<P: Policy = DefaultPolicy> {
    gamma: Option<Param<P>>,
    beta: Option<Param<P>>,
    moving_mean: Param<P::Stats>,
    moving_variance: Param<P::Stats>,
    dim: usize,
    momentum: f64,
    epsilon: f64,
    saved: Saved<Batch<P::Compute>>,
}

impl<P: Policy> PartialEq for BatchNormalization<P> {
    /// Equal variables, statistics, width and arguments; saved activations are transient.
    fn eq(&self, other: &Self) -> bool {
        (self.gamma == other.gamma && self.beta == other.beta)
            && (self.moving_mean == other.moving_mean)
            && (self.moving_variance == other.moving_variance)
            && (self.dim, self.momentum, self.epsilon) == (other.dim, other.momentum, other.epsilon)
    }
}

/// What the training pass keeps: the input and the batch `μ` and `1/√(σ² + ε)` per feature.
#[derive(Debug, Clone)]
struct Batch<C: Element> {
    x: Tensor<C>,
    mean: Vec<C::Acc>,
    rstd: Vec<C::Acc>,
}

impl<C: Element> SavedBytes for Batch<C> {
    fn saved_bytes(&self) -> usize {
        self.x.saved_bytes() + (self.mean.len() + self.rstd.len()) * C::Acc::DTYPE.size_of()
    }
}

impl<P: Policy> BatchNormalization<P> {
    /// Keras's `BatchNormalization()` for `dim` features: momentum 0.99, epsilon 1e-3, gamma
    /// ones, beta zeros, moving mean zeros, moving variance ones.
    ///
    /// # Panics
    ///
    /// If `dim` is 0; [`try_new`](Self::try_new) returns that as an error instead.
    pub fn new(dim: usize) -> Self {
        Self::try_new(dim).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), with a bad width as an error.
    ///
    /// # Errors
    ///
    /// As [`BatchNormalizationConfig::init`].
    pub fn try_new(dim: usize) -> Result<Self> {
        BatchNormalizationConfig::new().init(dim)
    }

    /// The number of features (the last axis).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Keras's `momentum`.
    pub fn momentum(&self) -> f64 {
        self.momentum
    }

    /// Keras's `epsilon`.
    pub fn epsilon(&self) -> f64 {
        self.epsilon
    }

    /// The scale `gamma`, when the layer has one (`scale=True`).
    pub fn gamma(&self) -> Option<&Param<P>> {
        self.gamma.as_ref()
    }

    /// The offset `beta`, when the layer has one (`center=True`).
    pub fn beta(&self) -> Option<&Param<P>> {
        self.beta.as_ref()
    }

    /// The moving mean (non-trainable, in `P::Stats`).
    pub fn moving_mean(&self) -> &Param<P::Stats> {
        &self.moving_mean
    }

    /// The moving variance (non-trainable, in `P::Stats`).
    pub fn moving_variance(&self) -> &Param<P::Stats> {
        &self.moving_variance
    }

    /// Inference: `x` (`[.., dim]`, compute type) normalised with the moving statistics.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., dim]`.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        self.check("batch normalization input", x.shape())?;
        let mean: Vec<AccOf<P>> = cast_to_vec(self.moving_mean.value().as_slice());
        let var: Vec<AccOf<P>> = cast_to_vec(self.moving_variance.value().as_slice());
        Ok(self.normalize(x, &mean, &self.rstd(&var)))
    }

    /// Keras's `layer(x)` (inference): casts `x` to the compute type, then
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

    fn rstd(&self, var: &[AccOf<P>]) -> Vec<AccOf<P>> {
        let eps = AccOf::<P>::from_f64_rne(self.epsilon);
        var.iter()
            .map(|&v| AccOf::<P>::one() / (v + eps).sqrt())
            .collect()
    }

    fn widened(p: &Option<Param<P>>) -> Option<Vec<AccOf<P>>> {
        p.as_ref().map(|p| cast_to_vec(p.value().as_slice()))
    }

    fn normalize(
        &self,
        x: &Tensor<P::Compute>,
        mean: &[AccOf<P>],
        rstd: &[AccOf<P>],
    ) -> Tensor<P::Compute> {
        let scale: Vec<AccOf<P>> = match Self::widened(&self.gamma) {
            Some(g) => g.iter().zip(rstd).map(|(&g, &r)| g * r).collect(),
            None => rstd.to_vec(),
        };
        let beta = Self::widened(&self.beta);
        let op = stats::Normalize {
            mean,
            scale: &scale,
            beta: beta.as_deref(),
        };
        let y = if x.is_empty() {
            Vec::new()
        } else {
            map_rows(x.as_slice(), None, self.dim, &op).0
        };
        Tensor::from_parts(x.shape().to_vec(), y)
    }

    /// `moving = moving·momentum + batch·(1 − momentum)`, in the statistics' type.
    fn update_moving(&mut self, mean: &[AccOf<P>], var: &[AccOf<P>]) {
        type S<P> = <<P as Policy>::Stats as Policy>::Variable;
        let keep = S::<P>::from_f64_rne(self.momentum);
        let take = S::<P>::from_f64_rne(1.0 - self.momentum);
        for (p, batch) in [
            (&mut self.moving_mean, mean),
            (&mut self.moving_variance, var),
        ] {
            p.update(|m| {
                m.iter_mut().zip(batch).for_each(|(m, &b)| {
                    *m = *m * keep + S::<P>::from_f64_rne(b.as_f64()) * take;
                })
            });
        }
    }
}

impl<P: Policy> Module for BatchNormalization<P> {
    type NeedsLossScale = P::NeedsLossScale;
    type At<Q: Policy> = BatchNormalization<Q>;

    fn visit_params<V: ParamVisitor>(&self, prefix: &str, visitor: &mut V) {
        for (name, p) in [("gamma", &self.gamma), ("beta", &self.beta)] {
            if let Some(p) = p {
                visitor.visit(&join_name(prefix, name), p);
            }
        }
        visitor.visit(&join_name(prefix, "moving_mean"), &self.moving_mean);
        visitor.visit(&join_name(prefix, "moving_variance"), &self.moving_variance);
    }

    fn visit_params_mut<V: ParamVisitorMut>(&mut self, visitor: &mut V) {
        for p in [&mut self.gamma, &mut self.beta].into_iter().flatten() {
            visitor.visit(p);
        }
        visitor.visit(&mut self.moving_mean);
        visitor.visit(&mut self.moving_variance);
    }

    fn to_policy<Q: Policy>(&self) -> BatchNormalization<Q> {
        let stat = |p: &Param<P::Stats>| Param::statistic::<Q>(p.value().cast());
        BatchNormalization {
            gamma: self.gamma.as_ref().map(Param::to_policy),
            beta: self.beta.as_ref().map(Param::to_policy),
            moving_mean: stat(&self.moving_mean),
            moving_variance: stat(&self.moving_variance),
            dim: self.dim,
            momentum: self.momentum,
            epsilon: self.epsilon,
            saved: Saved::default(),
        }
    }
}

impl<P: Policy> Layer for BatchNormalization<P> {
    compute_io!();

    /// Normalises with the batch statistics and updates the moving ones.
    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        self.check("batch normalization input", x.shape())?;
        if x.is_empty() {
            return Err(Error::InvalidArgument {
                what: "batch normalization training batch",
                found: format!("shape {}", fmt_shape(x.shape())),
                expected: "at least one row: batch statistics need a sample",
            });
        }
        let (mean, var) = stats::moments(x.as_slice(), self.dim);
        let rstd = self.rstd(&var);
        let y = self.normalize(&x, &mean, &rstd);
        self.update_moving(&mean, &var);
        self.saved.save(Batch { x, mean, rstd });
        Ok(y)
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let saved = self.saved.take("BatchNormalization")?;
        if dy.shape() != saved.x.shape() {
            let expected = fmt_shape(saved.x.shape());
            return Err(Error::shape(
                "batch normalization output gradient",
                expected,
                dy.shape(),
            ));
        }
        let gamma = Self::widened(&self.gamma);
        let shape = dy.shape().to_vec();
        let g = stats::grads(
            saved.x.as_slice(),
            dy.into_vec(),
            &saved.mean,
            &saved.rstd,
            gamma.as_deref(),
            self.dim,
        );
        if let Some(p) = &mut self.gamma {
            p.write_grad::<AccOf<P>>(f64::INFINITY, |d| d.copy_from_slice(&g.dgamma));
        }
        if let Some(p) = &mut self.beta {
            p.write_grad::<AccOf<P>>(f64::INFINITY, |d| d.copy_from_slice(&g.dbeta));
        }
        Ok(need_input_grad.then(|| Tensor::from_parts(shape, g.dx)))
    }

    saved_slot!();

    fn output_dim(&self, input: usize) -> Option<usize> {
        (input == self.dim).then_some(input)
    }
}
