//! Ready-made architectures described by data, so a model can be chosen on a command line and
//! recorded in a checkpoint: [`MlpSpec`] builds a `Vec<Dense<P>>` for any policy, or a
//! [`LayeredMlp`] with each layer in the policy a [`DTypePolicyMap`] gives its path;
//! [`CnnSpec`] (`models/cnn.rs`) builds a typed [`Cnn`] (Conv2D, MaxPooling2D, Flatten, Dense).

mod carried;
mod cnn;
mod layered;

pub use cnn::{Cnn, CnnSpec, LayeredCnn};
pub use layered::LayeredMlp;

use crate::error::{Error, Result};
use crate::layers::{
    Activation, AnyDense, ByPolicy, Dense, DenseConfig, DenseFamily, FamilyBuilder,
};
use crate::policy::Policy;
use crate::{DTypePolicy, DTypePolicyMap};

/// A multi-layer perceptron: `inputs → hidden… → outputs`, the hidden layers with `activation`,
/// the output layer linear (logits).
///
/// ```
/// use mixprec::{models::MlpSpec, policy::MixedBf16, prelude::*};
/// let spec = MlpSpec::new(64, vec![128, 128], 10);
/// let model = spec.build::<MixedBf16>(0)?;
/// assert_eq!(model.param_count(), 64 * 128 + 128 + 128 * 128 + 128 + 128 * 10 + 10);
/// assert_eq!(MlpSpec::from_json(&spec.to_json())?, spec);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlpSpec {
    /// Input features.
    pub inputs: usize,
    /// Widths of the hidden layers.
    pub hidden: Vec<usize>,
    /// Outputs (classes).
    pub outputs: usize,
    /// Activation of the hidden layers.
    pub activation: Activation,
}

impl MlpSpec {
    /// A ReLU MLP.
    pub fn new(inputs: usize, hidden: Vec<usize>, outputs: usize) -> Self {
        MlpSpec {
            inputs,
            hidden,
            outputs,
            activation: Activation::Relu,
        }
    }

    /// The layers, layer `i` initialised from `seed + i`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when a width is zero; [`Error::TooLarge`] naming the layer when
    /// a kernel would need more than [`MAX_ALLOCATION_BYTES`](crate::tensor::MAX_ALLOCATION_BYTES)
    /// (checked for every layer before any is built).
    pub fn build<P: Policy>(&self, seed: u64) -> Result<Vec<Dense<P>>> {
        self.check_sizes(|_| P::RUNTIME)?;
        (0..self.layer_count())
            .map(|i| self.layer(i, seed).init::<P>(self.widths()[i]))
            .collect()
    }

    /// The layers, layer `i` in the policy `map` gives its path `"i"` (`map.get("i")`) and
    /// initialised from `seed + i` exactly as [`build`](Self::build) does, so a layer's
    /// initial weights in policy `P` are those of the uniform model in `P`. The variables have
    /// the same names as [`build`](Self::build)'s, so checkpoints of either kind name the same
    /// tensors.
    ///
    /// When every layer resolves to one policy, [`build`](Self::build) in that policy is the
    /// same model, typed, and faster to reach generic code with (see
    /// [`uniform_policy`](Self::uniform_policy)).
    ///
    /// # Errors
    ///
    /// As [`layer_policies`](Self::layer_policies) and [`build`](Self::build).
    pub fn build_layered(&self, map: &DTypePolicyMap, seed: u64) -> Result<LayeredMlp> {
        let policies = self.layer_policies(map)?;
        self.check_sizes(|i| policies[i])?;
        let widths = self.widths();
        let layers = policies
            .iter()
            .enumerate()
            .map(|(i, &policy)| {
                let init = InitLayer {
                    config: self.layer(i, seed),
                    input_dim: widths[i],
                };
                ByPolicy::build(policy, init)
            })
            .collect::<Result<Vec<AnyDense>>>()?;
        Ok(LayeredMlp::from_layers(layers))
    }

    /// The policy of each layer (paths `"0"` to `"N"`, `N` the output layer) under `map`.
    ///
    /// Stricter than Keras, which ignores keys that match no layer: here a key that matches
    /// none of this model's paths (exactly or as a full-match regex) is an error, so a typo
    /// such as `"7"` for a 3-layer MLP is not silently ignored.
    ///
    /// ```
    /// use mixprec::{models::MlpSpec, DTypePolicy, DTypePolicyMap};
    /// let spec = MlpSpec::new(64, vec![128, 128], 10);
    /// let mut map = DTypePolicyMap::with_default(DTypePolicy::MixedBFloat16);
    /// map.insert("2", "float32")?;
    /// assert_eq!(spec.uniform_policy(&map)?, None);
    /// map.insert("7", "float32")?;
    /// let err = spec.layer_policies(&map).unwrap_err().to_string();
    /// assert!(err.contains(r#"key "7" matches no layer"#), "{err}");
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::PolicyMapAmbiguous`] naming the layer path when two regex keys match it;
    /// [`Error::InvalidArgument`] naming the key and the model's paths when a key matches no
    /// layer.
    pub fn layer_policies(&self, map: &DTypePolicyMap) -> Result<Vec<DTypePolicy>> {
        let paths: Vec<String> = (0..self.layer_count()).map(|i| i.to_string()).collect();
        let model = || {
            let last = paths.len() - 1;
            format!("the mlp {} (layers 0 to {last})", self.describe())
        };
        let expected = "a layer path (0 for the first layer, the last for the output layer) or a regex matching one";
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

    /// Number of layers: the hidden ones and the output layer.
    pub fn layer_count(&self) -> usize {
        self.hidden.len() + 1
    }

    fn widths(&self) -> Vec<usize> {
        std::iter::once(self.inputs)
            .chain(self.hidden.iter().copied())
            .chain([self.outputs])
            .collect()
    }

    /// Layer `i`'s configuration: the hidden activation (linear for the output layer) and the
    /// seed `seed + i`.
    fn layer(&self, i: usize, seed: u64) -> DenseConfig {
        let act = if i + 1 == self.layer_count() {
            Activation::Linear
        } else {
            self.activation
        };
        DenseConfig::new(self.widths()[i + 1])
            .activation(act)
            .seed(seed.wrapping_add(i as u64))
    }

    /// Every layer's kernel size against the allocation limit, before any layer is built.
    fn check_sizes(&self, policy: impl Fn(usize) -> DTypePolicy) -> Result<()> {
        for (i, w) in self.widths().windows(2).enumerate() {
            let dtype = policy(i).variable_dtype();
            let what = || {
                format!(
                    "layer {i} of the mlp {}: dense kernel [{}, {}] of {dtype}",
                    self.describe(),
                    w[0],
                    w[1],
                )
            };
            match dtype.size_of() {
                2 => crate::tensor::alloc::check_shape::<u16>(what, w)?,
                4 => crate::tensor::alloc::check_shape::<f32>(what, w)?,
                _ => crate::tensor::alloc::check_shape::<f64>(what, w)?,
            };
        }
        Ok(())
    }

    /// `inputs-h1-h2-outputs`, as papers write it.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.inputs.to_string()];
        parts.extend(self.hidden.iter().map(usize::to_string));
        parts.push(self.outputs.to_string());
        parts.join("-")
    }

    /// The JSON stored in checkpoints:
    /// `{"model":"mlp","inputs":64,"hidden":[128,128],"outputs":10,"activation":"relu"}`.
    pub fn to_json(&self) -> String {
        let hidden: Vec<String> = self.hidden.iter().map(usize::to_string).collect();
        format!(
            r#"{{"model":"mlp","inputs":{},"hidden":[{}],"outputs":{},"activation":"{}"}}"#,
            self.inputs,
            hidden.join(","),
            self.outputs,
            self.activation
        )
    }

    /// Reads [`to_json`](Self::to_json)'s form.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] when the JSON is not an MLP description.
    #[cfg(feature = "serde")]
    pub fn from_json(json: &str) -> Result<Self> {
        #[derive(serde::Deserialize)]
        struct Repr {
            model: String,
            inputs: usize,
            hidden: Vec<usize>,
            outputs: usize,
            activation: String,
        }
        let bad = |why: String| Error::InvalidArgument {
            what: "architecture",
            found: why,
            expected: r#"{"model":"mlp","inputs":N,"hidden":[..],"outputs":N,"activation":"relu"}"#,
        };
        let r: Repr = serde_json::from_str(json).map_err(|e| bad(e.to_string()))?;
        if r.model != "mlp" {
            return Err(bad(format!("model {:?}", r.model)));
        }
        Ok(MlpSpec {
            inputs: r.inputs,
            hidden: r.hidden,
            outputs: r.outputs,
            activation: r.activation.parse()?,
        })
    }
}

/// Builds layer `i` of an [`MlpSpec`] in whatever policy [`ByPolicy::build`] asks for.
struct InitLayer {
    config: DenseConfig,
    input_dim: usize,
}

impl FamilyBuilder<DenseFamily> for InitLayer {
    type Error = Error;
    fn build<P: Policy>(self) -> Result<Dense<P>> {
        self.config.init::<P>(self.input_dim)
    }
}

/// The policy of each layer path of `paths` under `map`, for a model's `layer_policies`.
///
/// # Errors
///
/// [`Error::PolicyMapAmbiguous`] naming the path when two regex keys match it;
/// [`Error::InvalidArgument`] naming the key and `model()` (the model and its paths) when a key
/// matches no path, with `expected` saying what a path is.
pub(crate) fn policies_at(
    map: &DTypePolicyMap,
    paths: &[String],
    model: impl FnOnce() -> String,
    expected: &'static str,
) -> Result<Vec<DTypePolicy>> {
    if let Some(key) = map.keys_matching_none(paths).next() {
        return Err(Error::InvalidArgument {
            what: "policy map",
            found: format!("key {key:?} matches no layer of {}", model()),
            expected,
        });
    }
    paths.iter().map(|path| map.get(path)).collect()
}

/// The one policy of `policies` when they are all the same.
pub(crate) fn uniform(policies: &[DTypePolicy]) -> Option<DTypePolicy> {
    let first = *policies.first()?;
    policies.iter().all(|&p| p == first).then_some(first)
}
