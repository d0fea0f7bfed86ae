//! A bad-input corpus for the library's public constructors and loaders (issue 10): one table
//! row per kind of bad input. Each row runs in its own temporary directory and must return an
//! `Err` whose message contains the row's needle (naming the problem: file, line, column,
//! variable, expected range), never panic, and leave no temporary file behind; rows that try to
//! overwrite a checkpoint also check it is byte-identical afterwards.
//!
//! Run: `cargo test --test bad_input_lib` (prints the number of kinds covered).

use std::fmt::Display;
use std::path::{Path, PathBuf};

use mixprec::data::Dataset;
use mixprec::dtype::VecOf;
use mixprec::io::{self, checkpoint, CheckpointMeta, CsvOptions, LabelColumn, LossScaleState};
use mixprec::models::MlpSpec;
use mixprec::optimizers::{Adam, LossScaleOptimizer, OptimizerState, Sgd};
use mixprec::prelude::*;

type Outcome = Result<(), String>;

/// One kind of bad input: its name, what it does in a fresh directory, and a needle its error
/// message must contain.
struct Case {
    name: &'static str,
    run: fn(&Path) -> Outcome,
    needle: &'static str,
}

fn err<T, E: Display>(r: Result<T, E>) -> Outcome {
    r.map(|_| ()).map_err(|e| e.to_string())
}

fn t(shape: Vec<usize>, data: Vec<f32>) -> Tensor<f32> {
    Tensor::from_vec(shape, data).unwrap()
}

fn csv(text: &str) -> Outcome {
    err(io::parse_csv(text, "bad.csv", &CsvOptions::default()))
}

fn csv_with(text: &str, opts: CsvOptions) -> Outcome {
    err(io::parse_csv(text, "bad.csv", &opts))
}

fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// An IDX header: magic `00 00 08 <ndims>`, then each dimension.
fn idx(ndims: u8, dims: &[u32], payload: &[u8]) -> Vec<u8> {
    let mut b = vec![0, 0, 8, ndims];
    for d in dims {
        b.extend(d.to_be_bytes());
    }
    b.extend(payload);
    b
}

fn images(dir: &Path, bytes: &[u8]) -> Outcome {
    err(io::read_idx_images(&file(dir, "images.idx", bytes)))
}

fn labels(dir: &Path, bytes: &[u8]) -> Outcome {
    err(io::read_idx_labels(&file(dir, "labels.idx", bytes)))
}

/// A safetensors file from a header JSON and data bytes.
fn safetensors_file(dir: &Path, header: &str, data: &[u8]) -> PathBuf {
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.extend(data);
    file(dir, "bad.safetensors", &b)
}

const META_OK: &str = r#""mixprec.format":"1","mixprec.policy":"\"float32\"","mixprec.architecture":"","mixprec.iterations":"0""#;

fn with_meta(extra: &str) -> String {
    format!(
        r#"{{"__metadata__":{{{extra}}},"0.bias":{{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}}}"#
    )
}

fn read_header(dir: &Path, header: &str) -> Outcome {
    err(checkpoint::read(&safetensors_file(dir, header, &[0; 4])))
}

fn model() -> Vec<Dense<F32>> {
    vec![Dense::<F32>::new(2, 3), Dense::<F32>::new(3, 2)]
}

/// Saves a good checkpoint of [`model`] at `dir/m.safetensors` and returns its path.
fn good_checkpoint(dir: &Path) -> PathBuf {
    let p = dir.join("m.safetensors");
    checkpoint::save(&model(), &p, &CheckpointMeta::new(DTypePolicy::Float32)).unwrap();
    p
}

/// `save_training` over a good checkpoint with `state`; the old file must stay byte-identical.
fn save_over_good(dir: &Path, m: &[Dense<F32>], state: Option<OptimizerState>) -> Outcome {
    let p = good_checkpoint(dir);
    let before = std::fs::read(&p).unwrap();
    let meta = CheckpointMeta::new(DTypePolicy::Float32);
    let m = m.to_vec();
    let r = match state {
        Some(s) => checkpoint::save_training(&m, &s, &p, &meta),
        None => checkpoint::save(&m, &p, &meta),
    };
    assert_eq!(
        std::fs::read(&p).unwrap(),
        before,
        "a refused save changed the file"
    );
    err(r)
}

fn nan_model() -> Vec<Dense<F32>> {
    let k = t(vec![2, 3], vec![0.0, 1.0, f32::NAN, 0.0, 0.0, 0.0]);
    vec![
        Dense::<F32>::from_weights(k, None).unwrap(),
        Dense::<F32>::new(3, 2),
    ]
}

fn state(slots: Vec<(usize, usize, VecOf)>, scale: Option<f32>) -> OptimizerState {
    OptimizerState {
        iterations: 3,
        slots,
        loss_scale: scale.map(|scale| LossScaleState {
            scale,
            good_steps: 1,
        }),
    }
}

fn load(dir: &Path, m: &mut Vec<Dense<F32>>) -> Outcome {
    let p = good_checkpoint(dir);
    err(checkpoint::load_into(m, &checkpoint::read(&p).unwrap()))
}

fn policy_json(json: &str) -> Outcome {
    err(serde_json::from_str::<DTypePolicy>(json))
}

const CASES: &[Case] = &[
    // Tensor
    Case { name: "tensor_from_vec_wrong_length", run: |_| err(Tensor::from_vec(vec![2, 3], vec![0f32; 5])), needle: "shape [2, 3] holds 6 elements, found 5" },
    Case { name: "tensor_from_vec_overflowing_shape", run: |_| err(Tensor::<f32>::from_vec(vec![usize::MAX, 3], vec![])), needle: "overflows usize" },
    Case { name: "tensor_zeros_2_pow_40", run: |_| err(Tensor::<f32>::zeros(vec![1 << 20, 1 << 20])), needle: "tensor of shape [1048576, 1048576] of float32 needs 4398046511104 bytes" },
    Case { name: "tensor_zeros_overflowing_shape", run: |_| err(Tensor::<f32>::zeros(vec![usize::MAX, usize::MAX])), needle: "more than the 4294967296 bytes" },
    Case { name: "tensor_zeros_f64_64_gib", run: |_| err(Tensor::<f64>::zeros(vec![1 << 30, 8])), needle: "of float64 needs 68719476736 bytes (64.0 GiB)" },
    Case { name: "tensor_reshape_wrong_count", run: |_| err(t(vec![6], vec![0.0; 6]).reshape(vec![4, 2])), needle: "holds 8 elements, found 6" },
    // Dense
    Case { name: "dense_zero_input_dim", run: |_| err(Dense::<F32>::try_new(0, 3)), needle: "invalid input_dim: 0" },
    Case { name: "dense_zero_units", run: |_| err(Dense::<Bf16>::try_new(3, 0)), needle: "invalid units: 0" },
    Case { name: "dense_2_pow_40_kernel", run: |_| err(Dense::<F32>::try_new(1 << 20, 1 << 20)), needle: "dense kernel [1048576, 1048576] of float32 needs 4398046511104 bytes" },
    Case { name: "dense_overflowing_kernel", run: |_| err(Dense::<F16>::try_new(usize::MAX, 2)), needle: "dense kernel" },
    Case { name: "dense_mixed_f16_64_gib_kernel", run: |_| err(Dense::<MixedF16>::try_new(1 << 17, 1 << 17)), needle: "of float32 needs 68719476736 bytes" },
    Case { name: "dense_any_policy_zero_units", run: |_| err(AnyDense::with_policy(DTypePolicy::MixedBFloat16, 4, 0)), needle: "invalid units: 0" },
    Case { name: "dense_from_weights_1d_kernel", run: |_| err(Dense::<F32>::from_weights(t(vec![6], vec![0.0; 6]), None)), needle: "kernel: expected [input_dim, units] with both >= 1, found [6]" },
    Case { name: "dense_from_weights_empty_kernel", run: |_| err(Dense::<F32>::from_weights(t(vec![0, 3], vec![]), None)), needle: "found [0, 3]" },
    Case { name: "dense_from_weights_wrong_bias", run: |_| err(Dense::<F32>::from_weights(t(vec![2, 3], vec![0.0; 6]), Some(t(vec![2], vec![0.0; 2])))), needle: "bias: expected [3], found [2]" },
    // MlpSpec
    Case { name: "mlp_hidden_1e11", run: |_| err(MlpSpec::new(64, vec![100_000_000_000], 10).build::<F32>(0)), needle: "layer 0 of the mlp 64-100000000000-10: dense kernel [64, 100000000000] of float32 needs" },
    Case { name: "mlp_huge_last_layer", run: |_| err(MlpSpec::new(64, vec![8], 1 << 40).build::<Bf16>(0)), needle: "layer 1 of the mlp" },
    Case { name: "mlp_zero_inputs", run: |_| err(MlpSpec::new(0, vec![8], 2).build::<F32>(0)), needle: "invalid input_dim: 0" },
    Case { name: "mlp_zero_hidden", run: |_| err(MlpSpec::new(4, vec![8, 0], 2).build::<F32>(0)), needle: "invalid units: 0" },
    Case { name: "mlp_zero_outputs", run: |_| err(MlpSpec::new(4, vec![], 0).build::<F64>(0)), needle: "invalid units: 0" },
    Case { name: "mlp_json_malformed", run: |_| err(MlpSpec::from_json("{")), needle: "invalid architecture" },
    Case { name: "mlp_json_other_model", run: |_| err(MlpSpec::from_json(r#"{"model":"cnn","inputs":1,"hidden":[],"outputs":1,"activation":"relu"}"#)), needle: "model \"cnn\"" },
    Case { name: "mlp_json_missing_field", run: |_| err(MlpSpec::from_json(r#"{"model":"mlp","inputs":1,"hidden":[]}"#)), needle: "missing field `outputs`" },
    Case { name: "mlp_json_negative_width", run: |_| err(MlpSpec::from_json(r#"{"model":"mlp","inputs":-1,"hidden":[],"outputs":1,"activation":"relu"}"#)), needle: "invalid value: integer `-1`" },
    Case { name: "mlp_json_unknown_activation", run: |_| err(MlpSpec::from_json(r#"{"model":"mlp","inputs":1,"hidden":[],"outputs":1,"activation":"softsign"}"#)), needle: "invalid activation: \"softsign\" (one of: linear, relu, sigmoid, tanh, gelu, gelu_tanh)" },
    Case { name: "mlp_json_huge_hidden_builds_error", run: |_| err(MlpSpec::from_json(r#"{"model":"mlp","inputs":64,"hidden":[100000000000],"outputs":10,"activation":"relu"}"#).unwrap().build::<MixedBf16>(0)), needle: "needs 25600000000000 bytes" },
    // Dataset
    Case { name: "dataset_label_beyond_classes", run: |_| err(Dataset::classification(t(vec![2, 1], vec![0.0; 2]), vec![0, 3], 3)), needle: "label 3 is out of range for a model with 3 output classes (expected 0..=2)" },
    Case { name: "dataset_label_with_one_class", run: |_| err(Dataset::classification(t(vec![1, 1], vec![0.0]), vec![7], 1)), needle: "label 7 is out of range for a model with 1 output class (expected 0)" },
    Case { name: "dataset_label_count_mismatch", run: |_| err(Dataset::classification(t(vec![2, 1], vec![0.0; 2]), vec![0], 2)), needle: "labels: expected [2] (one per row of x), found [1]" },
    Case { name: "dataset_1d_features", run: |_| err(Dataset::classification(t(vec![2], vec![0.0; 2]), vec![0, 0], 1)), needle: "features: expected [rows, features >= 1]" },
    Case { name: "dataset_no_rows", run: |_| err(Dataset::classification(t(vec![0, 2], vec![]), vec![], 1)), needle: "empty data set" },
    Case { name: "dataset_nan_feature", run: |_| err(Dataset::classification(t(vec![1, 2], vec![0.0, f32::NAN]), vec![0], 1)), needle: "non-finite value NaN in features at flat index 1" },
    Case { name: "dataset_regression_wrong_targets", run: |_| err(Dataset::regression(t(vec![2, 1], vec![0.0; 2]), t(vec![3, 1], vec![0.0; 3]))), needle: "targets: expected [2, outputs]" },
    Case { name: "dataset_regression_inf_target", run: |_| err(Dataset::regression(t(vec![1, 1], vec![0.0]), t(vec![1, 1], vec![f32::INFINITY]))), needle: "non-finite value inf in targets" },
    Case { name: "dataset_split_fraction_above_one", run: |_| err(io::digits().unwrap().split_tail(1.5)), needle: "invalid split fraction: 1.5 of 1797 rows" },
    Case { name: "dataset_split_single_row", run: |_| err(Dataset::classification(t(vec![1, 1], vec![0.0]), vec![0], 1).unwrap().split_tail(0.5)), needle: "of 1 rows (between 0 and 1" },
    // CSV
    Case { name: "csv_label_u32_max", run: |_| csv("1,2,0\n3,4,4294967295\n"), needle: "bad.csv line 2, column 3: label \"4294967295\" is not a class index (expected an integer in 0..=65535" },
    Case { name: "csv_label_million_suggests_label_column", run: |_| csv("1,2,1000000\n"), needle: "is the label column right? choose it with --label-column" },
    Case { name: "csv_label_beyond_u64", run: |_| csv("1,99999999999999999999999\n"), needle: "label \"99999999999999999999999\"" },
    Case { name: "csv_label_negative", run: |_| csv("1,2,-1\n"), needle: "labels are not negative" },
    Case { name: "csv_label_fractional", run: |_| csv("1,2,1.5\n"), needle: "labels are whole numbers" },
    Case { name: "csv_label_nan", run: |_| csv("1,2,NaN\n"), needle: "NaN is not a class" },
    Case { name: "csv_label_text", run: |_| csv("1,2,cat\n"), needle: "line 1, column 3: label \"cat\" is not a class index" },
    Case { name: "csv_label_first_column", run: |_| csv_with("x,1,2\n", CsvOptions { label_column: LabelColumn::First, ..CsvOptions::default() }), needle: "column 1: label \"x\"" },
    Case { name: "csv_label_beyond_raised_limit", run: |_| csv_with("1,4\n", CsvOptions { max_classes: 4, ..CsvOptions::default() }), needle: "expected an integer in 0..=3" },
    Case { name: "csv_ragged_row", run: |_| csv("1,2,0\n3,1\n"), needle: "bad.csv line 2: 2 columns, expected 3" },
    Case { name: "csv_single_column", run: |_| csv("1\n2\n"), needle: "1 columns, expected 2 (at least 2)" },
    Case { name: "csv_junk_feature", run: |_| csv("1,x,0\n"), needle: "line 1: column 2 value \"x\" is not a finite number" },
    Case { name: "csv_empty_feature", run: |_| csv("1,,0\n"), needle: "column 2 value \"\"" },
    Case { name: "csv_nan_feature", run: |_| csv("NaN,1,0\n"), needle: "column 1 value \"NaN\" is not a finite number" },
    Case { name: "csv_feature_beyond_f32", run: |_| csv("1e39,1,0\n"), needle: "column 1 value \"1e39\"" },
    Case { name: "csv_feature_infinite_after_scale", run: |_| csv_with("3e38,0\n", CsvOptions { scale: 10.0, ..CsvOptions::default() }), needle: "whose scaled value fits in f32" },
    Case { name: "csv_empty_text", run: |_| csv(""), needle: "bad.csv has no data rows" },
    Case { name: "csv_header_only", run: |_| csv_with("a,b,y\n", CsvOptions { header: true, ..CsvOptions::default() }), needle: "has no data rows" },
    Case { name: "csv_blank_lines_only", run: |_| csv("\r\n\n  \n"), needle: "has no data rows" },
    Case { name: "csv_bom_then_junk_on_crlf_line_2", run: |_| csv("\u{feff}1,2,0\r\n1,a,0\r\n"), needle: "line 2: column 2 value \"a\"" },
    Case { name: "csv_label_column_beyond_width", run: |_| csv_with("1,2,0\n", CsvOptions { label_column: LabelColumn::Index(5), ..CsvOptions::default() }), needle: "label column 5 but only 3 columns (expected 0..=2)" },
    Case { name: "csv_nan_scale", run: |_| csv_with("1,0\n", CsvOptions { scale: f32::NAN, ..CsvOptions::default() }), needle: "invalid CSV scale: NaN" },
    Case { name: "csv_zero_max_classes", run: |_| csv_with("1,0\n", CsvOptions { max_classes: 0, ..CsvOptions::default() }), needle: "invalid CSV max_classes: 0" },
    Case { name: "csv_missing_file", run: |d| err(io::read_csv(&d.join("nope.csv"), &CsvOptions::default())), needle: "nope.csv: No such file" },
    Case { name: "csv_directory", run: |d| err(io::read_csv(d, &CsvOptions::default())), needle: "cannot access" },
    Case { name: "csv_not_utf8", run: |d| err(io::read_csv(&file(d, "b.csv", b"1,2,\xff\n"), &CsvOptions::default())), needle: "b.csv line 0: not UTF-8 text" },
    Case { name: "csv_corrupt_gzip", run: |d| err(io::read_csv(&file(d, "b.csv.gz", &[0x1f, 0x8b, 8, 0, 1, 2, 3]), &CsvOptions::default())), needle: "b.csv.gz is not valid gzip data" },
    Case { name: "csv_gzip_told_by_content_not_name", run: |d| err(io::read_csv(&file(d, "plain-name.csv", &gz(b"1,2,4294967295\n")), &CsvOptions::default())), needle: "plain-name.csv line 1, column 3: label \"4294967295\"" },
    // IDX
    Case { name: "idx_images_wrong_magic", run: |d| images(d, &idx(1, &[1], &[0])), needle: "magic number 0x00000801 (expected 0x00000803 for images)" },
    Case { name: "idx_images_short_header", run: |d| images(d, &[0, 0, 8, 3, 0, 0]), needle: "6 bytes (expected a 16-byte header)" },
    Case { name: "idx_images_tiny_file", run: |d| images(d, &[0, 0]), needle: "2 bytes (expected at least a 16-byte header)" },
    Case { name: "idx_images_claim_2_pow_32_items", run: |d| images(d, &idx(3, &[u32::MAX, 28, 28], &[0; 784])), needle: "800 bytes (expected 3367254359296 bytes" },
    Case { name: "idx_images_zero_items_huge_dims", run: |d| images(d, &idx(3, &[0, u32::MAX, u32::MAX], &[])), needle: "holds 0 images (expected at least 1)" },
    Case { name: "idx_images_zero_columns", run: |d| images(d, &idx(3, &[2, 3, 0], &[])), needle: "images of 3 x 0 pixels (expected at least 1 row and 1 column)" },
    Case { name: "idx_images_truncated_gzip", run: |d| { let g = gz(&idx(3, &[1, 2, 2], &[1, 2, 3, 4])); images(d, &g[..g.len() - 6]) }, needle: "images.idx is not valid gzip data: unexpected end of file" },
    Case { name: "idx_labels_truncated", run: |d| labels(d, &idx(1, &[3], &[1, 2])), needle: "10 bytes (expected 11 bytes" },
    Case { name: "idx_labels_empty_file", run: |d| labels(d, &[]), needle: "0 bytes (expected at least a 8-byte header)" },
    Case { name: "idx_labels_extra_bytes", run: |d| labels(d, &idx(1, &[1], &[1, 2])), needle: "10 bytes (expected 9 bytes" },
    Case { name: "idx_dataset_count_mismatch", run: |d| err(io::read_idx_dataset(&file(d, "x", &idx(3, &[2, 1, 1], &[0, 1])), &file(d, "y", &idx(1, &[1], &[0])))), needle: "1 labels (expected 2 labels, one per image in" },
    Case { name: "sniff_missing_file", run: |d| err(io::sniff_format(&d.join("gone.idx"))), needle: "gone.idx" },
    // Checkpoints: read, inspect, load_into, optimizer_state
    Case { name: "ckpt_missing_file", run: |d| err(checkpoint::read(&d.join("none.safetensors"))), needle: "cannot access" },
    Case { name: "ckpt_empty_file", run: |d| err(checkpoint::read(&file(d, "e.safetensors", &[]))), needle: "e.safetensors is not a valid safetensors checkpoint" },
    Case { name: "ckpt_header_length_beyond_file", run: |d| err(checkpoint::inspect(&file(d, "h.safetensors", &u64::MAX.to_le_bytes()))), needle: "is not a valid safetensors checkpoint" },
    Case { name: "ckpt_header_not_json", run: |d| read_header(d, "{{{{"), needle: "is not a valid safetensors checkpoint" },
    Case { name: "ckpt_huge_shape", run: |d| read_header(d, &format!(r#"{{"__metadata__":{{{META_OK}}},"0.bias":{{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}}}"#)), needle: "is not a valid safetensors checkpoint" },
    Case { name: "ckpt_offsets_beyond_file", run: |d| read_header(d, &format!(r#"{{"__metadata__":{{{META_OK}}},"0.bias":{{"dtype":"F32","shape":[1],"data_offsets":[0,1099511627776]}}}}"#)), needle: "is not a valid safetensors checkpoint" },
    Case { name: "ckpt_no_metadata", run: |d| read_header(d, r#"{"0.bias":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#), needle: "metadata key \"mixprec.format\" is missing" },
    Case { name: "ckpt_zero_loss_scale", run: |d| read_header(d, &with_meta(&format!(r#"{META_OK},"mixprec.loss_scale":"{{\"scale\":0.0,\"good_steps\":0}}""#))), needle: "metadata key \"mixprec.loss_scale\"" },
    Case { name: "ckpt_bad_iterations", run: |d| read_header(d, &with_meta(r#""mixprec.format":"1","mixprec.policy":"\"float32\"","mixprec.architecture":"","mixprec.iterations":"-3""#)), needle: "metadata key \"mixprec.iterations\" holds \"-3\" (expected an unsigned integer)" },
    Case { name: "ckpt_bad_policy", run: |d| read_header(d, &with_meta(r#""mixprec.format":"1","mixprec.policy":"\"fp8\"","mixprec.architecture":"","mixprec.iterations":"0""#)), needle: "metadata key \"mixprec.policy\"" },
    Case { name: "ckpt_future_format", run: |d| read_header(d, &with_meta(r#""mixprec.format":"2","mixprec.policy":"\"float32\"","mixprec.architecture":"","mixprec.iterations":"0""#)), needle: "metadata key \"mixprec.format\" holds \"2\"" },
    Case { name: "ckpt_integer_tensor", run: |d| read_header(d, &format!(r#"{{"__metadata__":{{{META_OK}}},"0.bias":{{"dtype":"I32","shape":[1],"data_offsets":[0,4]}}}}"#)), needle: "tensor \"0.bias\" has dtype I32" },
    Case { name: "ckpt_inspect_directory", run: |d| err(checkpoint::inspect(d)), needle: "cannot access" },
    Case { name: "ckpt_load_into_missing_tensor", run: |d| load(d, &mut vec![Dense::<F32>::new(2, 3), Dense::<F32>::new(3, 2), Dense::<F32>::new(2, 2)]), needle: "tensor \"2.kernel\" is missing (the model expects it with shape [2, 2])" },
    Case { name: "ckpt_load_into_wrong_shape", run: |d| load(d, &mut vec![Dense::<F32>::new(2, 4), Dense::<F32>::new(4, 2)]), needle: "tensor \"0.kernel\" has shape [2, 3], the model expects [2, 4]" },
    Case { name: "ckpt_load_into_unexpected_tensors", run: |d| load(d, &mut vec![Dense::<F32>::new(2, 3)]), needle: "tensors [\"1.bias\", \"1.kernel\"] are not variables of the model" },
    Case { name: "ckpt_architecture_asks_1e11_hidden", run: |d| {
        let p = d.join("a.safetensors");
        let arch = r#"{"model":"mlp","inputs":2,"hidden":[100000000000],"outputs":2,"activation":"relu"}"#;
        checkpoint::save(&model(), &p, &CheckpointMeta::new(DTypePolicy::Float32).with_architecture(arch)).unwrap();
        let spec = MlpSpec::from_json(&checkpoint::read(&p).unwrap().meta().architecture).unwrap();
        err(spec.build::<F32>(0))
    }, needle: "dense kernel [2, 100000000000] of float32 needs 800000000000 bytes" },
    // Checkpoints: save refuses first, and the old file stays
    Case { name: "save_nan_weight", run: |d| save_over_good(d, &nan_model(), None), needle: "refusing to save" },
    Case { name: "save_nan_weight_names_variable", run: |d| save_over_good(d, &nan_model(), None), needle: "variable \"0.kernel\" holds NaN at flat index 2" },
    Case { name: "save_zero_loss_scale", run: |d| save_over_good(d, &model(), Some(state(vec![], Some(0.0)))), needle: "loss scale 0 (expected a finite number >= 2^-126" },
    Case { name: "save_infinite_loss_scale", run: |d| save_over_good(d, &model(), Some(state(vec![], Some(f32::INFINITY)))), needle: "loss scale inf" },
    Case { name: "save_slot_wrong_size", run: |d| save_over_good(d, &model(), Some(state(vec![(1, 0, VecOf::F32(vec![0.0; 5]))], None))), needle: "optimizer slot 0 of variable \"0.bias\" has 5 values (expected as many values as its variable)" },
    Case { name: "save_slot_for_no_variable", run: |d| save_over_good(d, &model(), Some(state(vec![(9, 0, VecOf::F32(vec![0.0]))], None))), needle: "for variable #9, but the model has 4" },
    Case { name: "save_slot_nan", run: |d| save_over_good(d, &model(), Some(state(vec![(1, 1, VecOf::F32(vec![0.0, f32::NAN, 0.0]))], None))), needle: "optimizer slot 1 of variable \"0.bias\" holds NaN" },
    Case { name: "save_slot_f16", run: |d| save_over_good(d, &model(), Some(state(vec![(1, 0, VecOf::F16(vec![half::f16::ZERO; 3]))], None))), needle: "is float16 (expected float32 or float64" },
    Case { name: "save_slot_twice", run: |d| save_over_good(d, &model(), Some(state(vec![(1, 0, VecOf::F32(vec![0.0; 3])), (1, 0, VecOf::F32(vec![0.0; 3]))], None))), needle: "given twice" },
    Case { name: "save_policy_mismatch", run: |d| err(checkpoint::save(&model(), &d.join("p.safetensors"), &CheckpointMeta::new(DTypePolicy::MixedFloat16))), needle: "names policy \"mixed_float16\" but the model's policy is \"float32\"" },
    Case { name: "save_reserved_extra_key", run: |d| err(checkpoint::save(&model(), &d.join("r.safetensors"), &CheckpointMeta::new(DTypePolicy::Float32).with_extra("mixprec.policy", "x"))), needle: "invalid extra checkpoint metadata key: \"mixprec.policy\"" },
    Case { name: "save_header_beyond_safetensors_limit", run: |d| err(checkpoint::save(&model(), &d.join("big.safetensors"), &CheckpointMeta::new(DTypePolicy::Float32).with_architecture("x".repeat(101_000_000)))), needle: "refusing to save" },
    Case { name: "save_into_missing_directory", run: |d| err(checkpoint::save(&model(), &d.join("no/such/dir/m.safetensors"), &CheckpointMeta::new(DTypePolicy::Float32))), needle: "no/such/dir/m.safetensors" },
    Case { name: "save_onto_directory", run: |d| { std::fs::create_dir(d.join("taken")).unwrap(); std::fs::write(d.join("taken/x"), b"").unwrap(); err(checkpoint::save(&model(), &d.join("taken"), &CheckpointMeta::new(DTypePolicy::Float32))) }, needle: "taken" },
    // Policies
    Case { name: "policy_unknown_name", run: |_| err("mixed_fp16".parse::<DTypePolicy>()), needle: "unknown policy \"mixed_fp16\" (expected one of: float32" },
    Case { name: "policy_empty_name", run: |_| err("".parse::<DTypePolicy>()), needle: "unknown policy \"\"" },
    Case { name: "policy_json_number", run: |_| policy_json("42"), needle: "invalid type: integer `42`, expected a policy name string such as \"mixed_float16\", or Keras's config" },
    Case { name: "policy_json_null", run: |_| policy_json("null"), needle: "expected a policy name string" },
    Case { name: "policy_json_array", run: |_| policy_json(r#"["float32"]"#), needle: "invalid type: sequence, expected a policy name string" },
    Case { name: "policy_json_empty_object", run: |_| policy_json("{}"), needle: "missing field `module`" },
    Case { name: "policy_json_no_config", run: |_| policy_json(r#"{"module":"keras","class_name":"DTypePolicy"}"#), needle: "missing field `config`" },
    Case { name: "policy_json_config_without_name", run: |_| policy_json(r#"{"module":"keras","class_name":"DTypePolicy","config":{}}"#), needle: "missing field `name`" },
    Case { name: "policy_json_other_class", run: |_| policy_json(r#"{"module":"keras","class_name":"Dense","config":{"name":"float32"}}"#), needle: "unknown class_name \"Dense\" (expected \"DTypePolicy\")" },
    Case { name: "policy_json_unknown_name", run: |_| policy_json(r#""float8""#), needle: "unknown policy \"float8\"" },
    Case { name: "policy_json_truncated", run: |_| err(DTypePolicy::from_keras_json(r#"{"module":"ker"#)), needle: "invalid policy config: EOF while parsing" },
    // Optimizers
    Case { name: "adam_negative_learning_rate", run: |_| err(Adam::try_new(-1.0)), needle: "-1" },
    Case { name: "adam_beta_1_above_one", run: |_| err(Adam::new(1e-3).with_betas(1.5, 0.999)), needle: "1.5" },
    Case { name: "adam_nan_epsilon", run: |_| err(Adam::new(1e-3).with_epsilon(f32::NAN)), needle: "NaN" },
    Case { name: "sgd_nan_learning_rate", run: |_| err(Sgd::try_new(f32::NAN)), needle: "NaN" },
    Case { name: "sgd_momentum_above_one", run: |_| err(Sgd::new(0.1).with_momentum(2.0)), needle: "momentum" },
    Case { name: "loss_scale_zero_initial", run: |_| err(LossScaleOptimizer::new(Sgd::new(0.1)).with_initial_scale(0.0)), needle: "invalid initial_scale: 0" },
    Case { name: "loss_scale_restore_negative", run: |_| err(LossScaleOptimizer::new(Sgd::new(0.1)).restore_state(LossScaleState { scale: -2.0, good_steps: 0 })), needle: "-2" },
];

fn leftovers(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp-") {
                out.push(name);
            }
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out
}

#[test]
fn every_bad_input_is_an_error_naming_the_problem() {
    let mut failures = Vec::new();
    for case in CASES {
        let dir = tempfile::tempdir().unwrap();
        let outcome = std::panic::catch_unwind(|| (case.run)(dir.path()));
        match outcome {
            Err(_) => failures.push(format!("{}: panicked", case.name)),
            Ok(Ok(())) => failures.push(format!("{}: returned Ok", case.name)),
            Ok(Err(msg)) if !msg.contains(case.needle) => failures.push(format!(
                "{}: message {msg:?} lacks {:?}",
                case.name, case.needle
            )),
            Ok(Err(_)) => {}
        }
        let left = leftovers(dir.path());
        if !left.is_empty() {
            failures.push(format!("{}: left {left:?}", case.name));
        }
    }
    println!("bad_input_lib: {} kinds of bad input covered", CASES.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );
}

#[test]
fn corpus_has_at_least_sixty_distinct_kinds() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), CASES.len(), "duplicate case names");
    assert!(CASES.len() >= 60, "{}", CASES.len());
}
