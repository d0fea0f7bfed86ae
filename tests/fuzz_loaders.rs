//! Loader fuzzing (issue 10): mutated safetensors checkpoints, IDX pairs and CSV text must give
//! `Ok` or `Err`, never a panic, and whatever loads holds no more than the file's own bytes (the
//! loaders bound every allocation by the input's length or by
//! [`MAX_ALLOCATION_BYTES`](mixprec::tensor::MAX_ALLOCATION_BYTES), never by a count in a header).
//!
//! About 2,000 cases in all by default (a few seconds in debug); set `MIXPREC_FUZZ_CASES=N` to
//! run N cases per property instead.
#![cfg(feature = "serde")]

use std::path::{Path, PathBuf};

use mixprec::io::{self, checkpoint, CheckpointMeta, CsvOptions, DataFormat};
use mixprec::optimizers::{Adam, Optimizer};
use mixprec::prelude::*;
use proptest::prelude::*;

fn cases(default: u32) -> ProptestConfig {
    let n = std::env::var("MIXPREC_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases: n,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// One way to damage a file.
#[derive(Debug, Clone)]
enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    Truncate {
        at: usize,
    },
    Insert {
        at: usize,
        bytes: Vec<u8>,
    },
    Overwrite {
        at: usize,
        bytes: Vec<u8>,
    },
    /// Safetensors only: the 8-byte header length replaced.
    HeaderLen(u64),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let pos = any::<prop::sample::Index>();
    prop_oneof![
        4 => (pos.clone(), 0u8..8).prop_map(|(i, bit)| Mutation::FlipBit { at: i.index(usize::MAX), bit }),
        2 => pos.clone().prop_map(|i| Mutation::Truncate { at: i.index(usize::MAX) }),
        2 => (pos.clone(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, bytes)| Mutation::Insert { at: i.index(usize::MAX), bytes }),
        2 => (pos, prop::collection::vec(prop_oneof![Just(0xffu8), Just(0), any::<u8>()], 1..9))
            .prop_map(|(i, bytes)| Mutation::Overwrite { at: i.index(usize::MAX), bytes }),
        1 => prop_oneof![Just(0u64), Just(u64::MAX), Just(1 << 40), any::<u64>(), 0u64..4096]
            .prop_map(Mutation::HeaderLen),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let n = bytes.len().max(1);
    match m {
        Mutation::FlipBit { at, bit } if !bytes.is_empty() => bytes[at % n] ^= 1 << bit,
        Mutation::Truncate { at } => bytes.truncate(at % (n + 1)),
        Mutation::Insert { at, bytes: b } => {
            let at = at % (bytes.len() + 1);
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::Overwrite { at, bytes: b } if !bytes.is_empty() => {
            for (k, &v) in b.iter().enumerate() {
                let i = (at + k) % n;
                bytes[i] = v;
            }
        }
        Mutation::HeaderLen(len) if bytes.len() >= 8 => {
            bytes[..8].copy_from_slice(&len.to_le_bytes())
        }
        _ => {}
    }
}

fn model() -> Vec<Dense<F32>> {
    vec![Dense::<F32>::new(3, 4), Dense::<F32>::new(4, 2)]
}

/// A valid checkpoint with optimizer state and a loss scale, as bytes.
fn valid_checkpoint(dir: &Path) -> Vec<u8> {
    let m = model();
    let mut state = Adam::new(1e-3).export_state();
    state.iterations = 5;
    state
        .slots
        .push((0, 0, mixprec::dtype::VecOf::F32(vec![0.5; 12])));
    state.loss_scale = Some(io::LossScaleState {
        scale: 1024.0,
        good_steps: 3,
    });
    let p = dir.join("valid.safetensors");
    let meta = CheckpointMeta::new(DTypePolicy::Float32).with_architecture("[3,4,2]");
    checkpoint::save_training(&m, &state, &p, &meta).unwrap();
    std::fs::read(p).unwrap()
}

/// Reads `bytes` as a checkpoint every way the CLI does; no panic, and what loads is bounded
/// by the file.
fn exercise_checkpoint(path: &Path, bytes: &[u8]) -> Result<(), TestCaseError> {
    std::fs::write(path, bytes).unwrap();
    if let Ok(ckpt) = checkpoint::read(path) {
        let held: usize = ckpt.tensors().iter().map(|t| t.bytes().len()).sum();
        prop_assert!(
            held <= bytes.len(),
            "{held} bytes from a {}-byte file",
            bytes.len()
        );
        let _ = ckpt.info().to_string();
        let mut m = model();
        if checkpoint::load_into(&mut m, &ckpt).is_ok() {
            let _ = checkpoint::optimizer_state(&m, &ckpt);
        }
        if let Ok(spec) = mixprec::models::MlpSpec::from_json(&ckpt.meta().architecture) {
            let _ = spec.build::<F32>(0).map(|layers| layers.len());
        }
    }
    let _ = checkpoint::inspect(path);
    Ok(())
}

/// A header claiming a tensor of `shape` at `offsets`, with `data` after it.
fn crafted(shape: &[u64], offsets: (u64, u64), dtype: &str, data: usize, arch: &str) -> Vec<u8> {
    let meta = format!(
        r#""mixprec.format":"1","mixprec.policy":"\"float32\"","mixprec.architecture":{},"mixprec.iterations":"0""#,
        serde_json::to_string(arch).unwrap()
    );
    let header = format!(
        r#"{{"__metadata__":{{{meta}}},"0.kernel":{{"dtype":"{dtype}","shape":{shape:?},"data_offsets":[{},{}]}}}}"#,
        offsets.0, offsets.1
    );
    let mut b = (header.len() as u64).to_le_bytes().to_vec();
    b.extend(header.as_bytes());
    b.resize(b.len() + data, 0);
    b
}

fn huge() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        Just(u64::MAX),
        Just(1 << 32),
        Just(1 << 40),
        Just(100_000_000_000),
        0u64..64,
        any::<u64>()
    ]
}

proptest! {
    #![proptest_config(cases(700))]

    #[test]
    fn mutated_checkpoints_load_or_fail_without_panic(muts in prop::collection::vec(mutation(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = valid_checkpoint(dir.path());
        for m in &muts {
            apply(&mut bytes, m);
        }
        exercise_checkpoint(&dir.path().join("fuzz.safetensors"), &bytes)?;
    }
}

proptest! {
    #![proptest_config(cases(300))]

    #[test]
    fn crafted_checkpoint_headers_with_huge_shapes_and_offsets_fail_cleanly(
        shape in prop::collection::vec(huge(), 0..4),
        start in huge(),
        end in huge(),
        dtype in prop::sample::select(vec!["F32", "F16", "BF16", "F64", "I64", "U8", "F8_E4M3"]),
        data in 0usize..64,
        hidden in huge(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let arch = format!(r#"{{"model":"mlp","inputs":3,"hidden":[{hidden}],"outputs":2,"activation":"relu"}}"#);
        let bytes = crafted(&shape, (start, end), dtype, data, &arch);
        exercise_checkpoint(&dir.path().join("crafted.safetensors"), &bytes)?;
    }
}

/// A valid IDX pair: `n` images of `r x c` pixels and their labels.
fn idx_pair(n: u32, r: u32, c: u32, seed: u8) -> (Vec<u8>, Vec<u8>) {
    let mut x = vec![0, 0, 8, 3];
    for d in [n, r, c] {
        x.extend(d.to_be_bytes());
    }
    x.extend((0..n * r * c).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    let mut y = vec![0, 0, 8, 1];
    y.extend(n.to_be_bytes());
    y.extend((0..n).map(|i| (i as u8).wrapping_add(seed) % 10));
    (x, y)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn mutated_idx_pairs_load_or_fail_without_panic(
        (n, r, c) in (1u32..6, 1u32..5, 1u32..5),
        seed in any::<u8>(),
        image_muts in prop::collection::vec(mutation(), 0..3),
        label_muts in prop::collection::vec(mutation(), 0..3),
        header_dim in prop::option::of((0usize..3, huge())),
        (gzip_x, gzip_y) in (any::<bool>(), any::<bool>()),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (mut x, mut y) = idx_pair(n, r, c, seed);
        if let Some((d, v)) = header_dim {
            x[4 + 4 * d..8 + 4 * d].copy_from_slice(&(v as u32).to_be_bytes());
        }
        for m in &image_muts {
            apply(&mut x, m);
        }
        for m in &label_muts {
            apply(&mut y, m);
        }
        let x = if gzip_x { gz(&x) } else { x };
        let y = if gzip_y { gz(&y) } else { y };
        let (xp, yp) = (write(dir.path(), "images", &x), write(dir.path(), "labels", &y));
        let decompressed = (n * r * c) as usize + 64;
        if let Ok(d) = io::read_idx_dataset(&xp, &yp) {
            prop_assert!(d.x().len() <= decompressed.max(x.len()));
            prop_assert!(d.classes().unwrap() <= 256);
        }
        let _ = io::read_idx_images(&xp);
        let _ = io::read_idx_labels(&yp);
        let _ = io::sniff_format(&xp).map(|f| f == DataFormat::Idx);
        let _ = io::read_csv(&xp, &CsvOptions::default());
    }
}

fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => (0u32..10).prop_map(|v| v.to_string()),
        4 => (-1e3f32..1e3).prop_map(|v| v.to_string()),
        1 => Just("NaN".to_string()),
        1 => Just("inf".to_string()),
        1 => Just("-inf".to_string()),
        1 => Just("1e39".to_string()),
        1 => Just("4294967295".to_string()),
        1 => Just("18446744073709551616".to_string()),
        1 => Just("1000000".to_string()),
        1 => Just("-1".to_string()),
        1 => Just("2.5".to_string()),
        1 => Just(String::new()),
        1 => Just("\"quoted\"".to_string()),
        1 => "[ -~]{0,6}",
        1 => Just("\u{feff}".to_string()),
    ]
}

fn csv_text() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        prop::collection::vec(
            (
                prop::collection::vec(cell(), 0..6),
                prop_oneof![Just("\n"), Just("\r\n"), Just("\n\n")],
            ),
            0..12,
        ),
    )
        .prop_map(|(bom, rows)| {
            let mut s = if bom {
                "\u{feff}".to_string()
            } else {
                String::new()
            };
            for (cells, end) in rows {
                s.push_str(&cells.join(","));
                s.push_str(end);
            }
            s
        })
}

proptest! {
    #![proptest_config(cases(500))]

    #[test]
    fn csv_text_parses_or_fails_without_panic(
        text in csv_text(),
        header in any::<bool>(),
        label in prop_oneof![Just(io::LabelColumn::First), Just(io::LabelColumn::Last), (0usize..8).prop_map(io::LabelColumn::Index)],
        scale in prop_oneof![Just(1.0f32), Just(1.0 / 255.0), Just(1e38), Just(f32::NAN)],
        gzip in any::<bool>(),
    ) {
        let opts = CsvOptions { label_column: label, header, scale, ..CsvOptions::default() };
        if let Ok(d) = io::parse_csv(&text, "fuzz.csv", &opts) {
            prop_assert!(d.x().len() <= text.len());
            prop_assert!(d.classes().unwrap() <= io::DEFAULT_MAX_CLASSES);
            prop_assert!(d.x().as_slice().iter().all(|v| v.is_finite()));
        }
        let dir = tempfile::tempdir().unwrap();
        let bytes = if gzip { gz(text.as_bytes()) } else { text.clone().into_bytes() };
        let p = write(dir.path(), "data", &bytes);
        let from_file = io::read_csv(&p, &opts).map(|d| d.len());
        let direct = io::parse_csv(&text, &p.display().to_string(), &opts).map(|d| d.len());
        prop_assert_eq!(from_file.is_ok(), direct.is_ok(), "gzip {} changed the outcome", gzip);
        prop_assert_eq!(io::sniff_format(&p).unwrap(), DataFormat::Csv);
    }
}
