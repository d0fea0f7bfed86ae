//! Real data: `CnnSpec`'s default CNN (8x8x1, 32 3x3 "same" ReLU filters, 2x2 max pooling,
//! dense 512-10) trained with `fit` on the embedded digits (80/20 split, Adam 3e-3, batch 32)
//! reaches at least 96% test accuracy in F32, MixedBf16 and MixedF16 (loss-scaled by
//! `AutoOptimizer`) in 10 epochs, and its checkpoint, rebuilt from the architecture it
//! records, predicts the same logits bit for bit.

use mixprec::io::{checkpoint, CheckpointMeta};
use mixprec::models::CnnSpec;
use mixprec::optimizers::AutoOptimizer;
use mixprec::prelude::*;

const EPOCHS: usize = 10;

fn train_and_test<P: Policy>() -> f64 {
    let (train, test) = mixprec::io::digits()
        .unwrap()
        .shuffle_split(0.2, 0)
        .unwrap();
    let spec = CnnSpec::new([8, 8, 1], 10);
    let mut model = spec.build::<P>(0).unwrap();
    let mut opt = AutoOptimizer::for_model(&model, Adam::new(3e-3));
    assert_eq!(opt.scales_loss(), P::RUNTIME == DTypePolicy::MixedFloat16);
    let options = FitOptions {
        epochs: EPOCHS,
        batch_size: 32,
        ..FitOptions::default()
    };
    let history = fit(&mut model, &mut opt, &train, &options).unwrap();
    let first = history.epochs[0].loss;
    let last = history.last().unwrap().loss;
    assert!(last < first / 4.0, "loss {first} -> {last}");
    let acc = evaluate(&model, &test, 256, None)
        .unwrap()
        .accuracy
        .unwrap();
    println!("{} cnn test accuracy {acc:.4}", P::RUNTIME);
    // Saved with its architecture, rebuilt from it and reloaded: the same logits, bit for bit.
    let path = std::env::temp_dir().join(format!("train_cnn_{}.safetensors", P::RUNTIME));
    let meta = CheckpointMeta::new(P::RUNTIME).with_architecture(spec.to_json());
    checkpoint::save(&model, &path, &meta).unwrap();
    let ckpt = checkpoint::read(&path).unwrap();
    let rebuilt = CnnSpec::from_json(&ckpt.meta().architecture).unwrap();
    let mut loaded = rebuilt.build::<P>(99).unwrap();
    checkpoint::load_into(&mut loaded, &ckpt).unwrap();
    std::fs::remove_file(&path).unwrap();
    let (a, b) = (
        predict(&model, test.x(), 256).unwrap(),
        predict(&loaded, test.x(), 256).unwrap(),
    );
    assert_eq!(a.as_slice(), b.as_slice());
    acc
}

#[test]
fn digits_cnn_reaches_96_percent_in_f32() {
    let acc = train_and_test::<F32>();
    assert!(acc >= 0.96, "float32 test accuracy {acc}");
}

#[test]
fn digits_cnn_reaches_96_percent_in_mixed_bf16() {
    let acc = train_and_test::<MixedBf16>();
    assert!(acc >= 0.96, "mixed_bfloat16 test accuracy {acc}");
}

#[test]
fn digits_cnn_reaches_96_percent_in_mixed_f16_with_loss_scaling() {
    let acc = train_and_test::<MixedF16>();
    assert!(acc >= 0.96, "mixed_float16 test accuracy {acc}");
}
