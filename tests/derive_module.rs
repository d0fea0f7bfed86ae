//! `#[derive(Module)]` on user structs: variable names and order, policy conversion, the
//! generated `Layer` against the equivalent tuple, the run-time wrapper, nesting, and the field
//! attributes. The macro's compile errors are pinned by `tests/ui_derive.rs`.

// Generated items carry docs: a public derived struct passes `missing_docs` (see `Public`).
#![deny(missing_docs)]

use std::marker::PhantomData;

use mixprec::param::Param;
use mixprec::prelude::*;

/// The model of the issue: two Dense layers.
#[derive(Module)]
struct Mlp<P: Policy> {
    hidden: Dense<P>,
    out: Dense<P>,
}

impl<P: Policy> Mlp<P> {
    fn new(seed: u64) -> Self {
        Mlp {
            hidden: Dense::new(3, 5)
                .with_seed(seed)
                .with_activation(Activation::Relu),
            out: Dense::new(5, 2).with_seed(seed + 1),
        }
    }

    /// The same layers as a tuple stack.
    fn as_tuple(&self) -> (Dense<P>, Dense<P>) {
        (self.hidden.clone(), self.out.clone())
    }
}

/// A struct holding a derived struct, plus configuration and transient state.
#[derive(Module)]
struct Net<P: Policy> {
    block: Mlp<P>,
    head: Dense<P>,
    #[module(skip)]
    label: String,
    #[module(reset)]
    last_input: Option<Tensor<ComputeOf<P>>>,
    #[module(reset)]
    _policy: PhantomData<P>,
}

fn input<P: Policy>() -> Tensor<ComputeOf<P>> {
    let data = vec![
        0.5f32, -1.0, 2.0, 1.5, 0.25, -0.75, -2.0, 0.0, 1.0, 3.0, -0.5, 0.125,
    ];
    Tensor::from_vec(vec![4, 3], data).unwrap().cast()
}

/// Every variable's gradient, in visiting order, widened to f64.
fn grads<M: Module>(m: &M) -> Vec<Vec<f64>> {
    struct Grads(Vec<Vec<f64>>);
    impl mixprec::module::ParamVisitor for Grads {
        fn visit<P: Policy>(&mut self, _: &str, p: &mixprec::param::Param<P>) {
            self.0
                .push(p.grad().map(Tensor::to_f64_vec).unwrap_or_default())
        }
    }
    let mut g = Grads(Vec::new());
    m.visit_params("", &mut g);
    g.0
}

macro_rules! for_every_policy {
    ($($name:ident => $body:ident),+ $(,)?) => {$(
        mod $name {
            use super::*;
            #[test] fn f32() { $body::<F32>() }
            #[test] fn f64() { $body::<F64>() }
            #[test] fn f16() { $body::<F16>() }
            #[test] fn bf16() { $body::<Bf16>() }
            #[test] fn mixed_f16() { $body::<MixedF16>() }
            #[test] fn mixed_bf16() { $body::<MixedBf16>() }
        }
    )+};
}

for_every_policy! {
    derived_infer_equals_tuple_infer => infer_matches_tuple,
    derived_backward_equals_tuple_backward => backward_matches_tuple,
}

fn infer_matches_tuple<P: Policy>() {
    let mlp = Mlp::<P>::new(7);
    let x = input::<P>();
    let derived = mlp.infer(&x).unwrap();
    let tuple = mlp.as_tuple().infer(&x).unwrap();
    assert_eq!(derived.shape(), &[4, 2]);
    assert_eq!(derived.to_f64_vec(), tuple.to_f64_vec());
    assert_eq!(mlp.output_dim(3), Some(2));
    assert_eq!(mlp.output_dim(4), None);
    assert!(mlp.infer(&Tensor::zeros(vec![1, 4]).unwrap()).is_err());
}

fn backward_matches_tuple<P: Policy>() {
    let mut mlp = Mlp::<P>::new(3);
    let mut tuple = mlp.as_tuple();
    let x = input::<P>();
    let y = mlp.train_forward(x.clone()).unwrap();
    let y_tuple = tuple.train_forward(x).unwrap();
    assert_eq!(y.to_f64_vec(), y_tuple.to_f64_vec());
    assert_eq!(mlp.saved_bytes(), tuple.saved_bytes());
    assert!(mlp.saved_bytes() > 0);

    let dy: Tensor<ComputeOf<P>> = Tensor::from_vec(vec![4, 2], vec![0.5f32; 8])
        .unwrap()
        .cast();
    let dx = mlp.backward(dy.clone(), true).unwrap().unwrap();
    let dx_tuple = tuple.backward(dy.clone(), true).unwrap().unwrap();
    assert_eq!(dx.to_f64_vec(), dx_tuple.to_f64_vec());
    assert_eq!(grads(&mlp), grads(&tuple));
    assert!(grads(&mlp).iter().all(|g| !g.is_empty()));
    assert_eq!(mlp.saved_bytes(), 0);

    // The first layer skips its input gradient when not asked for it.
    mlp.train_forward(input::<P>()).unwrap();
    assert!(mlp.backward(dy, false).unwrap().is_none());
}

#[test]
fn names_follow_fields_in_declaration_order() {
    let mlp = Mlp::<MixedBf16>::new(0);
    let names = ["hidden.kernel", "hidden.bias", "out.kernel", "out.bias"];
    assert_eq!(mlp.param_names(), names);
    assert_eq!(mlp.param_count(), 3 * 5 + 5 + 5 * 2 + 2);
    assert_eq!(mlp.variable_bytes(), mlp.param_count() * 4);

    let lens: Vec<usize> = mlp.variables().iter().map(|v| v.len()).collect();
    assert_eq!(lens, [15, 5, 10, 2]);
}

#[test]
fn names_nest_through_derived_fields() {
    let net = Net::<F32>::new();
    let names = [
        "block.hidden.kernel",
        "block.hidden.bias",
        "block.out.kernel",
        "block.out.bias",
        "head.kernel",
        "head.bias",
    ];
    assert_eq!(net.param_names(), names);
    struct Names(Vec<String>);
    impl mixprec::module::ParamVisitor for Names {
        fn visit<P: Policy>(&mut self, name: &str, _: &mixprec::param::Param<P>) {
            self.0.push(name.to_string());
        }
    }
    let mut prefixed = Names(Vec::new());
    net.visit_params("model", &mut prefixed);
    assert_eq!(prefixed.0[0], "model.block.hidden.kernel");
}

impl<P: Policy> Net<P> {
    fn new() -> Self {
        Net {
            block: Mlp::new(1),
            head: Dense::new(2, 1),
            label: "net".into(),
            last_input: None,
            _policy: PhantomData,
        }
    }
}

#[test]
fn to_policy_casts_the_variables() {
    // 1 + 2^-9 is exact in f32 and rounds to 1 in bf16 (ties-to-even boundary is 1 + 2^-8).
    let v = 1.0 + 2f32.powi(-9);
    let kernel = Tensor::from_vec(vec![1, 2], vec![v, -3.0]).unwrap();
    let bias = Tensor::from_vec(vec![2], vec![0.1f32, v]).unwrap();
    let mlp = Mlp::<F32> {
        hidden: Dense::from_weights(kernel, Some(bias)).unwrap(),
        out: Dense::new(2, 1),
    };

    let mixed: Mlp<MixedF16> = mlp.to_policy::<MixedF16>();
    assert_eq!(mixed.hidden.kernel().as_slice(), &[v, -3.0]); // f32 → f32: exact
    assert_eq!(mixed.hidden.bias().unwrap().as_slice(), &[0.1, v]);

    let low: Mlp<Bf16> = mlp.to_policy::<Bf16>();
    let expected = [bf16::ONE, bf16::from_f32(-3.0)];
    assert_eq!(low.hidden.kernel().as_slice(), &expected);
    let b = low.hidden.bias().unwrap().as_slice();
    assert_eq!(b, &[bf16::from_f32(0.1), bf16::ONE]);
    assert_eq!(low.param_names(), mlp.param_names());
}

#[test]
fn to_policy_drops_gradients_and_saved_activations() {
    let mut mlp = Mlp::<MixedBf16>::new(2);
    mlp.train_forward(input::<MixedBf16>()).unwrap();
    assert!(mlp.saved_bytes() > 0);
    let converted = mlp.to_policy::<MixedF16>();
    assert_eq!(converted.saved_bytes(), 0);
    assert!(grads(&converted).iter().all(Vec::is_empty));
}

#[test]
fn skip_fields_are_cloned_and_reset_fields_defaulted() {
    let mut net = Net::<MixedBf16>::new();
    net.label = "custom".into();
    net.last_input = Some(input::<MixedBf16>());
    let converted = net.to_policy::<F32>();
    assert_eq!(converted.label, "custom");
    assert!(converted.last_input.is_none());
    assert_eq!(converted.param_names().len(), 6);
    // The reset and skip fields are not layers: the stack is block then head.
    let x = Tensor::<bf16>::zeros(vec![2, 3]).unwrap();
    assert_eq!(net.infer(&x).unwrap().shape(), &[2, 1]);
}

#[test]
fn to_any_holds_the_requested_policy() {
    let mlp = Mlp::<F32>::new(5);
    let any: AnyMlp = mlp.to_any(DTypePolicy::MixedBFloat16);
    assert_eq!(any.policy(), DTypePolicy::MixedBFloat16);
    assert_eq!(any.param_names(), mlp.param_names());
    let x = input::<F32>();
    let expected = mlp.to_policy::<MixedBf16>().infer(&x.cast()).unwrap();
    assert_eq!(
        any.predict_f32(&x).unwrap().to_f64_vec(),
        expected.to_f64_vec()
    );
    assert!(matches!(any, mixprec::layers::ByPolicy::MixedBFloat16(_)));
}

#[test]
fn to_global_policy_reads_the_global_at_call_time() {
    // The only test in this binary that touches the global policy.
    let before = set_global_policy(DTypePolicy::MixedFloat16).unwrap();
    let mlp = Mlp::<F32>::new(1);
    let any = mlp.to_global_policy();
    set_global_policy(DTypePolicy::Float64).unwrap();
    assert_eq!(any.policy(), DTypePolicy::MixedFloat16);
    assert_eq!(mlp.to_global_policy().policy(), DTypePolicy::Float64);
    set_global_policy(before).unwrap();
}

/// A layer holding variables directly: the derive writes only `Module`.
#[derive(Module)]
struct Scale<P: Policy> {
    #[module(param)]
    gamma: Param<P>,
    #[module(param)]
    beta: Option<Param<P>>,
    #[module(skip)]
    epsilon: f32,
}

#[test]
fn param_fields_are_named_by_the_field() {
    let gamma = Param::<MixedF16>::new(Tensor::from_vec(vec![2], vec![1.0f32, 2.0]).unwrap());
    let beta = Param::new(Tensor::from_vec(vec![2], vec![0.5f32, 0.25]).unwrap());
    let mut s = Scale {
        gamma,
        beta: Some(beta),
        epsilon: 1e-3,
    };
    assert_eq!(s.param_names(), ["gamma", "beta"]);
    let half: Scale<F16> = s.to_policy();
    assert_eq!(
        half.beta.unwrap().value().as_slice(),
        &[f16::from_f32(0.5), f16::from_f32(0.25)]
    );
    assert_eq!(half.epsilon, 1e-3);
    s.beta = None;
    assert_eq!(s.param_names(), ["gamma"]);
    assert!(s.to_policy::<F32>().beta.is_none());
}

#[test]
fn dense_uses_the_derive() {
    let d = Dense::<MixedBf16>::new(2, 3).with_activation(Activation::Tanh);
    assert_eq!(d.param_names(), ["kernel", "bias"]);
    let converted = d.to_policy::<F64>();
    assert_eq!(converted.activation(), Activation::Tanh);
    assert_eq!(d.with_bias(false).param_names(), ["kernel"]);
}

/// `#[module(no_layer)]`: variables and conversion only.
#[derive(Module)]
#[module(no_layer)]
struct Encoders<P: Policy> {
    left: Dense<P>,
    right: Dense<P>,
}

/// Extra generic parameters: a const one keeps the family, a type one drops it.
#[derive(Module)]
struct Tagged<P: Policy, const ID: u8> {
    dense: Dense<P>,
}

#[derive(Module)]
struct WithConfig<P: Policy, C: Clone> {
    dense: Dense<P>,
    #[module(skip)]
    config: C,
}

#[test]
fn no_layer_and_extra_generics() {
    let e = Encoders::<F32> {
        left: Dense::new(2, 2),
        right: Dense::new(3, 2),
    };
    assert_eq!(e.to_policy::<Bf16>().param_count(), e.param_count());

    let t = Tagged::<F32, 7> {
        dense: Dense::new(2, 2),
    };
    let any: AnyTagged<7> = t.to_any(DTypePolicy::BFloat16);
    assert_eq!(any.param_names(), ["dense.kernel", "dense.bias"]);

    let w = WithConfig::<F32, &str> {
        dense: Dense::new(2, 1),
        config: "cfg",
    };
    let converted: WithConfig<MixedBf16, &str> = w.to_policy();
    assert_eq!(converted.config, "cfg");
    assert_eq!(
        w.infer(&Tensor::zeros(vec![1, 2]).unwrap())
            .unwrap()
            .shape(),
        &[1, 1]
    );
}

/// A public model: its generated `PublicFamily`, `AnyPublic`, `to_any` and `to_global_policy`
/// are public too, and documented (this file denies `missing_docs`).
#[derive(Module)]
pub struct Public<P: Policy> {
    /// The only layer.
    pub dense: Dense<P>,
}

#[test]
fn public_struct_gets_public_family() {
    let p = Public::<F32> {
        dense: Dense::new(1, 1),
    };
    let any: AnyPublic = p.to_any(DTypePolicy::Float16);
    assert_eq!(any.policy(), DTypePolicy::Float16);
    let _family = PublicFamily;
}
