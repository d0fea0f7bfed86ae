//! `mixprec train|compare|predict|inspect --model cnn` end to end: the CNN reaches 96% on the
//! digits with the default epochs, seed and learning rate in float32, mixed_bfloat16 and
//! mixed_float16; its checkpoint records the CNN, predicts with it and resumes exactly; compare
//! prints one row per policy; and the MLP-only flags are usage errors (exit status 2). Per-layer
//! policies for the CNN: `cli_cnn_layers.rs`.

use std::process::Output;

mod cli_common;
use cli_common::{compare_cnn, mixprec, percent_after, stderr, stdout, table_rows};

fn tmp(name: &str) -> String {
    cli_common::tmp_in("cli_cnn", name).display().to_string()
}

fn assert_usage_error(o: &Output, needle: &str) {
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(o), stderr(o));
    let err = stderr(o);
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

/// Trains with the defaults under `policy`, saves, and returns (stdout, checkpoint path).
fn train(policy: &str) -> (String, String) {
    let path = tmp(&format!("{policy}.safetensors"));
    let o = mixprec(&[
        "train", "--model", "cnn", "--policy", policy, "--save", &path,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains(&format!("policy {policy}")), "{out}");
    assert!(
        out.contains("CNN 8x8x1 conv 32@3x3 same relu, maxpool 2x2, dense 512-10"),
        "{out}"
    );
    assert!(out.contains("epoch  20/20"), "{out}");
    let acc = percent_after(&out, "test accuracy");
    assert!(acc >= 96.0, "{policy} test accuracy {acc}% in {out}");
    (out, path)
}

#[test]
fn cnn_reaches_96_percent_and_its_checkpoint_predicts_in_three_policies() {
    for policy in ["float32", "mixed_bfloat16", "mixed_float16"] {
        let (out, path) = train(policy);
        assert_eq!(
            out.contains("loss scale"),
            policy == "mixed_float16",
            "{out}"
        );
        let o = mixprec(&["inspect", &path]);
        assert!(o.status.success(), "{}", stderr(&o));
        let info = stdout(&o);
        assert!(
            info.contains(r#""model":"cnn","input":[8,8,1],"filters":32"#),
            "{info}"
        );
        assert!(
            info.contains("conv.kernel") && info.contains("[3, 3, 1, 32]"),
            "{info}"
        );
        assert!(
            info.contains(&format!("layers        2 (all {policy})")),
            "{info}"
        );
        let o = mixprec(&["predict", "--model", &path, "--show", "0"]);
        assert!(o.status.success(), "{}", stderr(&o));
        let pred = stdout(&o);
        assert!(
            pred.contains(&format!("stored as {policy}, run as {policy}")),
            "{pred}"
        );
        // Every row (80% of them trained on): at least the held-out accuracy's 96%.
        let all = percent_after(&pred, "accuracy");
        assert!(all >= 96.0, "{pred}");
        // Cast explicitly to float32 and run there: the same predictions within a few rows.
        let o = mixprec(&[
            "predict", "--model", &path, "--policy", "float32", "--show", "0",
        ]);
        let cast = percent_after(&stdout(&o), "accuracy");
        assert!((cast - all).abs() < 0.5, "{all}% vs {cast}% as float32");
    }
}

#[test]
fn compare_prints_a_row_per_policy() {
    let out = compare_cnn("float32,mixed_bfloat16,mixed_float16");
    assert!(out.starts_with("mixprec compare: CNN 8x8x1"), "{out}");
    assert!(out.contains("lr 0.003"), "{out}");
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 3, "{out}");
    for (row, policy) in rows
        .iter()
        .zip(["float32", "mixed_bfloat16", "mixed_float16"])
    {
        assert!(row.starts_with(policy), "{row}");
    }
}

#[test]
fn mlp_only_flags_with_the_cnn_are_usage_errors() {
    let hidden = mixprec(&["train", "--model", "cnn", "--hidden", "8"]);
    assert_usage_error(
        &hidden,
        "--hidden sets the widths of an MLP's hidden layers",
    );
    let kind = mixprec(&["train", "--model", "rnn"]);
    assert_usage_error(&kind, "invalid value 'rnn' for '--model <MODEL>'");
}

#[test]
fn cnn_needs_square_images() {
    let csv = tmp("wide.csv");
    let rows: String = (0..20)
        .map(|i| format!("{},{},{},{}\n", i % 3, 1, 2, i % 2))
        .collect();
    std::fs::write(&csv, rows).unwrap();
    let o = mixprec(&["train", "--model", "cnn", "--data", &csv, "--epochs", "1"]);
    assert_eq!(o.status.code(), Some(1), "{}", stdout(&o));
    let err = stderr(&o);
    assert!(
        err.contains("has 3 features per row, not a square image"),
        "{err}"
    );
}

#[test]
fn a_crafted_cnn_architecture_is_a_clear_error() {
    let (_, path) = train_short();
    let bytes = std::fs::read(&path).unwrap();
    // Same length, so the safetensors header stays valid: 32 filters claimed as 33.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text
        .find(r#"\"filters\":32"#)
        .expect("the architecture in the header");
    let mut crafted = bytes.clone();
    crafted[at + r#"\"filters\":3"#.len()] = b'3';
    let bad = tmp("crafted.safetensors");
    std::fs::write(&bad, crafted).unwrap();
    let o = mixprec(&["predict", "--model", &bad]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("conv.kernel") && err.contains("33"), "{err}");
    // Zero channels: refused when the architecture is read, naming the key.
    let at = text.find(r#"\"input\":[8,8,1]"#).unwrap();
    let mut crafted = bytes;
    crafted[at + r#"\"input\":[8,8,"#.len()] = b'0';
    std::fs::write(&bad, &crafted).unwrap();
    let o = mixprec(&["predict", "--model", &bad]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("mixprec.architecture") && err.contains("cnn input channels"),
        "{err}"
    );
}

/// One epoch of float32, saved.
fn train_short() -> (String, String) {
    let path = tmp("short.safetensors");
    let o = mixprec(&["train", "--model", "cnn", "--epochs", "1", "--save", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    (stdout(&o), path)
}

#[test]
fn a_resumed_cnn_run_ends_as_the_uninterrupted_one() {
    let (whole, part) = (tmp("whole.safetensors"), tmp("part.safetensors"));
    let run = |extra: &[&str]| {
        let mut args = vec!["train", "--policy", "mixed_bfloat16"];
        args.extend_from_slice(extra);
        let o = mixprec(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let full = run(&["--model", "cnn", "--epochs", "3", "--save", &whole]);
    run(&["--model", "cnn", "--epochs", "2", "--save", &part]);
    let again = mixprec(&[
        "train", "--resume", &part, "--epochs", "3", "--model", "cnn",
    ]);
    assert_usage_error(&again, "--model with --resume");
    let resumed = run(&["--resume", &part, "--epochs", "3"]);
    assert!(resumed.contains("CNN 8x8x1"), "{resumed}");
    let summary = |out: &str| {
        out.lines()
            .filter(|l| l.starts_with("test accuracy") || l.starts_with("final loss"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(summary(&full), summary(&resumed));
    assert_eq!(summary(&full).len(), 2);
}
