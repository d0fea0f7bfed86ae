//! [`map_rows`]: the driver of the row-wise layers (softmax, normalisation): each row of one or
//! two `? × n` compute-type inputs is widened to the accumulator type (f32; f64 for f64), handed
//! to a [`RowOp`] inside a [`wide`](crate::kernels::wide) loop, and the result rounded once to
//! the compute type, in parallel over fixed blocks of rows (so per-block sums added in order do
//! not depend on the thread count). The output is written once, straight into its vector.

use crate::dtype::{cast_slice, Element, SliceMut, SliceRef};
use crate::kernels::{par_collect_blocks, selected, Kernels, WideOp};
use crate::layers::ops::fused::rows_per_task;
use rayon::prelude::*;

/// The work on one row, in the accumulator type `A`. Implementations mark
/// [`row`](Self::row) `#[inline(always)]`, so it is compiled inside the AVX-512 trampoline.
pub(crate) trait RowOp<A: Element>: Sync {
    /// What one block of rows gathers (per-row statistics, partial column sums).
    type State: Send;

    /// A fresh state for a block of `rows` rows.
    fn state(&self, rows: usize) -> Self::State;

    /// Row `row` (its index in the whole input): `a` holds the first input's row widened to
    /// `A` and must hold the output row when this returns; `b` the second input's (empty when
    /// there is none).
    fn row(&self, state: &mut Self::State, row: usize, a: &mut [A], b: &[A]);

    /// Row `row` straight from the compute type `x` to `out` on a
    /// [`rowwise`](crate::kernels::rowwise) kernel, when
    /// `kernels` and the types have one for this op: returns whether it ran (when not, having
    /// done nothing, [`row`](Self::row) runs). `buf` is the kernel's scratch.
    fn direct(
        &self,
        _kernels: Kernels,
        _state: &mut Self::State,
        _row: usize,
        _x: SliceRef<'_>,
        _out: SliceMut<'_>,
        _buf: &mut Vec<f32>,
    ) -> bool {
        false
    }
}

/// `op` over every row of `a` (and of `b`, of the same shape, when given), both `? × n`
/// row-major: the output in `C` (each element rounded once from `A`) and each block's state, in
/// block order.
pub(crate) fn map_rows<C: Element, O: RowOp<C::Acc>>(
    a: &[C],
    b: Option<&[C]>,
    n: usize,
    op: &O,
) -> (Vec<C>, Vec<O::State>) {
    map_rows_on(selected(), a, b, n, op)
}

/// [`map_rows`] on the kernels `kernels` (tests compare the portable rows with the kernels').
pub(crate) fn map_rows_on<C: Element, O: RowOp<C::Acc>>(
    kernels: Kernels,
    a: &[C],
    b: Option<&[C]>,
    n: usize,
    op: &O,
) -> (Vec<C>, Vec<O::State>) {
    debug_assert!(n > 0 && a.len().is_multiple_of(n));
    debug_assert!(b.is_none_or(|b| b.len() == a.len()));
    let block_rows = rows_per_task(n);
    par_collect_blocks(a.len(), block_rows * n, |range, out| {
        let mut rows = Scratch::new(n, b.is_some());
        let (mut direct, mut buf) = (vec![C::default(); n], Vec::new());
        let first = range.start / n;
        let mut state = op.state(range.len() / n);
        for (i, row) in a[range.clone()].chunks_exact(n).enumerate() {
            let (x, y) = (C::view(row), C::view_mut(&mut direct));
            if b.is_none() && op.direct(kernels, &mut state, first + i, x, y, &mut buf) {
                out.push(&direct);
                continue;
            }
            let b_row = b.map(|b| &b[range.start + i * n..][..n]);
            out.push(rows.run(op, &mut state, first + i, row, b_row));
        }
        state
    })
}

/// [`map_rows`] with a second input, writing each output row over its row of `a` (a backward
/// pass's `dx` into the buffer of its `dy`): no new vector, so no new pages to fault in. Each
/// row is widened before it is overwritten. The portable rows only ([`RowOp::direct`] is for
/// one input).
pub(crate) fn map_rows_in_place<C: Element, O: RowOp<C::Acc>>(
    a: &mut [C],
    b: &[C],
    n: usize,
    op: &O,
) -> Vec<O::State> {
    debug_assert!(n > 0 && a.len().is_multiple_of(n) && b.len() == a.len());
    let block = rows_per_task(n) * n;
    a.par_chunks_mut(block)
        .zip(b.par_chunks(block))
        .enumerate()
        .map(|(t, (a, b))| {
            let mut rows = Scratch::new(n, true);
            let first = t * block / n;
            let mut state = op.state(a.len() / n);
            for (i, (row, b_row)) in a.chunks_exact_mut(n).zip(b.chunks_exact(n)).enumerate() {
                let y = rows.run(op, &mut state, first + i, row, Some(b_row));
                row.copy_from_slice(y);
            }
            state
        })
        .collect()
}

/// One block's buffers for the portable rows: the first input widened to the accumulator
/// type, the second widened when it is not already in it, and the rounded output.
struct Scratch<C: Element> {
    ra: Vec<C::Acc>,
    rb: Vec<C::Acc>,
    rounded: Vec<C>,
}

impl<C: Element> Scratch<C> {
    fn new(n: usize, has_b: bool) -> Self {
        let zero = C::Acc::default();
        let same = C::DTYPE == C::Acc::DTYPE;
        Scratch {
            ra: vec![zero; n],
            rb: vec![zero; if has_b && !same { n } else { 0 }],
            rounded: vec![C::default(); if same { 0 } else { n }],
        }
    }

    /// `op`'s row `index` from `row` (and `b_row`), in the accumulator type: the output row,
    /// each element rounded once to `C`.
    fn run<O: RowOp<C::Acc>>(
        &mut self,
        op: &O,
        state: &mut O::State,
        index: usize,
        row: &[C],
        b_row: Option<&[C]>,
    ) -> &[C] {
        cast_slice(row, &mut self.ra);
        // The second input is only read: borrowed when it is already in the accumulator type
        // (F32, F64), widened into `rb` otherwise.
        let b_row: &[C::Acc] = match b_row {
            Some(row) => match C::Acc::from_view(C::view(row)) {
                Some(same) => same,
                None => {
                    cast_slice(row, &mut self.rb);
                    &self.rb
                }
            },
            None => &self.rb,
        };
        crate::kernels::wide(Row {
            op,
            state,
            row: index,
            a: &mut self.ra,
            b: b_row,
        });
        match C::from_view(C::Acc::view(&self.ra)) {
            // The accumulator type is the output type (F32, F64): no conversion.
            Some(same) => same,
            None => {
                cast_slice(&self.ra, &mut self.rounded);
                &self.rounded
            }
        }
    }
}

/// One [`RowOp::row`] call inside the trampoline.
struct Row<'a, A: Element, O: RowOp<A>> {
    op: &'a O,
    state: &'a mut O::State,
    row: usize,
    a: &'a mut [A],
    b: &'a [A],
}

impl<A: Element, O: RowOp<A>> WideOp for Row<'_, A, O> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        self.op.row(self.state, self.row, self.a, self.b);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use half::bf16;

    /// Adds the second input, doubles, and counts rows per block.
    struct AddDouble;
    impl RowOp<f32> for AddDouble {
        type State = usize;
        fn state(&self, _rows: usize) -> usize {
            0
        }
        #[inline(always)]
        fn row(&self, state: &mut usize, _row: usize, a: &mut [f32], b: &[f32]) {
            a.iter_mut().zip(b).for_each(|(a, b)| *a = 2.0 * (*a + b));
            *state += 1;
        }
    }

    #[test]
    fn every_row_is_mapped_and_rounded_once() {
        let n = 3;
        let rows = rows_per_task(n) + 5; // two blocks
        let a: Vec<bf16> = (0..rows * n)
            .map(|i| bf16::from_f32(i as f32 / 8.0))
            .collect();
        let b: Vec<bf16> = vec![bf16::from_f32(1.0 / 3.0); rows * n];
        let (y, states) = map_rows(&a, Some(&b), n, &AddDouble);
        assert_eq!(states, vec![rows_per_task(n), 5]);
        for ((y, a), b) in y.iter().zip(&a).zip(&b) {
            assert_eq!(*y, bf16::from_f32(2.0 * (a.to_f32() + b.to_f32())));
        }
        // In place: the same rows over the first input, the same block states.
        let mut over = a.clone();
        let states_in_place = map_rows_in_place(&mut over, &b, n, &AddDouble);
        assert_eq!(over, y);
        assert_eq!(states_in_place, states);
        let (af, bf): (Vec<f32>, Vec<f32>) = (cast_vec(&a), cast_vec(&b));
        let mut over = af.clone();
        map_rows_in_place(&mut over, &bf, n, &AddDouble);
        assert_eq!(over, map_rows(&af, Some(&bf), n, &AddDouble).0);
        assert_ne!(over, af);
    }

    fn cast_vec(v: &[bf16]) -> Vec<f32> {
        v.iter().map(|x| x.to_f32()).collect()
    }
}
