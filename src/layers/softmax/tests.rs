use super::*;
use crate::policy::{F32, F64};

#[test]
fn rows_sum_to_one_and_shape_is_kept() {
    let x = Tensor::from_vec(
        vec![2, 2, 3],
        (0..12).map(|i| i as f64 * 0.3 - 1.0).collect(),
    )
    .unwrap();
    let y = Softmax::<F64>::new().forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 2, 3]);
    for row in y.as_slice().chunks(3) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-15);
    }
}

#[test]
fn huge_logits_do_not_overflow_thanks_to_the_max() {
    let x = Tensor::from_vec(vec![1, 2], vec![1000.0f32, 1000.0]).unwrap();
    assert_eq!(
        Softmax::<F32>::new().forward(&x).unwrap().as_slice(),
        &[0.5, 0.5]
    );
}

#[test]
fn non_finite_rows_on_purpose() {
    let s = Softmax::<F32>::new();
    let x = Tensor::from_vec(
        vec![4, 2],
        vec![
            f32::NAN,
            1.0,
            f32::INFINITY,
            1.0,
            f32::NEG_INFINITY,
            1.0,
            f32::NEG_INFINITY,
            f32::NEG_INFINITY,
        ],
    )
    .unwrap();
    let y = s.forward(&x).unwrap();
    let y = y.as_slice();
    assert!(
        y[..4].iter().all(|v| v.is_nan()),
        "NaN and +inf rows: {y:?}"
    );
    assert_eq!(&y[4..6], &[0.0, 1.0]);
    assert_eq!(&y[6..], &[0.0, 0.0]);
}

#[test]
fn bad_arguments_are_errors() {
    let s = Softmax::<F32>::new();
    let scalar = Tensor::from_parts(vec![], vec![1.0f32]);
    let e = s.forward(&scalar).unwrap_err().to_string();
    assert!(
        e.contains("softmax input") && e.contains("rank >= 1"),
        "{e}"
    );
    let x = Tensor::<f32>::zeros(vec![2, 3]).unwrap();
    let e = s.forward_masked(&x, &[true; 5]).unwrap_err().to_string();
    assert!(e.contains("softmax mask") && e.contains("6 entries"), "{e}");
    let mut s = s;
    let e = s.backward(x.clone(), true).unwrap_err();
    assert!(matches!(
        e,
        Error::BackwardWithoutForward { layer: "Softmax" }
    ));
    s.train_forward(x).unwrap();
    let e = s
        .backward(Tensor::zeros(vec![3, 2]).unwrap(), true)
        .unwrap_err();
    assert!(e.to_string().contains("softmax output gradient"), "{e}");
}

#[test]
fn masked_training_gives_masked_positions_no_gradient() {
    let mut s = Softmax::<F64>::new();
    let x = Tensor::from_vec(vec![1, 3], vec![0.5, 2.0, -1.0]).unwrap();
    let y = s.train_forward_masked(x, &[true, false, true]).unwrap();
    assert_eq!(y.as_slice()[1], 0.0);
    assert_eq!(s.saved_bytes(), 3 * 8);
    let dx = s
        .backward(
            Tensor::from_vec(vec![1, 3], vec![1.0, 5.0, -2.0]).unwrap(),
            true,
        )
        .unwrap()
        .unwrap();
    assert_eq!(dx.as_slice()[1], 0.0);
    assert!((dx.as_slice().iter().sum::<f64>()).abs() < 1e-15);
}
