//! The pooling layers, Keras's names and arguments, channels last: [`MaxPooling2D`] and
//! [`AveragePooling2D`] (built from a [`Pool2DConfig`]) over windows of the height and width
//! (the geometry of `layers/ops/window.rs`, shared with `Conv2D`), and
//! [`GlobalAveragePooling2D`] over the whole image. They hold no variables; sums and means
//! are formed in the accumulator type (f32; f64 for `F64`) and rounded once.

use crate::error::Result;
use crate::layers::ops::window::{positive_pair, Padding, Window2d};
use crate::policy::Policy;

mod average;
mod global;
mod max;
#[cfg(test)]
mod tests;
#[cfg(feature = "serde")]
pub(crate) mod wire;

pub use average::AveragePooling2D;
pub use global::{GlobalAveragePooling2D, GlobalPooling2DConfig};
pub use max::MaxPooling2D;

/// `Module` (through `ops::stateless::impl_stateless_module!`) and `PartialEq` for a layer without variables whose fields are `args` (its configuration, `Copy`),
/// `saved` (a `Saved` slot) and `_policy`: nothing to visit, and `to_policy` keeps the
/// arguments. It needs loss scaling when its policy does (its gradients are in the compute
/// type).
macro_rules! stateless_module {
    ($ty:ident) => {
        crate::layers::ops::stateless::impl_stateless_module!($ty);

        impl<P: Policy> $ty<P> {
            /// The same layer in policy `Q` (its arguments; nothing saved).
            fn to_policy_of<Q: Policy>(&self) -> $ty<Q> {
                $ty {
                    args: self.args,
                    saved: Default::default(),
                    _policy: std::marker::PhantomData,
                }
            }
        }

        impl<P: Policy> PartialEq for $ty<P> {
            /// Equal arguments (what is saved for backward is transient).
            fn eq(&self, other: &Self) -> bool {
                self.args == other.args
            }
        }
    };
}
pub(crate) use stateless_module;

/// What `MaxPooling2D` and `AveragePooling2D` share besides their arithmetic: `Default`,
/// `new` (Keras's defaults), `from_config`, `config`, `compute_output_shape` and `call`, with
/// `INPUT` naming the layer's input in errors.
macro_rules! pool2d_common {
    ($ty:ident, $input:literal) => {
        impl<P: Policy> Default for $ty<P> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<P: Policy> $ty<P> {
            /// What errors call the layer's input.
            const INPUT: &'static str = $input;

            /// Keras's defaults: `Pool2DConfig::new()` (2×2 windows, strides 2, `"valid"`).
            pub fn new() -> Self {
                Self::from_config(Pool2DConfig::new())
            }

            /// From a checked config.
            pub(super) fn from_config(args: Pool2DConfig) -> Self {
                $ty {
                    args,
                    saved: Saved::default(),
                    _policy: PhantomData,
                }
            }

            /// The arguments.
            pub fn config(&self) -> Pool2DConfig {
                self.args
            }

            /// Keras's `compute_output_shape`.
            ///
            /// # Errors
            ///
            /// As [`forward`](Self::forward).
            pub fn compute_output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
                let g = self.args.window(Self::INPUT, input_shape)?;
                Ok(g.output_shape(g.channels))
            }

            /// Keras's `layer(x)`: casts `x` to the compute type (free when equal), then
            /// [`forward`](Self::forward).
            ///
            /// # Errors
            ///
            /// As [`forward`](Self::forward).
            pub fn call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
                self.forward(&x.cast_ref::<P::Compute>())
            }
        }
    };
}
pub(crate) use pool2d_common;

/// The arguments of Keras's `MaxPooling2D` and `AveragePooling2D` (channels last), with its
/// names and defaults:
///
/// | field | default |
/// | --- | --- |
/// | `pool_size` | `(2, 2)` |
/// | `strides` | `None`: the pool size |
/// | `padding` | [`Padding::Valid`] |
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::{Padding, Pool2DConfig};
/// let pool = Pool2DConfig::new().pool_size((3, 3)).strides((2, 2)).padding(Padding::Same);
/// let max = pool.max_pooling::<MixedBf16>()?;
/// let y = max.call(&Tensor::<f32>::zeros(vec![1, 7, 8, 4])?)?;
/// assert_eq!(y.shape(), &[1, 4, 4, 4]);
/// assert!(Pool2DConfig::new().pool_size((0, 2)).average_pooling::<F32>().is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
///
/// With the `serde` feature it reads and writes Keras's `get_config()` keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(try_from = "wire::KerasPool2D"))]
#[non_exhaustive]
pub struct Pool2DConfig {
    /// `(ph, pw)`, both at least 1.
    pub pool_size: (usize, usize),
    /// `(sh, sw)`, both at least 1, or `None` for `pool_size`.
    pub strides: Option<(usize, usize)>,
    /// `"valid"` or `"same"`.
    pub padding: Padding,
}

impl Default for Pool2DConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl Pool2DConfig {
    /// Keras's defaults: 2×2 windows, strides equal to the pool size, `"valid"`.
    pub const fn new() -> Self {
        Pool2DConfig {
            pool_size: (2, 2),
            strides: None,
            padding: Padding::Valid,
        }
    }

    /// Sets `pool_size`.
    pub const fn pool_size(self, pool_size: (usize, usize)) -> Self {
        Pool2DConfig { pool_size, ..self }
    }

    /// Sets `strides`.
    pub const fn strides(self, strides: (usize, usize)) -> Self {
        Pool2DConfig {
            strides: Some(strides),
            ..self
        }
    }

    /// Sets `padding`.
    pub const fn padding(self, padding: Padding) -> Self {
        Pool2DConfig { padding, ..self }
    }

    /// The strides in effect: `strides`, or `pool_size` when `None`.
    pub fn effective_strides(&self) -> (usize, usize) {
        self.strides.unwrap_or(self.pool_size)
    }

    /// Checks the arguments.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`](crate::Error::InvalidArgument) naming `pool_size` or
    /// `strides` when a component is zero.
    pub fn validate(&self) -> Result<()> {
        positive_pair("pool_size", self.pool_size)?;
        positive_pair("strides", self.effective_strides())
    }

    /// A [`MaxPooling2D`] under policy `P`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn max_pooling<P: Policy>(&self) -> Result<MaxPooling2D<P>> {
        self.validate()?;
        Ok(MaxPooling2D::from_config(*self))
    }

    /// An [`AveragePooling2D`] under policy `P`.
    ///
    /// # Errors
    ///
    /// As [`validate`](Self::validate).
    pub fn average_pooling<P: Policy>(&self) -> Result<AveragePooling2D<P>> {
        self.validate()?;
        Ok(AveragePooling2D::from_config(*self))
    }

    /// The window of `layer` over an input of `shape`.
    fn window(&self, layer: &'static str, shape: &[usize]) -> Result<Window2d> {
        let ((ph, pw), (sh, sw)) = (self.pool_size, self.effective_strides());
        Window2d::new(layer, shape, None, [(ph, sh, 1), (pw, sw, 1)], self.padding)
    }
}

pub(crate) use crate::layers::ops::saved::Geometry;

/// The input gradient of a pooling layer, one image per task: `scatter(n, dy, dx)` adds image
/// `n`'s output gradient `dy` (`out_h · out_w · channels`, widened exactly to the accumulator
/// type) into its input gradient `dx` (`height · width · channels`, zeroed, in the accumulator
/// type), which is then rounded once to `C`. Each image is summed in one fixed order.
pub(crate) fn scatter_per_image<C: crate::dtype::Element>(
    dy: &[C],
    g: &Window2d,
    scatter: impl Fn(usize, &[C::Acc], &mut [C::Acc]) + Sync,
) -> Vec<C> {
    use crate::dtype::cast_slice;
    use rayon::prelude::*;
    let in_len = g.h.input * g.w.input * g.channels;
    let out_len = g.h.output * g.w.output * g.channels;
    let mut dx = vec![C::default(); g.batch * in_len];
    if dx.is_empty() {
        return dx;
    }
    dx.par_chunks_mut(in_len).enumerate().for_each(|(n, out)| {
        let mut d = vec![C::Acc::default(); out_len];
        cast_slice(&dy[n * out_len..][..out_len], &mut d);
        let mut acc = vec![C::Acc::default(); in_len];
        scatter(n, &d, &mut acc);
        cast_slice(&acc, out);
    });
    dx
}

/// Runs `f(row, out_row)` over the output rows `(n, oy)` of a pooling window, in parallel;
/// each `out_row` holds `out_w · channels` elements.
pub(crate) fn for_each_output_row<T: Send>(
    out: &mut [T],
    g: &Window2d,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    use rayon::prelude::*;
    let row_len = g.w.output * g.channels;
    if row_len == 0 || out.is_empty() {
        return;
    }
    out.par_chunks_mut(row_len)
        .enumerate()
        .for_each(|(r, o)| f(r, o));
}
