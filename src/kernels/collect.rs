//! [`par_collect`]: builds a vector in parallel, writing each element once (no zero fill first).
//!
//! A `vec![x; n]` followed by an overwrite writes the new memory twice, and the first pass runs on
//! one thread; for the outputs of layer passes (a 1024 × 1024 cast is ~120 µs on one core) the
//! conversion itself is what should be spread over the pool.

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
}
