//! [`Conv2DConfig`]: Keras's `Conv2D(...)` arguments, and the one place a `Conv2D` kernel is
//! drawn.

use super::{Conv2D, ConvArgs};
use crate::dtype::Element;
use crate::error::{Error, Result};
use crate::init::{Initializer, DEFAULT_SEED};
use crate::layers::ops::window::{positive_pair, Axis, Padding};
use crate::layers::Activation;
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;

/// The arguments of Keras's `Conv2D` (channels last), with its names and defaults, without the
/// input channel count ([`init`](Self::init) takes it) and the policy (`init::<P>`).
///
/// | field | default |
/// | --- | --- |
/// | `filters` | (required) |
/// | `kernel_size` | (required) |
/// | `strides` | `(1, 1)` |
/// | `padding` | [`Padding::Valid`] |
/// | `dilation_rate` | `(1, 1)` |
/// | `activation` | [`Activation::Linear`] |
/// | `use_bias` | `true` |
/// | `kernel_initializer` | [`Initializer::GlorotUniform`] |
/// | `bias_initializer` | [`Initializer::Zeros`] |
/// | `seed` | [`DEFAULT_SEED`] |
///
/// Keras's `data_format` is always `"channels_last"` and `groups` 1. Strides and dilation above
/// 1 may be combined (the geometry is well defined; TensorFlow refuses it).
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::{Conv2DConfig, Padding};
/// let c = Conv2DConfig::new(16, (3, 3)).padding(Padding::Same).dilation_rate((2, 2));
/// let conv = c.seed(7).init::<F32>(4)?;
/// assert_eq!(conv.compute_output_shape(&[1, 10, 12, 4])?, vec![1, 10, 12, 16]);
/// assert!(Conv2DConfig::new(0, (3, 3)).init::<F32>(4).is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// With the `serde` feature it reads and writes Keras's `get_config()` keys (`kernel_size` etc.
/// as two-element lists, or one integer for both).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "wire::KerasConv2D"))]
#[non_exhaustive]
pub struct Conv2DConfig {
    /// Output channels (at least 1).
    pub filters: usize,
    /// `(kh, kw)`, both at least 1.
    pub kernel_size: (usize, usize),
    /// `(sh, sw)`, both at least 1.
    pub strides: (usize, usize),
    /// `"valid"` or `"same"`.
    pub padding: Padding,
    /// `(dh, dw)`, both at least 1.
    pub dilation_rate: (usize, usize),
    /// Applied before the one rounding.
    pub activation: Activation,
    /// Whether the layer has a bias.
    pub use_bias: bool,
    /// How the `[kh, kw, in, filters]` kernel is drawn.
    pub kernel_initializer: Initializer,
    /// How the `[filters]` bias is drawn.
    pub bias_initializer: Initializer,
    /// The seed of the random initialisers.
    pub seed: u64,
}

impl Conv2DConfig {
    /// `filters` outputs with a `kernel_size` window, every other argument at Keras's default.
    pub const fn new(filters: usize, kernel_size: (usize, usize)) -> Self {
        Conv2DConfig {
            filters,
            kernel_size,
            strides: (1, 1),
            padding: Padding::Valid,
            dilation_rate: (1, 1),
            activation: Activation::Linear,
            use_bias: true,
            kernel_initializer: Initializer::GlorotUniform,
            bias_initializer: Initializer::Zeros,
            seed: DEFAULT_SEED,
        }
    }

    /// Sets `strides`.
    pub const fn strides(self, strides: (usize, usize)) -> Self {
        Conv2DConfig { strides, ..self }
    }

    /// Sets `padding`.
    pub const fn padding(self, padding: Padding) -> Self {
        Conv2DConfig { padding, ..self }
    }

    /// Sets `dilation_rate`.
    pub const fn dilation_rate(self, dilation_rate: (usize, usize)) -> Self {
        Conv2DConfig {
            dilation_rate,
            ..self
        }
    }

    /// Sets `activation`.
    pub const fn activation(self, activation: Activation) -> Self {
        Conv2DConfig { activation, ..self }
    }

    /// Sets `use_bias`.
    pub const fn use_bias(self, use_bias: bool) -> Self {
        Conv2DConfig { use_bias, ..self }
    }

    /// Sets `kernel_initializer`.
    pub const fn kernel_initializer(self, kernel_initializer: Initializer) -> Self {
        Conv2DConfig {
            kernel_initializer,
            ..self
        }
    }

    /// Sets `bias_initializer`.
    pub const fn bias_initializer(self, bias_initializer: Initializer) -> Self {
        Conv2DConfig {
            bias_initializer,
            ..self
        }
    }

    /// Sets `seed`.
    pub const fn seed(self, seed: u64) -> Self {
        Conv2DConfig { seed, ..self }
    }

    /// Checks every argument that does not depend on the input.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] naming the argument: zero `filters`, a zero component of
    /// `kernel_size`, `strides` or `dilation_rate`, or a dilated kernel whose extent overflows.
    pub fn validate(&self) -> Result<()> {
        if self.filters == 0 {
            return Err(Error::InvalidArgument {
                what: "filters",
                found: "0".into(),
                expected: "at least 1",
            });
        }
        positive_pair("kernel_size", self.kernel_size)?;
        positive_pair("strides", self.strides)?;
        positive_pair("dilation_rate", self.dilation_rate)?;
        let (k, d) = (self.kernel_size, self.dilation_rate);
        if Axis::effective(k.0, d.0).is_none() || Axis::effective(k.1, d.1).is_none() {
            return Err(Error::InvalidArgument {
                what: "dilation_rate",
                found: format!("{d:?} with kernel_size {k:?}"),
                expected: "a dilated kernel extent (k - 1)·d + 1 that fits in usize",
            });
        }
        Ok(())
    }

    /// The layer for inputs with `input_channels` channels under policy `P`, its kernel drawn
    /// once.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate), and [`Error::InvalidArgument`] for zero
    /// `input_channels`; [`Error::TooLarge`] / [`Error::AllocationFailed`] when the kernel would
    /// not fit (checked before anything is allocated).
    pub fn init<P: Policy>(&self, input_channels: usize) -> Result<Conv2D<P>> {
        self.validate()?;
        if input_channels == 0 {
            return Err(Error::InvalidArgument {
                what: "input_channels",
                found: "0".into(),
                expected: "at least 1",
            });
        }
        let ((kh, kw), f) = (self.kernel_size, self.filters);
        let dtype = <P::Variable as Element>::DTYPE;
        let shape = [kh, kw, input_channels, f];
        let what = || format!("conv2d kernel {shape:?} of {dtype}");
        let kernel = self.kernel_initializer.values(what, &shape, self.seed, 0)?;
        let kernel = Param::new(Tensor::from_parts(shape.to_vec(), kernel));
        let bias = if self.use_bias {
            let what = || format!("conv2d bias [{f}] of {dtype}");
            let bias = self.bias_initializer.values(what, &[f], self.seed, 1)?;
            Some(Param::new(Tensor::from_parts(vec![f], bias)))
        } else {
            None
        };
        let args = ConvArgs {
            strides: self.strides,
            padding: self.padding,
            dilation_rate: self.dilation_rate,
            activation: self.activation,
        };
        Ok(Conv2D::from_params(kernel, bias, args))
    }
}

#[cfg(feature = "serde")]
mod wire;
