//! [`EmbeddingConfig`]: Keras's `Embedding` arguments, and the JSON they are read from.

use super::Embedding;
use crate::error::{Error, Result};
use crate::init::{Initializer, DEFAULT_SEED};
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;

/// The arguments of Keras's `Embedding`: `input_dim` (the vocabulary size), `output_dim`,
/// `embeddings_initializer` (Keras's default `"uniform"`, `U(-0.05, 0.05)`), and mixprec's
/// `seed`. Keras's `mask_zero=True` (a mask for later layers) is not supported: a config that
/// asks for it is refused rather than silently unmasked.
///
/// ```
/// use mixprec::layers::{EmbeddingConfig, Initializer};
/// use mixprec::policy::MixedBf16;
/// let c = EmbeddingConfig::new(1000, 64);
/// assert_eq!(c.embeddings_initializer, Initializer::Uniform);
/// let emb = c.init::<MixedBf16>()?;
/// assert_eq!(emb.embeddings().shape(), &[1000, 64]);
/// assert!(EmbeddingConfig::new(0, 64).init::<MixedBf16>().is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "wire::KerasEmbedding"))]
#[non_exhaustive]
pub struct EmbeddingConfig {
    /// The vocabulary size: indices run from 0 to `input_dim - 1`.
    pub input_dim: usize,
    /// The width of each vector.
    pub output_dim: usize,
    /// How the table is drawn.
    pub embeddings_initializer: Initializer,
    /// The seed of the table's draw.
    pub seed: u64,
}

impl EmbeddingConfig {
    /// Keras's defaults for a vocabulary of `input_dim` and vectors of `output_dim`.
    pub const fn new(input_dim: usize, output_dim: usize) -> Self {
        EmbeddingConfig {
            input_dim,
            output_dim,
            embeddings_initializer: Initializer::Uniform,
            seed: DEFAULT_SEED,
        }
    }

    /// Sets `embeddings_initializer`.
    pub const fn embeddings_initializer(mut self, init: Initializer) -> Self {
        self.embeddings_initializer = init;
        self
    }

    /// Sets the seed.
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The layer, its table drawn once.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when `input_dim` or `output_dim` is 0; [`Error::TooLarge`] when
    /// the table would not fit.
    pub fn init<P: Policy>(self) -> Result<Embedding<P>> {
        let zero = |what| Error::InvalidArgument {
            what,
            found: "0".into(),
            expected: "at least 1",
        };
        if self.input_dim == 0 {
            return Err(zero("embedding input_dim"));
        }
        if self.output_dim == 0 {
            return Err(zero("embedding output_dim"));
        }
        let shape = [self.input_dim, self.output_dim];
        let what = || format!("embedding table {shape:?}");
        let v = self
            .embeddings_initializer
            .values(what, &shape, self.seed, 0)?;
        Ok(Embedding::from_param(Param::new(Tensor::from_parts(
            shape.to_vec(),
            v,
        ))))
    }
}

#[cfg(feature = "serde")]
mod wire {
    use super::EmbeddingConfig;
    use crate::init::{Initializer, DEFAULT_SEED};
    use crate::layers::ops::wire::{keras_config, KerasCommon};

    keras_config! {
        /// Every key a Keras 3 `Embedding` config holds, plus mixprec's `seed`.
        pub(super) struct KerasEmbedding {
            input_dim: usize,
            output_dim: usize,
            #[serde(default)]
            embeddings_initializer: Option<Initializer>,
            #[serde(default)]
            seed: Option<u64>,
            #[serde(default)]
            mask_zero: Option<bool>,
            #[serde(default)]
            sparse: Option<bool>,
        }
        unsupported {
            embeddings_regularizer, activity_regularizer, embeddings_constraint, lora_rank,
            lora_alpha, quantization_config,
        }
    }

    impl TryFrom<KerasEmbedding> for EmbeddingConfig {
        type Error = String;

        fn try_from(k: KerasEmbedding) -> Result<Self, String> {
            k.refuse_unsupported()?;
            if k.mask_zero == Some(true) {
                return Err("mask_zero: true is not supported (expected false)".into());
            }
            if k.sparse == Some(true) {
                return Err("sparse: true is not supported (expected false)".into());
            }
            for (what, v) in [("input_dim", k.input_dim), ("output_dim", k.output_dim)] {
                if v == 0 {
                    return Err(format!("invalid {what}: 0 (at least 1)"));
                }
            }
            let d = EmbeddingConfig::new(k.input_dim, k.output_dim);
            Ok(EmbeddingConfig {
                embeddings_initializer: k
                    .embeddings_initializer
                    .unwrap_or(d.embeddings_initializer),
                seed: k.seed.unwrap_or(DEFAULT_SEED),
                ..d
            })
        }
    }
}
