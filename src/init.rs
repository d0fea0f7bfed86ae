//! Keras's default initialisers, from a seeded, portable RNG (ChaCha8: the same numbers on every
//! platform and version of this crate).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::dtype::Element;
use crate::error::Result;
use crate::tensor::alloc;

/// Glorot (Xavier) uniform: `U(-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))`,
/// Keras's default kernel initialiser. Returns `fan_in * fan_out` values in row-major
/// `[fan_in, fan_out]` order, each drawn in f64, rounded to f32, then to `T` (nearest even).
///
/// # Errors
///
/// [`Error::TooLarge`](crate::Error::TooLarge) / [`Error::AllocationFailed`](crate::Error::AllocationFailed)
/// when the kernel would not fit (checked before anything is allocated).
pub(crate) fn glorot_uniform<T: Element>(
    fan_in: usize,
    fan_out: usize,
    seed: u64,
) -> Result<Vec<T>> {
    let what = || format!("dense kernel [{fan_in}, {fan_out}] of {}", T::DTYPE);
    let n = alloc::check_shape::<T>(what, &[fan_in, fan_out])?;
    let mut out = alloc::try_with_capacity(what, n)?;
    let limit = (6.0 / (fan_in as f64 + fan_out as f64)).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    out.extend((0..n).map(|_| T::from_f32_rne(((rng.random::<f64>() * 2.0 - 1.0) * limit) as f32)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_uniform_stays_within_limit_and_is_seeded() {
        let w = glorot_uniform::<f32>(64, 128, 7).unwrap();
        let limit = (6.0f32 / 192.0).sqrt();
        assert!(w.iter().all(|x| x.abs() <= limit));
        assert_eq!(w, glorot_uniform::<f32>(64, 128, 7).unwrap());
        assert_ne!(w, glorot_uniform::<f32>(64, 128, 8).unwrap());
        // Uniform on (-limit, limit): variance limit^2 / 3.
        let var = w.iter().map(|x| (x * x) as f64).sum::<f64>() / w.len() as f64;
        assert!(
            (var / (limit as f64).powi(2) - 1.0 / 3.0).abs() < 0.02,
            "{var}"
        );
    }

    #[test]
    fn glorot_uniform_refuses_kernel_beyond_limit() {
        let err = glorot_uniform::<f32>(1 << 20, 1 << 20, 0).unwrap_err();
        assert!(
            err.to_string()
                .contains("dense kernel [1048576, 1048576] of float32"),
            "{err}"
        );
    }
}
