//! `compare`: the same model (MLP or CNN) from the same seed under several policies, side by side.

use crate::output::{errln, outln};

use mixprec::prelude::*;

use crate::arch::Arch;
use crate::cli::{CompareArgs, TrainingArgs};
use crate::layers::{layer_plan, LayerPolicies, PolicyChoice, HEAD};
use crate::progress::Progress;
use crate::run::{
    bytes, check_model_memory, check_output_path, list, warn_if_more_classes_than_rows, Report, Run,
};

/// `mixprec compare`.
pub fn compare(args: &CompareArgs) -> Result<()> {
    let policies = if args.policies.is_empty() {
        DTypePolicy::ALL
            .iter()
            .map(|&policy| PolicyChoice {
                policy,
                f32_head: false,
            })
            .collect()
    } else {
        args.policies.clone()
    };
    if let Some(path) = &args.plot {
        crate::plot::check_path(path)?;
        check_output_path(path)?;
    }
    let t = &args.training;
    let (train, test, data_name) = crate::data::load_split(t)?;
    let spec = Arch::for_data(t, &train, &data_name)?;
    warn_if_more_classes_than_rows(&spec, train.len() + test.len(), &data_name);
    let what = match spec {
        Arch::Mlp(_) => "--hidden",
        Arch::Cnn(_) => "--model",
    };
    check_model_memory(what, &spec, t, train.len(), &data_name)?;
    outln!(
        "mixprec compare: {}, {data_name}, {} epochs, batch {}, {:?} lr {}, seed {}\n",
        spec.label(),
        t.epochs,
        t.batch_size,
        t.optimizer,
        t.lr,
        t.seed
    );
    // Every run's layers, checked before the first run starts.
    let plans = policies
        .iter()
        .map(|choice| {
            let mut flags = t.layer_policy.clone();
            if choice.f32_head {
                flags.push(LayerPolicies(vec![(HEAD.into(), DTypePolicy::Float32)]));
            }
            let flags = TrainingArgs {
                layer_policy: flags,
                ..t.clone()
            };
            layer_plan(&flags, choice.policy, &spec).map_err(|e| match e {
                Error::InvalidArgument { found, .. } if choice.f32_head => Error::InvalidArgument {
                    what: "--policies",
                    found: format!("{choice} with --layer-policy: {found}"),
                    expected: "either +float32_head or a --layer-policy key for the output layer",
                },
                e => e,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut reports = Vec::new();
    for (choice, (policy, layers)) in policies.iter().zip(&plans) {
        let run = Run {
            save: None,
            resume: None,
            spec: &spec,
            layers: layers.as_ref(),
            // A run the user's --layer-policy keys change is marked, and the keys printed below.
            label: if layers.is_some() && !t.layer_policy.is_empty() {
                format!("{choice}*")
            } else {
                choice.to_string()
            },
            train: &train,
            test: &test,
            args: t,
            progress: Progress::per_run(t.epochs as usize),
        };
        match policy.visit(run) {
            Ok(r) => reports.push(r),
            Err(e) => {
                errln!("compare stopped at policy {choice}:");
                return Err(e);
            }
        }
    }
    print_table(&reports);
    if reports.iter().any(|r| r.label.ends_with('*')) {
        let keys: Vec<String> = t
            .layer_policy
            .iter()
            .flat_map(|f| &f.0)
            .map(|(k, p)| format!("{k}={p}"))
            .collect();
        outln!("* with --layer-policy {}", keys.join(","));
    }
    for r in reports.iter().filter(|r| !r.diverged_epochs.is_empty()) {
        errln!(
            "warning: {} diverged in epochs {} (--continue-on-divergence)",
            r.label,
            list(&r.diverged_epochs)
        );
    }
    if let Some(path) = &args.plot {
        crate::plot::loss_curves(path, &reports, &spec.describe())?;
        outln!("\nloss curves written to {}", path.display());
    }
    Ok(())
}

fn print_table(reports: &[Report]) {
    let reference = reports
        .iter()
        .find(|r| r.policy == DTypePolicy::Float32 && r.layer_policies.is_none())
        .map(|r| r.seconds);
    let w = reports
        .iter()
        .map(|r| r.label.len())
        .max()
        .unwrap_or(0)
        .max(15);
    outln!(
        "\n{:<w$} {:>9} {:>10} {:>8} {:>10} {:>10} {:>12}",
        "policy",
        "test acc",
        "final loss",
        "time",
        "vs f32",
        "variables",
        "activations"
    );
    for r in reports {
        let speed = reference.map_or("-".to_string(), |f| format!("{:.2}x", f / r.seconds));
        outln!(
            "{:<w$} {:>8.2}% {:>10.4} {:>7.2}s {:>10} {:>10} {:>12}",
            r.label,
            100.0 * r.test_accuracy,
            r.final_loss,
            r.seconds,
            speed,
            bytes(r.variable_bytes),
            bytes(r.activation_bytes)
        );
    }
}
