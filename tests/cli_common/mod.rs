//! Running the `mixprec` binary in the CLI tests (`tests/cli.rs`, `tests/cli_layer_policy.rs`).
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// Runs `mixprec args…` without an inherited `MIXPREC_POLICY`.
pub fn mixprec(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mixprec"))
        .args(args)
        .env_remove("MIXPREC_POLICY")
        .output()
        .expect("the binary runs")
}

/// The run's standard output, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The run's standard error, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `name` in the test binary's own folder under cargo's target tmpdir (created).
pub fn tmp_in(folder: &str, name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(folder);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// The percentage after `label` at the start of a line of `out` (`test accuracy   98.61%`).
pub fn percent_after(out: &str, label: &str) -> f64 {
    let line = out
        .lines()
        .find(|l| l.starts_with(label))
        .unwrap_or_else(|| panic!("no {label:?} line in {out}"));
    let value = line[label.len()..].trim_start();
    value[..value.find('%').expect("a percentage")]
        .parse()
        .unwrap()
}

/// The rows of `compare`'s table in `out` (each ends with the variables' size in KiB).
pub fn table_rows(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.ends_with("KiB") && l.contains('%'))
        .collect()
}

/// `mixprec compare --model cnn --epochs 2 --policies <policies>`, which must succeed: its
/// standard output.
pub fn compare_cnn(policies: &str) -> String {
    let o = mixprec(&[
        "compare",
        "--model",
        "cnn",
        "--epochs",
        "2",
        "--policies",
        policies,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}
