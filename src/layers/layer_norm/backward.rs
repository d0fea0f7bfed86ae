//! LayerNormalization's backward pass, one row at a time in the accumulator type over fixed row
//! blocks: the input gradient, and the blocks' partial `dγ`, `dβ` added in block order.

use crate::dtype::Element;
use crate::layers::ops::math::{row_dot, row_sum};
use crate::layers::ops::rows::{map_rows_in_place, RowOp};
use crate::tensor::Tensor;

/// The gradients of one backward pass.
pub(super) struct Grads<C: Element> {
    /// The input gradient, rounded once to the compute type.
    pub(super) dx: Vec<C>,
    /// `Σ_rows dy·x̂`, in the accumulator type.
    pub(super) dgamma: Vec<C::Acc>,
    /// `Σ_rows dy`, in the accumulator type.
    pub(super) dbeta: Vec<C::Acc>,
}

/// The gradients for input `x` (rows of `n`), its rows' `(μ, 1/√(σ² + ε))`, output gradient
/// `dy` and scale `gamma` (`None`: 1).
pub(super) fn grads<C: Element>(
    x: &Tensor<C>,
    stats: &[(C::Acc, C::Acc)],
    dy: Tensor<C>,
    gamma: Option<&[C::Acc]>,
    n: usize,
) -> Grads<C> {
    let zero = C::Acc::default();
    if x.is_empty() {
        let (dgamma, dbeta) = (vec![zero; n], vec![zero; n]);
        return Grads {
            dx: Vec::new(),
            dgamma,
            dbeta,
        };
    }
    // dx is written over dy, row by row: no new vector.
    let mut dx = dy.into_vec();
    let blocks = map_rows_in_place(&mut dx, x.as_slice(), n, &Backward { gamma, stats, n });
    let (mut dgamma, mut dbeta) = (vec![zero; n], vec![zero; n]);
    for b in &blocks {
        dgamma
            .iter_mut()
            .zip(&b.dgamma)
            .for_each(|(s, &v)| *s = *s + v);
        dbeta
            .iter_mut()
            .zip(&b.dbeta)
            .for_each(|(s, &v)| *s = *s + v);
    }
    Grads { dx, dgamma, dbeta }
}

/// A block's partial sums, and the row buffers it reuses.
struct Block<A> {
    dgamma: Vec<A>,
    dbeta: Vec<A>,
    xhat: Vec<A>,
    g: Vec<A>,
}

/// One row: `a` holds `dy` (and on return `dx`), `b` holds `x`.
struct Backward<'a, A> {
    gamma: Option<&'a [A]>,
    stats: &'a [(A, A)],
    n: usize,
}

impl<A: Element> RowOp<A> for Backward<'_, A> {
    type State = Block<A>;

    fn state(&self, _rows: usize) -> Block<A> {
        let zeros = || vec![A::zero(); self.n];
        Block {
            dgamma: zeros(),
            dbeta: zeros(),
            xhat: zeros(),
            g: zeros(),
        }
    }

    #[inline(always)]
    fn row(&self, s: &mut Block<A>, row: usize, a: &mut [A], b: &[A]) {
        let n = a.len();
        let (mean, rstd) = self.stats[row];
        s.xhat
            .iter_mut()
            .zip(b)
            .for_each(|(h, &x)| *h = (x - mean) * rstd);
        let dy: &[A] = a;
        s.dbeta.iter_mut().zip(dy).for_each(|(d, &v)| *d = *d + v);
        s.dgamma
            .iter_mut()
            .zip(dy.iter().zip(&s.xhat))
            .for_each(|(d, (&v, &h))| *d = *d + v * h);
        match self.gamma {
            Some(gamma) => {
                s.g.iter_mut()
                    .zip(dy.iter().zip(gamma))
                    .for_each(|(g, (&v, &w))| *g = v * w)
            }
            None => s.g.copy_from_slice(dy),
        }
        let nf = A::from_f64_rne(n as f64);
        let m1 = row_sum(&s.g) / nf;
        let m2 = row_dot(&s.g, &s.xhat) / nf;
        a.iter_mut()
            .zip(s.g.iter().zip(&s.xhat))
            .for_each(|(d, (&g, &h))| *d = rstd * (g - m1 - h * m2));
    }
}
