//! Deterministic test values, shared by the kernel unit tests (`src/kernels/tests/`) and the
//! public-API kernel tests (`tests/kernels.rs`, which includes this file by path). The parent
//! module provides `Element`.

use super::Element;

/// Deterministic values in [-2, 2) with a few exact zeros, rounded to `T`.
pub fn values<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0;
            T::from_f64_rne(if s.is_multiple_of(17) { 0.0 } else { x })
        })
        .collect()
}
