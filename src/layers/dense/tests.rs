//! Dense's construction, `forward` and `call`; the fused passes themselves are tested in
//! `layers/ops/fused/tests.rs`, the training side in `dense/train.rs`.

use super::*;
use crate::init::Initializer;
use crate::layers::Layer;
use crate::policy::{Bf16, MixedBf16, MixedF16, F32, F64};
use half::bf16;

/// `forward` is the fused pass on the variables read in the compute type (in the mixed
/// policies the kernel is packed straight from the f32 master, which must round the same way),
/// and the training pass computes the same output.
fn forward_is_the_fused_pass_on_compute_copies<P: Policy>() {
    let (rows, k, n) = (300, 5, 37);
    for act in Activation::ALL {
        let bias = Initializer::LecunUniform
            .values(|| "bias".into(), &[n], 1, 0)
            .unwrap();
        let mut d = DenseConfig::new(n)
            .seed(7)
            .activation(act)
            .init::<P>(k)
            .unwrap();
        d.bias
            .as_mut()
            .unwrap()
            .update(|b| b.copy_from_slice(&bias));
        let x: Tensor<P::Compute> = Tensor::from_vec(
            vec![rows, k],
            (0..rows * k)
                .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
                .collect(),
        )
        .unwrap()
        .cast();
        let w = crate::kernels::pack_b(MatRef::row_major(d.kernel_param().compute(), k, n));
        let xm = MatRef::row_major(x.as_slice(), rows, k);
        let b = d.bias_param().map(Param::compute);
        let want = gemm_bias_activation(xm, &w, b, act, &mut Vec::new());
        let y = d.forward(&x).unwrap();
        assert!(
            y.as_slice() == want.as_slice(),
            "{} {act}: forward",
            P::NAME
        );
        assert_eq!(
            d.train_forward(x).unwrap(),
            y,
            "{} {act}: training pass",
            P::NAME
        );
    }
}

#[test]
fn forward_is_the_fused_pass_on_compute_copies_in_every_policy() {
    forward_is_the_fused_pass_on_compute_copies::<MixedBf16>();
    forward_is_the_fused_pass_on_compute_copies::<MixedF16>();
    forward_is_the_fused_pass_on_compute_copies::<Bf16>();
    forward_is_the_fused_pass_on_compute_copies::<F32>();
    forward_is_the_fused_pass_on_compute_copies::<F64>();
}

#[test]
fn forward_rejects_wrong_shape_and_names_both() {
    let d = Dense::<F32>::new(4, 2);
    let x = Tensor::<f32>::zeros(vec![3, 5]).unwrap();
    let err = d.forward(&x).unwrap_err();
    assert_eq!(
        err.to_string(),
        "shape mismatch in dense input: expected [.., 4], found [3, 5]"
    );
    let scalar = Tensor::<f32>::from_vec(vec![], vec![1.0]).unwrap();
    assert!(d.forward(&scalar).is_err());
    let wide = Tensor::<f64>::zeros(vec![3, 5]).unwrap();
    assert_eq!(d.call(&wide).unwrap_err().to_string(), err.to_string());
}

#[test]
fn forward_accepts_leading_dimensions() {
    let d = DenseConfig::new(2).seed(3).init::<F64>(3).unwrap();
    let x = Tensor::from_vec(vec![2, 2, 3], (0..12).map(f64::from).collect()).unwrap();
    let y = d.forward(&x).unwrap();
    assert_eq!(y.shape(), &[2, 2, 2]);
    let flat = d.forward(&x.clone().reshape(vec![4, 3]).unwrap()).unwrap();
    assert_eq!(y.as_slice(), flat.as_slice());
}

#[test]
fn call_casts_to_the_compute_type_then_runs_forward() {
    let d = DenseConfig::new(3)
        .activation(Activation::Sigmoid)
        .seed(2)
        .init::<MixedBf16>(4)
        .unwrap();
    let x = Tensor::from_vec(
        vec![2, 4],
        vec![0.3f32, -1.7, 2.2, 0.01, 5.0, -0.5, 1.0, 9.9],
    )
    .unwrap();
    let y: Tensor<bf16> = d.call(&x).unwrap();
    assert_eq!(y, d.forward(&x.cast()).unwrap());
    // The compute type itself goes through unchanged.
    let xb: Tensor<bf16> = x.cast();
    assert_eq!(d.call(&xb).unwrap(), y);
}

#[test]
fn from_weights_rejects_bad_shapes() {
    let k = Tensor::from_vec(vec![2, 3], vec![0f32; 6]).unwrap();
    let bad_bias = Tensor::from_vec(vec![2], vec![0f32; 2]).unwrap();
    let err = Dense::<F32>::from_weights(k, Some(bad_bias)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "shape mismatch in bias: expected [3], found [2]"
    );
    let flat = Tensor::from_vec(vec![6], vec![0f32; 6]).unwrap();
    assert!(Dense::<F32>::from_weights(flat, None).is_err());
    let empty = Tensor::from_vec(vec![0, 3], vec![]).unwrap();
    assert!(Dense::<F32>::from_weights(empty, None).is_err());
}

#[test]
fn try_new_rejects_zero_units() {
    let err = Dense::<F32>::try_new(4, 0).unwrap_err();
    assert_eq!(err.to_string(), "invalid units: 0 (at least 1)");
}

#[test]
fn setters_keep_the_kernel() {
    let d = Dense::<F32>::new(3, 2);
    let relu = d.clone().with_activation(Activation::Relu).with_bias(false);
    assert_eq!(relu.kernel(), d.kernel());
    assert!(relu.bias().is_none());
    assert_eq!(relu.with_bias(true).bias(), d.bias());
}

#[test]
fn compute_copy_of_the_kernel_borrows_when_types_match() {
    fn shares<P: Policy>(d: &Dense<P>) -> bool {
        let compute = d.kernel_param().compute();
        compute.as_ptr().cast::<u8>() == d.kernel().as_slice().as_ptr().cast::<u8>()
    }
    assert!(shares(&Dense::<F32>::new(2, 2)));
    assert!(shares(&Dense::<Bf16>::new(2, 2)));
    assert!(!shares(&Dense::<MixedBf16>::new(2, 2)));
}

#[test]
fn mixed_bf16_stores_f32_and_rounds_once() {
    // kernel 1 + 2^-9 rounds to 1 in bf16; x = 1; bias 2^-9 rounds to itself.
    let k = Tensor::from_vec(vec![1, 1], vec![1.0 + 2f32.powi(-9)]).unwrap();
    let b = Tensor::from_vec(vec![1], vec![2f32.powi(-9)]).unwrap();
    let d = Dense::<MixedBf16>::from_weights(k, Some(b)).unwrap();
    assert_eq!(d.kernel().as_slice(), &[1.0 + 2f32.powi(-9)]); // master copy exact
    let x = Tensor::from_vec(vec![1, 1], vec![bf16::ONE]).unwrap();
    // f32 sum 1 + 2^-9, rounded once to bf16: 1 (a tie would go to even; this is below it).
    assert_eq!(d.forward(&x).unwrap().as_slice(), &[bf16::ONE]);
}
