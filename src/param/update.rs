//! The one way an optimizer changes a variable: [`Param::apply_update`] runs an element-wise
//! [`ElementwiseUpdate`] over the value, its gradient and the optimizer's state, in the
//! variable's accumulator type, in parallel chunks, and repacks the cached packed copies of the
//! value chunk by chunk as it goes. Optimizers name nothing from the kernels: the chunking, the
//! casting and the repacking protocol live here.

use std::sync::atomic::AtomicUsize;
use std::sync::OnceLock;

use num_traits::Zero;
use rayon::prelude::*;

use crate::dtype::{cast_slice, Element};
use crate::kernels::gemm::{repack_blocks, RepackBlock, REPACK_ROWS};
use crate::param::Param;
use crate::policy::Policy;

/// The accumulator type of `P`'s variables: what optimizer state and updates are computed in
/// (f32, or f64 for `F64`).
pub(crate) type VarAccOf<P> = <<P as Policy>::Variable as Element>::Acc;

/// An element-wise optimizer update, generic over the accumulator type so one value serves every
/// variable of a model whatever its policy.
pub(crate) trait ElementwiseUpdate: Sync {
    /// Updates one chunk in place: the weights `w`, their gradients `g` (still to be multiplied
    /// by `scale`, the loss scale's inverse), and the chunk of each state vector. A new weight
    /// beyond `limit` (the variable type's largest finite value) or NaN, or a non-finite new
    /// state, must not be written: that element keeps its old weight and state. Returns how many
    /// elements were held back so.
    fn chunk<A: Element>(
        &self,
        w: &mut [A],
        g: &[A],
        state: &mut [&mut [A]],
        scale: A,
        limit: A,
    ) -> usize;
}

impl<P: Policy> Param<P> {
    /// Applies `update` to the whole variable with `state` (each vector as long as the value,
    /// in the accumulator type) and the gradient multiplied by `inv_scale`. Returns the number of
    /// elements held back, or `None` when the variable has no gradient (nothing changed then).
    ///
    /// When the variable type is its own accumulator type (f32, f64), the update works on the
    /// variable's own memory; otherwise (f16, bf16 variables) the weights and gradients are
    /// converted once into scratch vectors and the weights rounded back once. With f32 master
    /// weights, the cached packed copies (W for the forward pass, Wᵀ for dX) are cut into blocks
    /// of [`REPACK_ROWS`]-row multiples, and each chunk is packed right after its update, while
    /// it is in cache. The copies are kept only if every block was packed; otherwise they are
    /// dropped and rebuilt on next use, so they can never be stale.
    ///
    /// # Panics
    ///
    /// If a state vector is not as long as the value (an optimizer's internal contract).
    pub(crate) fn apply_update<U: ElementwiseUpdate>(
        &mut self,
        update: &U,
        state: &mut [Vec<VarAccOf<P>>],
        inv_scale: f32,
    ) -> Option<usize> {
        let scale = VarAccOf::<P>::from_f32_rne(inv_scale);
        let limit = VarAccOf::<P>::from_f64_rne(P::Variable::DTYPE.max_finite());
        self.grad.as_ref()?;
        self.compute = OnceLock::new();
        let mut packed = std::mem::take(&mut self.packed);
        let done = AtomicUsize::new(0);
        let len = self.value.len();
        let master_is_f32 = P::Variable::DTYPE == crate::dtype::DType::Float32;
        let (w, wt) = {
            let [w, wt] = &mut packed;
            (w.get_mut(), wt.get_mut())
        };
        let blocks = match self.matrix_dims() {
            Some((k, n)) if master_is_f32 && n > 0 && (w.is_some() || wt.is_some()) => {
                let block_rows = (PAR_CHUNK / n / REPACK_ROWS).max(1) * REPACK_ROWS;
                repack_blocks(w, wt, k, n, block_rows, &done).map(|b| (block_rows * n, b))
            }
            _ => None,
        };
        let repacks = blocks.is_some();
        let (chunk, blocks): (usize, Vec<Option<RepackBlock<'_, P::Compute>>>) = match blocks {
            Some((chunk, b)) => (chunk, b.into_iter().map(Some).collect()),
            None => (
                PAR_CHUNK,
                (0..len.div_ceil(PAR_CHUNK)).map(|_| None).collect(),
            ),
        };
        let grad: &[P::Variable] = self.grad.as_deref().expect("checked above");
        let value = self.value.as_mut_slice();
        let mut run = |w: &mut [VarAccOf<P>], g: &[VarAccOf<P>], blocks| {
            par_chunks(update, w, g, state, chunk, blocks, scale, limit)
        };
        let g_buf;
        let g: &[VarAccOf<P>] = match VarAccOf::<P>::from_view(P::Variable::view(grad)) {
            Some(same) => same,
            None => {
                g_buf = widened(grad);
                &g_buf
            }
        };
        let held = match VarAccOf::<P>::from_view_mut(P::Variable::view_mut(value)) {
            Some(w) => run(w, g, blocks),
            None => {
                let mut w_buf = widened(value);
                let held = run(&mut w_buf, g, blocks.into_iter().map(|_| None).collect());
                cast_slice(&w_buf, value);
                held
            }
        };
        let rows = self.matrix_dims().map_or(0, |(rows, _)| rows);
        if repacks && done.into_inner() == rows {
            self.packed = packed;
        }
        Some(held)
    }
}

/// Elements per rayon task in element-wise updates: large enough that a bias vector stays one
/// task, small enough that a 1024 × 1024 kernel splits across cores.
pub(crate) const PAR_CHUNK: usize = 1 << 15;

/// `src` in the accumulator type, in a new vector.
fn widened<T: Element>(src: &[T]) -> Vec<T::Acc> {
    let mut v = vec![T::Acc::zero(); src.len()];
    cast_slice(src, &mut v);
    v
}

/// Runs `update` over matching chunks of `w`, `g` and each state vector, chunks in parallel,
/// packing each updated chunk of weights into its block (when there is one) right after.
#[allow(clippy::too_many_arguments)]
fn par_chunks<A: Element, C: Element, U: ElementwiseUpdate>(
    update: &U,
    w: &mut [A],
    g: &[A],
    state: &mut [Vec<A>],
    chunk: usize,
    blocks: Vec<Option<RepackBlock<'_, C>>>,
    scale: A,
    limit: A,
) -> usize {
    let n = w.len();
    let mut per_chunk: Vec<Vec<&mut [A]>> = (0..n.div_ceil(chunk)).map(|_| Vec::new()).collect();
    for s in state.iter_mut() {
        assert_eq!(s.len(), n, "optimizer state length");
        for (dst, c) in per_chunk.iter_mut().zip(s.chunks_mut(chunk)) {
            dst.push(c);
        }
    }
    w.par_chunks_mut(chunk)
        .zip(g.par_chunks(chunk))
        .zip(per_chunk)
        .zip(blocks)
        .map(|(((w, g), mut st), block)| {
            let held = update.chunk(w, g, &mut st, scale, limit);
            if let (Some(block), Some(w)) = (block, f32::from_view(A::view(w))) {
                block.pack(w);
            }
            held
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{gemm_packed, MatRef};
    use crate::policy::{MixedBf16, MixedF16, F32};
    use crate::tensor::Tensor;

    /// `w = 0.75·w + g·scale`, with no state, holding nothing back.
    struct Blend;
    impl ElementwiseUpdate for Blend {
        fn chunk<A: Element>(&self, w: &mut [A], g: &[A], _: &mut [&mut [A]], s: A, _: A) -> usize {
            let k = A::from_f32_rne(0.75);
            w.iter_mut().zip(g).for_each(|(w, &g)| *w = *w * k + g * s);
            0
        }
    }

    /// The products with the cached packed copies, as is and transposed, on a fixed input.
    fn products<P: Policy<Variable = f32>>(p: &Param<P>) -> (Vec<f32>, Vec<f32>) {
        let (k, n) = (p.shape()[0], p.shape()[1]);
        let x = |cols: usize| -> Vec<P::Compute> {
            (0..3 * cols)
                .map(|i| P::Compute::from_f32_rne((i % 11) as f32 - 5.0))
                .collect()
        };
        let (xa, xt) = (x(k), x(n));
        let (mut y, mut yt) = (vec![0f32; 3 * n], vec![0f32; 3 * k]);
        let (y_acc, yt_acc) = (
            <P::Compute as Element>::Acc::from_view_mut(f32::view_mut(&mut y)).unwrap(),
            <P::Compute as Element>::Acc::from_view_mut(f32::view_mut(&mut yt)).unwrap(),
        );
        gemm_packed(MatRef::row_major(&xa, 3, k), p.packed(false), y_acc, false);
        gemm_packed(MatRef::row_major(&xt, 3, n), p.packed(true), yt_acc, false);
        (y, yt)
    }

    fn repacked_copies_equal_fresh_ones<P: Policy<Variable = f32>>() {
        // k = 1100, n = 37: PAR_CHUNK / 37 gives blocks of 864 rows, so two blocks, the last a
        // partial AMX k-chunk and strip; n = 37 is a partial strip and panel.
        let (k, n) = (1100, 37);
        let value: Vec<f32> = (0..k * n).map(|i| (i % 29) as f32 * 0.125 - 1.5).collect();
        let mut p = Param::<P>::new(Tensor::from_vec(vec![k, n], value).unwrap());
        p.set_grad(Tensor::from_vec(vec![k, n], vec![0.25; k * n]).unwrap())
            .unwrap();
        let _ = products(&p); // fills both packed copies
                              // The AMX and FMA-panel layouts repack by row blocks; the portable layout does not, and
                              // its copies are rebuilt on next use instead.
        let repackable = p.packed(false).kernel() != crate::kernels::KernelChoice::Portable;
        assert_eq!(p.apply_update(&Blend, &mut [], 0.5), Some(0));
        let kept = p.packed.iter().all(|c| c.get().is_some());
        assert_eq!(kept, repackable, "{}: packed copies kept", P::NAME);
        assert_eq!(p.value().as_slice()[0], -1.5 * 0.75 + 0.125);
        let fresh = p.clone(); // a clone starts with no caches and packs anew
        assert_eq!(products(&p), products(&fresh), "{}", P::NAME);
    }

    #[test]
    fn apply_update_keeps_packed_copies_equal_to_a_fresh_pack() {
        repacked_copies_equal_fresh_ones::<F32>();
        repacked_copies_equal_fresh_ones::<MixedBf16>();
        repacked_copies_equal_fresh_ones::<MixedF16>();
    }

    #[test]
    fn apply_update_rounds_16_bit_variables_back_once_and_needs_a_gradient() {
        use crate::policy::Bf16;
        let mut p =
            Param::<Bf16>::new(Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap().cast());
        assert_eq!(p.apply_update(&Blend, &mut [], 1.0), None, "no gradient");
        let g = Tensor::from_vec(vec![2], vec![1.0f32 / 512.0, 0.5])
            .unwrap()
            .cast();
        p.set_grad(g).unwrap();
        assert_eq!(p.apply_update(&Blend, &mut [], 1.0), Some(0));
        // In f32, 0.75 + 2^-9 exactly; bf16 spaces [0.5, 1) 2^-8 apart, so that is a tie between
        // 0.75 and 0.75 + 2^-8, and one rounding to nearest-even gives 0.75 (0.75 + 2^-8 would
        // be a second rounding or a truncation error).
        assert_eq!(p.value().as_slice()[0].to_f32(), 0.75);
        assert_eq!(p.value().as_slice()[1].to_f32(), 2.0);
    }
}
