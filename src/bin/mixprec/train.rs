//! `train`: one run, typed when every layer has one policy, per layer otherwise; `--save` and
//! `--resume`.

use crate::output::outln;

use mixprec::prelude::*;

use crate::arch::Arch;
use crate::cli::TrainArgs;
use crate::layers::{describe_layers, layer_plan, stored_plan};
use crate::progress::Progress;
use crate::resume::Resume;
use crate::run::{
    bytes, check_model_memory, check_output_path, list, warn_if_more_classes_than_rows, Run,
};

/// `mixprec train`.
pub fn train(args: &TrainArgs) -> Result<()> {
    if let Some(p) = args.policy {
        set_global_policy(p)?;
    }
    if let Some(path) = &args.save {
        check_output_path(path)?;
    }
    let resume = match &args.resume {
        Some(path) => Some(Resume::read(path, &args.training)?),
        None => None,
    };
    if let (Some(r), Some(p)) = (&resume, args.policy) {
        if p != r.ckpt.meta().policy {
            return Err(Error::InvalidArgument {
                what: "--policy",
                found: format!(
                    "{p}, but {} was trained in {}",
                    r.path.display(),
                    r.ckpt.meta().policy
                ),
                expected: "no --policy with --resume (or the checkpoint's own)",
            });
        }
    }
    if let (Some(r), false) = (&resume, args.training.layer_policy.is_empty()) {
        return Err(Error::InvalidArgument {
            what: "--layer-policy",
            found: format!("with --resume {}", r.path.display()),
            expected:
                "no --layer-policy with --resume (the checkpoint's layers keep their policies)",
        });
    }
    // Read once: whatever is built below keeps this policy.
    let policy = resume
        .as_ref()
        .map_or_else(global_policy, |r| r.ckpt.meta().policy);
    let t = resume.as_ref().map_or(&args.training, |r| &r.args);
    let (data, data_name) = crate::data::load(&t.data)?;
    if let Some(r) = &resume {
        let model = r.path.display().to_string();
        crate::predict::check_labels(&data, &data_name, r.spec.outputs(), &model)?;
    }
    let (train, test) = data.shuffle_split(t.test_split, t.seed)?;
    drop(data);
    let spec = match &resume {
        Some(r) => r.spec.clone(),
        None => Arch::for_data(t, &train, &data_name)?,
    };
    if resume.is_none() {
        warn_if_more_classes_than_rows(&spec, train.len() + test.len(), &data_name);
    }
    let what = match (&resume, &spec) {
        (Some(_), _) => "--resume",
        (None, Arch::Mlp(_)) => "--hidden",
        (None, Arch::Cnn(_)) => "--model",
    };
    check_model_memory(what, &spec, t, train.len(), &data_name)?;
    if let Some(r) = &resume {
        outln!(
            "resuming {} after epoch {} (its policy, architecture, optimizer state, learning rate, batch size, seed and data)",
            r.path.display(),
            r.done
        );
    }
    let (policy, layers) = match &resume {
        Some(r) => stored_plan(r.ckpt.meta(), &spec)?,
        None => layer_plan(t, policy, &spec)?,
    };
    let layout = match &layers {
        Some(map) => format!(
            "per-layer policies {} (default {policy})",
            describe_layers(&spec.layer_paths(), &spec.layer_policies(map)?)
        ),
        _ => format!(
            "policy {policy} (compute {}, variables {})",
            policy.compute_dtype(),
            policy.variable_dtype()
        ),
    };
    outln!(
        "mixprec train: {layout}, {}, {data_name}: {} train / {} test rows",
        spec.label(),
        train.len(),
        test.len()
    );
    let run = Run {
        save: args.save.as_deref(),
        resume: resume.as_ref().map(|r| (&r.ckpt, r.done)),
        spec: &spec,
        layers: layers.as_ref(),
        label: policy.name().to_string(),
        train: &train,
        test: &test,
        args: t,
        progress: Progress::per_epoch(t.epochs as usize),
    };
    let r = policy.visit(run)?;
    outln!(
        "\ntest accuracy   {:.2}%  (test loss {:.4})",
        100.0 * r.test_accuracy,
        r.test_loss
    );
    outln!("final loss      {:.4}", r.final_loss);
    outln!(
        "wall time       {:.2} s  ({:.0} samples/s)",
        r.seconds,
        r.samples_per_sec
    );
    outln!("variables       {}", bytes(r.variable_bytes));
    outln!(
        "activations     {} per batch of {}",
        bytes(r.activation_bytes),
        t.batch_size
    );
    if let Some(scale) = r.loss_scale {
        outln!(
            "loss scale      {scale} at the end, {} steps skipped",
            r.skipped_steps
        );
    }
    if !r.diverged_epochs.is_empty() {
        outln!("diverged        in epochs {}", list(&r.diverged_epochs));
    }
    if let Some(path) = &args.save {
        outln!("saved           {}", path.display());
    }
    Ok(())
}
