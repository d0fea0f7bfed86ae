//! [`Cnn`]: the typed model a [`CnnSpec`](super::CnnSpec) builds, `Conv2D(relu) → MaxPooling2D →
//! Flatten → Dense` over rows of flattened NHWC images.

use crate::error::{Error, Result};
use crate::layers::{Conv2D, Dense, Flatten, Layer, MaxPooling2D};
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;
use crate::Module;

/// A small convolutional classifier: `Conv2D` (its ReLU fused into the one rounding of the
/// convolution), `MaxPooling2D`, `Flatten`, and a linear `Dense` head giving logits (train it
/// with sparse categorical cross-entropy from logits, [`fit`](crate::train::fit)'s default for
/// class targets).
///
/// Its input is what a [`Dataset`](crate::data::Dataset) holds, one flattened image per row,
/// `[batch, height·width·channels]` in the compute type; each batch is read as
/// `[batch, height, width, channels]` (NHWC, row-major, so the same memory) without a copy.
/// The variables are `conv.kernel` `[kh, kw, channels, filters]`, `conv.bias`, `dense.kernel`
/// `[flat, outputs]` and `dense.bias`, all in `P::Variable`; every layer computes in
/// `P::Compute` (products in f32, rounded once).
///
/// ```
/// use mixprec::models::CnnSpec;
/// use mixprec::prelude::*;
/// let model = CnnSpec::new([8, 8, 1], 10).build::<MixedBf16>(0)?;
/// assert_eq!(model.param_names(), ["conv.kernel", "conv.bias", "dense.kernel", "dense.bias"]);
/// let y = model.infer(&Tensor::zeros(vec![3, 64])?)?;
/// assert_eq!(y.shape(), &[3, 10]);
/// assert_eq!(model.output_dim(64), Some(10));
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
#[module(no_layer)]
pub struct Cnn<P: Policy = DefaultPolicy> {
    conv: Conv2D<P>,
    pool: MaxPooling2D<P>,
    flatten: Flatten<P>,
    dense: Dense<P>,
    /// `[height, width, channels]` of one image.
    #[module(skip)]
    image: [usize; 3],
}

impl<P: Policy> Cnn<P> {
    /// The model from its layers; `image` is `[height, width, channels]`.
    pub(super) fn from_layers(
        conv: Conv2D<P>,
        pool: MaxPooling2D<P>,
        dense: Dense<P>,
        image: [usize; 3],
    ) -> Self {
        Cnn {
            conv,
            pool,
            flatten: Flatten::new(),
            dense,
            image,
        }
    }

    /// The convolution.
    pub fn conv(&self) -> &Conv2D<P> {
        &self.conv
    }

    /// The output layer.
    pub fn dense(&self) -> &Dense<P> {
        &self.dense
    }

    /// `[height, width, channels]` of one input image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image
    }

    fn features(&self) -> usize {
        self.image.iter().product()
    }

    /// `[batch, height, width, channels]` for an input of `shape` `[batch, features]`.
    fn nhwc(&self, shape: &[usize]) -> Result<Vec<usize>> {
        nhwc(self.image, shape)
    }
}

/// `[batch, height, width, channels]` for an input of `shape` `[batch, h·w·c]` of `image`
/// `[h, w, c]` images, one per row.
pub(super) fn nhwc(image: [usize; 3], shape: &[usize]) -> Result<Vec<usize>> {
    let [h, w, c] = image;
    let features = h * w * c;
    match *shape {
        [batch, f] if f == features => Ok(vec![batch, h, w, c]),
        _ => Err(Error::shape(
            "cnn input",
            format!("[batch, {features}] ({h}x{w}x{c} images, one per row)"),
            shape,
        )),
    }
}

impl<P: Policy> Layer for Cnn<P> {
    type Input = P::Compute;
    type Output = P::Compute;

    fn infer(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let shape = self.nhwc(x.shape())?;
        let h = self.conv.forward_shaped(x.as_slice(), &shape)?;
        let h = self.pool.forward(&h)?;
        let h = self.flatten.forward_owned(h)?;
        self.dense.forward(&h)
    }

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let shape = self.nhwc(x.shape())?;
        let x = Tensor::from_parts(shape, x.into_vec());
        let h = self.conv.train_forward(x)?;
        let h = self.pool.train_forward(h)?;
        let h = self.flatten.train_forward(h)?;
        self.dense.train_forward(h)
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let asked = "asked for the input gradient";
        let d = self.dense.backward(dy, true)?.expect(asked);
        let d = self.flatten.backward(d, true)?.expect(asked);
        let d = self.pool.backward(d, true)?.expect(asked);
        let Some(dx) = self.conv.backward(d, need_input_grad)? else {
            return Ok(None);
        };
        let rows = dx.shape()[0];
        Ok(Some(Tensor::from_parts(
            vec![rows, self.features()],
            dx.into_vec(),
        )))
    }

    fn saved_bytes(&self) -> usize {
        self.conv.saved_bytes()
            + self.pool.saved_bytes()
            + self.flatten.saved_bytes()
            + self.dense.saved_bytes()
    }

    fn clear_saved(&mut self) {
        self.conv.clear_saved();
        self.pool.clear_saved();
        self.flatten.clear_saved();
        self.dense.clear_saved();
    }

    fn output_dim(&self, input: usize) -> Option<usize> {
        (input == self.features()).then(|| self.dense.units())
    }
}
