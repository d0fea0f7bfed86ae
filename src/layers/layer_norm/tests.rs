use super::*;
use crate::policy::{MixedBf16, F32, F64};

#[test]
fn keras_defaults_and_output_shape() {
    let ln = LayerNormalization::<F32>::new(3);
    assert_eq!((ln.dim(), ln.epsilon()), (3, 1e-3));
    assert_eq!(ln.gamma().unwrap().value().as_slice(), &[1.0; 3]);
    assert_eq!(ln.beta().unwrap().value().as_slice(), &[0.0; 3]);
    assert_eq!(ln.param_names(), ["gamma", "beta"]);
    let x = Tensor::from_vec(vec![2, 2, 3], (0..12).map(|i| (i * i) as f32).collect()).unwrap();
    let y = ln.forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 2, 3]);
    assert_eq!(ln.output_dim(3), Some(3));
    assert_eq!(ln.output_dim(4), None);
    for row in y.as_slice().chunks(3) {
        let mean: f32 = row.iter().sum::<f32>() / 3.0;
        assert!(mean.abs() < 1e-6, "{row:?}");
    }
}

#[test]
fn bad_arguments_are_errors_that_name_the_problem() {
    let e = LayerNormalization::<F32>::try_new(0)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer normalization dim") && e.contains("0"),
        "{e}"
    );
    let c = LayerNormalizationConfig {
        axis: 1,
        ..LayerNormalizationConfig::new()
    };
    assert!(c.init::<F32>(4).unwrap_err().to_string().contains("axis"));
    let e = LayerNormalizationConfig::new()
        .epsilon(-1.0)
        .init::<F32>(4)
        .unwrap_err();
    assert!(e.to_string().contains("epsilon"), "{e}");
    let ln = LayerNormalization::<F32>::new(4);
    let e = ln
        .forward(&Tensor::zeros(vec![2, 3]).unwrap())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer normalization input") && e.contains("[.., 4]"),
        "{e}"
    );
    let mut ln = ln;
    assert!(matches!(
        ln.backward(Tensor::zeros(vec![1, 4]).unwrap(), true),
        Err(Error::BackwardWithoutForward {
            layer: "LayerNormalization"
        })
    ));
    ln.train_forward(Tensor::zeros(vec![2, 4]).unwrap())
        .unwrap();
    let e = ln
        .backward(Tensor::zeros(vec![1, 4]).unwrap(), true)
        .unwrap_err();
    assert!(e.to_string().contains("output gradient"), "{e}");
}

#[test]
fn center_and_scale_flags_drop_the_variables() {
    let ln = LayerNormalizationConfig::new()
        .center(false)
        .scale(false)
        .init::<F64>(2)
        .unwrap();
    assert_eq!(ln.param_count(), 0);
    let y = ln
        .forward(&Tensor::from_vec(vec![1, 2], vec![1.0, 3.0]).unwrap())
        .unwrap();
    let want = 1.0 / (1.0f64 + 1e-3).sqrt();
    assert!((y.as_slice()[1] - want).abs() < 1e-15);
}

#[test]
fn saved_bytes_count_the_input_and_row_statistics() {
    let mut ln = LayerNormalization::<MixedBf16>::new(4);
    ln.train_forward(Tensor::zeros(vec![3, 4]).unwrap())
        .unwrap();
    assert_eq!(ln.saved_bytes(), 3 * 4 * 2 + 3 * 2 * 4);
    ln.clear_saved();
    assert_eq!(ln.saved_bytes(), 0);
}

#[test]
fn non_finite_rows_are_nan_rows() {
    let ln = LayerNormalization::<F32>::new(2);
    let x = Tensor::from_vec(
        vec![3, 2],
        vec![f32::NAN, 1.0, f32::INFINITY, 1.0, 1.0, 2.0],
    )
    .unwrap();
    let y = ln.forward(&x).unwrap();
    assert!(
        y.as_slice()[..4].iter().all(|v| v.is_nan()),
        "{:?}",
        y.as_slice()
    );
    assert!(y.as_slice()[4..].iter().all(|v| v.is_finite()));
}

#[cfg(feature = "serde")]
#[test]
fn keras_config_round_trips_and_refuses_what_it_cannot_honour() {
    let keras = r#"{"name": "layer_normalization", "trainable": true, "dtype": "float32",
        "axis": [-1], "epsilon": 1e-5, "center": true, "scale": false, "rms_scaling": false,
        "beta_initializer": "zeros", "gamma_initializer": "ones", "beta_regularizer": null,
        "gamma_regularizer": null, "beta_constraint": null, "gamma_constraint": null}"#;
    let c: LayerNormalizationConfig = serde_json::from_str(keras).unwrap();
    assert_eq!(
        c,
        LayerNormalizationConfig::new().epsilon(1e-5).scale(false)
    );
    let back: LayerNormalizationConfig =
        serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
    for (from, to, want) in [
        (
            r#""rms_scaling": false"#,
            r#""rms_scaling": true"#,
            "rms_scaling",
        ),
        (r#""axis": [-1]"#, r#""axis": 1"#, "axis"),
        (
            r#""gamma_constraint": null"#,
            r#""gamma_constraint": {}"#,
            "gamma_constraint",
        ),
        (
            r#""center": true"#,
            r#""center": true, "momentum": 1"#,
            "unknown field",
        ),
    ] {
        let err = serde_json::from_str::<LayerNormalizationConfig>(&keras.replace(from, to))
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{to}: {err}");
    }
    let s: crate::layers::SoftmaxConfig =
        serde_json::from_str(r#"{"axis": -1, "name": "s"}"#).unwrap();
    assert_eq!(s, crate::layers::SoftmaxConfig::new());
    let err = serde_json::from_str::<crate::layers::SoftmaxConfig>(r#"{"axis": 2}"#).unwrap_err();
    assert!(err.to_string().contains("softmax axis"), "{err}");
}

/// Rows of `n` values with an offset and spread that exercise the two-pass variance.
fn rows_of<C: Element>(rows: usize, n: usize) -> Vec<C> {
    (0..rows * n)
        .map(|i| C::from_f64_rne(((i * 7919) % 1013) as f64 / 97.0 - 3.0 + (i / n) as f64 * 40.0))
        .collect()
}

/// The AVX-512 row kernel against the portable row: the same operations in the same order, so
/// the same bits (output and statistics), for every width class and affine combination.
fn kernel_matches_portable<C: Element<Acc = f32>>() {
    use crate::kernels::{kernels_for, KernelChoice};
    use crate::layers::ops::rows::map_rows_on;
    for n in [1, 5, 16, 17, 100, 1024] {
        let x = rows_of::<C>(9, n);
        let gamma: Vec<f32> = (0..n).map(|j| 0.5 + j as f32 / 7.0).collect();
        let beta: Vec<f32> = (0..n).map(|j| j as f32 / 11.0 - 1.0).collect();
        for (g, b) in [(true, true), (true, false), (false, true), (false, false)] {
            let op = Forward {
                gamma: g.then_some(&gamma[..]),
                beta: b.then_some(&beta[..]),
                epsilon: 1e-3,
                keep_stats: true,
            };
            let portable = map_rows_on(kernels_for(KernelChoice::Portable), &x, None, n, &op);
            let auto = map_rows_on(kernels_for(KernelChoice::Auto), &x, None, n, &op);
            let bits = |v: &[C]| v.iter().map(|&v| v.as_f64().to_bits()).collect::<Vec<_>>();
            assert_eq!(
                bits(&auto.0),
                bits(&portable.0),
                "{} n={n} {g} {b}",
                C::DTYPE
            );
            assert_eq!(auto.1, portable.1, "statistics, {} n={n}", C::DTYPE);
        }
    }
}

#[test]
fn the_row_kernel_gives_the_portable_bits() {
    kernel_matches_portable::<half::bf16>();
    kernel_matches_portable::<half::f16>();
    kernel_matches_portable::<f32>();
}
