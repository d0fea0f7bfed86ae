//! End-to-end tests of the `mixprec` binary: each command on small inputs, and each kind of bad
//! input giving a one-line error, a non-zero exit code and no file written.

mod files;
use files::{gzip, idx};

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

mod cli_common;
use cli_common::{mixprec, stderr, stdout};

fn tmp(name: &str) -> PathBuf {
    cli_common::tmp_in("cli", name)
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
    assert_fails_with(&mixprec(&["train", "--lr=-1"]), "must be greater than 0");
    assert_fails_with(
        &mixprec(&["train", "--hidden", "128,0"]),
        "width \"0\" must be at least 1",
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

/// Runs the binary with stdout a pipe whose read end is closed before the binary starts, so its
/// first write fails with EPIPE whatever the timing.
fn run_with_closed_stdout(args: &[&str]) -> Output {
    let (reader, writer) = std::io::pipe().expect("a pipe");
    drop(reader);
    Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args(args)
        .env_remove("MIXPREC_POLICY")
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs")
}

fn run_with_full_stdout(args: &[&str]) -> Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full exists");
    Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args(args)
        .env_remove("MIXPREC_POLICY")
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs")
}

const TINY_RUNS: &[&[&str]] = &[
    &["info"],
    &["train", "--epochs", "1", "--hidden", "4"],
    &[
        "compare",
        "--policies",
        "float32,bfloat16",
        "--epochs",
        "1",
        "--hidden",
        "4",
    ],
    &[
        "bench",
        "--shape",
        "4x8x4",
        "--policies",
        "bfloat16",
        "--seconds",
        "0.01",
    ],
];

#[test]
fn closed_stdout_ends_quietly_with_status_0() {
    for args in TINY_RUNS {
        let o = run_with_closed_stdout(args);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{args:?}: {:?} {}",
            o.status,
            stderr(&o)
        );
        assert!(stderr(&o).is_empty(), "{args:?}: {}", stderr(&o));
    }
}

/// The reader going away must not cost the run its outputs: `train --save … | head -1` still
/// writes the checkpoint and the plot, and exits 0 (the review of issue 10 found both lost).
#[test]
fn closed_stdout_still_writes_save_and_plot() {
    let (save, plot) = (tmp("closed-pipe.safetensors"), tmp("closed-pipe.svg"));
    let _ = std::fs::remove_file(&save);
    let _ = std::fs::remove_file(&plot);
    let o = run_with_closed_stdout(&[
        "train",
        "--epochs",
        "2",
        "--hidden",
        "4",
        "--save",
        save.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let inspected = mixprec(&["inspect", save.to_str().unwrap()]);
    assert!(inspected.status.success(), "{}", stderr(&inspected));
    let o = run_with_closed_stdout(&[
        "compare",
        "--policies",
        "float32",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(std::fs::metadata(&plot).unwrap().len() > 0);
}

#[test]
fn full_stdout_is_a_one_line_error_and_status_1() {
    for args in TINY_RUNS {
        let o = run_with_full_stdout(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.starts_with("error: cannot write to standard output: No space left on device"),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
}

#[test]
fn bench_seconds_beyond_an_hour_or_not_positive_are_refused() {
    for (v, needle) in [
        ("1e30", "must be at most 3600 seconds"),
        ("1e19", "must be at most 3600 seconds"),
        ("3601", "must be at most 3600 seconds"),
        ("inf", "must be at most 3600 seconds"),
        ("0", "must be greater than 0"),
        (
            "-1",
            "invalid value '-1' for '--seconds <SECONDS>': must be greater than 0",
        ),
        ("NaN", "must be a number in (0, 3600]"),
    ] {
        assert_fails_with(&mixprec(&["bench", "--seconds", v]), needle);
    }
}

#[test]
fn bench_shape_beyond_the_memory_limit_is_refused_before_allocating() {
    let o = mixprec(&["bench", "--shape", "1000000x1000000x1000000"]);
    assert_fails_with(
        &o,
        "'1000000x1000000x1000000' for '--shape <SHAPES>': needs about 50.9 TiB",
    );
    assert_fails_with(&o, "the limit is 16.0 GiB");
    assert_fails_with(
        &mixprec(&["bench", "--shape", "8x16777217x8"]),
        "IN \"16777217\" must be at most 16777216",
    );
    assert_fails_with(
        &mixprec(&["bench", "--shape", "0x8x8"]),
        "BATCH \"0\" must be at least 1",
    );
}

#[test]
fn hidden_widths_beyond_the_memory_limit_are_refused_before_allocating() {
    assert_fails_with(
        &mixprec(&["train", "--hidden", "100000000"]),
        "width \"100000000\" must be at most 16777216",
    );
    let o = mixprec(&["train", "--hidden", "1000000,1000000"]);
    assert_fails_with(&o, "invalid --hidden: an MLP 64-1000000-1000000-10");
    assert_fails_with(&o, "needs about 25.5 TiB (the limit is 16.0 GiB");
    assert!(stdout(&o).is_empty(), "no training: {}", stdout(&o));
}

#[test]
fn negative_numbers_are_range_errors_not_unknown_arguments() {
    for (args, needle) in [
        (&["train", "--epochs", "-1"][..], "invalid value '-1' for '--epochs <EPOCHS>': must be at least 1"),
        (&["train", "--lr", "-0.1"], "invalid value '-0.1' for '--lr <LR>': must be greater than 0"),
        (&["train", "--batch-size", "-5"], "invalid value '-5' for '--batch-size <BATCH_SIZE>': must be at least 1"),
        (&["train", "--seed", "-1"], "invalid value '-1' for '--seed <SEED>': must be at least 0"),
        (&["train", "--test-split", "-0.5"], "invalid value '-0.5' for '--test-split <TEST_SPLIT>': must be a fraction between 0 and 1"),
        (&["train", "--hidden", "-5"], "invalid value '-5' for '--hidden <HIDDEN>': width \"-5\" must be at least 1"),
        (&["compare", "--epochs", "-3"], "invalid value '-3' for '--epochs <EPOCHS>': must be at least 1"),
        (&["bench", "--seconds", "-1"], "invalid value '-1' for '--seconds <SECONDS>': must be greater than 0"),
        (&["predict", "--model", "m", "--show", "-1"], "invalid value '-1' for '--show <SHOW>': must be at least 0"),
        (&["train", "--label-column", "-1"], "invalid value '-1' for '--label-column <LABEL_COLUMN>'"),
    ] {
        let o = mixprec(args);
        assert_fails_with(&o, needle);
        assert!(!stderr(&o).contains("unexpected argument"), "{}", stderr(&o));
    }
}

#[test]
fn counts_and_rates_beyond_their_limits_name_the_limit() {
    for (args, needle) in [
        (
            &["train", "--epochs", "1000001"][..],
            "must be at most 1000000",
        ),
        (
            &["train", "--batch-size", "4294967296"],
            "must be at most 1048576",
        ),
        (&["train", "--lr", "inf"], "must be at most 10"),
        (&["train", "--lr", "NaN"], "must be a number in (0, 10]"),
        (&["train", "--test-split", "NaN"], "between 0 and 1"),
        (
            &["train", "--seed", "18446744073709551616"],
            "must be at most 18446744073709551615",
        ),
        (
            &["train", "--epochs", "1.5"],
            "must be a whole number from 1 to 1000000",
        ),
    ] {
        assert_fails_with(&mixprec(args), needle);
    }
}

#[test]
fn data_format_comes_from_the_content_not_the_name() {
    let dir = tmp("idxdir");
    std::fs::create_dir_all(&dir).unwrap();
    let images = idx(0x803, &[6, 2, 2], &(0..24).collect::<Vec<u8>>());
    let labels = idx(0x801, &[6], &[0, 1, 0, 1, 0, 1]);
    let (img, lab, gz, csv) = (
        dir.join("images.ubyte"),
        dir.join("labels.ubyte"),
        dir.join("images.csv"),
        dir.join("ok.csv"),
    );
    std::fs::write(&img, &images).unwrap();
    std::fs::write(&lab, &labels).unwrap();
    std::fs::write(&gz, gzip(&images)).unwrap();
    std::fs::write(
        &csv,
        "0.5,1,0\n0.2,0.3,1\n0.1,0.1,0\n0.4,0.4,1\n0.5,0.5,0\n",
    )
    .unwrap();
    let train = |data: &std::path::Path, labels: Option<&std::path::Path>| {
        let mut args = vec!["train", "--epochs", "1", "--hidden", "4", "--data"];
        args.push(data.to_str().unwrap());
        if let Some(l) = labels {
            args.extend(["--labels", l.to_str().unwrap()]);
        }
        mixprec(&args)
    };
    for o in [train(&img, Some(&lab)), train(&gz, Some(&lab))] {
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("MLP 4-4-2"), "{}", stdout(&o));
    }
    // A CSV under a directory whose name contains "idx" is still a CSV.
    let o = train(&csv, None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("MLP 2-4-2"), "{}", stdout(&o));
    assert_fails_with(&train(&img, None), "invalid --labels: missing, but");
    assert_fails_with(
        &train(&csv, Some(&lab)),
        "is a CSV file (--labels only with IDX images",
    );
}

#[test]
fn predict_label_beyond_the_models_classes_names_file_row_and_classes() {
    let model = tmp("two-class.safetensors");
    let (train_csv, other) = (tmp("two-class.csv"), tmp("five-class.csv"));
    std::fs::write(
        &train_csv,
        "0.5,1,0\n0.2,0.3,1\n0.1,0.1,0\n0.4,0.4,1\n0.5,0.5,0\n",
    )
    .unwrap();
    std::fs::write(&other, "0.5,1,0\n0.2,0.3,4\n").unwrap();
    let (m, t) = (model.to_str().unwrap(), train_csv.to_str().unwrap());
    let o = mixprec(&[
        "train", "--data", t, "--epochs", "1", "--hidden", "4", "--save", m,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = mixprec(&["predict", "--model", m, "--data", other.to_str().unwrap()]);
    assert_fails_with(&o, "five-class.csv row 2 has label 4, but model");
    assert_fails_with(&o, "has 2 classes (labels 0..=1)");
}

#[test]
fn csv_label_too_large_for_a_class_count_is_refused_before_building() {
    let csv = tmp("id-column.csv");
    std::fs::write(&csv, "0.5,1,4294967295\n0.2,0.3,1\n0.1,0.1,0\n0.4,0.4,1\n").unwrap();
    let o = mixprec(&["train", "--data", csv.to_str().unwrap(), "--epochs", "1"]);
    // The CLI's class-count check, or the CSV loader's own label limit: either names the label
    // and points at --label-column, and nothing is built.
    assert_fails_with(&o, "4294967295");
    assert_fails_with(&o, "--label-column");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
}

/// 200 rows of 4 features, every fifth row holding 1e5 (finite in f32, beyond float16's 65504).
fn overflowing_csv(name: &str) -> PathBuf {
    let mut text = String::new();
    for i in 0..200u32 {
        let c = i % 2;
        let x: Vec<String> = (0..4u32)
            .map(|j| {
                if i % 5 == 0 && j == 0 {
                    "1e5".to_string()
                } else {
                    format!(
                        "{:.3}",
                        f64::from((i * 7 + j * 13) % 100) / 100.0 + f64::from(c)
                    )
                }
            })
            .collect();
        text.push_str(&format!("{},{c}\n", x.join(",")));
    }
    let path = tmp(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn diverged_float16_run_fails_and_keeps_the_existing_checkpoint() {
    let csv = overflowing_csv("overflow-f16.csv");
    let save = tmp("keep-on-divergence.safetensors");
    let o = mixprec(&[
        "train",
        "--epochs",
        "1",
        "--hidden",
        "4",
        "--save",
        save.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = std::fs::read(&save).unwrap();
    let o = mixprec(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--policy",
        "mixed_float16",
        "--epochs",
        "3",
        "--hidden",
        "8",
        "--save",
        save.to_str().unwrap(),
    ]);
    assert_fails_with(&o, "training diverged at epoch 1");
    assert_fails_with(&o, "float16's range");
    assert_fails_with(&o, "learning rate");
    assert!(!stdout(&o).contains("saved"), "{}", stdout(&o));
    assert_eq!(
        std::fs::read(&save).unwrap(),
        before,
        "the checkpoint changed"
    );

    let o = mixprec(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--policy",
        "float32",
        "--epochs",
        "3",
        "--hidden",
        "8",
    ]);
    assert!(
        o.status.success(),
        "float32 trains on the same file: {}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("test accuracy"), "{}", stdout(&o));
}

#[test]
fn continue_on_divergence_saves_with_a_warning_naming_the_epochs() {
    let csv = overflowing_csv("overflow-continue.csv");
    let save = tmp("diverged.safetensors");
    let _ = std::fs::remove_file(&save);
    let o = mixprec(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--policy",
        "mixed_float16",
        "--epochs",
        "2",
        "--hidden",
        "8",
        "--save",
        save.to_str().unwrap(),
        "--continue-on-divergence",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("although training diverged in epochs 1, 2 (--continue-on-divergence)"),
        "{}",
        stderr(&o)
    );
    assert!(
        stdout(&o).contains("diverged        in epochs 1, 2"),
        "{}",
        stdout(&o)
    );
    // What was saved can be read back, and every weight is finite.
    let ckpt = mixprec::io::checkpoint::read(&save).unwrap();
    let o = mixprec(&["inspect", save.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    for t in ckpt.tensors() {
        assert_eq!(t.dtype(), mixprec::DType::Float32, "{}", t.name());
        let finite = t
            .bytes()
            .chunks_exact(4)
            .all(|b| f32::from_le_bytes(b.try_into().unwrap()).is_finite());
        assert!(finite, "tensor {} holds NaN or inf", t.name());
    }
}

#[test]
fn compare_stops_at_a_diverged_policy_unless_asked_to_continue() {
    let csv = overflowing_csv("overflow-compare.csv");
    let data = csv.to_str().unwrap();
    let args = [
        "compare",
        "--data",
        data,
        "--policies",
        "float32,mixed_float16",
        "--epochs",
        "1",
        "--hidden",
        "8",
    ];
    let o = mixprec(&args);
    assert_fails_with(&o, "compare stopped at policy mixed_float16:");
    assert_fails_with(&o, "training diverged at epoch 1");
    let o = mixprec(&[&args[..], &["--continue-on-divergence"]].concat());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: mixed_float16 diverged in epochs 1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn more_classes_than_rows_warns_about_the_label_column() {
    let csv = tmp("million.csv");
    std::fs::write(
        &csv,
        "0.5,1,1000\n0.2,0.3,1\n0.1,0.1,0\n0.4,0.4,1\n0.3,0.3,0\n",
    )
    .unwrap();
    let o = mixprec(&[
        "train",
        "--data",
        csv.to_str().unwrap(),
        "--epochs",
        "1",
        "--hidden",
        "4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("has labels up to 1000 (1001 classes, an output layer that wide) but only 5 rows; is --label-column the label column?"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn batch_size_beyond_the_data_is_budgeted_as_one_batch_of_all_rows() {
    // 2^20 rows of 2,074 units would be 26 GiB of activations, but digits has 1,438 training rows.
    let o = mixprec(&[
        "train",
        "--batch-size",
        "1048576",
        "--hidden",
        "2000",
        "--epochs",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("test accuracy"), "{}", stdout(&o));
}
