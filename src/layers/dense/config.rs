//! [`DenseConfig`]: Keras's `Dense(...)` arguments, and the one place a `Dense` kernel is drawn.

use super::Dense;
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::init::{Initializer, DEFAULT_SEED};
use crate::layers::Activation;
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;

/// The arguments of Keras's `Dense`, with its names and defaults, without the input size (Keras
/// builds a layer on its first input; here [`init`](Self::init) takes `input_dim`) and without
/// the policy (the type parameter of `init::<P>`).
///
/// | field | default |
/// | --- | --- |
/// | `units` | (required) |
/// | `activation` | [`Activation::Linear`] |
/// | `use_bias` | `true` |
/// | `kernel_initializer` | [`Initializer::GlorotUniform`] |
/// | `bias_initializer` | [`Initializer::Zeros`] |
/// | `seed` | [`DEFAULT_SEED`] (mixprec's: Keras seeds each initialiser) |
///
/// The kernel draws from `seed`, a random bias initialiser from the same seed on another ChaCha8
/// stream, so `DenseConfig::new(u).init(i)` equals [`Dense::new(i, u)`](Dense::new) and a
/// zero bias does not change the kernel.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::{DenseConfig, Initializer};
/// let dense = DenseConfig::new(8)
///     .activation(Activation::Relu)
///     .kernel_initializer(Initializer::HeUniform)
///     .seed(42)
///     .init::<MixedBf16>(4)?;
/// assert_eq!((dense.input_dim(), dense.units()), (4, 8));
/// let y = dense.call(&Tensor::<f32>::zeros(vec![2, 4])?)?;
/// assert_eq!(y.shape(), &[2, 8]);
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// With the `serde` feature it reads and writes Keras's `get_config()` keys (see
/// [the format](#json)).
///
/// # JSON
///
/// Written as `{"units": 8, "activation": "relu", "use_bias": true, "kernel_initializer":
/// "glorot_uniform", "bias_initializer": "zeros", "seed": 0}` (Keras's `Dense.from_config`
/// reads it without the `seed` key, which Keras does not know). Read from the same, or from the
/// `config` of a Keras `Dense` (the inner `config`, not the `{"class_name": "Dense", …}`
/// wrapper):
///
/// - an initialiser is a string (`"he_uniform"`, `"HeUniform"`) or Keras's object
///   `{"class_name": "HeUniform", "config": {"seed": null}, …}`; a non-null Keras seed is an
///   error (mixprec's generator differs from Keras's, so its numbers could not be reproduced:
///   set `seed` instead);
/// - `activation` `null` is linear; `use_bias`, the initialisers and `seed` may be missing;
/// - `name` and `dtype` are ignored (a mixprec layer has a path instead of a name, and its
///   policy is its type); `trainable` must be `true`, and the regularizers, constraints,
///   `lora_rank`, `lora_alpha` and `quantization_config` `null`, since mixprec has none of
///   them; any other key is an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "wire::KerasDense"))]
#[non_exhaustive]
pub struct DenseConfig {
    /// Output features (at least 1).
    pub units: usize,
    /// Applied to `x·W + b` before the one rounding.
    pub activation: Activation,
    /// Whether the layer has a bias.
    pub use_bias: bool,
    /// How the `[input_dim, units]` kernel is drawn.
    pub kernel_initializer: Initializer,
    /// How the `[units]` bias is drawn.
    pub bias_initializer: Initializer,
    /// The seed of the random initialisers.
    pub seed: u64,
}

impl DenseConfig {
    /// `units` outputs, every other argument at Keras's default.
    pub const fn new(units: usize) -> Self {
        DenseConfig {
            units,
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            seed: DEFAULT_SEED,
        }
    }

    /// Sets `activation`.
    pub const fn activation(self, activation: Activation) -> Self {
        DenseConfig { activation, ..self }
    }

    /// Sets `use_bias`.
    pub const fn use_bias(self, use_bias: bool) -> Self {
        DenseConfig { use_bias, ..self }
    }

    /// Sets `kernel_initializer`.
    pub const fn kernel_initializer(self, kernel_initializer: Initializer) -> Self {
        DenseConfig {
            kernel_initializer,
            ..self
        }
    }

    /// Sets `bias_initializer`.
    pub const fn bias_initializer(self, bias_initializer: Initializer) -> Self {
        DenseConfig {
            bias_initializer,
            ..self
        }
    }

    /// Sets `seed`.
    pub const fn seed(self, seed: u64) -> Self {
        DenseConfig { seed, ..self }
    }

    /// The layer for `input_dim` input features under policy `P`, its kernel drawn once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `input_dim` or `units` is zero; [`Error::TooLarge`] if the
    /// kernel would need more than [`MAX_ALLOCATION_BYTES`](crate::tensor::MAX_ALLOCATION_BYTES)
    /// (an overflowing size included), [`Error::AllocationFailed`] if the system refuses it.
    /// Nothing is allocated before these checks.
    pub fn init<P: Policy>(&self, input_dim: usize) -> Result<Dense<P>> {
        let units = self.units;
        for (what, v) in [("input_dim", input_dim), ("units", units)] {
            if v == 0 {
                return Err(Error::InvalidArgument {
                    what,
                    found: "0".into(),
                    expected: "at least 1",
                });
            }
        }
        let dtype = <P::Variable as Element>::DTYPE;
        let shape = [input_dim, units];
        let what = || format!("dense kernel [{input_dim}, {units}] of {dtype}");
        let kernel = self.kernel_initializer.values(what, &shape, self.seed, 0)?;
        let kernel = Param::new(Tensor::from_parts(shape.to_vec(), kernel));
        let bias = if self.use_bias {
            let what = || format!("dense bias [{units}] of {dtype}");
            let bias = self.bias_initializer.values(what, &[units], self.seed, 1)?;
            Some(Param::new(Tensor::from_parts(vec![units], bias)))
        } else {
            None
        };
        Ok(Dense::from_params(kernel, bias, self.activation))
    }
}

#[cfg(feature = "serde")]
mod wire;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{MixedBf16, F32};

    #[test]
    fn defaults_are_keras_s() {
        let c = DenseConfig::new(3);
        assert_eq!(c.activation, Activation::Linear);
        assert!(c.use_bias);
        assert_eq!(c.kernel_initializer, Initializer::GlorotUniform);
        assert_eq!(c.bias_initializer, Initializer::Zeros);
        assert_eq!(c.seed, DEFAULT_SEED);
    }

    #[test]
    fn init_draws_what_dense_new_always_drew() {
        // The bits of Dense::<F32>::new(3, 2) and of seed 42 before DenseConfig existed.
        let bits = |d: &Dense<F32>| {
            d.kernel()
                .as_slice()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>()
        };
        let old_default = [
            1055557378, 3180914757, 1054827224, 3212226453, 1062510987, 1037975158,
        ];
        let old_42 = [
            1053559323, 1065126791, 3189939562, 1049550183, 3203212366, 3208926123,
        ];
        assert_eq!(bits(&Dense::new(3, 2)), old_default);
        assert_eq!(bits(&DenseConfig::new(2).init(3).unwrap()), old_default);
        assert_eq!(bits(&DenseConfig::new(2).seed(42).init(3).unwrap()), old_42);
        // The mixed policy stores the same f32 values.
        let mixed = DenseConfig::new(2).seed(42).init::<MixedBf16>(3).unwrap();
        assert_eq!(
            mixed
                .kernel()
                .as_slice()
                .iter()
                .map(|x| x.to_bits())
                .collect::<Vec<_>>(),
            old_42
        );
    }

    #[test]
    fn init_applies_every_argument() {
        let c = DenseConfig::new(4)
            .activation(Activation::Tanh)
            .kernel_initializer(Initializer::Ones)
            .bias_initializer(Initializer::HeUniform)
            .seed(5);
        let d = c.init::<F32>(3).unwrap();
        assert_eq!(d.activation(), Activation::Tanh);
        assert!(d.kernel().as_slice().iter().all(|&w| w == 1.0));
        let b = d.bias().unwrap().as_slice();
        let limit = (6.0f32 / 4.0).sqrt(); // fan_in of a [4] bias is 4
        assert!(b.iter().all(|x| x.abs() <= limit) && b.iter().any(|&x| x != 0.0));
        // The bias has its own stream: the kernel does not depend on the bias initialiser.
        let k = |c: DenseConfig| c.init::<F32>(3).unwrap().kernel().clone();
        let glorot = c.kernel_initializer(Initializer::GlorotUniform);
        assert_eq!(k(glorot), k(glorot.bias_initializer(Initializer::Zeros)));
        assert!(c.use_bias(false).init::<F32>(3).unwrap().bias().is_none());
    }

    #[test]
    fn init_rejects_zero_sizes_and_huge_kernels() {
        let err = DenseConfig::new(0).init::<F32>(4).unwrap_err();
        assert_eq!(err.to_string(), "invalid units: 0 (at least 1)");
        let err = DenseConfig::new(4).init::<F32>(0).unwrap_err();
        assert_eq!(err.to_string(), "invalid input_dim: 0 (at least 1)");
        let err = DenseConfig::new(1 << 20).init::<F32>(1 << 20).unwrap_err();
        assert!(
            err.to_string()
                .contains("dense kernel [1048576, 1048576] of float32"),
            "{err}"
        );
    }
}
