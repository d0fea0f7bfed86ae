use super::*;
use crate::error::Error;
use crate::init::Initializer;
use crate::layers::Layer;
use crate::policy::{MixedBf16, F32, F64};

mod keras;

/// Deterministic values in [-1, 1).
fn values(n: usize, salt: f64) -> Vec<f64> {
    (0..n)
        .map(|i| (i as f64 * 0.618_034 + salt).fract() * 2.0 - 1.0)
        .collect()
}

fn conv_f64(c: Conv2DConfig, in_ch: usize) -> Conv2D<F64> {
    let mut conv = c.seed(5).init::<F64>(in_ch).unwrap();
    if let Some(b) = conv.bias.as_mut() {
        let n = b.len();
        b.update(|b| b.copy_from_slice(&values(n, 0.3)));
    }
    conv
}

/// The gradients of `L = Σ c ⊙ y` that backward gives: (dW, db, dx).
fn analytic(conv: &mut Conv2D<F64>, x: &Tensor<f64>, c: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let y = conv.train_forward(x.clone()).unwrap();
    let dy = Tensor::from_vec(y.shape().to_vec(), c.to_vec()).unwrap();
    let dx = conv.backward(dy, true).unwrap().unwrap();
    let dw = conv.kernel.grad().unwrap().as_slice().to_vec();
    let db = conv
        .bias
        .as_ref()
        .map_or(vec![], |b| b.grad().unwrap().as_slice().to_vec());
    (dw, db, dx.into_vec())
}

/// The largest difference between `grads` and central differences of `L` for `conv` at `x`.
fn fd_error(
    conv: &Conv2D<F64>,
    x: &Tensor<f64>,
    c: &[f64],
    grads: &(Vec<f64>, Vec<f64>, Vec<f64>),
) -> f64 {
    let loss = |l: &Conv2D<F64>, x: &Tensor<f64>| -> f64 {
        l.forward(x)
            .unwrap()
            .as_slice()
            .iter()
            .zip(c)
            .map(|(y, c)| y * c)
            .sum()
    };
    let h = 1e-6;
    let fd = |plus: f64, minus: f64| (plus - minus) / (2.0 * h);
    let mut worst = 0.0f64;
    for (i, &g) in grads.0.iter().enumerate() {
        let (mut p, mut m) = (conv.clone(), conv.clone());
        p.kernel.update(|w| w[i] += h);
        m.kernel.update(|w| w[i] -= h);
        worst = worst.max((fd(loss(&p, x), loss(&m, x)) - g).abs());
    }
    for (i, &g) in grads.1.iter().enumerate() {
        let (mut p, mut m) = (conv.clone(), conv.clone());
        p.bias.as_mut().unwrap().update(|b| b[i] += h);
        m.bias.as_mut().unwrap().update(|b| b[i] -= h);
        worst = worst.max((fd(loss(&p, x), loss(&m, x)) - g).abs());
    }
    for (i, &g) in grads.2.iter().enumerate() {
        let (mut xp, mut xm) = (x.clone(), x.clone());
        xp.as_mut_slice()[i] += h;
        xm.as_mut_slice()[i] -= h;
        worst = worst.max((fd(loss(conv, &xp), loss(conv, &xm)) - g).abs());
    }
    worst
}

fn fd_cases() -> Vec<(&'static str, Conv2DConfig)> {
    let base = Conv2DConfig::new(3, (3, 2)).activation(Activation::Tanh);
    vec![
        ("valid", base),
        ("same", base.padding(Padding::Same)),
        ("valid stride 2", base.strides((2, 2))),
        ("same stride 2", base.padding(Padding::Same).strides((2, 1))),
        (
            "same dilation 2",
            base.padding(Padding::Same).dilation_rate((2, 2)),
        ),
        (
            "valid dilation 2",
            base.dilation_rate((2, 1)).activation(Activation::Relu),
        ),
        ("no bias", base.use_bias(false).padding(Padding::Same)),
    ]
}

/// Backward against central differences in f64, for every padding, stride and dilation.
#[test]
fn backward_matches_finite_differences_in_f64() {
    for (name, cfg) in fd_cases() {
        let mut conv = conv_f64(cfg, 2);
        let x = Tensor::from_vec(vec![2, 6, 5, 2], values(120, 0.1)).unwrap();
        let out = conv.compute_output_shape(x.shape()).unwrap();
        let c = values(out.iter().product(), 0.7);
        let grads = analytic(&mut conv, &x, &c);
        let err = fd_error(&conv, &x, &c, &grads);
        assert!(err < 1e-7, "{name}: max |fd - backward| = {err:e}");
    }
}

/// The check can fail: the gradients of the same layer with its kernel flipped in space (a
/// correlation/convolution mix-up), or of the "same" layer with its padding shifted by one,
/// are far from the finite differences.
#[test]
fn finite_difference_check_catches_wrong_gradients() {
    let cfg = Conv2DConfig::new(3, (3, 3)).padding(Padding::Same);
    let conv = conv_f64(cfg, 2);
    let x = Tensor::from_vec(vec![1, 5, 5, 2], values(50, 0.2)).unwrap();
    let c = values(75, 0.9);
    let mut flipped = conv.clone();
    let w = conv.kernel().as_slice().to_vec();
    flipped.kernel.update(|f| {
        for ky in 0..3 {
            for kx in 0..3 {
                let (src, dst) = ((ky * 3 + kx) * 6, ((2 - ky) * 3 + (2 - kx)) * 6);
                f[dst..dst + 6].copy_from_slice(&w[src..src + 6]);
            }
        }
    });
    let wrong = analytic(&mut flipped, &x, &c);
    assert!(fd_error(&conv, &x, &c, &wrong) > 1e-2);
    // "same" is pad 1 before for a 3-tap window on 5; "valid" on a zero-padded 7×7 input with
    // pad 2 before and 0 after is off by one.
    let shifted = {
        let mut v = vec![0.0; 49 * 2];
        for y in 0..5 {
            for xx in 0..5 {
                for ch in 0..2 {
                    v[((y + 2) * 7 + xx + 2) * 2 + ch] = x.as_slice()[(y * 5 + xx) * 2 + ch];
                }
            }
        }
        Tensor::from_vec(vec![1, 7, 7, 2], v).unwrap()
    };
    let mut valid = conv.clone();
    valid.args.padding = Padding::Valid;
    let y = valid.train_forward(shifted).unwrap();
    assert_eq!(y.shape(), &[1, 5, 5, 3]);
    let dy = Tensor::from_vec(vec![1, 5, 5, 3], c.clone()).unwrap();
    valid.backward(dy, false).unwrap();
    let dw = valid.kernel.grad().unwrap().as_slice().to_vec();
    let right = analytic(&mut conv.clone(), &x, &c);
    let off_by_one = (dw, right.1.clone(), right.2.clone());
    assert!(fd_error(&conv, &x, &c, &off_by_one) > 1e-2);
    assert!(fd_error(&conv, &x, &c, &right) < 1e-7);
}

/// Keras's documented shapes (`keras.layers.Conv2D` docs: 4×28×28×3 input, 2 filters, 3×3) and
/// the formulas over a grid of sizes.
/// After optimizer steps the forward pass and the input gradient use the new kernel: the
/// cached packed copies of the 4-D kernel (as is and transposed) are rebuilt or repacked.
fn packed_cache_follows_updates<P: Policy>() {
    use crate::optimizers::{Adam, Optimizer, Sgd};
    let mut conv = Conv2DConfig::new(5, (3, 3))
        .padding(Padding::Same)
        .activation(Activation::Tanh)
        .seed(2)
        .init::<P>(3)
        .unwrap();
    let x: Tensor<P::Compute> = Tensor::from_vec(
        vec![2, 4, 5, 3],
        values(120, 0.4).iter().map(|&v| v as f32).collect(),
    )
    .unwrap()
    .cast();
    let before = conv.forward(&x).unwrap();
    let y = conv.train_forward(x.clone()).unwrap();
    conv.backward(y, true).unwrap();
    let _ = Sgd::new(0.5).step(&mut conv).unwrap();
    let _ = Adam::new(0.1).step(&mut conv).unwrap();
    let mut fresh = conv.clone();
    let after = conv.forward(&x).unwrap();
    assert_ne!(before, after, "{}: the step changed nothing", P::NAME);
    assert_eq!(
        after,
        fresh.forward(&x).unwrap(),
        "{}: stale packed kernel",
        P::NAME
    );
    let (y1, y2) = (
        conv.train_forward(x.clone()).unwrap(),
        fresh.train_forward(x).unwrap(),
    );
    assert_eq!(
        conv.backward(y1, true).unwrap(),
        fresh.backward(y2, true).unwrap()
    );
}

#[test]
fn packed_cache_follows_updates_in_every_policy() {
    use crate::policy::{Bf16, MixedF16, F16};
    packed_cache_follows_updates::<F32>();
    packed_cache_follows_updates::<F64>();
    packed_cache_follows_updates::<F16>();
    packed_cache_follows_updates::<Bf16>();
    packed_cache_follows_updates::<MixedF16>();
    packed_cache_follows_updates::<MixedBf16>();
}

/// The training pass keeps the window matrix in the compute type (and `y` for tanh); the
/// buffers reused between steps hold nothing stale. Three channels: no implicit product takes
/// an odd channel count, so the window matrix is what every CPU keeps.
#[test]
fn saves_the_window_matrix_and_reuses_buffers() {
    let mut conv = Conv2DConfig::new(4, (3, 3))
        .padding(Padding::Same)
        .activation(Activation::Relu)
        .init::<MixedBf16>(3)
        .unwrap();
    let x = |b: usize, salt: f64| -> Tensor<half::bf16> {
        Tensor::from_vec(
            vec![b, 5, 5, 3],
            values(b * 75, salt).iter().map(|&v| v as f32).collect(),
        )
        .unwrap()
        .cast()
    };
    conv.train_forward(x(2, 0.1)).unwrap();
    assert_eq!(conv.saved_bytes(), (2 * 25 * 27 + 2 * 25 * 4) * 2);
    let y = conv.train_forward(x(3, 0.2)).unwrap();
    conv.backward(y, true).unwrap();
    assert_eq!(conv.saved_bytes(), 0);
    let mut fresh = conv.clone();
    let (y1, y2) = (
        conv.train_forward(x(1, 0.5)).unwrap(),
        fresh.train_forward(x(1, 0.5)).unwrap(),
    );
    assert_eq!(y1, y2);
    assert_eq!(
        conv.backward(y1, true).unwrap(),
        fresh.backward(y2, true).unwrap()
    );
    assert_eq!(conv.kernel_param().grad(), fresh.kernel_param().grad());
    assert_eq!(conv.output_dim(3), Some(4));
    assert_eq!(conv.output_dim(2), None);
}

/// Products that span several blocks of output rows (forward) and several groups of images
/// (backward): with 2304 taps a block is 128 rows in f64, so 5 images of 6×6 = 180 rows are two
/// forward blocks and two backward groups. The loss `L = Σ c ⊙ conv(x)` is linear in `x` and in
/// `W`, so `<dx, v> = L(x + v) - L(x)` and `<dW, V> = L(W + V) - L(W)` up to f64 rounding.
#[test]
fn blocked_products_match_directional_derivatives() {
    let mut conv = Conv2DConfig::new(3, (3, 3))
        .padding(Padding::Same)
        .seed(8)
        .init::<F64>(256)
        .unwrap();
    assert_eq!(crate::layers::ops::im2col::block_rows::<f64>(2304), 128);
    let x = Tensor::from_vec(vec![5, 6, 6, 256], values(5 * 36 * 256, 0.3)).unwrap();
    let c = values(5 * 36 * 3, 0.6);
    let loss = |l: &Conv2D<F64>, x: &Tensor<f64>| -> f64 {
        l.forward(x)
            .unwrap()
            .as_slice()
            .iter()
            .zip(&c)
            .map(|(y, c)| y * c)
            .sum()
    };
    let (dw, _, dx) = analytic(&mut conv, &x, &c);
    let v = values(x.len(), 0.9);
    let xv = Tensor::from_vec(
        x.shape().to_vec(),
        x.as_slice().iter().zip(&v).map(|(a, b)| a + b).collect(),
    )
    .unwrap();
    let want = loss(&conv, &xv) - loss(&conv, &x);
    let got: f64 = dx.iter().zip(&v).map(|(a, b)| a * b).sum();
    assert!(
        (want - got).abs() < 1e-9 * want.abs().max(1.0),
        "dx: {want} vs {got}"
    );
    let vw = values(dw.len(), 0.45);
    let mut moved = conv.clone();
    moved
        .kernel
        .update(|w| w.iter_mut().zip(&vw).for_each(|(w, v)| *w += v));
    let want = loss(&moved, &x) - loss(&conv, &x);
    let got: f64 = dw.iter().zip(&vw).map(|(a, b)| a * b).sum();
    assert!(
        (want - got).abs() < 1e-9 * want.abs().max(1.0),
        "dW: {want} vs {got}"
    );
    // The training pass and inference agree across blocks.
    let y = conv.train_forward(x.clone()).unwrap();
    assert_eq!(y, conv.forward(&x).unwrap());
}
