//! BatchNormalization's moving statistics as non-trainable f32 variables: checkpoints round-trip
//! them bit for bit inside bfloat16 and mixed_bfloat16 layers (and refuse crafted files that
//! widen a tensor without the record, or record a trainable one), optimizers leave them alone
//! and keep no state for them, and a resumed run is exact.

use std::collections::HashMap;

use mixprec::io::{checkpoint, CheckpointMeta};
use mixprec::layers::BatchNormalization;
use mixprec::optimizers::{grads_are_finite, Adam, AutoOptimizer, Optimizer};
use mixprec::prelude::*;

type Net<P> = (Dense<P>, BatchNormalization<P>, Dense<P>);

fn net<P: Policy>() -> Net<P> {
    let spec = mixprec::models::MlpSpec::new(64, vec![16], 10);
    let mut d = spec.build::<P>(3).unwrap().into_iter();
    (
        d.next().unwrap(),
        BatchNormalization::new(16),
        d.next().unwrap(),
    )
}

fn opts(initial_epoch: usize, epochs: usize) -> FitOptions {
    FitOptions {
        epochs,
        initial_epoch,
        seed: 5,
        ..Default::default()
    }
}

fn path(name: &str) -> std::path::PathBuf {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("batch_norm_state");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(format!("{name}.safetensors"))
}

fn round_trip<P: Policy>() {
    let data = mixprec::io::digits().unwrap();
    let mut model = net::<P>();
    let mut opt = AutoOptimizer::new::<Net<P>>(Adam::new(1e-3));
    fit(&mut model, &mut opt, &data, &opts(0, 1)).unwrap();
    let stats = model.1.get_weights();
    assert!(
        stats[2].as_slice().iter().any(|&m| m != 0.0),
        "the moving mean moved"
    );
    let p = path(P::NAME);
    checkpoint::save(&model, &p, &CheckpointMeta::new(P::RUNTIME)).unwrap();
    let ckpt = checkpoint::read(&p).unwrap();
    let widened = P::VARIABLE_DTYPE.size_of() == 2;
    let want: Vec<String> = match widened {
        true => vec!["1.moving_mean".into(), "1.moving_variance".into()],
        false => vec![],
    };
    assert_eq!(ckpt.meta().statistics, want, "{}", P::NAME);
    let mut fresh = net::<P>();
    checkpoint::load_into(&mut fresh, &ckpt).unwrap();
    assert_eq!(fresh.get_weights(), model.get_weights(), "{}", P::NAME);
    assert_eq!(fresh.1.moving_mean().value(), model.1.moving_mean().value());
}

#[test]
fn checkpoint_round_trip_is_exact_in_bfloat16() {
    round_trip::<Bf16>();
}

#[test]
fn checkpoint_round_trip_is_exact_in_mixed_bfloat16() {
    round_trip::<MixedBf16>();
}

/// Rewrites the checkpoint at `from` into `to` with `edit` applied to its tensors and metadata.
fn craft(
    from: &std::path::Path,
    to: &std::path::Path,
    edit: impl FnOnce(
        &mut Vec<(String, safetensors::Dtype, Vec<usize>, Vec<u8>)>,
        &mut HashMap<String, String>,
    ),
) {
    let bytes = std::fs::read(from).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let mut tensors: Vec<_> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.dtype(), t.shape().to_vec(), t.data().to_vec()))
        .collect();
    edit(&mut tensors, &mut meta);
    let views: Vec<_> = tensors
        .iter()
        .map(|(n, d, s, b)| {
            (
                n.clone(),
                safetensors::tensor::TensorView::new(*d, s.clone(), b).unwrap(),
            )
        })
        .collect();
    std::fs::write(to, safetensors::serialize(views, Some(meta)).unwrap()).unwrap();
}

#[test]
fn crafted_files_are_refused() {
    let model = BatchNormalization::<Bf16>::new(4);
    let good = path("bn-good");
    checkpoint::save(&model, &good, &CheckpointMeta::new(DTypePolicy::BFloat16)).unwrap();
    // An f32 statistic without the record: refused by read.
    let bad = path("bn-unrecorded");
    craft(&good, &bad, |_, meta| {
        meta.remove("mixprec.statistics");
    });
    let err = checkpoint::read(&bad).unwrap_err().to_string();
    assert!(
        err.contains("\"moving_") && err.contains("stored as float32"),
        "{err}"
    );
    // A trainable variable widened to f32 and recorded as a statistic: refused by load_into.
    let bad = path("bn-widened-gamma");
    craft(&good, &bad, |tensors, meta| {
        let gamma = tensors.iter_mut().find(|t| t.0 == "gamma").unwrap();
        gamma.1 = safetensors::Dtype::F32;
        gamma.3 = [1.0f32; 4].iter().flat_map(|v| v.to_le_bytes()).collect();
        meta.insert(
            "mixprec.statistics".into(),
            r#"["gamma","moving_mean","moving_variance"]"#.into(),
        );
    });
    let ckpt = checkpoint::read(&bad).unwrap();
    let mut into = BatchNormalization::<Bf16>::new(4);
    let err = checkpoint::load_into(&mut into, &ckpt)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"gamma\" is stored as float32"), "{err}");
    assert_eq!(into, BatchNormalization::<Bf16>::new(4), "unchanged");
}

#[test]
fn optimizer_steps_leave_the_moving_statistics_alone() {
    let mut bn = BatchNormalization::<MixedBf16>::new(3);
    let x = Tensor::from_vec(vec![4, 3], (0..12).map(|i| i as f32 * 0.5).collect()).unwrap();
    let y = bn.train_forward(x.cast()).unwrap();
    let after_forward = bn.get_weights();
    bn.backward(y, false).unwrap();
    assert!(bn.moving_mean().grad().is_none() && bn.moving_variance().grad().is_none());
    assert!(grads_are_finite(&bn));
    let mut opt = Adam::new(0.1);
    let _ = opt.step(&mut bn).unwrap();
    let after_step = bn.get_weights();
    assert_ne!(after_step[0], after_forward[0], "gamma trained");
    assert_eq!(
        &after_step[2..],
        &after_forward[2..],
        "statistics untouched"
    );
    let slotted: Vec<usize> = opt.export_state().slots.iter().map(|s| s.0).collect();
    assert!(
        slotted.iter().all(|&v| v < 2),
        "slots only for gamma and beta: {slotted:?}"
    );
    let info = bn.variables();
    assert_eq!(
        info.iter().map(|v| v.trainable).collect::<Vec<_>>(),
        [true, true, false, false]
    );
}

fn resume<P: Policy>() {
    let data = mixprec::io::digits().unwrap();
    let mut straight = net::<P>();
    let mut opt = AutoOptimizer::new::<Net<P>>(Adam::new(1e-3));
    fit(&mut straight, &mut opt, &data, &opts(0, 3)).unwrap();

    let mut first = net::<P>();
    let mut opt = AutoOptimizer::new::<Net<P>>(Adam::new(1e-3));
    fit(&mut first, &mut opt, &data, &opts(0, 1)).unwrap();
    let p = path(&format!("resume-{}", P::NAME));
    checkpoint::save_training(
        &first,
        &opt.export_state(),
        &p,
        &CheckpointMeta::new(P::RUNTIME),
    )
    .unwrap();
    let ckpt = checkpoint::read(&p).unwrap();
    let mut resumed = net::<P>();
    checkpoint::load_into(&mut resumed, &ckpt).unwrap();
    let mut opt2 = AutoOptimizer::new::<Net<P>>(Adam::new(1e-3));
    opt2.import_state(checkpoint::optimizer_state(&resumed, &ckpt).unwrap())
        .unwrap();
    fit(&mut resumed, &mut opt2, &data, &opts(1, 3)).unwrap();
    assert_eq!(resumed.get_weights(), straight.get_weights(), "{}", P::NAME);
}

#[test]
fn resume_is_exact_with_batch_normalization_in_bfloat16() {
    resume::<Bf16>();
}

#[test]
fn resume_is_exact_with_batch_normalization_in_mixed_bfloat16() {
    resume::<MixedBf16>();
}
