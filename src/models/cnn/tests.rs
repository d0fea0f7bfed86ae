//! `CnnSpec`'s shapes and JSON, and the `Cnn`'s passes against the layers run one by one.

use super::*;
use crate::layers::{Flatten, Layer, MaxPooling2D};
use crate::policy::{MixedBf16, F32};
use crate::tensor::Tensor;
use crate::Module;

#[test]
fn shapes_follow_keras_rules() {
    let spec = CnnSpec::new([8, 8, 1], 10);
    assert_eq!(spec.conv_output().unwrap(), [8, 8, 32]);
    assert_eq!(spec.pool_output().unwrap(), [4, 4, 32]);
    assert_eq!(spec.flat_features().unwrap(), 512);
    assert_eq!(spec.param_count().unwrap(), 3 * 3 * 32 + 32 + 512 * 10 + 10);
    let valid = CnnSpec {
        padding: Padding::Valid,
        pool_size: (3, 3),
        ..CnnSpec::new([9, 7, 2], 4)
    };
    // valid 3x3: 7x5; pool 3 (floor): 2x1.
    assert_eq!(valid.conv_output().unwrap(), [7, 5, 32]);
    assert_eq!(valid.pool_output().unwrap(), [2, 1, 32]);
    let model = valid.build::<F32>(3).unwrap();
    assert_eq!(model.param_count(), valid.param_count().unwrap());
    let y = model
        .infer(&Tensor::zeros(vec![2, 9 * 7 * 2]).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[2, 4]);
}

#[test]
fn square_reads_rows_as_images_and_refuses_others() {
    assert_eq!(CnnSpec::square(64, 10).unwrap().input, [8, 8, 1]);
    assert_eq!(CnnSpec::square(784, 10).unwrap().input, [28, 28, 1]);
    let e = CnnSpec::square(65, 10).unwrap_err().to_string();
    assert!(e.contains("65 features per row, not a square image"), "{e}");
    assert!(CnnSpec::square(0, 10).is_err());
}

#[test]
fn json_round_trips_and_refuses_bad_specs() {
    let spec = CnnSpec {
        filters: 8,
        kernel_size: (5, 3),
        padding: Padding::Valid,
        ..CnnSpec::new([12, 10, 3], 7)
    };
    let json = spec.to_json();
    assert_eq!(
        json,
        r#"{"model":"cnn","input":[12,10,3],"filters":8,"kernel_size":[5,3],"padding":"valid","pool_size":[2,2],"outputs":7,"activation":"relu"}"#
    );
    assert_eq!(CnnSpec::from_json(&json).unwrap(), spec);
    let err = |j: &str| CnnSpec::from_json(j).unwrap_err().to_string();
    let mlp = r#"{"model":"mlp","inputs":64,"hidden":[8],"outputs":10,"activation":"relu"}"#;
    assert!(err(mlp).contains("unknown field"), "{}", err(mlp));
    let other = json.replace(r#""cnn""#, r#""rnn""#);
    assert!(err(&other).contains(r#"model "rnn""#), "{}", err(&other));
    let zero = json.replace(r#""filters":8"#, r#""filters":0"#);
    assert!(err(&zero).contains("cnn filters"), "{}", err(&zero));
    // A 13x13 valid kernel does not fit a 12x10 image.
    let big = json.replace("[5,3]", "[13,3]");
    assert!(err(&big).contains("height"), "{}", err(&big));
    // The pool does not fit the 1-wide output of a valid 10-wide kernel.
    let pool = json.replace("[5,3]", "[5,10]");
    assert!(err(&pool).contains("width"), "{}", err(&pool));
    let missing = json.replace(r#","activation":"relu""#, "");
    assert!(err(&missing).contains("missing field"), "{}", err(&missing));
}

#[test]
fn passes_equal_the_layers_run_one_by_one() {
    let spec = CnnSpec::new([6, 6, 2], 3);
    let mut model = spec.build::<MixedBf16>(5).unwrap();
    let x: Vec<f32> = (0..4 * 72)
        .map(|i| ((i * 37 % 23) as f32 - 11.0) / 7.0)
        .collect();
    let x = Tensor::from_vec(vec![4, 72], x)
        .unwrap()
        .cast::<half::bf16>();
    let images = Tensor::from_vec(vec![4, 6, 6, 2], x.as_slice().to_vec()).unwrap();
    let h = model.conv().forward(&images).unwrap();
    let h = MaxPooling2D::<MixedBf16>::new().forward(&h).unwrap();
    let h = Flatten::<MixedBf16>::new().forward(&h).unwrap();
    let want = model.dense().forward(&h).unwrap();
    assert_eq!(model.infer(&x).unwrap(), want);
    let y = model.train_forward(x.clone()).unwrap();
    assert_eq!(y, want);
    assert!(model.saved_bytes() > 0);
    let dx = model.backward(y, true).unwrap().unwrap();
    assert_eq!(dx.shape(), &[4, 72]);
    assert_eq!(model.saved_bytes(), 0);
    let e = model
        .infer(&Tensor::zeros(vec![4, 71]).unwrap())
        .unwrap_err();
    assert!(e.to_string().contains("[batch, 72] (6x6x2 images"), "{e}");
    assert_eq!(model.output_dim(72), Some(3));
    assert_eq!(model.output_dim(71), None);
}
