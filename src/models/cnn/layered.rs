//! [`LayeredCnn`]: the CNN of a [`CnnSpec`] with each layer in the policy a [`DTypePolicyMap`]
//! gives its path ([`CnnSpec::LAYERS`]: `conv`, `dense`), chosen at run time: a bfloat16 body
//! with a float32 head, as Keras advises for mixed precision.
//!
//! Between layers it carries a tensor of whichever type the producer emitted and each layer
//! casts it to its own compute type, as [`LayeredMlp`](crate::models::LayeredMlp) does; with one
//! policy everywhere its passes are bit for bit those of the typed [`Cnn`].

use typenum::B1;

use super::model::{nhwc, Cnn};
use super::CnnSpec;
use crate::error::{Error, Result};
use crate::layers::{
    AnyDense, ByPolicy, Conv2D, Dense, DenseFamily, FamilyBuilder, Layer, MaxPooling2D,
    PolicyFamily,
};
use crate::models::carried::{each_layer, Carried};
use crate::models::{policies_at, uniform};
use crate::module::{join_name, Module, ParamVisitor, ParamVisitorMut};
use crate::policy::Policy;
use crate::tensor::Tensor;
use crate::{DTypePolicy, DTypePolicyMap};

/// The family `P ↦ Conv2D<P>`, for [`ByPolicy`].
#[derive(Debug, Clone, Copy)]
struct ConvFamily;
impl PolicyFamily for ConvFamily {
    type At<P: Policy> = Conv2D<P>;
}

/// The family `P ↦ MaxPooling2D<P>`, for [`ByPolicy`].
#[derive(Debug, Clone, Copy)]
struct PoolFamily;
impl PolicyFamily for PoolFamily {
    type At<P: Policy> = MaxPooling2D<P>;
}

/// Builds each layer of `spec` in whichever policy it is asked for, as [`CnnSpec::build`] does.
#[derive(Clone, Copy)]
struct Build<'a> {
    spec: &'a CnnSpec,
    seed: u64,
    flat: usize,
}

impl FamilyBuilder<ConvFamily> for Build<'_> {
    type Error = Error;
    fn build<P: Policy>(self) -> Result<Conv2D<P>> {
        self.spec.conv_config(self.seed).init(self.spec.input[2])
    }
}

impl FamilyBuilder<PoolFamily> for Build<'_> {
    type Error = Error;
    fn build<P: Policy>(self) -> Result<MaxPooling2D<P>> {
        self.spec.pool_config().max_pooling()
    }
}

impl FamilyBuilder<DenseFamily> for Build<'_> {
    type Error = Error;
    fn build<P: Policy>(self) -> Result<Dense<P>> {
        self.spec.dense_config(self.seed).init(self.flat)
    }
}

impl CnnSpec {
    /// The layer paths a [`DTypePolicyMap`] key names, in order (`dense` is the output layer):
    /// the layers with variables, whose policies a checkpoint records. The `MaxPooling2D` runs
    /// in the convolution's policy (exactly what a pooling of its output in its own type gives),
    /// and `Flatten` only reshapes.
    pub const LAYERS: [&'static str; 2] = ["conv", "dense"];

    /// The policy of each of [`LAYERS`](Self::LAYERS) under `map`. As for
    /// [`MlpSpec::layer_policies`](crate::models::MlpSpec::layer_policies), a key that matches
    /// no layer is an error rather than ignored.
    ///
    /// ```
    /// use mixprec::{models::CnnSpec, DTypePolicy, DTypePolicyMap};
    /// let spec = CnnSpec::new([8, 8, 1], 10);
    /// let mut map = DTypePolicyMap::with_default(DTypePolicy::MixedBFloat16);
    /// map.insert("dense", "float32")?;
    /// assert_eq!(spec.layer_policies(&map)?[1], DTypePolicy::Float32);
    /// assert_eq!(spec.uniform_policy(&map)?, None);
    /// map.insert("head", "float32")?;
    /// let err = spec.layer_policies(&map).unwrap_err().to_string();
    /// assert!(err.contains(r#"key "head" matches no layer"#), "{err}");
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PolicyMapAmbiguous`] naming the layer when two regex keys match it;
    /// [`Error::InvalidArgument`] naming the key and the layers when a key matches none.
    pub fn layer_policies(&self, map: &DTypePolicyMap) -> Result<Vec<DTypePolicy>> {
        let paths = Self::LAYERS.map(String::from);
        let model = || format!("the cnn {} (layers conv, dense)", self.describe());
        let expected = "a layer path (conv, or dense the output layer) or a regex matching one";
        policies_at(map, &paths, model, expected)
    }

    /// The one policy every layer gets under `map`, or `None` when they differ.
    ///
    /// # Errors
    ///
    /// As [`layer_policies`](Self::layer_policies).
    pub fn uniform_policy(&self, map: &DTypePolicyMap) -> Result<Option<DTypePolicy>> {
        Ok(uniform(&self.layer_policies(map)?))
    }

    /// The model with each layer in the policy `map` gives its path, initialised from `seed`
    /// as [`build`](Self::build) does (so the variables are those of `build::<P>` for the
    /// policies' variable types).
    ///
    /// # Errors
    ///
    /// As [`layer_policies`](Self::layer_policies) and [`build`](Self::build).
    pub fn build_layered(&self, map: &DTypePolicyMap, seed: u64) -> Result<LayeredCnn> {
        let policies = self.layer_policies(map)?;
        let b = Build {
            spec: self,
            seed,
            flat: self.flat_features()?,
        };
        Ok(LayeredCnn {
            conv: ByPolicy::build(policies[0], b)?,
            pool: ByPolicy::build(policies[0], b)?,
            dense: ByPolicy::build(policies[1], b)?,
            image: self.input,
            pooled: self.pool_output()?,
        })
    }
}

/// The [`Cnn`] with each layer in a policy chosen at run time, as one [`Layer`] from f32 to
/// f32 (what [`CnnSpec::build_layered`] builds).
///
/// The variables are named as in the typed model (`conv.kernel`, `conv.bias`, `dense.kernel`,
/// `dense.bias`), each in its own layer's variable type, so optimizers keep their state in the
/// variable's accumulator type and checkpoints store each variable in its own dtype. The input
/// is the f32 data, cast by the convolution; the output layer's logits are widened to f32.
///
/// ```
/// use mixprec::{models::CnnSpec, prelude::*, DTypePolicyMap};
/// let mut map = DTypePolicyMap::with_default(DTypePolicy::MixedBFloat16);
/// map.insert("dense", "float32")?;
/// let model = CnnSpec::new([8, 8, 1], 10).build_layered(&map, 0)?;
/// assert_eq!(
///     model.policies(),
///     [DTypePolicy::MixedBFloat16, DTypePolicy::Float32]
/// );
/// assert_eq!(model.param_names(), ["conv.kernel", "conv.bias", "dense.kernel", "dense.bias"]);
/// assert!(!model.needs_loss_scale());
/// let y = model.infer(&Tensor::zeros(vec![3, 64])?)?;
/// assert_eq!(y.shape(), &[3, 10]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LayeredCnn {
    conv: ByPolicy<ConvFamily>,
    pool: ByPolicy<PoolFamily>,
    dense: AnyDense,
    /// `[height, width, channels]` of one input image.
    image: [usize; 3],
    /// `[height, width, filters]` after the pooling.
    pooled: [usize; 3],
}

impl LayeredCnn {
    /// The policies of `conv` (and its pooling) and `dense`, in that order.
    pub fn policies(&self) -> [DTypePolicy; 2] {
        [self.conv.policy(), self.dense.policy()]
    }

    /// `[height, width, channels]` of one input image.
    pub fn image_shape(&self) -> [usize; 3] {
        self.image
    }

    /// The input batch as images, in f32.
    fn images(&self, x: Tensor<f32>) -> Result<Carried> {
        let shape = nhwc(self.image, x.shape())?;
        Ok(Carried::new(x).reshaped(shape))
    }

    /// The pooled output of `rows` images, flattened (`flat`) or not.
    fn pooled_shape(&self, rows: usize, flat: bool) -> Vec<usize> {
        let [h, w, f] = self.pooled;
        if flat {
            vec![rows, h * w * f]
        } else {
            vec![rows, h, w, f]
        }
    }
}

/// `conv`'s inference output for the f32 rows `x` read as `shape` images, in its compute type.
fn conv_images<P: Policy>(
    conv: &Conv2D<P>,
    x: &Tensor<f32>,
    shape: &[usize],
) -> Result<Tensor<P::Compute>> {
    conv.forward_shaped(x.cast_ref::<P::Compute>().as_slice(), shape)
}

impl Module for LayeredCnn {
    type NeedsLossScale = B1;
    type At<Q: Policy> = Cnn<Q>;

    fn visit_params<V: ParamVisitor>(&self, prefix: &str, v: &mut V) {
        each_layer!(&self.conv, l => l.visit_params(&join_name(prefix, "conv"), v));
        each_layer!(&self.pool, l => l.visit_params(&join_name(prefix, "pool"), v));
        each_layer!(&self.dense, l => l.visit_params(&join_name(prefix, "dense"), v));
    }

    fn visit_params_mut<V: ParamVisitorMut>(&mut self, v: &mut V) {
        each_layer!(&mut self.conv, l => l.visit_params_mut(v));
        each_layer!(&mut self.pool, l => l.visit_params_mut(v));
        each_layer!(&mut self.dense, l => l.visit_params_mut(v));
    }

    /// Every layer converted to `Q`: the typed [`Cnn<Q>`] with the same variable names.
    fn to_policy<Q: Policy>(&self) -> Cnn<Q> {
        Cnn::from_layers(
            each_layer!(&self.conv, l => l.to_policy::<Q>()),
            each_layer!(&self.pool, l => l.to_policy::<Q>()),
            each_layer!(&self.dense, l => l.to_policy::<Q>()),
            self.image,
        )
    }

    /// Whether some layer computes in float16 (`float16` or `mixed_float16`).
    fn needs_loss_scale(&self) -> bool {
        each_layer!(&self.conv, l => l.needs_loss_scale())
            || each_layer!(&self.pool, l => l.needs_loss_scale())
            || each_layer!(&self.dense, l => l.needs_loss_scale())
    }
}

impl Layer for LayeredCnn {
    type Input = f32;
    type Output = f32;

    fn infer(&self, x: &Tensor<f32>) -> Result<Tensor<f32>> {
        let rows = x.shape().first().copied().unwrap_or(0);
        let shape = nhwc(self.image, x.shape())?;
        // The rows read as images in place (as `Cnn` does), cast only when conv's type is not f32.
        let h = each_layer!(&self.conv, l => Carried::new(conv_images(l, x, &shape)?));
        let h = each_layer!(&self.pool, l => Carried::new(l.infer(&h.into_type())?));
        let h = h.reshaped(self.pooled_shape(rows, true));
        let y = each_layer!(&self.dense, l => Carried::new(l.infer(&h.into_type())?));
        Ok(y.into_type())
    }

    fn train_forward(&mut self, x: Tensor<f32>) -> Result<Tensor<f32>> {
        let rows = x.shape().first().copied().unwrap_or(0);
        let h = self.images(x)?;
        let h = each_layer!(&mut self.conv, l => Carried::new(l.train_forward(h.into_type())?));
        let h = each_layer!(&mut self.pool, l => Carried::new(l.train_forward(h.into_type())?));
        let h = h.reshaped(self.pooled_shape(rows, true));
        let y = each_layer!(&mut self.dense, l => Carried::new(l.train_forward(h.into_type())?));
        Ok(y.into_type())
    }

    fn backward(&mut self, dy: Tensor<f32>, need_input_grad: bool) -> Result<Option<Tensor<f32>>> {
        let asked = "asked for the input gradient";
        let rows = dy.shape().first().copied().unwrap_or(0);
        let d = Carried::new(dy);
        let d = each_layer!(&mut self.dense, l => Carried::new(l.backward(d.into_type(), true)?.expect(asked)));
        let d = d.reshaped(self.pooled_shape(rows, false));
        let d = each_layer!(&mut self.pool, l => Carried::new(l.backward(d.into_type(), true)?.expect(asked)));
        let dx = each_layer!(&mut self.conv, l => l.backward(d.into_type(), need_input_grad)?.map(Carried::new));
        let features = self.image.iter().product();
        Ok(dx.map(|dx| dx.reshaped(vec![rows, features]).into_type()))
    }

    fn saved_bytes(&self) -> usize {
        each_layer!(&self.conv, l => l.saved_bytes())
            + each_layer!(&self.pool, l => l.saved_bytes())
            + each_layer!(&self.dense, l => l.saved_bytes())
    }

    fn clear_saved(&mut self) {
        each_layer!(&mut self.conv, l => l.clear_saved());
        each_layer!(&mut self.pool, l => l.clear_saved());
        each_layer!(&mut self.dense, l => l.clear_saved());
    }

    fn output_dim(&self, input: usize) -> Option<usize> {
        let features: usize = self.image.iter().product();
        (input == features).then(|| each_layer!(&self.dense, l => l.units()))
    }
}
