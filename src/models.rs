//! Ready-made architectures described by data, so a model can be chosen on a command line and
//! recorded in a checkpoint: [`MlpSpec`] builds a `Vec<Dense<P>>` for any policy.

#[cfg(feature = "serde")]
use crate::error::Error;
use crate::error::Result;
use crate::layers::{Activation, Dense, DenseConfig};
use crate::policy::Policy;

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
        let widths: Vec<usize> = std::iter::once(self.inputs)
            .chain(self.hidden.iter().copied())
            .chain([self.outputs])
            .collect();
        for (i, w) in widths.windows(2).enumerate() {
            let what = || {
                format!(
                    "layer {i} of the mlp {}: dense kernel [{}, {}] of {}",
                    self.describe(),
                    w[0],
                    w[1],
                    <P::Variable as crate::dtype::Element>::DTYPE
                )
            };
            crate::tensor::alloc::check_shape::<P::Variable>(what, w)?;
        }
        let last = widths.len() - 2;
        widths
            .windows(2)
            .enumerate()
            .map(|(i, w)| {
                let act = if i == last {
                    Activation::Linear
                } else {
                    self.activation
                };
                DenseConfig::new(w[1])
                    .activation(act)
                    .seed(seed.wrapping_add(i as u64))
                    .init::<P>(w[0])
            })
            .collect()
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
