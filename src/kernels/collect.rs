//! [`par_collect`]: builds a vector in parallel, writing each element once (no zero fill first).
//!
//! A `vec![x; n]` followed by an overwrite writes the new memory twice, and the first pass runs on
//! one thread; for the outputs of layer passes (a 1024 × 1024 cast is ~120 µs on one core) the
//! conversion itself is what should be spread over the pool.

use std::mem::MaybeUninit;
use std::ops::Range;

use rayon::prelude::*;

/// Elements per call of the filler (a buffer of this many on each task's stack).
pub(crate) const CHUNK: usize = 2048;
/// Elements per rayon task.
const TASK: usize = 1 << 15;

/// A vector of `n` elements where `fill(range, out)` writes elements `range` into `out`
/// (`out.len() == range.len()`, at most 2048), called on rayon's pool over disjoint ranges that
/// cover `0..n`. Whatever `fill` leaves in `out` is what the vector holds (`out` starts as
/// `U::default()`), so every element is initialised.
pub(crate) fn par_collect<U>(n: usize, fill: impl Fn(Range<usize>, &mut [U]) + Sync) -> Vec<U>
where
    U: Copy + Default + Send + Sync,
{
    let mut v = Vec::with_capacity(n);
    v.spare_capacity_mut()[..n]
        .par_chunks_mut(TASK)
        .enumerate()
        .for_each(|(t, task)| {
            let mut buf = [U::default(); CHUNK];
            for (c, dst) in task.chunks_mut(CHUNK).enumerate() {
                let start = t * TASK + c * CHUNK;
                let out = &mut buf[..dst.len()];
                out.fill(U::default());
                fill(start..start + dst.len(), out);
                dst.write_copy_of_slice(out);
            }
        });
    // SAFETY: the chunks of `spare_capacity_mut()[..n]` cover its n elements, and each chunk was
    // written once from an initialised buffer of the same length. (If `fill` panicked, the panic
    // propagates before this line and the vector is dropped with length 0.)
    unsafe { v.set_len(n) };
    v
}

/// Writes one block of a [`par_collect_blocks`] vector front to back; it must be filled
/// exactly (checked).
pub(crate) struct BlockWriter<'a, U> {
    dst: &'a mut [MaybeUninit<U>],
    written: usize,
}

impl<U: Copy> BlockWriter<'_, U> {
    /// Appends `src` after what was written so far.
    ///
    /// # Panics
    ///
    /// If the block has less than `src.len()` elements left (a bug of the caller).
    pub(crate) fn push(&mut self, src: &[U]) {
        let end = self.written + src.len();
        self.dst[self.written..end].write_copy_of_slice(src);
        self.written = end;
    }
}

/// A vector of `n` elements built in parallel over fixed blocks of `block` elements (the last
/// one shorter): `fill(range, writer)` writes block `range` in order through `writer`, and what
/// it returns is collected per block, in block order. The split does not depend on the thread
/// count, so per-block sums added in order are reproducible. Each element is written once (no
/// zero fill first).
///
/// # Panics
///
/// If `fill` does not write exactly its block (a bug of the caller), or `block` is 0 while
/// `n > 0`.
pub(crate) fn par_collect_blocks<U, S>(
    n: usize,
    block: usize,
    fill: impl Fn(Range<usize>, &mut BlockWriter<'_, U>) -> S + Sync,
) -> (Vec<U>, Vec<S>)
where
    U: Copy + Send + Sync,
    S: Send,
{
    let mut v = Vec::with_capacity(n);
    if n == 0 {
        return (v, Vec::new());
    }
    let states = v.spare_capacity_mut()[..n]
        .par_chunks_mut(block)
        .enumerate()
        .map(|(b, dst)| {
            let start = b * block;
            let len = dst.len();
            let mut w = BlockWriter { dst, written: 0 };
            let s = fill(start..start + len, &mut w);
            assert_eq!(w.written, len, "a block was not filled");
            s
        })
        .collect();
    // SAFETY: the blocks of `spare_capacity_mut()[..n]` cover its n elements, and each block was
    // written completely (asserted above, before this line; a panic propagates first and the
    // vector is dropped with length 0).
    unsafe { v.set_len(n) };
    (v, states)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_element_is_filled_in_place() {
        for n in [0usize, 1, 2047, 2048, 2049, TASK, TASK + 1, 3 * TASK + 5] {
            let v = par_collect(n, |r, out: &mut [u64]| {
                for (i, o) in r.zip(out.iter_mut()) {
                    *o = i as u64 * 3 + 1;
                }
            });
            assert_eq!(v.len(), n);
            assert!(
                v.iter().enumerate().all(|(i, &x)| x == i as u64 * 3 + 1),
                "n = {n}"
            );
        }
    }

    #[test]
    fn blocks_are_filled_in_order_and_their_states_kept() {
        for (n, block) in [(0usize, 4usize), (1, 4), (12, 4), (13, 4), (100, 7)] {
            let (v, states) = par_collect_blocks(n, block, |r, w| {
                let vals: Vec<u32> = r.clone().map(|i| i as u32 * 2).collect();
                w.push(&vals[..vals.len() / 2]);
                w.push(&vals[vals.len() / 2..]);
                r.start
            });
            assert_eq!(v, (0..n as u32).map(|i| i * 2).collect::<Vec<_>>());
            assert_eq!(states, (0..n).step_by(block).collect::<Vec<_>>());
        }
    }

    #[test]
    #[should_panic(expected = "not filled")]
    fn a_short_block_is_a_bug() {
        let _ = par_collect_blocks(8, 4, |_, w: &mut BlockWriter<'_, u8>| w.push(&[1]));
    }
}
