//! BatchNormalization's column work: per-feature sums over fixed row blocks in the accumulator
//! type, added in block order (independent of the thread count), the normalising row pass, and
//! the backward pass through the batch statistics.

use rayon::prelude::*;

use crate::dtype::{cast_slice, Element};
use crate::layers::ops::fused::rows_per_task;
use crate::layers::ops::rows::{map_rows_in_place, RowOp};

/// `Σ_rows f(row, acc)` per feature for `x` (`? × n`), each row of `x` (and of `y`, when given)
/// widened to `A`: `f` adds one row's contribution into `acc` (`k` vectors of `n`). Rows are
/// summed in fixed blocks whose partial sums are added in block order.
pub(super) fn column_sums<C: Element>(
    x: &[C],
    y: Option<&[C]>,
    n: usize,
    k: usize,
    f: impl Fn(&[C::Acc], &[C::Acc], &mut [Vec<C::Acc>]) + Sync,
) -> Vec<Vec<C::Acc>> {
    let zero = C::Acc::default();
    let block = rows_per_task(n) * n;
    let partials: Vec<Vec<Vec<C::Acc>>> = x
        .par_chunks(block)
        .enumerate()
        .map(|(b, chunk)| {
            let mut acc = vec![vec![zero; n]; k];
            let (mut ra, mut rb) = (vec![zero; n], vec![zero; n]);
            for (i, row) in chunk.chunks_exact(n).enumerate() {
                cast_slice(row, &mut ra);
                if let Some(y) = y {
                    cast_slice(&y[b * block + i * n..][..n], &mut rb);
                }
                f(&ra, &rb, &mut acc);
            }
            acc
        })
        .collect();
    let mut total = vec![vec![zero; n]; k];
    for p in &partials {
        for (t, v) in total.iter_mut().zip(p) {
            t.iter_mut().zip(v).for_each(|(s, &v)| *s = *s + v);
        }
    }
    total
}

/// The batch mean and (biased) variance per feature, by two passes: `μ = Σx/m`, then
/// `σ² = Σ(x − μ)²/m`, so nothing cancels.
pub(super) fn moments<C: Element>(x: &[C], n: usize) -> (Vec<C::Acc>, Vec<C::Acc>) {
    let m = C::Acc::from_f64_rne((x.len() / n) as f64);
    let sums = column_sums(x, None, n, 1, |r, _, acc| {
        acc[0].iter_mut().zip(r).for_each(|(s, &v)| *s = *s + v)
    });
    let mean: Vec<C::Acc> = sums[0].iter().map(|&s| s / m).collect();
    let sq = column_sums(x, None, n, 1, |r, _, acc| {
        acc[0]
            .iter_mut()
            .zip(r.iter().zip(&mean))
            .for_each(|(s, (&v, &mu))| *s = *s + (v - mu) * (v - mu))
    });
    let var = sq[0].iter().map(|&s| s / m).collect();
    (mean, var)
}

/// `y = (x − μ)·r·γ + β` per feature (`r = 1/√(σ² + ε)`), in `A`, rounded once by `map_rows`.
pub(super) struct Normalize<'a, A> {
    pub(super) mean: &'a [A],
    /// `r·γ` per feature.
    pub(super) scale: &'a [A],
    pub(super) beta: Option<&'a [A]>,
}

impl<A: Element> RowOp<A> for Normalize<'_, A> {
    type State = ();

    fn state(&self, _rows: usize) {}

    #[inline(always)]
    fn row(&self, _: &mut (), _row: usize, a: &mut [A], _: &[A]) {
        let centred = a.iter_mut().zip(self.mean.iter().zip(self.scale));
        match self.beta {
            Some(b) => centred
                .zip(b)
                .for_each(|((x, (&mu, &s)), &b)| *x = (*x - mu) * s + b),
            None => centred.for_each(|(x, (&mu, &s))| *x = (*x - mu) * s),
        }
    }
}

/// The gradients of one backward pass.
pub(super) struct Grads<C: Element> {
    /// The input gradient, rounded once to the compute type.
    pub(super) dx: Vec<C>,
    /// `Σ_rows dy·x̂` per feature.
    pub(super) dgamma: Vec<C::Acc>,
    /// `Σ_rows dy` per feature.
    pub(super) dbeta: Vec<C::Acc>,
}

/// The standard batch-norm gradient through the batch statistics, for `m` rows:
/// `dx = γ·r·(dy − Σdy/m − x̂·Σ(dy·x̂)/m)`, `x̂ = (x − μ)·r`.
pub(super) fn grads<C: Element>(
    x: &[C],
    dy: Vec<C>,
    mean: &[C::Acc],
    rstd: &[C::Acc],
    gamma: Option<&[C::Acc]>,
    n: usize,
) -> Grads<C> {
    let sums = column_sums(&dy, Some(x), n, 2, |d, xr, acc| {
        for j in 0..n {
            let xhat = (xr[j] - mean[j]) * rstd[j];
            acc[0][j] = acc[0][j] + d[j];
            acc[1][j] = acc[1][j] + d[j] * xhat;
        }
    });
    let (dbeta, dgamma) = (sums[0].clone(), sums[1].clone());
    let m = C::Acc::from_f64_rne((x.len() / n) as f64);
    let coef: Vec<C::Acc> = match gamma {
        Some(g) => g.iter().zip(rstd).map(|(&g, &r)| g * r).collect(),
        None => rstd.to_vec(),
    };
    let op = Backward {
        mean,
        rstd,
        coef: &coef,
        mean_dy: &dbeta.iter().map(|&s| s / m).collect::<Vec<_>>(),
        mean_dyx: &dgamma.iter().map(|&s| s / m).collect::<Vec<_>>(),
    };
    // dx is written over dy, row by row: no new vector.
    let mut dx = dy;
    if !x.is_empty() {
        map_rows_in_place(&mut dx, x, n, &op);
    }
    Grads { dx, dgamma, dbeta }
}

/// One row of `dx`: `a` holds `dy` (and on return `dx`), `b` holds `x`.
struct Backward<'a, A> {
    mean: &'a [A],
    rstd: &'a [A],
    coef: &'a [A],
    mean_dy: &'a [A],
    mean_dyx: &'a [A],
}

impl<A: Element> RowOp<A> for Backward<'_, A> {
    type State = ();

    fn state(&self, _rows: usize) {}

    #[inline(always)]
    fn row(&self, _: &mut (), _row: usize, a: &mut [A], b: &[A]) {
        for j in 0..a.len() {
            let xhat = (b[j] - self.mean[j]) * self.rstd[j];
            a[j] = self.coef[j] * (a[j] - self.mean_dy[j] - xhat * self.mean_dyx[j]);
        }
    }
}
