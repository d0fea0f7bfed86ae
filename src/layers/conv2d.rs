//! [`Conv2D`]: Keras's `Conv2D` (channels last) with its policy as a type parameter, built from
//! a [`Conv2DConfig`]. The input's windows become a matrix (`layers/ops/im2col.rs`), which runs
//! on the same packed products and fused bias + activation + rounding pass as `Dense`; its
//! training side is in `conv2d/train.rs`.

use std::marker::PhantomData;

use crate::dtype::cast_to_vec;
use crate::error::Result;
use crate::kernels::gemm::BLOCK_PITCH;
use crate::kernels::{gemm_packed, MatRef};
use crate::layers::ops::fused::{bias_activation_block, bias_activation_round};
use crate::layers::ops::im2col::{block_rows, im2col, with_infer_cols};
use crate::layers::ops::saved::{Saved, SavedBytes};
use crate::layers::ops::window::{Padding, Window2d};
use crate::layers::ops::workspace::{with_infer_acc, AccOf, Scratch, Workspace};
use crate::layers::Activation;
use crate::param::Param;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::{alloc, Tensor};
use crate::Module;

mod config;
mod implicit;
#[cfg(test)]
mod tests;
mod train;

pub use config::Conv2DConfig;

/// A 2-D convolution over NHWC inputs: `y = activation(conv(x, W) + b)`.
///
/// - `kernel` `W`: Keras's shape `[kh, kw, in_channels, filters]` (row-major, the same memory as
///   the `[kh·kw·in_channels, filters]` matrix the product uses), in `P::Variable`, Glorot
///   uniform with Keras's fans (`fan_in = kh·kw·in`, `fan_out = kh·kw·filters`).
/// - `bias` `b`: `[filters]`, zeros, optional.
/// - Input `[batch, height, width, in_channels]`, output `[batch, out_h, out_w, filters]` with
///   Keras's sizes for `padding` `"valid"` / `"same"`, `strides` and `dilation_rate` (see
///   [`Padding`]).
/// - Forward: the input's windows are copied (in `P::Compute`, no rounding) into the rows of a
///   matrix, multiplied by the kernel packed once for the selected matrix kernel (AMX tiles for
///   bf16) and cached until the kernel changes, exactly as `Dense`'s; products, bias and
///   activation are summed in f32 (f64 for `F64`) and rounded once to `P::Compute`. For bf16
///   on the AMX tiles with 32·k input channels the tiles read a zero-padded copy of the input
///   instead of the matrix (the same values, the same bits), and for strides of 1 so does `dx`.
/// - Backward: `dW = colsᵀ·dz`, `db = Σ dz` in f32, stored in `P::Variable`; `dx` gathers
///   `dz·Wᵀ` (the transposed packed kernel, also cached) back onto the input in f32 and rounds
///   once. The training pass keeps the window matrix (and `y` for a non-linear activation).
///   Where the implicit product ran, the training pass keeps the input instead and `dW` is
///   summed on the tiles from the input and `dz` (16·k channels) without a window matrix.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::{Conv2D, Conv2DConfig, Padding};
/// let conv: Conv2D<MixedBf16> = Conv2DConfig::new(8, (3, 3))
///     .padding(Padding::Same)
///     .strides((2, 2))
///     .activation(Activation::Relu)
///     .init(3)?; // 3 input channels
/// assert_eq!(conv.kernel().shape(), &[3, 3, 3, 8]);
/// let y = conv.call(&Tensor::<f32>::zeros(vec![2, 9, 9, 3])?)?;
/// assert_eq!(y.shape(), &[2, 5, 5, 8]); // ceil(9 / 2) = 5
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Conv2D<P: Policy = DefaultPolicy> {
    #[module(param)]
    kernel: Param<P>,
    #[module(param)]
    bias: Option<Param<P>>,
    #[module(skip)]
    args: ConvArgs,
    #[module(reset)]
    saved: Saved<ConvSaved<P::Compute>>,
    #[module(reset)]
    scratch: Scratch<P>,
    /// The window matrix of training passes, reused between steps.
    #[module(reset)]
    cols: Workspace<P::Compute>,
    #[module(reset)]
    _policy: PhantomData<P>,
}

/// The arguments that are not variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ConvArgs {
    strides: (usize, usize),
    padding: Padding,
    dilation_rate: (usize, usize),
    activation: Activation,
}

/// What a training pass keeps: the window matrix (or, after an implicit product, the input, from
/// which backward writes the window matrix block by block), the output when the activation's
/// derivative needs it, the window geometry, and `max|x|` (for the gradient's finiteness bound).
#[derive(Debug, Clone)]
struct ConvSaved<T> {
    cols: Vec<T>,
    input: Option<Vec<T>>,
    y: Option<Vec<T>>,
    window: Window2d,
    max_abs_x: f64,
}

impl<T: crate::dtype::Element> SavedBytes for ConvSaved<T> {
    fn saved_bytes(&self) -> usize {
        let input = self.input.as_ref().map_or(0, Vec::len);
        (self.cols.len() + input + self.y.as_ref().map_or(0, Vec::len)) * T::DTYPE.size_of()
    }
}

impl<P: Policy> PartialEq for Conv2D<P> {
    /// Equal variables and arguments; saved activations and gradients are transient.
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel && self.bias == other.bias && self.args == other.args
    }
}

impl<P: Policy> Conv2D<P> {
    /// A layer from its checked variables and arguments.
    fn from_params(kernel: Param<P>, bias: Option<Param<P>>, args: ConvArgs) -> Self {
        Conv2D {
            kernel,
            bias,
            args,
            saved: Saved::default(),
            scratch: Scratch::default(),
            cols: Workspace::default(),
            _policy: PhantomData,
        }
    }

    /// Output channels.
    pub fn filters(&self) -> usize {
        self.kernel.shape()[3]
    }

    /// Input channels.
    pub fn input_channels(&self) -> usize {
        self.kernel.shape()[2]
    }

    /// `(kh, kw)`.
    pub fn kernel_size(&self) -> (usize, usize) {
        (self.kernel.shape()[0], self.kernel.shape()[1])
    }

    /// `(sh, sw)`.
    pub fn strides(&self) -> (usize, usize) {
        self.args.strides
    }

    /// `"valid"` or `"same"`.
    pub fn padding(&self) -> Padding {
        self.args.padding
    }

    /// `(dh, dw)`.
    pub fn dilation_rate(&self) -> (usize, usize) {
        self.args.dilation_rate
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.args.activation
    }

    /// The kernel, `[kh, kw, in_channels, filters]`, in the variable type.
    pub fn kernel(&self) -> &Tensor<P::Variable> {
        self.kernel.value()
    }

    /// The bias, `[filters]`, in the variable type.
    pub fn bias(&self) -> Option<&Tensor<P::Variable>> {
        self.bias.as_ref().map(Param::value)
    }

    /// The kernel variable (value, gradient, cached compute and packed copies).
    pub fn kernel_param(&self) -> &Param<P> {
        &self.kernel
    }

    /// The bias variable.
    pub fn bias_param(&self) -> Option<&Param<P>> {
        self.bias.as_ref()
    }

    /// Keras's `compute_output_shape`: `[batch, out_h, out_w, filters]` for an input of
    /// `input_shape`.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward) for an input of that shape.
    pub fn compute_output_shape(&self, input_shape: &[usize]) -> Result<Vec<usize>> {
        Ok(self.window(input_shape)?.output_shape(self.filters()))
    }

    /// `activation(conv(x, W) + b)` for `x` `[batch, height, width, in_channels]` in the compute
    /// type. Strict: another element type does not compile (use [`call`](Self::call) to cast).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when `x` is not 4-D or has another
    /// channel count; [`Error::InvalidArgument`](crate::Error::InvalidArgument) when under
    /// `padding="valid"` the (dilated) kernel is larger than the input, naming both sizes;
    /// [`Error::TooLarge`](crate::Error::TooLarge) when the window matrix would not fit.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        self.forward_shaped(x.as_slice(), x.shape())
    }

    /// [`forward`](Self::forward) of the elements `x` read as a tensor of `shape`, so a caller
    /// holding `[batch, h·w·c]` rows runs them as `[batch, h, w, c]` images without a copy.
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward); [`Error::LengthMismatch`](crate::Error::LengthMismatch)
    /// when `x` does not hold `shape`'s element count.
    pub(crate) fn forward_shaped(
        &self,
        x: &[P::Compute],
        shape: &[usize],
    ) -> Result<Tensor<P::Compute>> {
        let g = self.window(shape)?;
        let expected = shape.iter().product::<usize>();
        if x.len() != expected {
            return Err(crate::Error::LengthMismatch {
                shape: shape.to_vec(),
                expected,
                found: x.len(),
            });
        }
        let y = with_infer_cols(|cols| {
            with_infer_acc::<P::Compute, _>(|acc| self.product(x, &g, cols, false, acc).0)
        });
        Ok(Tensor::from_parts(g.output_shape(self.filters()), y))
    }

    /// Keras's `layer(x)`: casts `x` (any float type) to the compute type, then
    /// [`forward`](Self::forward). A cast to the same type is free (no copy).
    ///
    /// # Errors
    ///
    /// As [`forward`](Self::forward).
    pub fn call<T: crate::dtype::Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        self.window(x.shape())?;
        self.forward(&x.cast_ref::<P::Compute>())
    }

    /// The window over an input of `shape`, checked, with the window matrix's size checked
    /// against the allocation limit.
    fn window(&self, shape: &[usize]) -> Result<Window2d> {
        let (kh, kw) = self.kernel_size();
        let ConvArgs {
            strides: (sh, sw),
            dilation_rate: (dh, dw),
            padding,
            ..
        } = self.args;
        let args = [(kh, sh, dh), (kw, sw, dw)];
        let g = Window2d::new(
            "conv2d input",
            shape,
            Some(self.input_channels()),
            args,
            padding,
        )?;
        let what = || format!("conv2d window matrix for input {shape:?}");
        alloc::check_shape::<P::Compute>(what, &[g.output_rows(), g.taps()])?;
        Ok(g)
    }

    /// `activation(cols·W + b)`, `rows × filters`, in the compute type, and whether it ran
    /// implicitly. Where the kernels have an implicit product (`conv2d/implicit.rs`) it reads
    /// the input padded into `cols` and no window matrix exists. Otherwise the product runs
    /// block by block of output rows ([`block_rows`]: about 4 MiB of windows): [`im2col`]
    /// writes a block's windows (into its place in `cols` when `keep_cols`, as the training pass
    /// keeps the whole matrix for backward; otherwise into one reused block) and the packed
    /// kernel (cached until it changes) multiplies them while they are in cache, into the
    /// block's rows of `acc`. The shared fused pass then adds the bias, applies the activation
    /// and rounds once.
    fn product(
        &self,
        x: &[P::Compute],
        g: &Window2d,
        cols: &mut Vec<P::Compute>,
        keep_cols: bool,
        acc: &mut Vec<AccOf<P>>,
    ) -> (Vec<P::Compute>, bool) {
        let (rows, taps, n) = (g.output_rows(), g.taps(), self.filters());
        let w = self.kernel.packed(false);
        let bias = self
            .bias
            .as_ref()
            .map(|b| cast_to_vec::<P::Compute, AccOf<P>>(b.compute()));
        let (b, activation) = (bias.as_deref(), self.args.activation);
        let epilogue = |col: usize, block: &mut [AccOf<P>], width: usize| {
            bias_activation_block(block, (col, width, BLOCK_PITCH), b, activation)
        };
        if let Some(y) = implicit::forward(x, g, w, cols, &epilogue) {
            return (y, true);
        }
        {
            let block = block_rows::<P::Compute>(taps);
            acc.resize(rows * n, AccOf::<P>::default());
            let held = if keep_cols { rows } else { block.min(rows) };
            cols.resize(held * taps, P::Compute::default());
            for start in (0..rows).step_by(block) {
                let end = (start + block).min(rows);
                let at = if keep_cols { start * taps } else { 0 };
                let block_cols = &mut cols[at..at + (end - start) * taps];
                im2col(x, g, start..end, block_cols);
                let a = MatRef::row_major(&*block_cols, end - start, taps);
                gemm_packed(a, w, &mut acc[start * n..end * n], false);
            }
        }
        (bias_activation_round(acc, n, b, activation), false)
    }
}
