//! `Dense::forward` against the f64 reference of `common`, for all six policies in one run, with
//! the bound of `common::dense_bound`; then companion tests showing that the same bound rejects
//! kernels that are wrong in the ways mixed precision usually goes wrong.

#[macro_use]
mod common;

use common::*;
use mixprec::layers::{Activation, Dense};
use mixprec::policy::{ComputeOf, MixedBf16, MixedF16, Policy};
use mixprec::{bf16, f16, Element, Tensor};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per policy. Each case is a few hundred multiply-adds, so six policies × 256 cases (plus
/// shrinking on failure) stay far below a second in the debug profile.
const CASES: u32 = 256;

fn config(cases: u32) -> Config {
    Config {
        cases,
        source_file: Some(file!()),
        ..Config::default()
    }
}

/// The layer's output for `case`, widened to f64.
fn run_layer<P: Policy>(case: &DenseCase) -> Vec<f64> {
    let kernel = Tensor::from_vec(vec![case.input_dim, case.units], case.kernel.clone())
        .expect("kernel shape");
    let bias = case
        .bias
        .as_ref()
        .map(|b| Tensor::from_vec(vec![case.units], b.clone()).expect("bias shape"));
    let dense = Dense::<P>::from_weights(kernel, bias)
        .expect("weights")
        .with_activation(case.act);
    let x = Tensor::from_vec(case.x_shape(), case.x_compute::<P>()).expect("x shape");
    let y = dense.forward(&x).expect("forward");
    assert_eq!(y.shape(), case.y_shape());
    y.to_f64_vec()
}

fn dense_forward_matches_f64_reference<P: Policy>() {
    TestRunner::new(config(CASES))
        .run(&dense_case(), |case| {
            let y = run_layer::<P>(&case);
            let r = reference_dense::<P>(&case);
            match bound_violation::<ComputeOf<P>>(&y, &r, case.input_dim, case.act) {
                None => Ok(()),
                Some(msg) => Err(TestCaseError::fail(msg)),
            }
        })
        .unwrap_or_else(|e| panic!("{}: {e}", P::NAME));
}

for_each_policy!(dense_forward_matches_f64_reference;
    f32_dense_forward_matches_f64_reference,
    f64_dense_forward_matches_f64_reference,
    f16_dense_forward_matches_f64_reference,
    bf16_dense_forward_matches_f64_reference,
    mixed_f16_dense_forward_matches_f64_reference,
    mixed_bf16_dense_forward_matches_f64_reference);

/// Keras's `layer(x)` with an f32 input is exactly `forward` on the input cast to the compute
/// type (one rounding of `x`, nothing else).
fn dense_call_equals_forward_of_cast_input<P: Policy>() {
    TestRunner::new(config(24))
        .run(&dense_case(), |case| {
            let kernel =
                Tensor::from_vec(vec![case.input_dim, case.units], case.kernel.clone()).unwrap();
            let dense = Dense::<P>::from_weights(kernel, None)
                .unwrap()
                .with_activation(case.act);
            let x = Tensor::from_vec(case.x_shape(), case.x.clone()).unwrap();
            let by_call = dense.call(&x).unwrap();
            let by_forward = dense.forward(&x.cast::<ComputeOf<P>>()).unwrap();
            prop_assert_eq!(by_call.shape(), by_forward.shape());
            let (a, b) = (by_call.to_f64_vec(), by_forward.to_f64_vec());
            prop_assert!(a.iter().zip(&b).all(|(p, q)| p.to_bits() == q.to_bits()));
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{}: {e}", P::NAME));
}

for_each_policy!(dense_call_equals_forward_of_cast_input;
    f32_dense_call_equals_forward_of_cast_input,
    f64_dense_call_equals_forward_of_cast_input,
    f16_dense_call_equals_forward_of_cast_input,
    bf16_dense_call_equals_forward_of_cast_input,
    mixed_f16_dense_call_equals_forward_of_cast_input,
    mixed_bf16_dense_call_equals_forward_of_cast_input);

/// A hand-checkable case: kernel all 0.5, bias 1, `x = [1, 2, 3]`, so every output is
/// `0.5·(1 + 2 + 3) + 1 = 4`, exact in every type; relu keeps it, and with `x = [−1, −2, −3]` the
/// output is `−2` (linear) or `0` (relu).
fn dense_constant_weights_give_hand_checked_output<P: Policy>() {
    let kernel = Tensor::from_vec(vec![3, 2], vec![0.5f32; 6]).unwrap();
    let bias = Tensor::from_vec(vec![2], vec![1.0f32; 2]).unwrap();
    let dense = Dense::<P>::from_weights(kernel, Some(bias)).unwrap();
    let c = |v: f64| ComputeOf::<P>::from_f64_rne(v);
    let x = Tensor::from_vec(
        vec![2, 3],
        [1.0, 2.0, 3.0, -1.0, -2.0, -3.0].map(c).to_vec(),
    )
    .unwrap();
    assert_eq!(
        dense.forward(&x).unwrap().to_f64_vec(),
        vec![4.0, 4.0, -2.0, -2.0]
    );
    let relu = dense.with_activation(Activation::Relu);
    assert_eq!(
        relu.forward(&x).unwrap().to_f64_vec(),
        vec![4.0, 4.0, 0.0, 0.0]
    );
}

for_each_policy!(dense_constant_weights_give_hand_checked_output;
    f32_dense_constant_weights_give_hand_checked_output,
    f64_dense_constant_weights_give_hand_checked_output,
    f16_dense_constant_weights_give_hand_checked_output,
    bf16_dense_constant_weights_give_hand_checked_output,
    mixed_f16_dense_constant_weights_give_hand_checked_output,
    mixed_bf16_dense_constant_weights_give_hand_checked_output);

// ---------------------------------------------------------------------------------------------
// The bound is not vacuous: wrong kernels fail it on a fixed seeded input
// ---------------------------------------------------------------------------------------------

/// 8 rows of 64 inputs into 16 units, values in [−1, 1), bias in [−4, 4): sums cancel, so the
/// outputs are small next to `S = Σ|x·w| + |b|`.
fn fixed_case() -> DenseCase {
    seeded_case(0x5eed, vec![2, 4], 64, 16, Activation::Linear)
}

/// Wrong kernel (a): the accumulator is the compute type `C`, rounded after every add.
fn accumulate_in_compute_type<C: Element>(ops: &Operands, k: usize, n: usize) -> Vec<f64> {
    let rows = ops.x.len() / k;
    let mut y = Vec::new();
    for r in 0..rows {
        for j in 0..n {
            let mut acc = C::from_f64_rne(ops.b.as_ref().map_or(0.0, |b| b[j]));
            for p in 0..k {
                // The product of two 16-bit values is exact in f64; only the add rounds.
                acc = C::from_f64_rne(acc.as_f64() + ops.x[r * k + p] * ops.w[p * n + j]);
            }
            y.push(acc.as_f64());
        }
    }
    y
}

/// Wrong kernel (b): exact sum, one rounding to `C`, but the bias is left out.
fn drop_bias<C: Element>(ops: &Operands, k: usize, n: usize) -> Vec<f64> {
    let r = reference_from_compute(&ops.x, &ops.w, None, k, n, Activation::Linear);
    r.y.iter().map(|&z| C::from_f64_rne(z).as_f64()).collect()
}

/// Wrong kernel (c): the f32 accumulator reaches f16 through bf16, two roundings (the first to
/// only 8 significant bits).
fn round_twice_via_bf16(reference: &Reference) -> Vec<f64> {
    reference
        .y
        .iter()
        .map(|&z| f16::from_f32(bf16::from_f32(z as f32).to_f32()).to_f64())
        .collect()
}

/// The real layer on the fixed input is within the bound (so a failure below is the kernel's,
/// not the input's).
fn dense_fixed_case_is_within_bound<P: Policy>() {
    let case = fixed_case();
    let y = run_layer::<P>(&case);
    let r = reference_dense::<P>(&case);
    if let Some(msg) = bound_violation::<ComputeOf<P>>(&y, &r, case.input_dim, case.act) {
        panic!("{}: {msg}", P::NAME);
    }
}

for_each_policy!(dense_fixed_case_is_within_bound;
    f32_dense_fixed_case_is_within_bound,
    f64_dense_fixed_case_is_within_bound,
    f16_dense_fixed_case_is_within_bound,
    bf16_dense_fixed_case_is_within_bound,
    mixed_f16_dense_fixed_case_is_within_bound,
    mixed_bf16_dense_fixed_case_is_within_bound);

#[test]
fn bound_rejects_bf16_accumulation() {
    let case = fixed_case();
    let r = reference_dense::<MixedBf16>(&case);
    let y = accumulate_in_compute_type::<bf16>(&Operands::of::<MixedBf16>(&case), 64, 16);
    assert!(!within_bound::<bf16>(&y, &r, 64, Activation::Linear));
}

#[test]
fn bound_rejects_f16_accumulation() {
    let case = fixed_case();
    let r = reference_dense::<MixedF16>(&case);
    let y = accumulate_in_compute_type::<f16>(&Operands::of::<MixedF16>(&case), 64, 16);
    assert!(!within_bound::<f16>(&y, &r, 64, Activation::Linear));
}

#[test]
fn bound_rejects_dropped_bias() {
    let case = fixed_case();
    let r16 = reference_dense::<MixedF16>(&case);
    let y16 = drop_bias::<f16>(&Operands::of::<MixedF16>(&case), 64, 16);
    assert!(!within_bound::<f16>(&y16, &r16, 64, Activation::Linear));
    let rb = reference_dense::<MixedBf16>(&case);
    let yb = drop_bias::<bf16>(&Operands::of::<MixedBf16>(&case), 64, 16);
    assert!(!within_bound::<bf16>(&yb, &rb, 64, Activation::Linear));
}

#[test]
fn bound_rejects_double_rounding_through_bf16() {
    let case = fixed_case();
    let r = reference_dense::<MixedF16>(&case);
    let y = round_twice_via_bf16(&r);
    assert!(!within_bound::<f16>(&y, &r, 64, Activation::Linear));
}

#[test]
fn bound_accepts_one_correct_rounding_of_the_reference() {
    // The best any f16 or bf16 kernel can do (the exact value rounded once) is within the bound:
    // the `u·|y_ref|` term is needed and sufficient for it.
    let case = fixed_case();
    let r = reference_dense::<MixedF16>(&case);
    let y: Vec<f64> =
        r.y.iter()
            .map(|&z| <f16 as Element>::from_f64_rne(z).to_f64())
            .collect();
    assert!(within_bound::<f16>(&y, &r, 64, Activation::Linear));
    let r = reference_dense::<MixedBf16>(&case);
    let y: Vec<f64> =
        r.y.iter()
            .map(|&z| bf16::from_f64_rne(z).to_f64())
            .collect();
    assert!(within_bound::<bf16>(&y, &r, 64, Activation::Linear));
}
