//! BatchNormalization's Keras surface: bad arguments are errors naming the problem, Keras's
//! defaults, and its `get_config()` JSON (read, round trip, refused keys).

use mixprec::layers::{BatchNormalization, BatchNormalizationConfig, Layer};
use mixprec::policy::F32;
use mixprec::{Module, Tensor};

#[test]
fn bad_arguments_are_errors_naming_the_problem() {
    let e = |r: mixprec::Result<BatchNormalization<F32>>| r.unwrap_err().to_string();
    assert!(e(BatchNormalization::try_new(0)).contains("dim"));
    assert!(e(BatchNormalizationConfig::new().momentum(1.01).init(2)).contains("momentum"));
    assert!(e(BatchNormalizationConfig::new().momentum(-0.1).init(2)).contains("[0, 1]"));
    assert!(e(BatchNormalizationConfig::new().epsilon(0.0).init(2)).contains("epsilon"));
    assert!(e(BatchNormalizationConfig::new().epsilon(f64::NAN).init(2)).contains("> 0"));
    assert!(e(BatchNormalizationConfig::new().axis(1).init(2)).contains("axis"));
    let mut bn = BatchNormalization::<F32>::new(3);
    let x = Tensor::from_vec(vec![2, 2], vec![0.0f32; 4]).unwrap();
    assert!(bn.infer(&x).unwrap_err().to_string().contains("[.., 3]"));
    assert!(bn
        .train_forward(x)
        .unwrap_err()
        .to_string()
        .contains("[.., 3]"));
    let empty = Tensor::from_vec(vec![0, 3], vec![]).unwrap();
    assert!(bn
        .train_forward(empty)
        .unwrap_err()
        .to_string()
        .contains("at least one row"));
    assert!(bn
        .backward(Tensor::from_vec(vec![1, 3], vec![0.0; 3]).unwrap(), true)
        .is_err());
}

#[test]
fn keras_defaults_and_config_json() {
    let d = BatchNormalizationConfig::new();
    assert_eq!(
        (d.axis, d.momentum, d.epsilon, d.center, d.scale),
        (-1, 0.99, 1e-3, true, true)
    );
    let bn = BatchNormalization::<F32>::new(3);
    assert_eq!(bn.param_count(), 12);
    assert_eq!(bn.get_weights()[3].as_slice(), &[1.0; 3]);
    // What Keras 3's BatchNormalization().get_config() writes.
    let keras = r#"{"name": "batch_normalization", "trainable": true, "dtype": {"module": "keras",
        "class_name": "DTypePolicy", "config": {"name": "mixed_bfloat16"}, "registered_name": null},
        "axis": -1, "momentum": 0.9, "epsilon": 0.001, "center": true, "scale": false,
        "beta_initializer": {"module": "keras.initializers", "class_name": "Zeros", "config": {},
        "registered_name": null}, "gamma_initializer": "ones", "moving_mean_initializer": "zeros",
        "moving_variance_initializer": "ones", "beta_regularizer": null, "gamma_regularizer": null,
        "beta_constraint": null, "gamma_constraint": null, "synchronized": false}"#;
    let c: BatchNormalizationConfig = serde_json::from_str(keras).unwrap();
    assert_eq!((c.momentum, c.scale), (0.9, false));
    let back: BatchNormalizationConfig =
        serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    for bad in [
        r#"{"synchronized": true}"#,
        r#"{"momentum": 2.0}"#,
        r#"{"renorm": true}"#,
        r#"{"axis": 1}"#,
    ] {
        assert!(
            serde_json::from_str::<BatchNormalizationConfig>(bad).is_err(),
            "{bad}"
        );
    }
}
