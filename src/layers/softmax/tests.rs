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

/// The AVX-512 row kernel against the portable row. The kernel's `e^x` uses fused
/// multiply-adds, so the f32 values may differ in the last bits: each output is a product of two
/// values within 2 ulp of exact (the exponential, the reciprocal of a 16-lane sum in the same
/// order) on both sides, so within 16 f32 ulp of each other, and after the one rounding to a
/// 16-bit type equal or adjacent. Non-finite rows agree exactly.
fn kernel_matches_portable<C: Element<Acc = f32>>(ulps_of_c: f64, eps: f64) {
    use crate::kernels::{kernels_for, KernelChoice};
    use crate::layers::ops::rows::map_rows_on;
    let op = Forward { mask: None, n: 0 };
    for n in [1, 7, 16, 33, 1024] {
        let mut x: Vec<f32> = (0..6 * n)
            .map(|i| ((i * 7919) % 1013) as f32 / 61.0 - 8.0)
            .collect();
        x[n] = f32::NAN; // row 1
        x[2 * n] = f32::INFINITY; // row 2
        x[3 * n..4 * n].fill(f32::NEG_INFINITY); // row 3
        x[4 * n] = -200.0; // row 4: an exp that underflows
        let x: Vec<C> = x.iter().map(|&v| C::from_f64_rne(v.into())).collect();
        let (p, _) = map_rows_on(kernels_for(KernelChoice::Portable), &x, None, n, &op);
        let (k, _) = map_rows_on(kernels_for(KernelChoice::Auto), &x, None, n, &op);
        for (i, (p, k)) in p.iter().zip(&k).enumerate() {
            let (p, k) = (p.as_f64(), k.as_f64());
            let ok = if p.is_finite() {
                (p - k).abs() <= ulps_of_c * eps * p.abs().max(k.abs()) + 1e-45
            } else {
                p.is_nan() == k.is_nan() && (p.is_nan() || p == k)
            };
            assert!(
                ok,
                "{} n={n} element {i}: portable {p}, kernel {k}",
                C::DTYPE
            );
        }
    }
}

#[test]
fn the_row_kernel_agrees_with_the_portable_row() {
    kernel_matches_portable::<half::bf16>(1.0, 2f64.powi(-7));
    kernel_matches_portable::<half::f16>(1.0, 2f64.powi(-10));
    kernel_matches_portable::<f32>(16.0, 2f64.powi(-23));
}
