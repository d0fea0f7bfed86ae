//! Finite-difference gradient checks in f64 (the `F64` policy) for Softmax, LayerNormalization,
//! the activation layers and Dense with GELU: the input gradient and every variable's gradient
//! of the loss `L = Σ c ⊙ layer(x)` against central differences, and mutated gradients (a
//! softmax without its `Σ dy⊙y` term, a layer normalisation without its mean term) that the
//! same check rejects.

mod common;

use common::fd::{analytic, mismatch, numeric};
use mixprec::layers::{
    Activation, DenseConfig, Layer, LayerNormalization, LayerNormalizationConfig, ReLU, Sigmoid,
    Softmax, Tanh, GELU,
};
use mixprec::policy::{MixedBf16, F64};
use mixprec::{Module, Tensor};

fn check<L: Layer<Input = f64, Output = f64> + Clone>(what: &str, layer: &L, x: &Tensor<f64>) {
    let outputs = layer.infer(x).unwrap().len();
    let c: Vec<f64> = (0..outputs)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0)
        .collect();
    let (a, n) = (analytic(layer, x, &c), numeric(layer, x, &c));
    assert_eq!(mismatch(&a, &n, 1e-7), None, "{what}");
}

fn input(rows: usize, n: usize) -> Tensor<f64> {
    // Away from 0 so ReLU's kink is not straddled by the differences.
    let v = (0..rows * n)
        .map(|i| (i as f64 * 0.77).sin() * 2.0 + 0.013)
        .collect();
    Tensor::from_vec(vec![rows, n], v).unwrap()
}

#[test]
fn softmax_gradient() {
    check("softmax", &Softmax::<F64>::new(), &input(3, 5));
}

#[test]
fn layer_norm_gradients_of_input_gamma_and_beta() {
    let mut ln = LayerNormalization::<F64>::new(6);
    let g = Tensor::from_vec(vec![6], vec![0.5, 1.5, -1.0, 2.0, 0.25, 1.0]).unwrap();
    let b = Tensor::from_vec(vec![6], vec![0.1, -0.2, 0.3, 0.0, 1.0, -1.0]).unwrap();
    ln.set_weights(&[g, b]).unwrap();
    check("layer normalization", &ln, &input(4, 6));
    for (center, scale) in [(false, true), (true, false), (false, false)] {
        let ln = LayerNormalizationConfig::new()
            .center(center)
            .scale(scale)
            .init::<F64>(6)
            .unwrap();
        check(&format!("center={center} scale={scale}"), &ln, &input(2, 6));
    }
}

#[test]
fn activation_layer_gradients() {
    let x = input(3, 7);
    check("relu", &ReLU::<F64>::new(), &x);
    check("sigmoid", &Sigmoid::<F64>::new(), &x);
    check("tanh", &Tanh::<F64>::new(), &x);
    check("gelu", &GELU::<F64>::new(), &x);
    check("gelu tanh", &GELU::<F64>::new().with_approximate(true), &x);
}

#[test]
fn dense_with_gelu_gradients() {
    for act in [Activation::Gelu, Activation::GeluTanh] {
        let mut d = DenseConfig::new(4)
            .activation(act)
            .seed(3)
            .init::<F64>(5)
            .unwrap();
        let mut w = d.get_weights();
        w[1] = Tensor::from_vec(vec![4], vec![0.3, -0.6, 0.1, -1.2]).unwrap();
        d.set_weights(&w).unwrap();
        check(&format!("dense {act}"), &d, &input(3, 5));
    }
}

/// Dense saves GELU's input for the backward pass, and its training output is the inference
/// output bit for bit (one rounding of the same accumulator), under a mixed policy too.
#[test]
fn dense_gelu_training_pass_saves_z_and_matches_inference() {
    let mut d = DenseConfig::new(3)
        .activation(Activation::Gelu)
        .init::<MixedBf16>(4)
        .unwrap();
    let x: Tensor<mixprec::bf16> = input(2, 4).cast();
    let y = d.train_forward(x.clone()).unwrap();
    assert_eq!(y, d.forward(&x).unwrap());
    assert_eq!(d.saved_bytes(), (2 * 4 + 2 * 3) * 2, "x and z");
    let dx = d.backward(y, true).unwrap().unwrap();
    assert!(dx.as_slice().iter().all(|v| v.is_finite()));
}

// The check can fail: gradients with a term dropped are rejected.

#[test]
fn check_rejects_softmax_gradient_without_its_sum_term() {
    let x = input(3, 5);
    let c: Vec<f64> = (0..15).map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0).collect();
    let y = Softmax::<F64>::new().forward(&x).unwrap();
    let wrong: Vec<f64> = y.as_slice().iter().zip(&c).map(|(y, c)| y * c).collect();
    let n = numeric(&Softmax::<F64>::new(), &x, &c);
    assert!(mismatch(&wrong, &n, 1e-7).is_some());
    assert_eq!(
        mismatch(&analytic(&Softmax::<F64>::new(), &x, &c), &n, 1e-7),
        None
    );
}

#[test]
fn check_rejects_layer_norm_gradient_without_its_mean_term() {
    let (rows, n) = (2, 6);
    let x = input(rows, n);
    let ln = LayerNormalizationConfig::new()
        .center(false)
        .scale(false)
        .init::<F64>(n)
        .unwrap();
    let c: Vec<f64> = (0..rows * n)
        .map(|i| ((i * 7 % 11) as f64 - 5.0) / 3.0)
        .collect();
    let mut wrong = Vec::new();
    for (row, g) in x.as_slice().chunks(n).zip(c.chunks(n)) {
        let mean = row.iter().sum::<f64>() / n as f64;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n as f64;
        let r = 1.0 / (var + 1e-3).sqrt();
        let xhat: Vec<f64> = row.iter().map(|v| (v - mean) * r).collect();
        let m2 = g.iter().zip(&xhat).map(|(g, h)| g * h).sum::<f64>() / n as f64;
        // Missing: − mean(g).
        wrong.extend(g.iter().zip(&xhat).map(|(g, h)| r * (g - h * m2)));
    }
    let num = numeric(&ln, &x, &c);
    assert!(mismatch(&wrong, &num, 1e-7).is_some());
    assert_eq!(mismatch(&analytic(&ln, &x, &c), &num, 1e-7), None);
}
