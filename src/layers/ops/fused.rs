//! The element-wise work fused around a layer's matrix products, each one parallel pass in
//! AVX-512 lanes (through [`kernels::wide`](crate::kernels::wide)):
//!
//! - after the forward product: bias, activation and the one rounding to the compute type
//!   ([`gemm_bias_activation`], or [`bias_activation_round`] on an accumulator a layer filled
//!   itself), reading the accumulator once and writing the output once;
//! - before the backward products: `dz = dy ⊙ activation'(y)` rounded once, `max|dz|` and the
//!   column sums of `dz` (a bias gradient) over fixed row blocks ([`pre_activation_grad`]), so
//!   the sums do not depend on the thread count;
//! - [`sum_bound`]: the bound that proves such sums finite, so the finiteness scan can skip them.
//!
//! Everything sums in the compute type's accumulator type `C::Acc` (f32; f64 for f64).

use rayon::prelude::*;

use super::workspace::round_acc;
use crate::dtype::{cast_slice, cast_to_vec, max_abs, Element};
use crate::kernels::{gemm_packed, MatRef, PackedB, WideOp};
use crate::layers::Activation;

#[cfg(test)]
mod tests;

/// Rows per parallel task in the element-wise passes over `rows × n` matrices: about 32 Ki
/// elements, a fixed split (independent of the thread count) so sums are reproducible.
pub(crate) fn rows_per_task(n: usize) -> usize {
    ((1 << 15) / n.max(1)).max(1)
}

/// `activation(x·W + b)`, `rows × n` row-major in the compute type `C`, for `x` `rows × k` and
/// `w` a packed `k × n` weight. The product is summed into `acc` (resized; its old values are
/// overwritten, never read), which becomes the output when `C` is its own accumulator type
/// (f32, f64) and is kept for reuse otherwise. The bias is read in `C` (as Keras reads every
/// variable) and widened once.
pub(crate) fn gemm_bias_activation<C: Element>(
    x: MatRef<'_, C>,
    w: &PackedB<C>,
    bias: Option<&[C]>,
    activation: Activation,
    acc: &mut Vec<C::Acc>,
) -> Vec<C> {
    let (rows, n) = (x.rows(), w.cols());
    acc.resize(rows * n, C::Acc::default());
    gemm_packed(x, w, acc, false);
    let bias = bias.map(cast_to_vec::<C, C::Acc>);
    bias_activation_round(acc, n, bias.as_deref(), activation)
}

/// [`gemm_bias_activation`] for a training pass whose activation's derivative reads its input
/// ([`Activation::derivative_needs_input`]: GELU): returns `(z, y)`, the pre-activation
/// `x·W + b` and `activation(z)`, each rounded once from the same accumulator (so `y` is
/// bit-identical to the inference pass's).
pub(crate) fn gemm_bias_activation_with_input<C: Element>(
    x: MatRef<'_, C>,
    w: &PackedB<C>,
    bias: Option<&[C]>,
    activation: Activation,
    acc: &mut Vec<C::Acc>,
) -> (Vec<C>, Vec<C>) {
    let (rows, n) = (x.rows(), w.cols());
    acc.resize(rows * n, C::Acc::default());
    gemm_packed(x, w, acc, false);
    let bias = bias.map(cast_to_vec::<C, C::Acc>);
    if C::DTYPE == C::Acc::DTYPE {
        // `z` is moved out of `acc`; `y` is computed from an exact copy of it.
        let z: Vec<C> = bias_activation_round(acc, n, bias.as_deref(), Activation::Linear);
        let mut a: Vec<C::Acc> = cast_to_vec(&z);
        let y = bias_activation_round(&mut a, n, None, activation);
        (z, y)
    } else {
        // Two passes that only read `acc`.
        let z = bias_activation_round(acc, n, bias.as_deref(), Activation::Linear);
        let y = bias_activation_round(acc, n, bias.as_deref(), activation);
        (z, y)
    }
}

/// `activation(x)` element-wise, widened to the accumulator type and rounded once to `C`, in one
/// parallel pass that reads `x` once and writes the output once: an activation layer's forward.
pub(crate) fn activation_round<C: Element>(x: &[C], activation: Activation) -> Vec<C> {
    crate::kernels::par_collect(x.len(), |range, out| {
        let mut tmp = [C::Acc::default(); crate::kernels::COLLECT_CHUNK];
        let tmp = &mut tmp[..range.len()];
        cast_slice(&x[range], tmp);
        crate::kernels::wide(BiasActivation {
            acc: tmp,
            bias: None,
            activation,
        });
        cast_slice(tmp, out);
    })
}

/// `activation(acc + bias)` over a row-major `? × n` accumulator, rounded once to `C`: in place
/// and moved out when `C` is the accumulator type, otherwise in one parallel pass that reads
/// `acc` once (leaving it for reuse) and writes the output once.
pub(crate) fn bias_activation_round<C: Element>(
    acc: &mut Vec<C::Acc>,
    n: usize,
    bias: Option<&[C::Acc]>,
    activation: Activation,
) -> Vec<C> {
    let elementwise = bias.is_some() || activation != Activation::Linear;
    if C::DTYPE == C::Acc::DTYPE {
        // The accumulator is the output: bias and activation in place, in one pass.
        if elementwise {
            acc.par_chunks_mut(rows_per_task(n) * n).for_each(|acc| {
                crate::kernels::wide(BiasActivation {
                    acc,
                    bias,
                    activation,
                })
            });
        }
        return round_acc::<C>(acc);
    }
    if !elementwise {
        return round_acc::<C>(acc);
    }
    // A 16-bit output: bias, activation and the one rounding in a single parallel pass that
    // writes the output once (the accumulator is only read), in runs that may start mid-row.
    let acc: &[C::Acc] = acc;
    crate::kernels::par_collect(acc.len(), |range, out| {
        let mut tmp = [C::Acc::default(); crate::kernels::COLLECT_CHUNK];
        let (src, tmp) = (&acc[range.clone()], &mut tmp[..range.len()]);
        tmp.copy_from_slice(src);
        bias_activation_from(tmp, range.start % n, n, bias, activation);
        cast_slice(tmp, out);
    })
}

/// [`BiasActivation`] in place on a block of sums in rows of `pitch`, of which the first
/// `width` are output columns `col..col + width` (the rest is left as it is): the epilogue of a
/// product that hands its result over block by block. Each element gets the function of
/// [`bias_activation_round`] (the same lanes), so the rounded block has its bits.
pub(crate) fn bias_activation_block<A: Element>(
    block: &mut [A],
    (col, width, pitch): (usize, usize, usize),
    bias: Option<&[A]>,
    activation: Activation,
) {
    if bias.is_none() && activation == Activation::Linear {
        return;
    }
    let bias = bias.map(|b| &b[col..col + width]);
    if width == pitch {
        crate::kernels::wide(BiasActivation {
            acc: block,
            bias,
            activation,
        });
        return;
    }
    for row in block.chunks_mut(pitch) {
        crate::kernels::wide(BiasActivation {
            acc: &mut row[..width],
            bias,
            activation,
        });
    }
}

/// [`BiasActivation`] over a run of a row-major `? × n` accumulator that starts at column `col`
/// (not necessarily at a row's start).
fn bias_activation_from<A: Element>(
    mut acc: &mut [A],
    mut col: usize,
    n: usize,
    bias: Option<&[A]>,
    activation: Activation,
) {
    let Some(bias) = bias else {
        crate::kernels::wide(BiasActivation {
            acc,
            bias: None,
            activation,
        });
        return;
    };
    while !acc.is_empty() {
        // A partial row up to the next row start, or as many whole rows as remain.
        let len = if col == 0 && acc.len() >= n {
            acc.len() / n * n
        } else {
            (n - col).min(acc.len())
        };
        let (head, rest) = acc.split_at_mut(len);
        let b = if col == 0 && len >= n {
            bias
        } else {
            &bias[col..col + len]
        };
        crate::kernels::wide(BiasActivation {
            acc: head,
            bias: Some(b),
            activation,
        });
        acc = rest;
        col = (col + len) % n;
    }
}

/// `acc[r][j] = activation(acc[r][j] + bias[j])` over a row-major accumulator, in wide lanes.
struct BiasActivation<'a, A> {
    acc: &'a mut [A],
    bias: Option<&'a [A]>,
    activation: Activation,
}

impl<A: Element> WideOp for BiasActivation<'_, A> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        fn rows<A: Element>(acc: &mut [A], bias: Option<&[A]>, f: impl Fn(A) -> A) {
            match bias {
                Some(b) => acc
                    .chunks_exact_mut(b.len())
                    .for_each(|row| row.iter_mut().zip(b).for_each(|(y, &b)| *y = f(*y + b))),
                None => acc.iter_mut().for_each(|y| *y = f(*y)),
            }
        }
        let (acc, bias) = (self.acc, self.bias);
        // One loop per activation, so each compiles to straight-line lanes.
        match self.activation {
            Activation::Linear => rows(acc, bias, |y| y),
            Activation::Relu => rows(acc, bias, |y| Activation::Relu.apply(y)),
            Activation::Sigmoid => rows(acc, bias, |y| Activation::Sigmoid.apply(y)),
            Activation::Tanh => rows(acc, bias, |y| Activation::Tanh.apply(y)),
            Activation::Gelu => rows(acc, bias, |y| Activation::Gelu.apply(y)),
            Activation::GeluTanh => rows(acc, bias, |y| Activation::GeluTanh.apply(y)),
        }
    }
}

/// `dz` and what a backward pass needs to know about it, gathered in the pass that forms it.
pub(crate) struct PreActivationGrad<C: Element> {
    /// `dy ⊙ activation'(y)`, rounded once to the compute type.
    pub(crate) dz: Vec<C>,
    /// `max |dz|` (NaN when `dz` holds a NaN).
    pub(crate) max_abs: f64,
    /// The column sums of `dz` (the bias gradient), in the accumulator type, when asked for.
    pub(crate) col_sums: Option<Vec<C::Acc>>,
}

/// `dz = dy ⊙ activation'(y)` for row-major `? × n` matrices, formed in the accumulator type and
/// rounded once (`dy`'s buffer becomes `dz`; `y` is read only for a non-linear activation, and
/// holds what the layer saved for it: the output, or the input `z` when
/// [`Activation::derivative_needs_input`]), with
/// its largest magnitude and (when `col_sums`) its column sums of the rounded values, in one
/// parallel pass over fixed blocks of [`rows_per_task`] rows. The block sums are added in
/// order, so the sums do not depend on the number of threads.
pub(crate) fn pre_activation_grad<C: Element>(
    dy: Vec<C>,
    y: Option<&[C]>,
    n: usize,
    activation: Activation,
    col_sums: bool,
) -> PreActivationGrad<C> {
    let act = activation;
    let y = y.filter(|_| act != Activation::Linear);
    let mut dz = dy;
    let task = rows_per_task(n) * n;
    let blocks: Vec<(f64, Option<Vec<C::Acc>>)> = dz
        .par_chunks_mut(task)
        .enumerate()
        .map(|(t, dz)| {
            let zero = C::Acc::default();
            let (mut d_acc, mut y_acc) = (vec![zero; n], vec![zero; n]);
            let mut sum = col_sums.then(|| vec![zero; n]);
            for (r, d_row) in dz.chunks_exact_mut(n).enumerate() {
                if let Some(y) = y {
                    cast_slice(d_row, &mut d_acc);
                    cast_slice(&y[t * task + r * n..][..n], &mut y_acc);
                    crate::kernels::wide(ActivationGrad {
                        d: &mut d_acc,
                        y: &y_acc,
                        activation: act,
                    });
                    cast_slice(&d_acc, d_row);
                }
                if let Some(sum) = &mut sum {
                    // The rounded values, as the products read them.
                    cast_slice(d_row, &mut d_acc);
                    crate::kernels::wide(AddInto { sum, x: &d_acc });
                }
            }
            (max_abs(dz), sum)
        })
        .collect();
    let max_abs = blocks.iter().fold(0.0, |m: f64, &(b, _)| {
        if m.is_nan() || b.is_nan() {
            f64::NAN
        } else {
            m.max(b)
        }
    });
    let col_sums = col_sums.then(|| {
        let mut total = vec![C::Acc::default(); n];
        for (_, block) in &blocks {
            if let Some(block) = block {
                crate::kernels::wide(AddInto {
                    sum: &mut total,
                    x: block,
                });
            }
        }
        total
    });
    PreActivationGrad {
        dz,
        max_abs,
        col_sums,
    }
}

/// A bound on every sum of `rows` terms, each at most `term` in magnitude, computed in f32 (or
/// f64): `2 · rows · term`, since such a sum is at most `(1 + u)^rows <= 2` times the exact one
/// while `rows · u <= 1/2` (f32's `u = 2^-24`); infinite (no bound) beyond that, or when `term`
/// is NaN or infinite. A gradient whose bound is finite in its types needs no finiteness scan.
pub(crate) fn sum_bound(rows: usize, term: f64) -> f64 {
    let r = rows as f64;
    if r * f64::from(f32::EPSILON) / 2.0 <= 0.5 {
        2.0 * r * term
    } else {
        f64::INFINITY
    }
}

/// `d[j] *= activation'(s[j])`, with the derivative taken from what the layer saved (the output
/// `y`, or the input `z` for GELU: [`Activation::derivative_from_saved`]), in wide lanes.
struct ActivationGrad<'a, A> {
    d: &'a mut [A],
    y: &'a [A],
    activation: Activation,
}

impl<A: Element> WideOp for ActivationGrad<'_, A> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        fn each<A: Element>(d: &mut [A], y: &[A], f: impl Fn(A) -> A) {
            d.iter_mut().zip(y).for_each(|(d, &y)| *d = *d * f(y));
        }
        let (d, y) = (self.d, self.y);
        // One loop per activation, so each compiles to straight-line lanes.
        match self.activation {
            Activation::Linear => each(d, y, |y| Activation::Linear.derivative_from_saved(y)),
            Activation::Relu => each(d, y, |y| Activation::Relu.derivative_from_saved(y)),
            Activation::Sigmoid => each(d, y, |y| Activation::Sigmoid.derivative_from_saved(y)),
            Activation::Tanh => each(d, y, |y| Activation::Tanh.derivative_from_saved(y)),
            Activation::Gelu => each(d, y, |z| Activation::Gelu.derivative_from_saved(z)),
            Activation::GeluTanh => each(d, y, |z| Activation::GeluTanh.derivative_from_saved(z)),
        }
    }
}

/// `sum[j] += x[j]`, in wide lanes.
struct AddInto<'a, A> {
    sum: &'a mut [A],
    x: &'a [A],
}

impl<A: Element> WideOp for AddInto<'_, A> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        self.sum
            .iter_mut()
            .zip(self.x)
            .for_each(|(s, &x)| *s = *s + x);
    }
}
