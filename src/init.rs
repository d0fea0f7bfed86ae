//! Keras's default initialisers, from a seeded, portable RNG (ChaCha8: the same numbers on every
//! platform and version of this crate).

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Glorot (Xavier) uniform: `U(-limit, limit)` with `limit = sqrt(6 / (fan_in + fan_out))`,
/// Keras's default kernel initialiser. Returns `fan_in * fan_out` values in row-major
/// `[fan_in, fan_out]` order.
pub(crate) fn glorot_uniform(fan_in: usize, fan_out: usize, seed: u64) -> Vec<f32> {
    let limit = (6.0 / (fan_in + fan_out) as f64).sqrt();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..fan_in * fan_out)
        .map(|_| ((rng.random::<f64>() * 2.0 - 1.0) * limit) as f32)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glorot_uniform_stays_within_limit_and_is_seeded() {
        let w = glorot_uniform(64, 128, 7);
        let limit = (6.0f32 / 192.0).sqrt();
        assert!(w.iter().all(|x| x.abs() <= limit));
        assert_eq!(w, glorot_uniform(64, 128, 7));
        assert_ne!(w, glorot_uniform(64, 128, 8));
        // Uniform on (-limit, limit): variance limit^2 / 3.
        let var = w.iter().map(|x| (x * x) as f64).sum::<f64>() / w.len() as f64;
        assert!(
            (var / (limit as f64).powi(2) - 1.0 / 3.0).abs() < 0.02,
            "{var}"
        );
    }
}
