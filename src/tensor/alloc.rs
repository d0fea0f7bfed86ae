//! Allocations whose size comes from outside (shapes, layer widths, label counts, file headers):
//! the element count is computed with checked arithmetic, compared with
//! [`MAX_ALLOCATION_BYTES`], and the memory is reserved with `Vec::try_reserve_exact`, so a huge
//! request is an [`Error`] naming what asked for it, never an abort.
//!
//! Why a limit as well as `try_reserve`: Linux's default overcommit (mode 0) refuses a request
//! larger than RAM plus swap, so `try_reserve` reports it, but grants anything below, and the
//! process is killed later when the pages are touched. Measured on the 24 GiB development
//! machine: `try_reserve_exact` of 16 GiB succeeds, of 32 GiB fails; `vec![0f32; 1 << 38]`
//! aborts the process.

use crate::error::{Error, Result};

/// The most bytes mixprec allocates for one buffer whose size comes from outside: 4 GiB
/// (2^32 bytes), e.g. a `[32768, 32768]` f32 kernel. Larger requests give
/// [`Error::TooLarge`].
pub const MAX_ALLOCATION_BYTES: u128 = 1 << 32;

/// The element count of `shape`, or [`Error::ShapeOverflow`].
pub(crate) fn numel(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| Error::ShapeOverflow {
            shape: shape.to_vec(),
        })
}

/// Checks that `count` elements of `elem_bytes` bytes each fit in [`MAX_ALLOCATION_BYTES`];
/// `what` names the buffer and where its size came from.
pub(crate) fn check_bytes(
    what: impl FnOnce() -> String,
    count: u128,
    elem_bytes: u128,
) -> Result<()> {
    let bytes = count.saturating_mul(elem_bytes);
    if bytes > MAX_ALLOCATION_BYTES {
        return Err(Error::TooLarge {
            what: what(),
            bytes,
            limit: MAX_ALLOCATION_BYTES,
        });
    }
    Ok(())
}

/// Checks the element count of `shape` of `T` against the limit (overflow included) and
/// returns it.
pub(crate) fn check_shape<T>(what: impl FnOnce() -> String, shape: &[usize]) -> Result<usize> {
    let count = shape
        .iter()
        .try_fold(1u128, |n, &d| n.checked_mul(d as u128));
    let elem = std::mem::size_of::<T>().max(1) as u128;
    match count {
        Some(c) => {
            check_bytes(what, c, elem)?;
            numel(shape)
        }
        None => Err(Error::TooLarge {
            what: format!("{}, whose element count overflows u128,", what()),
            bytes: u128::MAX,
            limit: MAX_ALLOCATION_BYTES,
        }),
    }
}

/// An empty `Vec` with room for exactly `count` elements, after the limit check.
pub(crate) fn try_with_capacity<T>(what: impl Fn() -> String, count: usize) -> Result<Vec<T>> {
    let elem = std::mem::size_of::<T>().max(1) as u128;
    check_bytes(&what, count as u128, elem)?;
    let mut v = Vec::new();
    v.try_reserve_exact(count)
        .map_err(|source| Error::AllocationFailed {
            what: what(),
            bytes: count as u128 * elem,
            source,
        })?;
    Ok(v)
}

/// `count` copies of `value`, after the limit check.
pub(crate) fn try_filled<T: Clone>(
    what: impl Fn() -> String,
    count: usize,
    value: T,
) -> Result<Vec<T>> {
    let mut v = try_with_capacity(what, count)?;
    v.resize(count, value);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_shape_refuses_beyond_limit_and_names_source() {
        let err = check_shape::<f32>(|| "test buffer".into(), &[1 << 20, 1 << 20]).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.starts_with("test buffer needs 4398046511104 bytes (4.0 TiB)"),
            "{msg}"
        );
        assert!(msg.contains("4294967296 bytes (4.0 GiB)"), "{msg}");
        assert_eq!(
            check_shape::<f32>(|| "ok".into(), &[1 << 15, 1 << 15]).unwrap(),
            1 << 30
        );
    }

    #[test]
    fn check_shape_refuses_overflowing_product() {
        let err = check_shape::<u8>(|| "b".into(), &[usize::MAX, usize::MAX, 4]).unwrap_err();
        assert!(matches!(err, Error::TooLarge { .. }), "{err}");
    }

    #[test]
    fn try_filled_allocates_within_limit() {
        assert_eq!(try_filled(|| "v".into(), 3, 7u8).unwrap(), vec![7, 7, 7]);
    }
}
