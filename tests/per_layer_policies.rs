//! One model, many policies (issue 11): a bfloat16 body with a float32 head, as tuples and as a
//! derived struct, trains on the digits with plain Adam; the casts between layers of different
//! types are Keras's (the consumer casts, the gradient flows back through the cast); the
//! loss-scaling bit of a model is the OR over its layers; gradients through a bf16 → f32 → bf16
//! chain agree with finite differences of the f64 twin.

mod common;

use common::{dense, grads};
use mixprec::prelude::*;
use typenum::{B0, B1};

/// A compile-time type equality check.
macro_rules! assert_type_eq {
    ($a:ty, $b:ty) => {
        const _: fn($a) -> $b = |x| x;
    };
}

#[derive(Debug, Clone, Module)]
struct Net<P: Policy> {
    hidden: Dense<P>,
    hidden2: Dense<P>,
    head: Dense<F32>,
}

impl<P: Policy> Net<P> {
    fn new() -> Self {
        Net {
            hidden: dense(64, 128, 1, Activation::Relu),
            hidden2: dense(128, 128, 2, Activation::Relu),
            head: dense(128, 10, 3, Activation::Linear),
        }
    }
}

type Tuple = (Dense<MixedBf16>, Dense<MixedBf16>, Dense<F32>);

fn tuple() -> Tuple {
    (
        dense(64, 128, 1, Activation::Relu),
        dense(128, 128, 2, Activation::Relu),
        dense(128, 10, 3, Activation::Linear),
    )
}

// The model needs loss scaling exactly when one of its layers computes in float16.
assert_type_eq!(<Tuple as Module>::NeedsLossScale, B0);
assert_type_eq!(<Net<MixedBf16> as Module>::NeedsLossScale, B0);
assert_type_eq!(<Net<MixedF16> as Module>::NeedsLossScale, B1);
assert_type_eq!(<Net<F16> as Module>::NeedsLossScale, B1);
assert_type_eq!(
    <(Dense<F32>, Dense<MixedF16>, Dense<F32>) as Module>::NeedsLossScale,
    B1
);
assert_type_eq!(<(Dense<F32>, Dense<F32>) as Module>::NeedsLossScale, B0);
assert_type_eq!(<Vec<Dense<F16>> as Module>::NeedsLossScale, B1);
// Input and output types follow the first and the last layer.
assert_type_eq!(<Tuple as Layer>::Input, bf16);
assert_type_eq!(<Tuple as Layer>::Output, f32);
assert_type_eq!(<Net<MixedBf16> as Layer>::Output, f32);
// `to_policy` converts the generic part and keeps the head's own policy.
assert_type_eq!(<Net<MixedBf16> as Module>::At<F64>, Net<F64>);

fn options() -> FitOptions {
    FitOptions {
        epochs: 20,
        batch_size: 32,
        ..FitOptions::default()
    }
}

fn split() -> (Dataset, Dataset) {
    mixprec::io::digits()
        .unwrap()
        .shuffle_split(0.2, 0)
        .unwrap()
}

fn test_accuracy<M: Layer>(model: &M, test: &Dataset) -> f64 {
    evaluate(model, test, 256, None).unwrap().accuracy.unwrap()
}

#[test]
fn bf16_body_with_f32_head_tuple_trains_to_96_percent_with_plain_adam() {
    let (train, test) = split();
    let mut model = tuple();
    fit(&mut model, &mut Adam::new(1e-3), &train, &options()).unwrap();
    let acc = test_accuracy(&model, &test);
    println!("tuple (mixed_bfloat16, mixed_bfloat16, float32) test accuracy {acc:.4}");
    assert!(acc >= 0.96, "test accuracy {acc}");
    let x: Tensor<bf16> = Tensor::zeros(vec![2, 64]).unwrap();
    let y: Tensor<f32> = model.infer(&x).unwrap();
    assert_eq!(y.shape(), &[2, 10]);
}

#[test]
fn derived_net_with_f32_head_trains_to_96_percent_with_plain_adam() {
    let (train, test) = split();
    let mut model = Net::<MixedBf16>::new();
    fit(&mut model, &mut Adam::new(1e-3), &train, &options()).unwrap();
    let acc = test_accuracy(&model, &test);
    println!("Net<MixedBf16> with a float32 head: test accuracy {acc:.4}");
    assert!(acc >= 0.96, "test accuracy {acc}");
    let x: Tensor<bf16> = Tensor::zeros(vec![2, 64]).unwrap();
    let y: Tensor<f32> = model.infer(&x).unwrap();
    assert_eq!(y.shape(), &[2, 10]);
}

#[test]
fn each_variable_reports_its_own_policy_and_bytes() {
    let net = Net::<Bf16>::new();
    let policies: Vec<(String, DTypePolicy)> = net
        .variables()
        .into_iter()
        .map(|v| (v.name, v.policy))
        .collect();
    assert_eq!(policies[0], ("hidden.kernel".into(), DTypePolicy::BFloat16));
    assert_eq!(policies[3], ("hidden2.bias".into(), DTypePolicy::BFloat16));
    assert_eq!(policies[4], ("head.kernel".into(), DTypePolicy::Float32));
    let body = 64 * 128 + 128 + 128 * 128 + 128;
    let head = 128 * 10 + 10;
    assert_eq!(net.param_count(), body + head);
    assert_eq!(net.variable_bytes(), body * 2 + head * 4);
}

#[test]
fn to_policy_converts_the_generic_part_and_keeps_the_fixed_head() {
    let net = Net::<MixedBf16>::new();
    let f64_net: Net<F64> = net.to_policy();
    assert_eq!(
        f64_net.variables()[0].policy,
        DTypePolicy::Float64,
        "generic part"
    );
    assert_eq!(f64_net.variables()[4].policy, DTypePolicy::Float32, "head");
    assert_eq!(f64_net.get_weights(), net.get_weights(), "values unchanged");
    // The run-time family covers the generic part too.
    let any = net.to_any(DTypePolicy::MixedFloat16);
    assert_eq!(any.policy(), DTypePolicy::MixedFloat16);
    let y = any
        .predict_f32(&Tensor::zeros(vec![1, 64]).unwrap())
        .unwrap();
    assert_eq!(y.shape(), &[1, 10]);
}

fn values(n: usize, salt: usize) -> Vec<f32> {
    // Multiples of 1/64 in [-1, 1): exact in bf16, so every policy sees the same input.
    (0..n)
        .map(|i| ((i * 37 + salt * 11) % 128) as f32 / 64.0 - 1.0)
        .collect()
}

/// Keras's boundary, bit for bit: the f32 head receives the bf16 body's output widened to f32,
/// and the body receives the head's input gradient rounded once to bf16.
#[test]
fn the_consumer_casts_forward_and_the_gradient_flows_back_through_the_cast() {
    let body = DenseConfig::new(7)
        .seed(4)
        .init::<MixedBf16>(5)
        .unwrap()
        .with_activation(Activation::Tanh);
    let head = DenseConfig::new(3).seed(5).init::<F32>(7).unwrap();
    let mut model = (body.clone(), head.clone());
    let x: Tensor<bf16> = Tensor::from_vec(vec![4, 5], values(20, 1)).unwrap().cast();
    let dy = Tensor::from_vec(vec![4, 3], values(12, 2)).unwrap();

    let y = model.train_forward(x.clone()).unwrap();
    let dx = model.backward(dy.clone(), true).unwrap().unwrap();

    // The same computation by hand, with the casts written out.
    let (mut body, mut head) = (body, head);
    let h: Tensor<bf16> = body.train_forward(x).unwrap();
    let y_ref = head.train_forward(h.cast::<f32>()).unwrap();
    let dh: Tensor<f32> = head.backward(dy, true).unwrap().unwrap();
    let dx_ref = body.backward(dh.cast::<bf16>(), true).unwrap().unwrap();

    assert_eq!(y, y_ref);
    assert_eq!(dx, dx_ref);
    assert_eq!(grads(&model.0), grads(&body), "body gradients (bf16 dy)");
    assert_eq!(grads(&model.1), grads(&head), "head gradients (f32)");
}

/// `L(θ) = Σ c ⊙ model(x; θ)` for the chain, in f64 on the f64 twin.
fn loss_f64(model: &(Dense<F64>, Dense<F64>, Dense<F64>), x: &Tensor<f64>, c: &[f64]) -> f64 {
    let y = model.infer(x).unwrap();
    y.as_slice().iter().zip(c).map(|(y, c)| y * c).sum()
}

/// Central differences of [`loss_f64`] for every weight, in visiting order.
fn finite_differences(
    model: &(Dense<F64>, Dense<F64>, Dense<F64>),
    x: &Tensor<f64>,
    c: &[f64],
) -> Vec<Vec<f64>> {
    let mut twin = model.clone();
    let base = model.get_weights();
    let h = 1e-6;
    let mut out = Vec::new();
    for (t, w) in base.iter().enumerate() {
        let mut g = Vec::with_capacity(w.len());
        for i in 0..w.len() {
            let at = |delta: f64, twin: &mut (Dense<F64>, Dense<F64>, Dense<F64>)| {
                let mut ws = base.clone();
                let mut v = ws[t].as_slice().to_vec();
                v[i] += delta;
                ws[t] = Tensor::from_vec(w.shape().to_vec(), v).unwrap();
                twin.set_weights(&ws).unwrap();
                loss_f64(twin, x, c)
            };
            g.push((at(h, &mut twin) - at(-h, &mut twin)) / (2.0 * h));
        }
        out.push(g);
    }
    out
}

/// `‖a − b‖ / ‖b‖` over all gradients.
fn relative_error(a: &[Vec<f64>], b: &[Vec<f64>]) -> f64 {
    let (mut num, mut den) = (0.0, 0.0);
    for (a, b) in a.iter().zip(b) {
        for (a, b) in a.iter().zip(b) {
            num += (a - b) * (a - b);
            den += b * b;
        }
    }
    (num / den).sqrt()
}

/// The gradients of a bf16 → f32 → bf16 chain (`Dense<MixedBf16>`, `Dense<F32>`,
/// `Dense<MixedBf16>`) against central finite differences of the same chain in f64.
///
/// The bound: each bf16 layer rounds its weights, its output and the gradient it passes on once
/// each (relative error `u = 2⁻⁸` per rounding), and every product accumulates in f32 (its
/// error, `k·2⁻²⁴` for k ≤ 8 terms, is negligible beside `u`). The chain's gradients pass through
/// at most six bf16 roundings on the way to any variable, so their relative error is at most
/// about `6u`; the bound allows `8u` (`0.031`). The twin's own analytic gradients must match the
/// finite differences to `1e-7`, which checks the differences themselves.
#[test]
fn gradients_through_a_bf16_f32_bf16_chain_match_f64_finite_differences() {
    let u = bf16::EPSILON.to_f64() / 2.0;
    let bound = 8.0 * u;
    let mut model = (
        dense::<MixedBf16>(6, 8, 11, Activation::Tanh),
        dense::<F32>(8, 8, 12, Activation::Tanh),
        dense::<MixedBf16>(8, 3, 13, Activation::Linear),
    );
    let rows = 5;
    let x32 = Tensor::from_vec(vec![rows, 6], values(rows * 6, 3)).unwrap();
    let c: Vec<f64> = values(rows * 3, 4).iter().map(|&v| f64::from(v)).collect();

    // The mixed model's gradients: dL/dy = c, given to the last layer in its compute type.
    model.train_forward(x32.cast()).unwrap();
    let dy: Tensor<bf16> = Tensor::from_vec(vec![rows, 3], c.clone()).unwrap().cast();
    model.backward(dy, false).unwrap();
    let mixed = grads(&model);

    // The f64 twin with the same (f32 master) weights.
    let twin: (Dense<F64>, Dense<F64>, Dense<F64>) = model.to_policy();
    let x = x32.cast::<f64>();
    let fd = finite_differences(&twin, &x, &c);

    let mut analytic_twin = twin.clone();
    analytic_twin.train_forward(x.clone()).unwrap();
    let dy64 = Tensor::from_vec(vec![rows, 3], c.clone()).unwrap();
    analytic_twin.backward(dy64, false).unwrap();
    let exact = grads(&analytic_twin);
    let fd_error = relative_error(&exact, &fd);
    assert!(
        fd_error < 1e-7,
        "f64 analytic vs finite differences: {fd_error:e}"
    );

    let err = relative_error(&mixed, &fd);
    println!("bf16-f32-bf16 chain: relative gradient error {err:.5} (bound {bound:.5})");
    assert!(err <= bound, "relative error {err} > {bound}");
    // Each layer on its own, so one layer's error cannot hide in the others' norm.
    for layer in 0..3 {
        let (m, f) = (
            &mixed[2 * layer..2 * layer + 2],
            &fd[2 * layer..2 * layer + 2],
        );
        let e = relative_error(m, f);
        assert!(e <= bound, "layer {layer}: relative error {e} > {bound}");
    }

    // The bound catches the bugs a boundary could have: a gradient that does not flow back
    // through the cast (the first layer gets none), or one counted twice.
    let mut dropped = mixed.clone();
    dropped[0].iter_mut().for_each(|g| *g = 0.0);
    dropped[1].iter_mut().for_each(|g| *g = 0.0);
    assert!(relative_error(&dropped[..2], &fd[..2]) > bound);
    let doubled: Vec<Vec<f64>> = mixed[..2]
        .iter()
        .map(|g| g.iter().map(|x| 2.0 * x).collect())
        .collect();
    assert!(relative_error(&doubled, &fd[..2]) > bound);
}

/// A model with one float16 layer among float32 ones trains through `AutoOptimizer`, which
/// picks loss scaling for it.
#[test]
fn auto_optimizer_scales_the_loss_of_a_model_with_one_f16_layer() {
    use mixprec::optimizers::Optimizer;
    let (train, _) = split();
    let mut model = (
        DenseConfig::new(32)
            .seed(1)
            .init::<F32>(64)
            .unwrap()
            .with_activation(Activation::Relu),
        DenseConfig::new(32)
            .seed(2)
            .init::<MixedF16>(32)
            .unwrap()
            .with_activation(Activation::Relu),
        DenseConfig::new(10).seed(3).init::<F32>(32).unwrap(),
    );
    let mut opt = AutoOptimizer::for_model(&model, Adam::new(1e-3));
    assert!(opt.scales_loss());
    let options = FitOptions {
        epochs: 2,
        ..options()
    };
    let history = fit(&mut model, &mut opt, &train, &options).unwrap();
    assert!(history.epochs[1].loss < history.epochs[0].loss);
}
