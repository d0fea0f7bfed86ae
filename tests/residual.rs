//! Skip connections (issue 12, item 6): `Residual<L>` adds its branch's output to its input,
//! casting a branch of another type at the join and rounding once; gradients flow both ways
//! (finite differences in f64). Training with it: tests/layers_train.rs.

mod common;

use common::{dense, grads};
use mixprec::layers::{Add, Residual};
use mixprec::prelude::*;

/// A bf16 block whose tail is float32: the branch emits f32, the stream is bf16.
type Block = Residual<(Dense<MixedBf16>, Dense<F32>)>;

fn block() -> Block {
    Residual::new((
        dense(16, 24, 1, Activation::Relu),
        dense(24, 16, 2, Activation::Linear),
    ))
}

fn input(rows: usize, cols: usize) -> Tensor<bf16> {
    let v = (0..rows * cols)
        .map(|i| bf16::from_f64(((i * 37) % 29) as f64 / 7.0 - 2.0))
        .collect();
    Tensor::from_vec(vec![rows, cols], v).unwrap()
}

#[test]
fn the_join_is_the_correctly_rounded_sum_of_stream_and_cast_branch() {
    let b = block();
    let x = input(8, 16);
    let fx: Tensor<f32> = b.branch().infer(&x).unwrap();
    let y: Tensor<bf16> = b.infer(&x).unwrap();
    for (i, ((&xi, &fi), &yi)) in x
        .as_slice()
        .iter()
        .zip(fx.as_slice())
        .zip(y.as_slice())
        .enumerate()
    {
        // The exact sum of a bf16 and an f32 fits an f64; one rounding to bf16.
        let want = bf16::from_f64(xi.to_f64() + fi as f64);
        assert_eq!(yi, want, "element {i}");
    }
    // The training pass gives the same output.
    let mut b2 = block();
    assert_eq!(b2.train_forward(x).unwrap(), y);
}

#[test]
fn one_rounding_is_caught_where_two_would_differ() {
    // 1 + (2^-8 + 2^-17): rounding the f32 branch to bf16 first gives 2^-8, then the tie
    // 1 + 2^-8 rounds to even, 1. The single rounding gives 1 + 2^-7.
    let x = Tensor::from_vec(vec![1], vec![bf16::ONE]).unwrap();
    let branch = Tensor::from_vec(vec![1], vec![2f32.powi(-8) + 2f32.powi(-17)]).unwrap();
    let y = Add::<Bf16>::new().call(&x, &branch).unwrap();
    assert_eq!(y.to_f64_vec(), vec![1.0 + 2f64.powi(-7)]);
    let twice = bf16::from_f64(1.0 + bf16::from_f32(branch.as_slice()[0]).to_f64());
    assert_eq!(twice.to_f64(), 1.0, "double rounding lands elsewhere");
}

#[test]
fn gradients_agree_with_finite_differences_in_f64() {
    let mut b: Residual<(Dense<F64>, Dense<F64>)> = Residual::new((
        dense(5, 7, 3, Activation::Tanh),
        dense(7, 5, 4, Activation::Linear),
    ));
    let x: Tensor<f64> = Tensor::from_vec(
        vec![3, 5],
        (0..15).map(|i| (i as f64 * 0.7).sin()).collect(),
    )
    .unwrap();
    let dy: Tensor<f64> = Tensor::from_vec(
        vec![3, 5],
        (0..15).map(|i| (i as f64 * 1.3).cos()).collect(),
    )
    .unwrap();
    let loss = |b: &Residual<(Dense<F64>, Dense<F64>)>, x: &Tensor<f64>| -> f64 {
        let y = b.infer(x).unwrap();
        y.as_slice()
            .iter()
            .zip(dy.as_slice())
            .map(|(a, c)| a * c)
            .sum()
    };
    b.train_forward(x.clone()).unwrap();
    let dx = b.backward(dy.clone(), true).unwrap().unwrap();
    let h = 1e-6;
    for i in 0..x.len() {
        let (mut up, mut down) = (x.clone().into_vec(), x.clone().into_vec());
        up[i] += h;
        down[i] -= h;
        let fd = (loss(&b, &Tensor::from_vec(vec![3, 5], up).unwrap())
            - loss(&b, &Tensor::from_vec(vec![3, 5], down).unwrap()))
            / (2.0 * h);
        assert!(
            (fd - dx.as_slice()[i]).abs() <= 1e-7 * (1.0 + fd.abs()),
            "dx[{i}]: {fd} vs {}",
            dx.as_slice()[i]
        );
    }
    // The branch alone (a backward that forgot the skip path) is off by dy itself.
    b.branch_mut().train_forward(x.clone()).unwrap();
    let branch_only = b.branch_mut().backward(dy.clone(), true).unwrap().unwrap();
    let off = (branch_only.as_slice()[0] - dx.as_slice()[0]).abs();
    assert!(
        (off - dy.as_slice()[0].abs()).abs() < 1e-12 && off > 1e-3,
        "{off}"
    );
    // The first kernel's gradient against finite differences of its weights.
    b.train_forward(x.clone()).unwrap();
    b.backward(dy.clone(), false).unwrap();
    let g = grads(&b);
    let w = b.get_weights();
    for j in [0usize, 4, 17, 34] {
        let mut wp = w.clone();
        let mut wm = w.clone();
        let mut up = wp[0].clone().into_vec();
        let mut dn = wm[0].clone().into_vec();
        up[j] += h;
        dn[j] -= h;
        wp[0] = Tensor::from_vec(w[0].shape().to_vec(), up).unwrap();
        wm[0] = Tensor::from_vec(w[0].shape().to_vec(), dn).unwrap();
        let mut bp = b.clone();
        bp.set_weights(&wp).unwrap();
        let mut bm = b.clone();
        bm.set_weights(&wm).unwrap();
        let fd = (loss(&bp, &x) - loss(&bm, &x)) / (2.0 * h);
        assert!(
            (fd - g[0][j]).abs() <= 1e-7 * (1.0 + fd.abs()),
            "dW[{j}]: {fd} vs {}",
            g[0][j]
        );
    }
}

#[test]
fn a_branch_that_changes_the_shape_is_an_error_and_leaves_nothing_saved() {
    let mut b = Residual::new(Dense::<MixedBf16>::new(16, 8));
    let err = b.train_forward(input(2, 16)).unwrap_err().to_string();
    assert!(err.contains("[2, 16]") && err.contains("[2, 8]"), "{err}");
    assert_eq!(b.saved_bytes(), 0);
    assert_eq!(b.output_dim(16), None);
    let mut ok = block();
    assert!(matches!(
        ok.backward(input(2, 16), true),
        Err(Error::BackwardWithoutForward { layer: "Residual" })
    ));
    ok.train_forward(input(2, 16)).unwrap();
    let err = ok.backward(input(3, 16), true).unwrap_err().to_string();
    assert!(err.contains("[2, 16]"), "{err}");
    assert_eq!(
        ok.saved_bytes(),
        0,
        "a refused backward clears the branch too"
    );
    assert_eq!(ok.output_dim(16), Some(16));
}

#[test]
fn the_branch_keeps_its_names_and_loss_scaling() {
    let model = (
        Dense::<MixedBf16>::new(4, 8),
        Residual::new(Dense::<MixedF16>::new(8, 8)),
    );
    assert_eq!(
        model.param_names(),
        ["0.kernel", "0.bias", "1.kernel", "1.bias"]
    );
    assert!(model.needs_loss_scale());
    let converted = model.to_policy::<F32>();
    assert_eq!(converted.variables()[2].policy, DTypePolicy::Float32);
}

/// A derived model with a residual field converts to another policy as a whole.
#[derive(Debug, Clone, Module)]
struct Net<P: Policy> {
    stem: Dense<P>,
    block: Residual<(LayerNormalization<P>, Dense<P>)>,
    head: Dense<F32>,
}

#[test]
fn a_derived_model_holds_a_residual_block() {
    let net = Net::<MixedBf16> {
        stem: dense(6, 8, 1, Activation::Relu),
        block: Residual::new((LayerNormalization::new(8), dense(8, 8, 2, Activation::Gelu))),
        head: dense(8, 3, 3, Activation::Linear),
    };
    assert_eq!(
        net.param_names(),
        [
            "stem.kernel",
            "stem.bias",
            "block.0.gamma",
            "block.0.beta",
            "block.1.kernel",
            "block.1.bias",
            "head.kernel",
            "head.bias"
        ]
    );
    let x: Tensor<bf16> = Tensor::zeros(vec![2, 6]).unwrap();
    assert_eq!(net.infer(&x).unwrap().shape(), &[2, 3]);
    let wide: Net<F64> = net.to_policy::<F64>();
    assert_eq!(wide.variables()[4].policy, DTypePolicy::Float64);
    assert_eq!(
        wide.variables()[6].policy,
        DTypePolicy::Float32,
        "the head keeps its policy"
    );
}
