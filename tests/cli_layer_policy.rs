//! `--layer-policy` of `mixprec train` and `compare` (issue 11, item 5): a per-layer run trains
//! and says which layer has which policy, a map that gives every layer one policy is exactly the
//! uniform run, `compare` shows a `+float32_head` row and still plots, and bad values are usage
//! errors (exit status 2) naming what is wrong.

use std::path::PathBuf;
use std::process::Output;

mod cli_common;
use cli_common::{mixprec, stderr, stdout};

fn tmp(name: &str) -> PathBuf {
    cli_common::tmp_in("cli_layer_policy", name)
}

/// `train` with a small, quick setup and `extra` flags.
fn train(extra: &[&str]) -> Output {
    let mut args = vec!["train", "--epochs", "3", "--hidden", "16,16"];
    args.extend_from_slice(extra);
    mixprec(&args)
}

/// The output without what depends on the clock (speeds and times).
fn without_timing(out: &str) -> Vec<String> {
    out.lines()
        .map(|l| match l.find("samples/s") {
            Some(_) if l.starts_with("epoch") => l.rsplitn(3, "  ").last().unwrap().to_string(),
            _ => l.to_string(),
        })
        .filter(|l| !l.starts_with("wall time"))
        .collect()
}

#[test]
fn a_per_layer_run_trains_and_reports_its_layers() {
    let o = train(&[
        "--policy",
        "mixed_bfloat16",
        "--layer-policy",
        "head=float32",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("per-layer policies 0-1 mixed_bfloat16, 2 float32 (default mixed_bfloat16), MLP 64-16-16-10"),
        "{out}"
    );
    assert!(out.contains("test accuracy"), "{out}");
    // No float16 layer: no loss scaling.
    assert!(!out.contains("loss scale"), "{out}");

    // One mixed_float16 layer among float32 ones is loss-scaled; comma-separated pairs and a
    // regex key work.
    let o = train(&["--layer-policy", "0=mixed_float16,[12]=float32"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("per-layer policies 0 mixed_float16, 1-2 float32 (default float32)"),
        "{out}"
    );
    assert!(out.contains("loss scale"), "{out}");
}

#[test]
fn a_uniform_map_is_the_uniform_run() {
    let plain = train(&["--policy", "bfloat16"]);
    assert_eq!(plain.status.code(), Some(0), "{}", stderr(&plain));
    for flags in [
        &["--layer-policy", ".*=bfloat16"][..],
        &["--policy", "bfloat16", "--layer-policy", "head=bfloat16"],
        &[
            "--layer-policy",
            "0=bfloat16",
            "--layer-policy",
            "1=bfloat16,head=bfloat16",
        ],
    ] {
        let o = train(flags);
        assert_eq!(o.status.code(), Some(0), "{flags:?}: {}", stderr(&o));
        assert_eq!(
            without_timing(&stdout(&o)),
            without_timing(&stdout(&plain)),
            "{flags:?}"
        );
    }
    assert!(stdout(&plain).contains("policy bfloat16 (compute bfloat16"));
}

#[test]
fn compare_shows_a_float32_head_row_and_plots_it() {
    let plot = tmp("heads.svg");
    let _ = std::fs::remove_file(&plot);
    let o = mixprec(&[
        "compare",
        "--epochs",
        "2",
        "--hidden",
        "16",
        "--policies",
        "float32,mixed_bfloat16,mixed_bfloat16+float32_head",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.starts_with("float32") || l.starts_with("mixed_bfloat16"))
        .collect();
    assert_eq!(rows.len(), 3, "{out}");
    assert!(rows[2].starts_with("mixed_bfloat16+float32_head "), "{out}");
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(
        svg.contains("mixed_bfloat16+float32_head"),
        "the legend names the run"
    );
}

#[test]
fn bad_values_are_usage_errors_naming_the_problem() {
    let cases: [(&[&str], &str); 8] = [
        (&["--layer-policy", "2"], "\"2\" is not PATH=POLICY"),
        (&["--layer-policy", "=float32"], "has no layer path"),
        (
            &["--layer-policy", "head=float31"],
            "unknown policy \"float31\"",
        ),
        (
            &["--layer-policy", "(=float32"],
            "is not a valid regular expression",
        ),
        (
            &["--layer-policy", "0=float32,0=bfloat16"],
            "key \"0\" already exists in the DTypePolicyMap",
        ),
        (
            &["--layer-policy", "1=float32", "--layer-policy", "1=float16"],
            "--layer-policy: key \"1\" already exists",
        ),
        (
            &[
                "--layer-policy",
                "head=float32",
                "--layer-policy",
                "2=float16",
            ],
            "sets the output layer (2, also called head) twice",
        ),
        (
            &["--layer-policy", "7=float32"],
            "--layer-policy \"7\" matches no layer: this MLP has layers 0 to 2",
        ),
    ];
    for (flags, needle) in cases {
        let o = train(flags);
        assert_eq!(o.status.code(), Some(2), "{flags:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(needle), "{flags:?}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{flags:?}: nothing trained");
    }
    let o = train(&["--layer-policy", "[01]=float16,[12]=bfloat16"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains(
            r#"path "1" matches multiple dtype policy specification keys: ["[01]", "[12]"]"#
        ),
        "{}",
        stderr(&o)
    );
    // compare checks the same, and a +float32_head run beside a key for the output layer.
    let o = mixprec(&["compare", "--hidden", "8", "--layer-policy", "3=float32"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = mixprec(&[
        "compare",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--policies",
        "mixed_bfloat16+float32_head",
        "--layer-policy",
        "head=bfloat16",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("--policies"), "{}", stderr(&o));
    let o = mixprec(&["compare", "--policies", "mixed_bfloat16+float16_head"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("+float32_head"), "{}", stderr(&o));
}

#[test]
fn per_layer_checkpoints_resume_exactly_predict_and_inspect_per_layer() {
    let path = tmp("layers.safetensors");
    let _ = std::fs::remove_file(&path);
    let p = path.to_str().unwrap();
    let layers = [
        "--policy",
        "mixed_bfloat16",
        "--layer-policy",
        "head=float32",
    ];
    let o = mixprec(
        &[
            &["train", "--epochs", "2", "--hidden", "16,16", "--save", p][..],
            &layers,
        ]
        .concat(),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Resuming to 4 epochs is the uninterrupted 4-epoch run.
    let resumed = mixprec(&["train", "--epochs", "4", "--resume", p]);
    assert_eq!(resumed.status.code(), Some(0), "{}", stderr(&resumed));
    let whole = mixprec(
        &[
            &["train", "--epochs", "4", "--hidden", "16,16"][..],
            &layers,
        ]
        .concat(),
    );
    let result = |o: &Output| -> Vec<String> {
        without_timing(&stdout(o))
            .into_iter()
            .filter(|l| l.starts_with("test accuracy") || l.starts_with("final loss"))
            .collect()
    };
    assert_eq!(result(&resumed).len(), 2);
    assert_eq!(result(&resumed), result(&whole));
    assert!(
        stdout(&resumed).contains("per-layer policies 0-1 mixed_bfloat16, 2 float32"),
        "{}",
        stdout(&resumed)
    );
    // The checkpoint's layers keep their policies.
    let o = mixprec(&[
        "train",
        "--epochs",
        "4",
        "--resume",
        p,
        "--layer-policy",
        "0=float32",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no --layer-policy with --resume"),
        "{}",
        stderr(&o)
    );

    let o = mixprec(&["predict", "--model", p, "--show", "0"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("stored as 0-1 mixed_bfloat16, 2 float32, run as its layers' policies"),
        "{}",
        stdout(&o)
    );
    let o = mixprec(&[
        "predict", "--model", p, "--show", "0", "--policy", "float16",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("run as float16"), "{}", stdout(&o));

    let o = mixprec(&["inspect", p]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("  2  float32 (compute float32"), "{out}");
    assert!(out.contains("  0  mixed_bfloat16"), "{out}");
}

#[test]
fn compare_marks_the_runs_layer_policy_changes() {
    let o = mixprec(&[
        "compare",
        "--epochs",
        "1",
        "--hidden",
        "8",
        "--policies",
        "float32,bfloat16",
        "--layer-policy",
        "0=bfloat16",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    // float32 with layer 0 in bfloat16 is per-layer; bfloat16 with it is still uniform.
    assert!(out.lines().any(|l| l.starts_with("float32* ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("bfloat16 ")), "{out}");
    assert!(out.contains("* with --layer-policy 0=bfloat16"), "{out}");
}
