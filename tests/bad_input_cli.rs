//! A bad-input corpus for the `mixprec` binary: one line per case in [`CASES`], over every
//! command (train, compare, bench, predict, inspect, info) and flag. Each case asserts that the
//! process
//!
//! - did not panic (no "panicked" on stderr) and was not killed by a signal,
//! - exited non-zero with a message on stderr containing the case's needle (or, for a closed
//!   stdout, exited 0 quietly),
//! - left every `--save` / `--plot` path as it was (an existing file byte-identical, a missing
//!   one still missing),
//! - left no temporary file (`*.tmp-*`) in the fixture or output directory.
//!
//! Fixtures are tiny (a 10-row CSV, 2x2 IDX images) and every training case runs one epoch, so
//! the corpus stays within seconds in a debug build. `{d}` in an argument is the fixture
//! directory.

mod files;
use files::{gzip, idx};

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stdout {
    /// A pipe the test reads.
    Piped,
    /// A pipe whose read end is closed before the program starts: exit 0, nothing on stderr.
    Closed,
    /// `/dev/full`.
    Full,
}

#[derive(Debug)]
struct Case {
    args: &'static [&'static str],
    /// What stderr must contain (ignored for [`Stdout::Closed`]).
    needle: &'static str,
    stdout: Stdout,
    env: Option<(&'static str, &'static str)>,
}

/// `bad!("needle", "arg" "arg" ...)`: the command must fail with `needle` on stderr.
macro_rules! bad {
    ($needle:literal, $($arg:literal)+) => {
        Case { args: &[$($arg),+], needle: $needle, stdout: Stdout::Piped, env: None }
    };
}

/// `env!(("KEY", "value"), "needle", "arg" ...)`: as `bad!`, with an environment variable set.
macro_rules! bad_env {
    ($env:expr, $needle:literal, $($arg:literal)+) => {
        Case { args: &[$($arg),+], needle: $needle, stdout: Stdout::Piped, env: Some($env) }
    };
}

/// `closed!("arg" ...)`: with stdout a closed pipe, the command ends quietly with status 0.
macro_rules! closed {
    ($($arg:literal)+) => {
        Case { args: &[$($arg),+], needle: "", stdout: Stdout::Closed, env: None }
    };
}

/// `full!("arg" ...)`: with stdout on `/dev/full`, the command fails saying so.
macro_rules! full {
    ($($arg:literal)+) => {
        Case {
            args: &[$($arg),+],
            needle: "error: cannot write to standard output: No space left on device",
            stdout: Stdout::Full,
            env: None,
        }
    };
}

const CASES: &[Case] = &[
    // --- command line shape -------------------------------------------------------------
    bad!("unrecognized subcommand 'fly'", "fly"),
    bad!("unexpected argument '--epoch'", "train" "--epoch" "3"),
    bad!("--model <MODEL>", "predict"),
    bad!("<FILE>", "inspect"),
    bad!("invalid value 'rmsprop' for '--optimizer", "train" "--optimizer" "rmsprop"),
    // --- policies --------------------------------------------------------------------------
    bad!("unknown policy \"mixed_fp16\" (expected one of: float32", "train" "--policy" "mixed_fp16"),
    bad!("unknown policy \"fp16\"", "train" "--policy" "fp16"),
    bad!("unknown policy \"Float32\"", "train" "--policy" "Float32"),
    bad!("unknown policy \"\"", "train" "--policy" ""),
    bad!("unknown policy \"mixed float16\"", "train" "--policy" "mixed float16"),
    bad!("unknown policy \"mixed_fp16\"", "compare" "--policies" "float32,mixed_fp16"),
    bad!("unknown policy \"bf16\"", "bench" "--policies" "bf16"),
    bad!("unknown policy \"half\"", "predict" "--model" "{d}/valid.safetensors" "--data" "{d}/tiny.csv" "--policy" "half"),
    bad_env!(("MIXPREC_POLICY", "mixed_f16"), "unknown policy \"mixed_f16\"", "train" "--epochs" "1"),
    // --- numeric flags: zero, negative, huge, NaN, not a number ----------------------------
    bad!("'--epochs <EPOCHS>': must be at least 1", "train" "--epochs" "0"),
    bad!("'-1' for '--epochs <EPOCHS>': must be at least 1", "train" "--epochs" "-1"),
    bad!("must be at most 1000000", "train" "--epochs" "4294967296"),
    bad!("must be a whole number from 1 to 1000000", "train" "--epochs" "1.5"),
    bad!("must be a whole number from 1 to 1000000", "compare" "--epochs" "NaN"),
    bad!("'--batch-size <BATCH_SIZE>': must be at least 1", "train" "--batch-size" "0"),
    bad!("'-5' for '--batch-size <BATCH_SIZE>': must be at least 1", "train" "--batch-size" "-5"),
    bad!("must be at most 1048576", "train" "--batch-size" "4000000000"),
    bad!("'--lr <LR>': must be greater than 0", "train" "--lr" "0"),
    bad!("'-0.1' for '--lr <LR>': must be greater than 0", "train" "--lr" "-0.1"),
    bad!("'--lr <LR>': must be a number in (0, 10]", "train" "--lr" "NaN"),
    bad!("'--lr <LR>': must be at most 10", "train" "--lr" "inf"),
    bad!("'--lr <LR>': must be at most 10", "compare" "--lr" "1e39"),
    bad!("'--lr <LR>': must be a number in (0, 10]", "train" "--lr" "fast"),
    bad!("'--test-split <TEST_SPLIT>': must be a fraction between 0 and 1", "train" "--test-split" "0"),
    bad!("'--test-split <TEST_SPLIT>': must be a fraction between 0 and 1", "train" "--test-split" "1"),
    bad!("'-0.5' for '--test-split <TEST_SPLIT>'", "train" "--test-split" "-0.5"),
    bad!("'--test-split <TEST_SPLIT>': must be a fraction between 0 and 1", "train" "--test-split" "NaN"),
    bad!("'-1' for '--seed <SEED>': must be at least 0", "train" "--seed" "-1"),
    bad!("'--seed <SEED>': must be at most 18446744073709551615", "train" "--seed" "18446744073709551616"),
    bad!("'--seed <SEED>': must be a whole number", "compare" "--seed" "abc"),
    bad!("'-1' for '--show <SHOW>': must be at least 0", "predict" "--model" "{d}/valid.safetensors" "--show" "-1"),
    bad!("'--show <SHOW>': must be a whole number", "predict" "--model" "{d}/valid.safetensors" "--show" "ten"),
    bad!("'--seconds <SECONDS>': must be greater than 0", "bench" "--seconds" "0"),
    bad!("'-1' for '--seconds <SECONDS>': must be greater than 0", "bench" "--seconds" "-1"),
    bad!("'--seconds <SECONDS>': must be at most 3600 seconds", "bench" "--seconds" "1e30"),
    bad!("'--seconds <SECONDS>': must be at most 3600 seconds", "bench" "--seconds" "1e19"),
    bad!("'--seconds <SECONDS>': must be a number in (0, 3600]", "bench" "--seconds" "NaN"),
    bad!("'--seconds <SECONDS>': is positive but rounds to 0 in f32", "bench" "--seconds" "1e-300"),
    bad!("'--lr <LR>': is positive but rounds to 0 in f32", "train" "--lr" "1e-50"),
    bad!("'--seconds <SECONDS>': must be at most 3600 seconds", "bench" "--seconds" "inf"),
    bad!("BATCH \"0\" must be at least 1", "bench" "--shape" "0x8x8"),
    bad!("is not BATCHxINxOUT (expected three sizes", "bench" "--shape" "8x16"),
    bad!("is not BATCHxINxOUT (expected three sizes", "bench" "--shape" "1x1x1x1"),
    bad!("OUT \"a\" must be a whole number", "bench" "--shape" "8x8xa"),
    bad!("needs about 50.9 TiB for its inputs, outputs, weights and gradients; the limit is 16.0 GiB", "bench" "--shape" "1000000x1000000x1000000"),
    bad!("IN \"16777217\" must be at most 16777216", "bench" "--shape" "1x16777217x1"),
    bad!("needs about", "bench" "--shape" "8x8x8,100000x100000x1000"),
    bad!("width \"0\" must be at least 1", "train" "--hidden" "0"),
    bad!("width \"-5\" must be at least 1", "train" "--hidden" "-5"),
    bad!("width \"100000000\" must be at most 16777216", "train" "--hidden" "100000000"),
    bad!("width \"a\" must be a whole number", "compare" "--hidden" "32,a"),
    bad!("65 hidden layers; at most 64", "train" "--hidden" "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1"),
    bad!("invalid --hidden: an MLP 64-1000000-1000000-10", "train" "--hidden" "1000000,1000000" "--save" "{d}/out/new.safetensors"),
    bad!("the limit is 16.0 GiB", "compare" "--hidden" "16777216,4096"),
    bad!("'-1' for '--label-column <LABEL_COLUMN>'", "train" "--data" "{d}/tiny.csv" "--label-column" "-1"),
    bad!("must be last, first, or a 0-based column index", "train" "--data" "{d}/tiny.csv" "--label-column" "middle"),
    bad!("tiny.csv line 1: label column 7 but only 3 columns", "train" "--data" "{d}/tiny.csv" "--label-column" "7" "--epochs" "1"),
    // --- data files ------------------------------------------------------------------------
    bad!("cannot access {d}/missing.csv", "train" "--data" "{d}/missing.csv"),
    bad!("cannot access {d}/tiny.csv/under-a-file.csv", "train" "--data" "{d}/tiny.csv/under-a-file.csv"),
    bad!("cannot access {d}/adir: is a directory (expected a file)", "train" "--data" "{d}/adir"),
    bad!("cannot access {d}/adir: is a directory (expected a file)", "predict" "--model" "{d}/valid.safetensors" "--data" "{d}/adir"),
    bad!("cannot access {d}/fifo: is not a regular file but a FIFO", "train" "--data" "{d}/fifo"),
    bad!("cannot access {d}/fifo: is not a regular file but a FIFO", "train" "--data" "{d}/images.ubyte" "--labels" "{d}/fifo"),
    bad!("cannot access {d}/fifo: is not a regular file but a FIFO", "predict" "--model" "{d}/fifo"),
    bad!("cannot access {d}/fifo: is not a regular file but a FIFO", "inspect" "{d}/fifo"),
    bad!("cannot access {d}/fifo: is not a regular file but a FIFO", "train" "--resume" "{d}/fifo" "--epochs" "3"),
    bad!("cannot access /dev/null: is not a regular file", "inspect" "/dev/null"),
    bad!("{d}/empty.csv has no data rows", "train" "--data" "{d}/empty.csv"),
    bad!("{d}/blank.csv has no data rows", "compare" "--data" "{d}/blank.csv"),
    bad!("not UTF-8 text", "train" "--data" "{d}/binary.dat"),
    bad!("{d}/ragged.csv line 2: 2 columns, expected 3", "train" "--data" "{d}/ragged.csv"),
    bad!("{d}/truncated.csv line 3", "train" "--data" "{d}/truncated.csv"),
    bad!("{d}/nonnum.csv line 1", "train" "--data" "{d}/nonnum.csv"),
    bad!("{d}/header.csv line 1", "train" "--data" "{d}/header.csv"),
    bad!("{d}/nan.csv line 2: column 1 value \"NaN\" is not a finite number", "train" "--data" "{d}/nan.csv"),
    bad!("{d}/inf.csv line 2: column 1 value \"inf\" is not a finite number", "train" "--data" "{d}/inf.csv"),
    bad!("{d}/neginf.csv line 1: column 2 value \"-inf\" is not a finite number", "compare" "--data" "{d}/neginf.csv"),
    bad!("{d}/huge-label.csv line 1, column 3: label \"4294967295\" is not a class index", "train" "--data" "{d}/huge-label.csv" "--save" "{d}/out/existing.safetensors"),
    bad!("{d}/overflow-label.csv line 1", "train" "--data" "{d}/overflow-label.csv"),
    bad!("{d}/neg-label.csv line 1, column 3: label \"-1\" is not a class index", "train" "--data" "{d}/neg-label.csv"),
    bad!("{d}/float-label.csv line 1, column 3: label \"1.5\" is not a class index", "train" "--data" "{d}/float-label.csv"),
    bad!("0.2 of 1 rows (between 0 and 1, leaving at least one row on each side)", "train" "--data" "{d}/one-row.csv"),
    bad!("{d}/truncated.csv.gz is not valid gzip data", "train" "--data" "{d}/truncated.csv.gz"),
    bad!("{d}/garbage.gz is not valid gzip data", "train" "--data" "{d}/garbage.gz"),
    bad!("is a CSV file (--labels only with IDX images", "train" "--data" "{d}/tiny.csv" "--labels" "{d}/labels.idx"),
    // --- IDX files ---------------------------------------------------------------------------
    bad!("invalid --labels: missing, but {d}/images.ubyte is an IDX images file", "train" "--data" "{d}/images.ubyte"),
    bad!("IDX file {d}/bad-magic.idx: magic number 0x00000807", "train" "--data" "{d}/bad-magic.idx" "--labels" "{d}/labels.idx"),
    bad!("IDX file {d}/wrong-count.idx", "train" "--data" "{d}/wrong-count.idx" "--labels" "{d}/labels.idx"),
    bad!("IDX file {d}/short-header.idx", "train" "--data" "{d}/short-header.idx" "--labels" "{d}/labels.idx"),
    bad!("IDX file {d}/huge-count.idx", "train" "--data" "{d}/huge-count.idx" "--labels" "{d}/labels.idx"),
    bad!("five-labels.idx: 5 labels (expected 6 labels, one per image", "train" "--data" "{d}/images.ubyte" "--labels" "{d}/five-labels.idx"),
    bad!("IDX file {d}/images.ubyte: magic number 0x00000803", "train" "--data" "{d}/images.ubyte" "--labels" "{d}/images.ubyte"),
    bad!("IDX file {d}/labels.idx: magic number 0x00000801", "train" "--data" "{d}/labels.idx" "--labels" "{d}/labels.idx"),
    bad!("cannot access {d}/missing.idx", "train" "--data" "{d}/images.ubyte" "--labels" "{d}/missing.idx"),
    bad!("{d}/truncated.idx.gz is not valid gzip data", "train" "--data" "{d}/truncated.idx.gz" "--labels" "{d}/labels.idx"),
    // --- checkpoints -------------------------------------------------------------------------
    bad!("cannot access {d}/missing.safetensors", "inspect" "{d}/missing.safetensors"),
    bad!("cannot access {d}/adir: is a directory (expected a file)", "inspect" "{d}/adir"),
    bad!("{d}/empty.safetensors is not a valid safetensors checkpoint", "inspect" "{d}/empty.safetensors"),
    bad!("{d}/truncated.safetensors is not a valid safetensors checkpoint", "inspect" "{d}/truncated.safetensors"),
    bad!("{d}/truncated.safetensors is not a valid safetensors checkpoint", "predict" "--model" "{d}/truncated.safetensors"),
    bad!("{d}/random.safetensors is not a valid safetensors checkpoint", "inspect" "{d}/random.safetensors"),
    bad!("{d}/random.safetensors is not a valid safetensors checkpoint", "train" "--resume" "{d}/random.safetensors" "--save" "{d}/out/existing.safetensors"),
    bad!("{d}/huge-header.safetensors is not a valid safetensors checkpoint", "predict" "--model" "{d}/huge-header.safetensors"),
    bad!("{d}/not-json.safetensors is not a valid safetensors checkpoint", "inspect" "{d}/not-json.safetensors"),
    bad!("\"mixprec.policy\" holds", "inspect" "{d}/unknown-policy.safetensors"),
    bad!("unknown policy \"mixed_fp16\"", "inspect" "{d}/unknown-policy.safetensors"),
    bad!("unknown policy \"mixed_fp16\"", "predict" "--model" "{d}/unknown-policy.safetensors" "--data" "{d}/tiny.csv"),
    bad!("\"mixprec.policy\" holds \"{\\\"module\\\":\" (expected a Keras DTypePolicy JSON config): invalid policy config: EOF", "inspect" "{d}/policy-bad-json.safetensors"),
    bad!("\"mixprec.policy\" is missing", "inspect" "{d}/no-policy.safetensors"),
    bad!("{d}/arch-bad-json.safetensors: metadata key \"mixprec.architecture\" holds", "predict" "--model" "{d}/arch-bad-json.safetensors" "--data" "{d}/tiny.csv"),
    bad!("{d}/arch-bad-json.safetensors: metadata key \"mixprec.architecture\" holds", "train" "--resume" "{d}/arch-bad-json.safetensors" "--epochs" "3"),
    bad!("arch-huge-hidden.safetensors's architecture, an MLP 2-100000000000-2, needs about 193.5 TiB", "predict" "--model" "{d}/arch-huge-hidden.safetensors" "--data" "{d}/tiny.csv"),
    bad!("invalid --resume: an MLP 2-100000000000-2", "train" "--resume" "{d}/arch-huge-hidden.safetensors" "--epochs" "3" "--save" "{d}/out/existing.safetensors"),
    bad!("invalid --data: 5000 rows of {d}/rows5000.csv through {d}/arch-many-outputs.safetensors's 1000000 outputs needs about 18.6 GiB", "predict" "--model" "{d}/arch-many-outputs.safetensors" "--data" "{d}/rows5000.csv"),
    bad!("tensor \"0.kernel\" has shape [2, 4], the model expects [3, 4]", "predict" "--model" "{d}/arch-wrong-inputs.safetensors" "--data" "{d}/wide.csv"),
    bad!("\"mixprec.loss_scale\"", "inspect" "{d}/scale-zero.safetensors"),
    bad!("\"mixprec.loss_scale\"", "predict" "--model" "{d}/scale-zero.safetensors" "--data" "{d}/tiny.csv"),
    bad!("\"mixprec.loss_scale\"", "train" "--resume" "{d}/scale-zero.safetensors" "--epochs" "3"),
    bad!("\"mixprec.loss_scale\"", "inspect" "{d}/scale-nan.safetensors"),
    bad!("\"mixprec.loss_scale\"", "inspect" "{d}/scale-negative.safetensors"),
    bad!("\"mixprec.iterations\"", "inspect" "{d}/iterations-negative.safetensors"),
    bad!("mixprec.train", "train" "--resume" "{d}/train-bad-json.safetensors" "--epochs" "3"),
    bad!("has no mixprec.train metadata", "train" "--resume" "{d}/no-train.safetensors" "--epochs" "3"),
    bad!("has done 1 epochs", "train" "--resume" "{d}/valid.safetensors" "--epochs" "1"),
    bad!("was trained in float32", "train" "--resume" "{d}/valid.safetensors" "--epochs" "2" "--policy" "bfloat16"),
    bad!("expected [rows, 2]", "predict" "--model" "{d}/valid.safetensors" "--data" "{d}/wide.csv"),
    bad!("row 2 has label 4, but model {d}/valid.safetensors has 2 classes (labels 0..=1)", "predict" "--model" "{d}/valid.safetensors" "--data" "{d}/five-class.csv"),
    bad!("five-class.csv row 2 has label 4, but model {d}/other-data.safetensors has 2 classes (labels 0..=1)", "train" "--resume" "{d}/other-data.safetensors" "--epochs" "2" "--save" "{d}/out/existing.safetensors"),
    // --- divergence (inputs beyond float16's range) ------------------------------------------
    bad!("training diverged at epoch 1", "train" "--data" "{d}/overflow.csv" "--policy" "mixed_float16" "--epochs" "2" "--save" "{d}/out/existing.safetensors"),
    bad!("beyond float16's range", "train" "--data" "{d}/overflow.csv" "--policy" "float16" "--epochs" "1" "--save" "{d}/out/new.safetensors"),
    bad!("compare stopped at policy mixed_float16:", "compare" "--data" "{d}/overflow.csv" "--policies" "mixed_float16" "--epochs" "1" "--plot" "{d}/out/existing.svg"),
    // --- --save and --plot -------------------------------------------------------------------
    bad!("directory {d}/missing-dir does not exist", "train" "--data" "{d}/tiny.csv" "--epochs" "1" "--save" "{d}/missing-dir/m.safetensors"),
    bad!("{d}/adir is a directory", "train" "--data" "{d}/tiny.csv" "--epochs" "1" "--save" "{d}/adir"),
    bad!("{d}/nan.csv line 2: column 1 value \"NaN\" is not a finite number", "train" "--data" "{d}/nan.csv" "--save" "{d}/out/existing.safetensors"),
    bad!("ending in .svg or .png", "compare" "--data" "{d}/tiny.csv" "--epochs" "1" "--plot" "{d}/out/existing.txt"),
    bad!("ending in .svg or .png", "compare" "--data" "{d}/tiny.csv" "--epochs" "1" "--plot" "{d}/out/plot.jpg"),
    bad!("ending in .svg or .png", "compare" "--data" "{d}/tiny.csv" "--epochs" "1" "--plot" "{d}/out/plot"),
    bad!("directory {d}/missing-dir does not exist", "compare" "--data" "{d}/tiny.csv" "--epochs" "1" "--plot" "{d}/missing-dir/p.svg"),
    bad!("{d}/plotdir.svg is a directory", "compare" "--data" "{d}/tiny.csv" "--epochs" "1" "--plot" "{d}/plotdir.svg"),
    bad!("unknown policy", "compare" "--policies" "nope" "--plot" "{d}/out/existing.svg"),
    // --- closed and full stdout --------------------------------------------------------------
    closed!("info"),
    closed!("train" "--data" "{d}/tiny.csv" "--epochs" "1" "--hidden" "4"),
    closed!("compare" "--data" "{d}/tiny.csv" "--policies" "float32,bfloat16" "--epochs" "1" "--hidden" "4"),
    closed!("bench" "--shape" "4x8x4" "--policies" "bfloat16" "--seconds" "0.01"),
    closed!("inspect" "{d}/valid.safetensors"),
    closed!("predict" "--model" "{d}/valid.safetensors" "--data" "{d}/tiny.csv"),
    full!("info"),
    full!("train" "--data" "{d}/tiny.csv" "--epochs" "1" "--hidden" "4"),
    full!("compare" "--data" "{d}/tiny.csv" "--policies" "float32" "--epochs" "1" "--hidden" "4"),
    full!("bench" "--shape" "4x8x4" "--policies" "bfloat16" "--seconds" "0.01"),
    full!("inspect" "{d}/valid.safetensors"),
    full!("predict" "--model" "{d}/valid.safetensors" "--data" "{d}/tiny.csv"),
];

#[test]
fn corpus_has_at_least_90_cases() {
    assert!(CASES.len() >= 90, "{} cases", CASES.len());
}

#[test]
fn every_bad_input_is_a_clear_error_without_damage() {
    let dir = fixtures();
    let failures: Vec<String> = CASES
        .iter()
        .filter_map(|case| check(dir, case).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n\n")
    );
}

/// Runs one case and checks all its claims; `Err` describes every broken one.
fn check(dir: &Path, case: &Case) -> Result<(), String> {
    let d = dir.to_str().expect("a UTF-8 temp dir");
    let args: Vec<String> = case.args.iter().map(|a| a.replace("{d}", d)).collect();
    let needle = case.needle.replace("{d}", d);
    let guarded = output_paths(&args);
    let before: Vec<Snapshot> = guarded.iter().map(|p| Snapshot::of(p)).collect();
    let o = run(dir, case, &args);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    let mut broken = Vec::new();
    if err.contains("panicked") || signal(o.status).is_some() {
        broken.push(format!("panicked or killed ({:?})", o.status));
    }
    if case.stdout == Stdout::Closed {
        if o.status.code() != Some(0) || !err.is_empty() {
            broken.push("expected a quiet exit with status 0".to_string());
        }
    } else {
        if o.status.success() {
            broken.push("expected a non-zero exit".to_string());
        }
        if !err.contains(needle.as_str()) {
            broken.push(format!("stderr lacks {needle}"));
        }
    }
    for (path, was) in guarded.iter().zip(&before) {
        if Snapshot::of(path) != *was {
            broken.push(format!("{} was written or changed", path.display()));
        }
    }
    for leftover in temp_files(dir) {
        broken.push(format!("left a temp file {}", leftover.display()));
        let _ = std::fs::remove_file(&leftover);
    }
    if std::env::var_os("BAD_INPUT_CLI_SHOW").is_some() {
        eprintln!("{} => {}", args.join(" ").replace(d, "{d}"), err.trim_end());
    }
    if broken.is_empty() {
        return Ok(());
    }
    Err(format!(
        "mixprec {}\n  {}\n  exit {:?}\n  stderr: {}\n  stdout: {}",
        args.join(" "),
        broken.join("; "),
        o.status,
        err.trim_end(),
        out.lines().take(3).collect::<Vec<_>>().join(" | ")
    ))
}

fn run(dir: &Path, case: &Case, args: &[String]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mixprec"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("MIXPREC_POLICY")
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    if let Some((k, v)) = case.env {
        cmd.env(k, v);
    }
    match case.stdout {
        Stdout::Piped => {
            cmd.stdout(Stdio::piped());
        }
        Stdout::Closed => {
            let (reader, writer) = std::io::pipe().expect("a pipe");
            drop(reader);
            cmd.stdout(writer);
        }
        Stdout::Full => {
            let full = std::fs::OpenOptions::new()
                .write(true)
                .open("/dev/full")
                .expect("/dev/full");
            cmd.stdout(full);
        }
    }
    cmd.output().expect("the binary runs")
}

#[cfg(unix)]
fn signal(status: ExitStatus) -> Option<i32> {
    std::os::unix::process::ExitStatusExt::signal(&status)
}

#[cfg(not(unix))]
fn signal(_: ExitStatus) -> Option<i32> {
    None
}

/// The `--save` and `--plot` paths of a command line.
fn output_paths(args: &[String]) -> Vec<PathBuf> {
    args.windows(2)
        .filter(|w| w[0] == "--save" || w[0] == "--plot")
        .map(|w| PathBuf::from(&w[1]))
        .collect()
}

/// What is at a path: nothing, a directory, or a file's bytes.
#[derive(Debug, PartialEq, Eq)]
enum Snapshot {
    Missing,
    Dir,
    File(Vec<u8>),
}

impl Snapshot {
    fn of(path: &Path) -> Snapshot {
        if path.is_dir() {
            Snapshot::Dir
        } else {
            std::fs::read(path).map_or(Snapshot::Missing, Snapshot::File)
        }
    }
}

/// Temporary files (`.<name>.tmp-<pid>-<n>`, `<name>.tmp-<pid>.svg`, …) in the fixture and
/// output directories.
fn temp_files(dir: &Path) -> Vec<PathBuf> {
    [dir.to_path_buf(), dir.join("out")]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".tmp-") || n.ends_with(".tmp"))
        })
        .collect()
}

// --- fixtures --------------------------------------------------------------------------------

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bad_input_cli");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("out")).unwrap();
        std::fs::create_dir_all(dir.join("adir")).unwrap();
        std::fs::create_dir_all(dir.join("plotdir.svg")).unwrap();
        let fifo = Command::new("mkfifo").arg(dir.join("fifo")).status();
        assert!(fifo.is_ok_and(|s| s.success()), "mkfifo failed");
        write_data(&dir);
        write_idx(&dir);
        write_checkpoints(&dir);
        std::fs::write(dir.join("out/existing.txt"), "precious").unwrap();
        std::fs::write(dir.join("out/existing.svg"), "<svg>precious</svg>").unwrap();
        std::fs::copy(
            dir.join("valid.safetensors"),
            dir.join("out/existing.safetensors"),
        )
        .unwrap();
        dir
    })
}

const TINY: &str = "0.1,0.9,0\n0.8,0.2,1\n0.2,0.7,0\n0.9,0.1,1\n0.3,0.8,0\n\
                    0.7,0.3,1\n0.1,0.6,0\n0.6,0.2,1\n0.2,0.9,0\n0.9,0.3,1\n";

fn write_data(dir: &Path) {
    let files: &[(&str, &[u8])] = &[
        ("tiny.csv", TINY.as_bytes()),
        ("wide.csv", b"0.1,0.2,0.3,0\n0.4,0.5,0.6,1\n"),
        (
            "five-class.csv",
            b"0.1,0.9,0\n0.8,0.2,4\n0.2,0.7,0\n0.9,0.1,1\n0.3,0.8,0\n",
        ),
        ("empty.csv", b""),
        ("blank.csv", b"\n\n\n"),
        (
            "binary.dat",
            &[0xff, 0xfe, 0x80, 0x81, 0x00, 0x13, 0x37, 0xc3, 0x28],
        ),
        ("ragged.csv", b"0.5,1.0,0\n0.25,1\n"),
        ("truncated.csv", b"0.5,1.0,0\n0.2,0.3,1\n0.4,0."),
        ("nonnum.csv", b"0.5,abc,0\n0.2,0.3,1\n"),
        ("header.csv", b"x,y,label\n0.5,1,0\n0.2,0.3,1\n"),
        ("nan.csv", b"0.5,1.0,0\nNaN,0.25,1\n0.2,0.3,1\n"),
        ("inf.csv", b"0.5,1.0,0\ninf,0.25,1\n0.2,0.3,1\n"),
        ("neginf.csv", b"0.5,-inf,0\n0.3,0.25,1\n0.2,0.3,1\n"),
        (
            "huge-label.csv",
            b"0.5,1,4294967295\n0.2,0.3,1\n0.1,0.1,0\n0.4,0.4,1\n",
        ),
        (
            "overflow-label.csv",
            b"0.5,1,99999999999\n0.2,0.3,1\n0.1,0.1,0\n",
        ),
        ("neg-label.csv", b"0.5,1,-1\n0.2,0.3,1\n0.1,0.1,0\n"),
        ("float-label.csv", b"0.5,1,1.5\n0.2,0.3,1\n0.1,0.1,0\n"),
        ("one-row.csv", b"0.5,1,0\n"),
        (
            "garbage.gz",
            &[0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00],
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let overflow: String = (0..40)
        .map(|i| {
            let big = if i % 5 == 0 { "1e5" } else { "0.5" };
            format!("{big},0.{i},{}\n", i % 2)
        })
        .collect();
    std::fs::write(dir.join("overflow.csv"), overflow).unwrap();
    let rows5000: String = (0..5000)
        .map(|i| format!("0.{i},0.5,{}\n", i % 2))
        .collect();
    std::fs::write(dir.join("rows5000.csv"), rows5000).unwrap();
    let gz = gzip(TINY.as_bytes());
    std::fs::write(dir.join("truncated.csv.gz"), &gz[..gz.len() / 2]).unwrap();
}

fn write_idx(dir: &Path) {
    let pixels: Vec<u8> = (0..24).collect();
    let images = idx(0x803, &[6, 2, 2], &pixels);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("images.ubyte", images.clone()),
        ("labels.idx", idx(0x801, &[6], &[0, 1, 0, 1, 0, 1])),
        ("five-labels.idx", idx(0x801, &[5], &[0, 1, 0, 1, 0])),
        ("bad-magic.idx", idx(0x807, &[6, 2, 2], &pixels)),
        ("wrong-count.idx", idx(0x803, &[7, 2, 2], &pixels)),
        ("short-header.idx", vec![0, 0, 8, 3, 0, 0]),
        (
            "huge-count.idx",
            idx(0x803, &[u32::MAX, 4096, 4096], &pixels),
        ),
    ];
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    let gz = gzip(&images);
    std::fs::write(dir.join("truncated.idx.gz"), &gz[..gz.len() / 2]).unwrap();
}

fn write_checkpoints(dir: &Path) {
    let valid = dir.join("valid.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args([
            "train", "--data", "tiny.csv", "--epochs", "1", "--hidden", "4",
        ])
        .args(["--policy", "float32", "--save"])
        .arg(&valid)
        .current_dir(dir)
        .env_remove("MIXPREC_POLICY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mixed = dir.join("mixed.safetensors");
    let o = Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args([
            "train", "--data", "tiny.csv", "--epochs", "1", "--hidden", "4",
        ])
        .args(["--policy", "mixed_float16", "--save"])
        .arg(&mixed)
        .current_dir(dir)
        .env_remove("MIXPREC_POLICY")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let good = std::fs::read(&valid).unwrap();
    let good_mixed = std::fs::read(&mixed).unwrap();
    let record =
        mixprec::io::checkpoint::read(&valid).unwrap().meta().extra["mixprec.train"].clone();
    let policy = |name: &str| {
        format!(
            r#"{{"module":"keras","class_name":"DTypePolicy","config":{{"name":"{name}"}},"registered_name":null}}"#
        )
    };
    let arch = |hidden: &str, inputs: u32| {
        format!(
            r#"{{"model":"mlp","inputs":{inputs},"hidden":{hidden},"outputs":2,"activation":"relu"}}"#
        )
    };
    let mut random = Vec::new();
    let mut x: u32 = 0x1234_5678;
    for _ in 0..512 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        random.push((x >> 24) as u8);
    }
    let mut huge_header = (1u64 << 40).to_le_bytes().to_vec();
    huge_header.extend(b"{}");
    let mut not_json = 8u64.to_le_bytes().to_vec();
    not_json.extend(b"{bad}   ");
    let crafted: Vec<(&str, Vec<u8>)> = vec![
        ("empty.safetensors", Vec::new()),
        ("truncated.safetensors", good[..good.len() / 2].to_vec()),
        ("random.safetensors", random),
        ("huge-header.safetensors", huge_header),
        ("not-json.safetensors", not_json),
        (
            "unknown-policy.safetensors",
            with_meta(&good, "mixprec.policy", Some(&policy("mixed_fp16"))),
        ),
        (
            "policy-bad-json.safetensors",
            with_meta(&good, "mixprec.policy", Some("{\"module\":")),
        ),
        (
            "no-policy.safetensors",
            with_meta(&good, "mixprec.policy", None),
        ),
        (
            "arch-bad-json.safetensors",
            with_meta(&good, "mixprec.architecture", Some("{\"model\":\"mlp\",")),
        ),
        (
            "arch-huge-hidden.safetensors",
            with_meta(
                &good,
                "mixprec.architecture",
                Some(&arch("[100000000000]", 2)),
            ),
        ),
        (
            "arch-many-outputs.safetensors",
            with_meta(
                &good,
                "mixprec.architecture",
                Some(
                    r#"{"model":"mlp","inputs":2,"hidden":[1],"outputs":1000000,"activation":"relu"}"#,
                ),
            ),
        ),
        (
            "arch-wrong-inputs.safetensors",
            with_meta(&good, "mixprec.architecture", Some(&arch("[4]", 3))),
        ),
        (
            "scale-zero.safetensors",
            with_meta(
                &good_mixed,
                "mixprec.loss_scale",
                Some(r#"{"scale":0.0,"good_steps":1}"#),
            ),
        ),
        (
            "scale-nan.safetensors",
            with_meta(
                &good_mixed,
                "mixprec.loss_scale",
                Some(r#"{"scale":NaN,"good_steps":1}"#),
            ),
        ),
        (
            "scale-negative.safetensors",
            with_meta(
                &good_mixed,
                "mixprec.loss_scale",
                Some(r#"{"scale":-2.0,"good_steps":1}"#),
            ),
        ),
        (
            "iterations-negative.safetensors",
            with_meta(&good, "mixprec.iterations", Some("-1")),
        ),
        (
            "train-bad-json.safetensors",
            with_meta(&good, "mixprec.train", Some("{\"epoch\":")),
        ),
        (
            "no-train.safetensors",
            with_meta(&good, "mixprec.train", None),
        ),
        (
            "other-data.safetensors",
            with_meta(
                &good,
                "mixprec.train",
                Some(&record.replace("tiny.csv", "five-class.csv")),
            ),
        ),
    ];
    for (name, bytes) in crafted {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

/// `file` (a safetensors file) with metadata `key` set to `value`, or removed for `None`.
fn with_meta(file: &[u8], key: &str, value: Option<&str>) -> Vec<u8> {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let mut header: serde_json::Value = serde_json::from_slice(&file[8..8 + n]).unwrap();
    let meta = header["__metadata__"].as_object_mut().unwrap();
    match value {
        Some(v) => meta.insert(key.to_string(), v.into()),
        None => meta.remove(key),
    };
    let mut text = serde_json::to_vec(&header).unwrap();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    let mut out = (text.len() as u64).to_le_bytes().to_vec();
    out.extend(text);
    out.extend(&file[8 + n..]);
    out
}
