//! The machinery every layer shares, written once for [`Dense`](super::Dense) and reused by the
//! layers that come after it (a convolution's products, a normalisation's f32 statistics):
//!
//! - [`workspace`]: the accumulator buffers (f32, f64 for `F64`) that product kernels sum into,
//!   kept between training steps ([`Scratch`](workspace::Scratch)) or per thread for inference
//!   ([`with_infer_acc`](workspace::with_infer_acc)), and the one rounding of an accumulator to
//!   the compute type ([`round_acc`](workspace::round_acc)).
//! - [`fused`]: the one-pass element-wise work around a product: bias, activation and rounding
//!   after it ([`gemm_bias_activation`](fused::gemm_bias_activation)); `dz`, `max|dz|` and the
//!   bias gradient's column sums over fixed row blocks before the backward products
//!   ([`activation_grad`](fused::activation_grad)); the bound that proves such sums finite.
//! - [`saved`]: what a training pass keeps for its backward pass, with byte accounting.
//! - [`rows`]: the row-wise driver of softmax and normalisation (widen a row, work on it in
//!   the accumulator type inside a wide loop, round once, in parallel over fixed row blocks).
//! - [`math`]: a vectorisable f32 `exp`, `erfc`, and lane-split row reductions.
//! - [`stateless`]: the [`Module`](crate::Module) impl of a layer without variables.
//! - [`window`]: the geometry of a sliding window over NHWC tensors (Keras's `padding`, output
//!   sizes, input checks), shared by the convolution and the pooling layers.
//! - [`im2col`]: a convolution's input as the matrix of its windows and the gradient's way back
//!   ([`im2col`](im2col::im2col), [`col2im`](im2col::col2im)), so a convolution runs on the
//!   same products and fused passes as `Dense`.
//! - [`wire`]: what every reader of a Keras `get_config()` shares (the common keys, the
//!   refused features, `(h, w)` sizes, `data_format`).

pub(crate) mod fused;
pub(crate) mod im2col;
pub(crate) mod math;
pub(crate) mod rows;
pub(crate) mod saved;
pub(crate) mod stateless;
pub(crate) mod window;
#[cfg(feature = "serde")]
pub(crate) mod wire;
pub(crate) mod workspace;
