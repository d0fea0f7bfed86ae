//! Training resumes exactly from a checkpoint: 2 epochs, save, load into a fresh model and a
//! fresh optimizer, 2 more epochs gives bit-for-bit the weights of 4 uninterrupted epochs.

use mixprec::io::{checkpoint, CheckpointMeta};
use mixprec::optimizers::{AutoOptimizer, Optimizer, PlainOptimizer};
use mixprec::prelude::*;

fn model<P: Policy>() -> Vec<Dense<P>> {
    mixprec::models::MlpSpec::new(64, vec![32], 10)
        .build::<P>(3)
        .unwrap()
}

fn weights<M: Module>(m: &M) -> Vec<f64> {
    let mut out = Vec::new();
    m.get_weights()
        .iter()
        .for_each(|w| out.extend(w.as_slice()));
    out
}

fn resume_matches_uninterrupted<P: Policy, O: PlainOptimizer>(make: impl Fn() -> O) {
    let data = mixprec::io::digits().unwrap();
    let opts = |initial_epoch, epochs| FitOptions {
        epochs,
        initial_epoch,
        seed: 5,
        ..Default::default()
    };

    let mut straight = model::<P>();
    let mut opt = AutoOptimizer::new::<Vec<Dense<P>>>(make());
    fit(&mut straight, &mut opt, &data, &opts(0, 4)).unwrap();

    let mut first = model::<P>();
    let mut opt = AutoOptimizer::new::<Vec<Dense<P>>>(make());
    fit(&mut first, &mut opt, &data, &opts(0, 2)).unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("resume");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{}.safetensors", P::NAME));
    checkpoint::save_training(
        &first,
        &opt.export_state(),
        &path,
        &CheckpointMeta::new(P::RUNTIME),
    )
    .unwrap();

    let ckpt = checkpoint::read(&path).unwrap();
    let mut resumed = model::<P>();
    checkpoint::load_into(&mut resumed, &ckpt).unwrap();
    let mut opt2 = AutoOptimizer::new::<Vec<Dense<P>>>(make());
    opt2.import_state(checkpoint::optimizer_state(&resumed, &ckpt).unwrap())
        .unwrap();
    assert_eq!(opt2.iterations(), opt.iterations());
    fit(&mut resumed, &mut opt2, &data, &opts(2, 4)).unwrap();
    assert_eq!(
        weights(&resumed),
        weights(&straight),
        "{}: resumed run differs",
        P::NAME
    );
}

#[test]
fn resume_is_exact_for_adam_in_mixed_float16_with_loss_scaling() {
    resume_matches_uninterrupted::<MixedF16, _>(|| Adam::new(1e-3));
}

#[test]
fn resume_is_exact_for_adam_in_mixed_bfloat16() {
    resume_matches_uninterrupted::<MixedBf16, _>(|| Adam::new(1e-3));
}

#[test]
fn resume_is_exact_for_sgd_with_momentum_in_float32() {
    resume_matches_uninterrupted::<F32, _>(|| Sgd::new(0.05).with_momentum(0.9).unwrap());
}

#[test]
fn optimizer_state_for_another_model_is_rejected() {
    let data = mixprec::io::digits().unwrap();
    let mut m = model::<F32>();
    let mut opt = Adam::new(1e-3);
    fit(&mut m, &mut opt, &data, &FitOptions::default()).unwrap();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("resume");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("other.safetensors");
    checkpoint::save_training(
        &m,
        &opt.export_state(),
        &path,
        &CheckpointMeta::new(DTypePolicy::Float32),
    )
    .unwrap();
    let ckpt = checkpoint::read(&path).unwrap();
    let other = mixprec::models::MlpSpec::new(64, vec![16, 16], 10)
        .build::<F32>(0)
        .unwrap();
    assert!(checkpoint::optimizer_state(&other, &ckpt).is_err());
}
