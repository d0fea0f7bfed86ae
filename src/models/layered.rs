//! [`LayeredMlp`]: a stack of [`Dense`] layers, each in its own policy chosen at run time (what
//! [`MlpSpec::build_layered`](super::MlpSpec::build_layered) builds from a
//! [`DTypePolicyMap`](crate::DTypePolicyMap)).
//!
//! Between layers it carries a tensor of whichever type the producer emitted, and each layer
//! casts it to its own compute type (Keras's consumer-casts rule; a move, not a copy, when the
//! types are equal). Backward, each layer's input gradient comes out in its compute type and the
//! layer before casts it to its own, which is the producer's type, as in a typed tuple: the
//! passes are bit for bit those of `(Dense<A>, Dense<B>, …)` with the same weights.

use typenum::B1;

use super::carried::{each_layer, Carried};
use crate::error::Result;
use crate::layers::{AnyDense, ByPolicy, Dense, Layer};
use crate::module::{join_name, Module, ParamVisitor, ParamVisitorMut};
use crate::policy::Policy;
use crate::tensor::Tensor;
use crate::DTypePolicy;

/// Layers of [`Dense`], each in a policy chosen at run time, as one [`Layer`] from f32 to f32.
///
/// The variables are named as in a `Vec<Dense<P>>` (`0.kernel`, `0.bias`, `1.kernel`, …) and
/// each is visited in its own layer's policy, so optimizers keep per-variable state in the
/// variable's accumulator type and checkpoints store each variable in its own dtype.
///
/// The input is f32 (the data), cast by the first layer to its compute type; the last layer's
/// output is converted to f32 (exact for 16-bit and f32 compute; an f64 output layer rounds).
///
/// Loss scaling: the type says [`B1`] (a layer *may* compute in float16, so a plain optimizer is
/// refused at compile time) and [`Module::needs_loss_scale`] says whether one *does*, which is
/// what [`AutoOptimizer::for_model`](crate::optimizers::AutoOptimizer::for_model) reads.
///
/// ```
/// use mixprec::models::{LayeredMlp, MlpSpec};
/// use mixprec::prelude::*;
/// use mixprec::DTypePolicyMap;
/// let mut map = DTypePolicyMap::with_default(DTypePolicy::MixedBFloat16);
/// map.insert("2", "float32")?; // the output layer of a 64-128-128-10 MLP
/// let model: LayeredMlp = MlpSpec::new(64, vec![128, 128], 10).build_layered(&map, 0)?;
/// assert_eq!(
///     model.policies(),
///     [DTypePolicy::MixedBFloat16, DTypePolicy::MixedBFloat16, DTypePolicy::Float32]
/// );
/// assert_eq!(model.param_names()[4], "2.kernel");
/// assert!(!model.needs_loss_scale());
/// let y = model.infer(&Tensor::zeros(vec![3, 64])?)?;
/// assert_eq!(y.shape(), &[3, 10]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct LayeredMlp {
    layers: Vec<AnyDense>,
}

impl LayeredMlp {
    /// The stack of `layers`, run in order (layer `i`'s variables are named `i.kernel`, `i.bias`).
    pub fn from_layers(layers: Vec<AnyDense>) -> Self {
        LayeredMlp { layers }
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[AnyDense] {
        &self.layers
    }

    /// Each layer's policy, in order.
    pub fn policies(&self) -> Vec<DTypePolicy> {
        self.layers.iter().map(ByPolicy::policy).collect()
    }
}

impl Module for LayeredMlp {
    type NeedsLossScale = B1;
    type At<Q: Policy> = Vec<Dense<Q>>;

    fn visit_params<V: ParamVisitor>(&self, prefix: &str, v: &mut V) {
        for (i, l) in self.layers.iter().enumerate() {
            let path = join_name(prefix, &i.to_string());
            each_layer!(l, d => d.visit_params(&path, v));
        }
    }

    fn visit_params_mut<V: ParamVisitorMut>(&mut self, v: &mut V) {
        for l in &mut self.layers {
            each_layer!(l, d => d.visit_params_mut(v));
        }
    }

    /// Every layer converted to `Q`: the uniform `Vec<Dense<Q>>` with the same variable names.
    fn to_policy<Q: Policy>(&self) -> Vec<Dense<Q>> {
        let one = |l: &AnyDense| each_layer!(l, d => d.to_policy::<Q>());
        self.layers.iter().map(one).collect()
    }

    /// Whether some layer computes in float16 (`float16` or `mixed_float16`).
    fn needs_loss_scale(&self) -> bool {
        self.layers
            .iter()
            .any(|l| each_layer!(l, d => d.needs_loss_scale()))
    }
}

impl Layer for LayeredMlp {
    type Input = f32;
    type Output = f32;

    fn infer(&self, x: &Tensor<f32>) -> Result<Tensor<f32>> {
        let Some((first, rest)) = self.layers.split_first() else {
            return Ok(x.clone());
        };
        let h = each_layer!(first, d => Carried::new(d.infer(&x.cast_ref())?));
        let h = rest.iter().try_fold(h, |h, l| {
            Ok::<_, crate::Error>(each_layer!(l, d => Carried::new(d.infer(&h.into_type())?)))
        })?;
        Ok(h.into_type())
    }

    fn train_forward(&mut self, x: Tensor<f32>) -> Result<Tensor<f32>> {
        let mut h = Carried::F32(x);
        for l in &mut self.layers {
            h = each_layer!(l, d => Carried::new(d.train_forward(h.into_type())?));
        }
        Ok(h.into_type())
    }

    fn backward(&mut self, dy: Tensor<f32>, need_input_grad: bool) -> Result<Option<Tensor<f32>>> {
        let mut grad = Carried::F32(dy);
        for (i, l) in self.layers.iter_mut().enumerate().rev() {
            let need = i > 0 || need_input_grad;
            let dx = each_layer!(l, d => d.backward(grad.into_type(), need)?.map(Carried::new));
            match dx {
                Some(dx) => grad = dx,
                None => return Ok(None),
            }
        }
        // The first layer's input was the f32 data: its gradient goes back in f32.
        Ok(need_input_grad.then(|| grad.into_type()))
    }

    fn saved_bytes(&self) -> usize {
        let one = |l: &AnyDense| each_layer!(l, d => d.saved_bytes());
        self.layers.iter().map(one).sum()
    }

    fn clear_saved(&mut self) {
        for l in &mut self.layers {
            each_layer!(l, d => d.clear_saved());
        }
    }

    fn output_dim(&self, input: usize) -> Option<usize> {
        let one = |d: usize, l: &AnyDense| each_layer!(l, x => x.output_dim(d));
        self.layers.iter().try_fold(input, one)
    }
}
