//! [`SoftmaxConfig`]: Keras's `Softmax(...)` arguments.

use super::Softmax;
use crate::error::{Error, Result};
use crate::policy::Policy;

/// The arguments of Keras's `Softmax`: `axis` (default `-1`). Only the last axis is supported:
/// [`init`](Self::init) refuses any other, since a mixprec layer does not know its input's rank
/// until it is called.
///
/// With the `serde` feature it reads and writes Keras's `get_config()` keys: `{"axis": -1}`;
/// `name`, `dtype` and `trainable` are accepted and ignored, any other key is an error.
///
/// ```
/// use mixprec::layers::{Softmax, SoftmaxConfig};
/// use mixprec::policy::MixedBf16;
/// let softmax: Softmax<MixedBf16> = SoftmaxConfig::new().init()?;
/// assert_eq!(softmax, Softmax::new());
/// assert!(SoftmaxConfig { axis: 1 }.init::<MixedBf16>().is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "wire::KerasSoftmax"))]
pub struct SoftmaxConfig {
    /// The axis normalised over; only `-1` (the last) is supported.
    pub axis: i64,
}

impl Default for SoftmaxConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftmaxConfig {
    /// Keras's default: `axis = -1`.
    pub const fn new() -> Self {
        SoftmaxConfig { axis: -1 }
    }

    /// The layer.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for an axis other than `-1`.
    pub fn init<P: Policy>(self) -> Result<Softmax<P>> {
        if self.axis != -1 {
            return Err(Error::InvalidArgument {
                what: "softmax axis",
                found: self.axis.to_string(),
                expected: "-1: mixprec's Softmax normalises over the last axis only",
            });
        }
        Ok(Softmax::new())
    }
}

#[cfg(feature = "serde")]
mod wire {
    use crate::layers::ops::wire::keras_config;

    keras_config! {
        /// Every key a Keras 3 `Softmax` config holds (`trainable` is ignored: no variables).
        pub(super) struct KerasSoftmax {
            #[serde(default = "last")]
            axis: i64,
        }
    }

    fn last() -> i64 {
        -1
    }

    impl TryFrom<KerasSoftmax> for super::SoftmaxConfig {
        type Error = String;

        fn try_from(k: KerasSoftmax) -> Result<Self, String> {
            let c = super::SoftmaxConfig { axis: k.axis };
            c.init::<crate::policy::F32>().map_err(|e| e.to_string())?;
            Ok(c)
        }
    }
}
