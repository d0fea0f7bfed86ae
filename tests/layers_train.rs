//! Models built from the issue-12 layers train on the digits: a bf16 residual MLP with an f32
//! head, and a bf16 MLP with dropout.

mod common;

use common::dense;
use mixprec::layers::{Dropout, Residual};
use mixprec::prelude::*;

fn split() -> (Dataset, Dataset) {
    mixprec::io::digits()
        .unwrap()
        .shuffle_split(0.2, 0)
        .unwrap()
}

fn options() -> FitOptions {
    FitOptions {
        epochs: 20,
        batch_size: 32,
        ..FitOptions::default()
    }
}

fn accuracy<M: Layer>(model: &M, test: &Dataset) -> f64 {
    evaluate(model, test, 256, None).unwrap().accuracy.unwrap()
}

#[test]
fn a_residual_bf16_mlp_with_an_f32_head_trains_on_the_digits() {
    let (train, test) = mixprec::io::digits()
        .unwrap()
        .shuffle_split(0.2, 0)
        .unwrap();
    let mut model = (
        dense::<MixedBf16>(64, 64, 1, Activation::Relu),
        Residual::new(dense::<MixedBf16>(64, 64, 2, Activation::Relu)),
        Residual::new(dense::<MixedBf16>(64, 64, 3, Activation::Relu)),
        dense::<F32>(64, 10, 4, Activation::Linear),
    );
    let options = FitOptions {
        epochs: 20,
        batch_size: 32,
        ..FitOptions::default()
    };
    fit(&mut model, &mut Adam::new(1e-3), &train, &options).unwrap();
    let acc = evaluate(&model, &test, 256, None)
        .unwrap()
        .accuracy
        .unwrap();
    println!("residual bf16 MLP, f32 head: test accuracy {acc:.4}");
    assert!(acc >= 0.96, "test accuracy {acc}");
}

#[test]
fn a_bf16_mlp_with_dropout_trains_and_infers_without_it() {
    let (train, test) = split();
    let mut model = (
        dense::<MixedBf16>(64, 128, 1, Activation::Relu),
        Dropout::<MixedBf16>::with_seed(0.2, 5).unwrap(),
        dense::<F32>(128, 10, 2, Activation::Linear),
    );
    fit(&mut model, &mut Adam::new(1e-3), &train, &options()).unwrap();
    assert!(model.1.step() > 0, "every training step drew a mask");
    let acc = accuracy(&model, &test);
    println!("bf16 MLP with dropout 0.2: test accuracy {acc:.4}");
    assert!(acc >= 0.95, "test accuracy {acc}");
    // Inference is deterministic: dropout is the identity there.
    let x: Tensor<bf16> = test.select(&[0, 1, 2, 3]).x().cast();
    assert_eq!(model.infer(&x).unwrap(), model.infer(&x).unwrap());
}

#[test]
fn an_embedding_model_learns_a_token_task_under_mixed_bfloat16() {
    // Sequences of 4 tokens from a vocabulary of 16; the class is the second token's group of 4.
    let n = 2000;
    let mut state = 12345u64;
    let mut tokens = Vec::with_capacity(n * 4);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        for p in 0..4 {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let t = (state >> 60) as u32;
            tokens.push(t as f32);
            if p == 1 {
                labels.push(t / 4);
            }
        }
    }
    let data =
        Dataset::classification(Tensor::from_vec(vec![n, 4], tokens).unwrap(), labels, 4).unwrap();
    let (train, test) = data.shuffle_split(0.2, 0).unwrap();
    let mut model = (
        mixprec::layers::Embedding::<MixedBf16>::new(16, 8).unwrap(),
        mixprec::layers::Flatten::<MixedBf16>::new(),
        dense::<MixedBf16>(32, 32, 1, Activation::Relu),
        dense::<F32>(32, 4, 2, Activation::Linear),
    );
    fit(&mut model, &mut Adam::new(1e-2), &train, &options()).unwrap();
    let acc = accuracy(&model, &test);
    println!("embedding model, mixed_bfloat16: test accuracy {acc:.4}");
    assert!(acc >= 0.95, "test accuracy {acc}");
}
