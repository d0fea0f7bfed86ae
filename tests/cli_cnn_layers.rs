//! Per-layer policies for `--model cnn` end to end: a bfloat16 body with a float32 head
//! (`--layer-policy head=float32`) reaches 96% on the digits; its checkpoint records each
//! layer's policy, and `inspect`, `predict` and `--resume` read them back; `compare` runs
//! `+float32_head` beside the plain policy; a key that names no CNN layer is a usage error.

mod cli_common;
use cli_common::{compare_cnn, mixprec, percent_after, stderr, stdout, table_rows};

fn tmp(name: &str) -> String {
    cli_common::tmp_in("cli_cnn_layers", name)
        .display()
        .to_string()
}

#[test]
fn a_bf16_body_with_an_f32_head_trains_saves_predicts_and_resumes() {
    let path = tmp("head.safetensors");
    let o = mixprec(&[
        "train",
        "--model",
        "cnn",
        "--policy",
        "mixed_bfloat16",
        "--layer-policy",
        "head=float32",
        "--save",
        &path,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let layout = "per-layer policies conv mixed_bfloat16, dense float32 (default mixed_bfloat16)";
    assert!(out.contains(layout), "{out}");
    assert!(!out.contains("loss scale"), "no float16 layer: {out}");
    let acc = percent_after(&out, "test accuracy");
    assert!(acc >= 96.0, "test accuracy {acc}% in {out}");

    let o = mixprec(&["inspect", &path]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info = stdout(&o);
    assert!(
        info.contains("layers        2 (policy per layer)"),
        "{info}"
    );
    assert!(info.contains("  conv   mixed_bfloat16"), "{info}");
    assert!(info.contains("  dense  float32"), "{info}");

    let o = mixprec(&["predict", "--model", &path, "--show", "0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let pred = stdout(&o);
    let stored = "stored as conv mixed_bfloat16, dense float32, run as its layers' policies";
    assert!(pred.contains(stored), "{pred}");
    assert!(percent_after(&pred, "accuracy") >= 96.0, "{pred}");

    let o = mixprec(&["train", "--resume", &path, "--epochs", "21"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(layout),
        "the checkpoint's layers keep their policies: {out}"
    );
    assert!(out.contains("epoch  21/21"), "{out}");
}

#[test]
fn compare_runs_float32_head_beside_the_plain_policy() {
    let out = compare_cnn("mixed_float16,mixed_float16+float32_head");
    let rows = table_rows(&out);
    assert_eq!(rows.len(), 2, "{out}");
    assert!(rows[0].starts_with("mixed_float16 "), "{}", rows[0]);
    assert!(
        rows[1].starts_with("mixed_float16+float32_head"),
        "{}",
        rows[1]
    );
}

#[test]
fn a_key_that_names_no_cnn_layer_is_a_usage_error() {
    for key in ["pool", "flatten", "2"] {
        let flag = format!("{key}=float32");
        let o = mixprec(&["train", "--model", "cnn", "--layer-policy", &flag]);
        assert_eq!(o.status.code(), Some(2), "{}", stdout(&o));
        let want = format!(
            "--layer-policy \"{key}\" matches no layer: this CNN has layers conv, dense (dense or head the output layer)"
        );
        assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    }
    let o = mixprec(&[
        "compare",
        "--model",
        "cnn",
        "--layer-policy",
        "dense=bfloat16",
        "--policies",
        "float32+float32_head",
    ]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("output layer"), "{}", stderr(&o));
}
