//! Per-layer policies on the command line: `--layer-policy PATH=POLICY` (parsing, and the checks
//! against the layers `--hidden` gives), `compare --policies NAME+float32_head`, and the plan of
//! a run (one policy for every layer, run typed, or a map, run as a `LayeredMlp`).

use mixprec::io::CheckpointMeta;
use mixprec::models::MlpSpec;
use mixprec::prelude::*;
use mixprec::DTypePolicyMap;

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::cli::{Cli, Command, ModelKind, TrainingArgs};

/// What clap cannot check alone: `--layer-policy` against the layers `--hidden` gives
/// (duplicates across flags, `head` beside the output layer's number, keys that match no
/// layer, ambiguous regexes), for `train` and `compare` (whose `+float32_head` runs are checked
/// when they start). The message becomes a usage error (exit status 2).
///
/// For `--model cnn` it also refuses `--hidden` and `--layer-policy` (MLP-only), and sets
/// `--lr` to the CNN's default unless it was given; `--model` with `--resume` is refused (the
/// checkpoint says which model it is).
pub fn check(cli: &mut Cli, matches: &ArgMatches) -> Result<(), (&'static str, String)> {
    if let Command::Train(a) = &cli.command {
        let given = matches
            .subcommand_matches("train")
            .and_then(|m| m.value_source("model"));
        if a.resume.is_some() && given == Some(ValueSource::CommandLine) {
            let why = "--model with --resume: the checkpoint records its architecture";
            return Err(("train", why.into()));
        }
    }
    let (name, training, f32_head) = match &mut cli.command {
        Command::Train(a) if a.resume.is_none() => ("train", &mut a.training, false),
        Command::Compare(a) => {
            let head = a.policies.iter().any(|c| c.f32_head);
            ("compare", &mut a.training, head)
        }
        _ => return Ok(()),
    };
    if training.model == ModelKind::Cnn {
        let given = |flag: &str| {
            matches
                .subcommand_matches(name)
                .and_then(|m| m.value_source(flag))
                == Some(ValueSource::CommandLine)
        };
        if given("hidden") {
            let why = "--hidden sets the widths of an MLP's hidden layers; --model cnn has none (use --model mlp)";
            return Err((name, why.into()));
        }
        if !training.layer_policy.is_empty() {
            let why =
                "--layer-policy is MLP-only for now; --model cnn runs every layer in --policy";
            return Err((name, why.into()));
        }
        if f32_head {
            let why = format!("--policies NAME{F32_HEAD_SUFFIX} is MLP-only for now; --model cnn runs every layer in the policy");
            return Err((name, why));
        }
        if !given("lr") {
            training.lr = crate::cli::CNN_LR;
        }
        return Ok(());
    }
    let layers = training.hidden.0.len() + 1;
    layer_map(&training.layer_policy, DTypePolicy::Float32, layers)
        .map(drop)
        .map_err(|e| (name, e))
}

/// The `PATH=POLICY` pairs of one `--layer-policy` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPolicies(pub Vec<(String, DTypePolicy)>);

/// What `head` means in a `--layer-policy` path: the output layer.
pub const HEAD: &str = "head";

/// The pairs of every `--layer-policy`, in order, with `head` replaced by the output layer's
/// path (`layers - 1`), as a map whose default is `default`.
///
/// # Errors
///
/// A message naming the key for a duplicate (also `head` and the output layer's number), a
/// key that matches no layer path `0..layers`, or a path two regex keys match.
pub fn layer_map(
    flags: &[LayerPolicies],
    default: DTypePolicy,
    layers: usize,
) -> Result<mixprec::DTypePolicyMap, String> {
    let mut map = mixprec::DTypePolicyMap::with_default(default);
    let head = (layers - 1).to_string();
    for (key, policy) in flags.iter().flat_map(|f| &f.0) {
        let path = if key == HEAD { &head } else { key };
        map.insert(path.as_str(), *policy).map_err(|e| match e {
            mixprec::Error::PolicyMapDuplicateKey { .. } if key == HEAD || *path == head => {
                format!("--layer-policy sets the output layer ({head}, also called head) twice")
            }
            e => format!("--layer-policy: {e}"),
        })?;
    }
    let paths: Vec<String> = (0..layers).map(|i| i.to_string()).collect();
    if let Some(key) = map.keys_matching_none(&paths).next() {
        return Err(format!(
            "--layer-policy {key:?} matches no layer: this MLP has layers 0 to {head} (0 the first, {head} or head the output layer)"
        ));
    }
    for path in &paths {
        map.get(path).map_err(|e| format!("--layer-policy: {e}"))?;
    }
    Ok(map)
}

/// Splits `a=x,b{1,2}=y` at the commas outside brackets, braces and parentheses (regex keys
/// may hold commas, as in `[0-9]{1,2}`).
fn split_top_level(s: &str) -> Vec<&str> {
    let (mut parts, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth <= 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

pub fn layer_policies(s: &str) -> Result<LayerPolicies, String> {
    let mut scratch = mixprec::DTypePolicyMap::with_default(DTypePolicy::Float32);
    let pairs = split_top_level(s)
        .into_iter()
        .map(|pair| {
            let Some((key, policy)) = pair.rsplit_once('=') else {
                return Err(format!(
                    "{pair:?} is not PATH=POLICY (expected e.g. head=float32 or 0=mixed_bfloat16)"
                ));
            };
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("{pair:?} has no layer path before '='"));
            }
            let policy: DTypePolicy = policy.trim().parse().map_err(|e| format!("{key}: {e}"))?;
            // Refuses an invalid regex or a key given twice in this value, with the map's words.
            scratch.insert(key, policy).map_err(|e| e.to_string())?;
            Ok((key.to_string(), policy))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(LayerPolicies(pairs))
}

/// One `compare` run: a policy, with or without a float32 output layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PolicyChoice {
    pub policy: DTypePolicy,
    pub f32_head: bool,
}

/// The suffix of a `--policies` entry that gives it a float32 output layer.
pub const F32_HEAD_SUFFIX: &str = "+float32_head";

impl std::fmt::Display for PolicyChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let suffix = if self.f32_head { F32_HEAD_SUFFIX } else { "" };
        write!(f, "{}{suffix}", self.policy)
    }
}

pub fn policy_choice(s: &str) -> Result<PolicyChoice, String> {
    let (name, f32_head) = match s.trim().strip_suffix(F32_HEAD_SUFFIX) {
        Some(name) => (name, true),
        None => (s.trim(), false),
    };
    let policy = name
        .parse()
        .map_err(|e| format!("{e} (a Keras policy, optionally followed by {F32_HEAD_SUFFIX})"))?;
    Ok(PolicyChoice { policy, f32_head })
}

/// The map of `--layer-policy` (with `default` for the other layers) for `spec`, or `None`
/// when every layer gets one policy, which is then returned as the one to run (the typed
/// uniform model, exactly today's run).
pub fn layer_plan(
    t: &TrainingArgs,
    default: DTypePolicy,
    spec: &MlpSpec,
) -> Result<(DTypePolicy, Option<DTypePolicyMap>)> {
    let map = layer_map(&t.layer_policy, default, spec.layer_count()).map_err(|found| {
        Error::InvalidArgument {
            what: "--layer-policy",
            found,
            expected:
                "PATH=POLICY pairs, each PATH a layer (0 to N, or head) or a regex matching one",
        }
    })?;
    Ok(match spec.uniform_policy(&map)? {
        Some(p) => (p, None),
        None => (default, Some(map)),
    })
}

/// The policies a checkpoint records for `spec`'s layers, as [`layer_plan`] gives them: the
/// one policy of a uniform model, or the map and the checkpoint's default.
pub fn stored_plan(
    meta: &CheckpointMeta,
    spec: &MlpSpec,
) -> Result<(DTypePolicy, Option<DTypePolicyMap>)> {
    let map = &meta.layer_policies;
    Ok(match spec.uniform_policy(map)? {
        Some(p) => (p, None),
        None => (meta.policy, Some(map.clone())),
    })
}

/// `0-1 mixed_bfloat16, 2 float32`: each run of layers with one policy.
pub fn describe_layers(policies: &[DTypePolicy]) -> String {
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..=policies.len() {
        if i == policies.len() || policies[i] != policies[start] {
            let span = if i - 1 == start {
                start.to_string()
            } else {
                format!("{start}-{}", i - 1)
            };
            parts.push(format!("{span} {}", policies[start]));
            start = i;
        }
    }
    parts.join(", ")
}
