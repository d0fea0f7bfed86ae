//! Per-layer policies on the command line: `--layer-policy PATH=POLICY` (parsing, and the checks
//! against the model's layers: `0` to `N` as `--hidden` gives them, or the CNN's `conv` and
//! `dense`), `compare --policies NAME+float32_head`, and the plan of a run (one policy for every
//! layer, run typed, or a map, run as a `LayeredMlp` or `LayeredCnn`).

use mixprec::io::CheckpointMeta;
use mixprec::prelude::*;
use mixprec::DTypePolicyMap;

use clap::parser::ValueSource;
use clap::ArgMatches;

use crate::arch::{layer_paths, layers_text, Arch};
use crate::cli::{Cli, Command, ModelKind, TrainingArgs};

/// What clap cannot check alone: `--layer-policy` against the model's layers (`--hidden`'s, or
/// the CNN's; duplicates across flags, `head` beside the output layer's path, keys that match
/// no layer, ambiguous regexes), for `train` and `compare` (whose `+float32_head` runs are
/// checked when they start). The message becomes a usage error (exit status 2).
///
/// For `--model cnn` it also refuses `--hidden` (MLP-only), and sets `--lr` to the CNN's
/// default unless it was given; `--model` with `--resume` is refused (the checkpoint says which
/// model it is).
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
    let (name, training) = match &mut cli.command {
        Command::Train(a) if a.resume.is_none() => ("train", &mut a.training),
        Command::Compare(a) => ("compare", &mut a.training),
        _ => return Ok(()),
    };
    let kind = training.model;
    if kind == ModelKind::Cnn {
        let given = matches
            .subcommand_matches(name)
            .and_then(|m| m.value_source("hidden"))
            == Some(ValueSource::CommandLine);
        if given {
            let why = "--hidden sets the widths of an MLP's hidden layers; --model cnn has none (use --model mlp)";
            return Err((name, why.into()));
        }
        let lr = matches
            .subcommand_matches(name)
            .and_then(|m| m.value_source("lr"));
        if lr != Some(ValueSource::CommandLine) {
            training.lr = crate::cli::CNN_LR;
        }
    }
    let paths = layer_paths(kind, training.hidden.0.len());
    layer_map(&training.layer_policy, DTypePolicy::Float32, kind, &paths)
        .map(drop)
        .map_err(|e| (name, e))
}

/// The `PATH=POLICY` pairs of one `--layer-policy` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerPolicies(pub Vec<(String, DTypePolicy)>);

/// What `head` means in a `--layer-policy` path: the output layer.
pub const HEAD: &str = "head";

/// The pairs of every `--layer-policy`, in order, with `head` replaced by the output layer's
/// path (the last of `paths`, the layers of a `kind` model), as a map whose default is
/// `default`.
///
/// # Errors
///
/// A message naming the key for a duplicate (also `head` and the output layer's path), a
/// key that matches no layer of `paths`, or a path two regex keys match.
pub fn layer_map(
    flags: &[LayerPolicies],
    default: DTypePolicy,
    kind: ModelKind,
    paths: &[String],
) -> Result<mixprec::DTypePolicyMap, String> {
    let mut map = mixprec::DTypePolicyMap::with_default(default);
    let head = paths.last().map_or("", String::as_str);
    for (key, policy) in flags.iter().flat_map(|f| &f.0) {
        let path = if key == HEAD { head } else { key };
        map.insert(path, *policy).map_err(|e| match e {
            mixprec::Error::PolicyMapDuplicateKey { .. } if key == HEAD || path == head => {
                format!("--layer-policy sets the output layer ({head}, also called head) twice")
            }
            e => format!("--layer-policy: {e}"),
        })?;
    }
    if let Some(key) = map.keys_matching_none(paths).next() {
        return Err(format!(
            "--layer-policy {key:?} matches no layer: {}",
            layers_text(kind, paths)
        ));
    }
    for path in paths {
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
    spec: &Arch,
) -> Result<(DTypePolicy, Option<DTypePolicyMap>)> {
    let paths = spec.layer_paths();
    let map = layer_map(&t.layer_policy, default, spec.kind(), &paths).map_err(|found| {
        Error::InvalidArgument {
            what: "--layer-policy",
            found,
            expected:
                "PATH=POLICY pairs, each PATH a layer (0 to N for an MLP, conv or dense for the CNN; or head) or a regex matching one",
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
    spec: &Arch,
) -> Result<(DTypePolicy, Option<DTypePolicyMap>)> {
    let map = &meta.layer_policies;
    Ok(match spec.uniform_policy(map)? {
        Some(p) => (p, None),
        None => (meta.policy, Some(map.clone())),
    })
}

/// `0-1 mixed_bfloat16, 2 float32` (or `conv-pool mixed_bfloat16, dense float32`): each run of
/// `paths` with one policy.
pub fn describe_layers(paths: &[String], policies: &[DTypePolicy]) -> String {
    let mut parts = Vec::new();
    let mut start = 0;
    for i in 1..=policies.len() {
        if i == policies.len() || policies[i] != policies[start] {
            let span = if i - 1 == start {
                paths[start].clone()
            } else {
                format!("{}-{}", paths[start], paths[i - 1])
            };
            parts.push(format!("{span} {}", policies[start]));
            start = i;
        }
    }
    parts.join(", ")
}
