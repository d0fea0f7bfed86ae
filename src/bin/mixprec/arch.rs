//! The architecture a run trains or a checkpoint records: an MLP (`--model mlp`, the default,
//! widths from `--hidden`) or the CNN (`--model cnn`, `CnnSpec`'s defaults on square images).

use mixprec::data::Dataset;
use mixprec::models::{CnnSpec, MlpSpec};
use mixprec::prelude::*;
use mixprec::DTypePolicyMap;

use crate::cli::{ModelKind, TrainingArgs};

/// The layer paths a `--layer-policy` key names, in order, the output layer last: `0` to `N`
/// for an MLP with `hidden` hidden layers, `conv`, `dense` for the CNN.
pub fn layer_paths(kind: ModelKind, hidden: usize) -> Vec<String> {
    match kind {
        ModelKind::Mlp => (0..=hidden).map(|i| i.to_string()).collect(),
        ModelKind::Cnn => CnnSpec::LAYERS.map(String::from).to_vec(),
    }
}

/// What `paths` (of [`layer_paths`]) are, for messages: `this MLP has layers 0 to 2 (0 the
/// first, 2 or head the output layer)`.
pub fn layers_text(kind: ModelKind, paths: &[String]) -> String {
    let head = paths.last().map_or("", String::as_str);
    match kind {
        ModelKind::Mlp => {
            format!(
                "this MLP has layers 0 to {head} (0 the first, {head} or head the output layer)"
            )
        }
        ModelKind::Cnn => format!(
            "this CNN has layers {} ({head} or head the output layer)",
            paths.join(", ")
        ),
    }
}

/// One of the CLI's models, as data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arch {
    Mlp(MlpSpec),
    Cnn(CnnSpec),
}

impl Arch {
    /// What `args` asks for on `train`'s data: `--hidden` widths for an MLP; for the CNN each
    /// row read as a square one-channel image.
    ///
    /// # Errors
    ///
    /// For the CNN, when the data's rows are not square images (naming the width).
    pub fn for_data(args: &TrainingArgs, train: &Dataset, data_name: &str) -> Result<Self> {
        let classes = train.classes().unwrap_or(1);
        Ok(match args.model {
            ModelKind::Mlp => Arch::Mlp(MlpSpec::new(
                train.features(),
                args.hidden.0.clone(),
                classes,
            )),
            ModelKind::Cnn => match CnnSpec::square(train.features(), classes) {
                Ok(spec) => Arch::Cnn(spec),
                Err(_) => {
                    return Err(Error::InvalidArgument {
                        what: "--model cnn",
                        found: format!(
                            "{data_name} has {} features per row, not a square image",
                            train.features()
                        ),
                        expected: "data whose rows are side x side pixels (64 for the 8x8 digits); use --model mlp for other data",
                    })
                }
            },
        })
    }

    /// The architecture a checkpoint's `mixprec.architecture` JSON describes.
    ///
    /// # Errors
    ///
    /// When the JSON is neither an MLP nor a CNN description, or describes one whose layers
    /// do not fit together.
    pub fn from_json(json: &str) -> Result<Self> {
        let kind = serde_json::from_str::<serde_json::Value>(json)
            .ok()
            .and_then(|v| v.get("model").and_then(|m| m.as_str().map(str::to_owned)));
        match kind.as_deref() {
            Some("cnn") => CnnSpec::from_json(json).map(Arch::Cnn),
            _ => MlpSpec::from_json(json).map(Arch::Mlp),
        }
    }

    /// The JSON recorded in checkpoints.
    pub fn to_json(&self) -> String {
        match self {
            Arch::Mlp(s) => s.to_json(),
            Arch::Cnn(s) => s.to_json(),
        }
    }

    /// The layer paths a `--layer-policy` key names ([`layer_paths`]).
    pub fn layer_paths(&self) -> Vec<String> {
        let hidden = self.mlp().map_or(0, |s| s.hidden.len());
        layer_paths(self.kind(), hidden)
    }

    /// The policy of each layer under `map`, in the order of [`layer_paths`](Self::layer_paths).
    pub fn layer_policies(&self, map: &DTypePolicyMap) -> Result<Vec<DTypePolicy>> {
        match self {
            Arch::Mlp(s) => s.layer_policies(map),
            Arch::Cnn(s) => s.layer_policies(map),
        }
    }

    /// The one policy of every layer under `map`, or `None` when they differ.
    pub fn uniform_policy(&self, map: &DTypePolicyMap) -> Result<Option<DTypePolicy>> {
        match self {
            Arch::Mlp(s) => s.uniform_policy(map),
            Arch::Cnn(s) => s.uniform_policy(map),
        }
    }

    /// Which kind, for `--resume`'s settings.
    pub fn kind(&self) -> ModelKind {
        match self {
            Arch::Mlp(_) => ModelKind::Mlp,
            Arch::Cnn(_) => ModelKind::Cnn,
        }
    }

    /// The MLP, when it is one.
    pub fn mlp(&self) -> Option<&MlpSpec> {
        match self {
            Arch::Mlp(s) => Some(s),
            Arch::Cnn(_) => None,
        }
    }

    /// Values per input row.
    pub fn inputs(&self) -> usize {
        match self {
            Arch::Mlp(s) => s.inputs,
            Arch::Cnn(s) => s.features(),
        }
    }

    /// Classes.
    pub fn outputs(&self) -> usize {
        match self {
            Arch::Mlp(s) => s.outputs,
            Arch::Cnn(s) => s.outputs,
        }
    }

    /// `64-128-128-10` for an MLP (as before the CNN existed), `CNN 8x8x1 conv …` for the CNN.
    pub fn describe(&self) -> String {
        match self {
            Arch::Mlp(s) => s.describe(),
            Arch::Cnn(s) => format!("CNN {}", s.describe()),
        }
    }

    /// `MLP 64-128-128-10` or `CNN 8x8x1 conv …`, for headers.
    pub fn label(&self) -> String {
        match self {
            Arch::Mlp(s) => format!("MLP {}", s.describe()),
            Arch::Cnn(_) => self.describe(),
        }
    }
}
