//! End-to-end tests of the `mixprec` binary: each command on small inputs, and each kind of bad
//! input giving a one-line error, a non-zero exit code and no file written.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mixprec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args(args)
        .env_remove("MIXPREC_POLICY")
        .output()
        .expect("the binary runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("cli");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn assert_fails_with(o: &Output, needle: &str) {
    assert!(
        !o.status.success(),
        "expected failure, got success: {}",
        stdout(o)
    );
    let err = stderr(o);
    assert!(err.contains(needle), "stderr {err:?} lacks {needle:?}");
}

#[test]
fn train_reports_accuracy_speed_and_memory() {
    let o = mixprec(&[
        "train",
        "--policy",
        "mixed_bfloat16",
        "--epochs",
        "2",
        "--hidden",
        "32",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "policy mixed_bfloat16",
        "test accuracy",
        "samples/s",
        "variables",
        "activations",
        "epoch   2/2",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in {out}");
    }
}

#[test]
fn train_in_mixed_float16_reports_loss_scale() {
    let o = mixprec(&[
        "train",
        "--policy",
        "mixed_float16",
        "--epochs",
        "1",
        "--hidden",
        "16",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("loss scale      32768"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn train_reads_policy_from_environment() {
    let o = Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args(["train", "--epochs", "1", "--hidden", "8"])
        .env("MIXPREC_POLICY", "bfloat16")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("policy bfloat16"), "{}", stdout(&o));
}

#[test]
fn compare_prints_a_row_per_policy_and_plots() {
    let plot = tmp("compare.svg");
    let _ = std::fs::remove_file(&plot);
    let o = mixprec(&[
        "compare",
        "--policies",
        "float32,mixed_bfloat16",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("float32") && out.contains("mixed_bfloat16") && out.contains("vs f32"),
        "{out}"
    );
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.contains("mixed_bfloat16"),
        "not an SVG with a legend"
    );
}

#[test]
fn bench_runs_on_tiny_shapes() {
    let o = mixprec(&[
        "bench",
        "--shape",
        "8x16x8",
        "--policies",
        "mixed_bfloat16",
        "--seconds",
        "0.02",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("8x16x8") && out.contains("mixed_bfloat16") && out.contains("1.00x"),
        "{out}"
    );
}

#[test]
fn info_names_the_features() {
    let o = mixprec(&["info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("AMX-BF16") && stdout(&o).contains("kernels"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn unknown_policy_lists_the_valid_names() {
    let o = mixprec(&["train", "--policy", "mixed_fp16"]);
    assert_fails_with(&o, "unknown policy \"mixed_fp16\" (expected one of: float32, float64, float16, bfloat16, mixed_float16, mixed_bfloat16)");
}

#[test]
fn missing_data_file_is_one_line_error() {
    let o = mixprec(&["train", "--data", "/nonexistent/data.csv", "--epochs", "1"]);
    assert_fails_with(&o, "cannot access /nonexistent/data.csv");
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
}

#[test]
fn csv_with_nan_is_rejected() {
    let csv = tmp("nan.csv");
    std::fs::write(&csv, "0.5,1.0,0\nNaN,0.25,1\n").unwrap();
    let o = mixprec(&["train", "--data", csv.to_str().unwrap(), "--epochs", "1"]);
    assert_fails_with(
        &o,
        "nan.csv line 2: column 1 value \"NaN\" is not a finite number",
    );
}

#[test]
fn csv_with_wrong_dimensions_names_the_line() {
    let csv = tmp("ragged.csv");
    std::fs::write(&csv, "0.5,1.0,0\n0.25,1\n").unwrap();
    let o = mixprec(&["train", "--data", csv.to_str().unwrap(), "--epochs", "1"]);
    assert_fails_with(&o, "line 2: 2 columns, expected 3");
}

#[test]
fn impossible_flag_values_are_rejected() {
    assert_fails_with(&mixprec(&["train", "--epochs", "0"]), "--epochs");
    assert_fails_with(&mixprec(&["train", "--lr=-1"]), "not a finite number > 0");
    assert_fails_with(
        &mixprec(&["train", "--hidden", "128,0"]),
        "not a positive width",
    );
    assert_fails_with(&mixprec(&["bench", "--shape", "8x16"]), "BATCHxINxOUT");
}

#[test]
fn bad_plot_name_fails_and_leaves_existing_file() {
    let plot = tmp("keep.txt");
    std::fs::write(&plot, "precious").unwrap();
    let o = mixprec(&[
        "compare",
        "--policies",
        "float32",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_fails_with(&o, "ending in .svg or .png");
    assert_eq!(std::fs::read_to_string(&plot).unwrap(), "precious");
}

#[test]
fn train_save_then_inspect_and_predict() {
    let file = tmp("mlp.safetensors");
    let _ = std::fs::remove_file(&file);
    let f = file.to_str().unwrap();
    let o = mixprec(&[
        "train",
        "--policy",
        "mixed_float16",
        "--epochs",
        "2",
        "--hidden",
        "32",
        "--save",
        f,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("saved"), "{}", stdout(&o));

    let o = mixprec(&["inspect", f]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "mixed_float16",
        "0.kernel  F32   [64, 32]",
        "1.bias    F32   [10]",
        "\"hidden\":[32]",
        "loss scale    32768",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in {out}");
    }

    let o = mixprec(&["predict", "--model", f, "--show", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("accuracy") && stdout(&o).contains("row     1: predicted"),
        "{}",
        stdout(&o)
    );
    let o = mixprec(&[
        "predict", "--model", f, "--policy", "float64", "--show", "0",
    ]);
    assert!(
        o.status.success() && stdout(&o).contains("run as float64"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn corrupt_checkpoint_and_unwritable_save_path_are_errors() {
    let file = tmp("corrupt.safetensors");
    std::fs::write(&file, b"\x08\x00\x00\x00\x00\x00\x00\x00{bad}").unwrap();
    let o = mixprec(&["inspect", file.to_str().unwrap()]);
    assert_fails_with(&o, "is not a valid safetensors checkpoint");
    let o = mixprec(&["predict", "--model", "/nonexistent.safetensors"]);
    assert_fails_with(&o, "cannot access /nonexistent.safetensors");

    // A save into a missing directory fails before training starts.
    let o = mixprec(&[
        "train",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--save",
        "/nonexistent-dir/m.safetensors",
    ]);
    assert_fails_with(&o, "directory /nonexistent-dir does not exist");
    assert!(
        stdout(&o).is_empty(),
        "training must not start: {}",
        stdout(&o)
    );
}

#[test]
fn predict_rejects_data_of_the_wrong_width() {
    let file = tmp("width.safetensors");
    let f = file.to_str().unwrap();
    assert!(
        mixprec(&["train", "--epochs", "1", "--hidden", "8", "--save", f])
            .status
            .success()
    );
    let csv = tmp("narrow.csv");
    std::fs::write(&csv, "0.5,1.0,0\n0.25,0.75,1\n").unwrap();
    let o = mixprec(&["predict", "--model", f, "--data", csv.to_str().unwrap()]);
    assert_fails_with(&o, "expected [rows, 64]");
}

#[test]
fn resume_continues_exactly_where_training_stopped() {
    let (full, half, resumed) = (
        tmp("full.safetensors"),
        tmp("half.safetensors"),
        tmp("resumed.safetensors"),
    );
    let common = [
        "--policy",
        "mixed_float16",
        "--hidden",
        "24",
        "--seed",
        "4",
        "--batch-size",
        "64",
    ];
    let run = |extra: &[&str]| {
        let mut args = vec!["train"];
        args.extend_from_slice(extra);
        let o = mixprec(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        o
    };
    run(&[
        &common[..],
        &["--epochs", "4", "--save", full.to_str().unwrap()],
    ]
    .concat());
    run(&[
        &common[..],
        &["--epochs", "2", "--save", half.to_str().unwrap()],
    ]
    .concat());
    let o = run(&[
        "--resume",
        half.to_str().unwrap(),
        "--epochs",
        "4",
        "--save",
        resumed.to_str().unwrap(),
    ]);
    assert!(stdout(&o).contains("after epoch 2"), "{}", stdout(&o));
    let (a, b) = (
        mixprec::io::checkpoint::read(&full).unwrap(),
        mixprec::io::checkpoint::read(&resumed).unwrap(),
    );
    let names: Vec<&str> = a.tensors().iter().map(|t| t.name()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("optimizer.")),
        "optimizer state saved: {names:?}"
    );
    assert_eq!(
        names,
        b.tensors().iter().map(|t| t.name()).collect::<Vec<_>>()
    );
    for (x, y) in a.tensors().iter().zip(b.tensors()) {
        assert_eq!(
            x.bytes(),
            y.bytes(),
            "tensor {} differs after resuming",
            x.name()
        );
    }
    assert_eq!(a.meta().iterations, b.meta().iterations);
    assert_eq!(a.meta().loss_scale, b.meta().loss_scale);

    // Resuming to an epoch count already reached is an error that says so.
    let o = mixprec(&["train", "--resume", half.to_str().unwrap(), "--epochs", "2"]);
    assert_fails_with(&o, "has done 2 epochs");
    let o = mixprec(&[
        "train",
        "--resume",
        half.to_str().unwrap(),
        "--epochs",
        "3",
        "--policy",
        "float32",
    ]);
    assert_fails_with(&o, "was trained in mixed_float16");
}
