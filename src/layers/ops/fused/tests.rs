//! The fused passes against f64 references, with bounds from the unit roundoff of the compute
//! type `u_C` and of its accumulator `u_A`, and the checks that those bounds catch a wrong
//! rounding or a dropped term.

use half::{bf16, f16};

use super::*;
use crate::kernels::pack_b;

/// Deterministic values in about [-1, 1), varied enough to exercise rounding.
fn values<C: Element>(len: usize, salt: usize) -> Vec<C> {
    (0..len)
        .map(|i| {
            let h = (i * 2_654_435_761 + salt * 40_503) % 10_007;
            C::from_f64_rne(h as f64 / 5003.5 - 1.0)
        })
        .collect()
}

/// `γ_m = m·u / (1 - m·u)`: the relative error bound of a sum of `m` terms.
fn gamma(m: usize, u: f64) -> f64 {
    m as f64 * u / (1.0 - m as f64 * u)
}

/// The exact `activation(x·W + b)` in f64 and the magnitude sum `Σ|x·w| + |b|` per output.
fn reference<C: Element>(
    x: &[C],
    w: &[C],
    b: &[C],
    (rows, k, n): (usize, usize, usize),
    act: Activation,
) -> Vec<(f64, f64)> {
    let mut out = Vec::with_capacity(rows * n);
    for r in 0..rows {
        for j in 0..n {
            let (mut z, mut s) = (b[j].as_f64(), b[j].as_f64().abs());
            for i in 0..k {
                let p = x[r * k + i].as_f64() * w[i * n + j].as_f64();
                z += p;
                s += p.abs();
            }
            out.push((act.apply(z), s));
        }
    }
    out
}

/// The first output outside `u_C·|r| + 2·(γ_{k+1}^A·S + 8·u_A·|r|)`: one rounding to `C` of
/// a value whose sum of `k` products and a bias carries `γ_{k+1}` in the accumulator, through a
/// 1-Lipschitz activation evaluated to a few `u_A`.
fn first_violation<C: Element>(got: &[C], reference: &[(f64, f64)], k: usize) -> Option<usize> {
    let (uc, ua) = (C::UNIT_ROUNDOFF, C::Acc::UNIT_ROUNDOFF);
    got.iter().zip(reference).position(|(&g, &(r, s))| {
        let bound = uc * r.abs() + 2.0 * (gamma(k + 1, ua) * s + 8.0 * ua * r.abs());
        (g.as_f64() - r).abs() > bound
    })
}

fn forward<C: Element>(
    x: &[C],
    w: &[C],
    b: &[C],
    dims: (usize, usize, usize),
    act: Activation,
) -> Vec<C> {
    let (rows, k, n) = dims;
    let packed = pack_b(MatRef::row_major(w, k, n));
    let mut acc = Vec::new();
    gemm_bias_activation(
        MatRef::row_major(x, rows, k),
        &packed,
        Some(b),
        act,
        &mut acc,
    )
}

fn forward_within_unit_roundoff_bounds<C: Element>() {
    let dims @ (rows, k, n) = (11, 37, 19);
    let (x, w, b) = (
        values::<C>(rows * k, 1),
        values::<C>(k * n, 2),
        values::<C>(n, 3),
    );
    for act in Activation::ALL {
        let got = forward(&x, &w, &b, dims, act);
        let want = reference(&x, &w, &b, dims, act);
        assert_eq!(first_violation(&got, &want, k), None, "{} {act}", C::DTYPE);
    }
}

#[test]
fn forward_is_within_unit_roundoff_bounds_in_every_compute_type() {
    forward_within_unit_roundoff_bounds::<bf16>();
    forward_within_unit_roundoff_bounds::<f16>();
    forward_within_unit_roundoff_bounds::<f32>();
    forward_within_unit_roundoff_bounds::<f64>();
}

#[test]
fn the_forward_bound_catches_a_wrong_rounding_and_a_dropped_term() {
    let dims @ (rows, k, n) = (11, 37, 19);
    let (x, w, b) = (
        values::<bf16>(rows * k, 1),
        values::<bf16>(k * n, 2),
        values::<bf16>(n, 3),
    );
    let want = reference(&x, &w, &b, dims, Activation::Tanh);
    // Rounding toward zero instead of to nearest: the f32 result with its low 16 bits cut.
    let wide: Vec<f32> = cast_to_vec(&x);
    let (ww, bw): (Vec<f32>, Vec<f32>) = (cast_to_vec(&w), cast_to_vec(&b));
    let truncated: Vec<bf16> = forward(&wide, &ww, &bw, dims, Activation::Tanh)
        .into_iter()
        .map(|v| bf16::from_bits((v.to_bits() >> 16) as u16))
        .collect();
    assert!(
        first_violation(&truncated, &want, k).is_some(),
        "truncation passed"
    );
    // One product term dropped: the last input feature zeroed.
    let mut dropped = x.clone();
    dropped
        .iter_mut()
        .skip(k - 1)
        .step_by(k)
        .for_each(|v| *v = bf16::ZERO);
    let got = forward(&dropped, &w, &b, dims, Activation::Tanh);
    assert!(
        first_violation(&got, &want, k).is_some(),
        "a dropped term passed"
    );
}

/// The 16-bit epilogue adds the bias, applies the activation and rounds in one pass over runs of
/// the accumulator that start mid-row; every element must get its own column's bias and be
/// rounded once: compared with the product plus a row-by-row epilogue, bit for bit.
fn epilogue_matches_row_by_row<C: Element>() {
    for (rows, k, n) in [
        (300, 5, 37),
        (9, 3, 1000),
        (3, 4, 2049),
        (700, 2, 1),
        (5, 6, 7),
    ] {
        for act in [Activation::Linear, Activation::Relu, Activation::Tanh] {
            let w = values::<C>(k * n, 7);
            let b: Vec<C> = (0..n)
                .map(|j| C::from_f32_rne((j % 13) as f32 * 0.37 - 2.0))
                .collect();
            let x: Vec<C> = (0..rows * k)
                .map(|i| C::from_f32_rne(((i * 31) % 17) as f32 / 8.0 - 1.0))
                .collect();
            let y = forward(&x, &w, &b, (rows, k, n), act);
            let mut acc = vec![C::Acc::default(); rows * n];
            gemm_packed(
                MatRef::row_major(&x, rows, k),
                &pack_b(MatRef::row_major(&w, k, n)),
                &mut acc,
                false,
            );
            let bias: Vec<C::Acc> = cast_to_vec(&b);
            for (i, (&a, &got)) in acc.iter().zip(&y).enumerate() {
                let want = C::from_f64_rne(act.apply(a + bias[i % n]).as_f64());
                assert!(
                    want.as_f64().to_bits() == got.as_f64().to_bits(),
                    "{} {rows}x{k}x{n} {act:?} element {i}: {got:?} != {want:?}",
                    C::DTYPE
                );
            }
        }
    }
}

#[test]
fn epilogue_matches_row_by_row_in_every_compute_type() {
    epilogue_matches_row_by_row::<bf16>();
    epilogue_matches_row_by_row::<f16>();
    epilogue_matches_row_by_row::<f32>();
}

/// `(dy, y)` for `rows × n`, with `y` in an activation's range.
fn grad_inputs<C: Element>(rows: usize, n: usize, act: Activation) -> (Vec<C>, Vec<C>) {
    let dy = values::<C>(rows * n, 4);
    let y = values::<C>(rows * n, 5)
        .into_iter()
        .map(|v| C::from_f64_rne(act.apply(3.0 * v.as_f64())))
        .collect();
    (dy, y)
}

fn pre_activation_grad_within_bounds<C: Element>() {
    let (rows, n) = (23, 9);
    let (uc, ua) = (C::UNIT_ROUNDOFF, C::Acc::UNIT_ROUNDOFF);
    for act in Activation::ALL {
        let (dy, y) = grad_inputs::<C>(rows, n, act);
        let g = pre_activation_grad(dy.clone(), Some(&y), n, act, true);
        for (i, &dz) in g.dz.iter().enumerate() {
            let (d, yv) = (dy[i].as_f64(), y[i].as_f64());
            let r = d * act.derivative_from_saved(yv);
            // act' from the output (GELU: its input) costs at most two roundings on terms up to 1 + y².
            let bound = uc * r.abs() + 2.0 * (4.0 * ua * d.abs() * (1.0 + yv * yv) + ua * r.abs());
            assert!(
                (dz.as_f64() - r).abs() <= bound,
                "{} {act} dz[{i}]",
                C::DTYPE
            );
        }
        let max = g.dz.iter().map(|v| v.as_f64().abs()).fold(0.0, f64::max);
        assert_eq!(g.max_abs, max);
        let mut drops_caught = 0;
        for (j, sum) in g.col_sums.unwrap().iter().enumerate() {
            let col = g.dz.iter().skip(j).step_by(n).map(|v| v.as_f64());
            let (exact, mag) = col.fold((0.0, 0.0), |(s, m), v| (s + v, m + v.abs()));
            let bound = gamma(rows, ua) * mag;
            assert!(
                (sum.as_f64() - exact).abs() <= bound,
                "{} {act} db[{j}]",
                C::DTYPE
            );
            // Dropping the first row's term is caught by the same bound.
            let first = g.dz[j].as_f64();
            if first.abs() > 2.0 * bound {
                assert!((sum.as_f64() - (exact - first)).abs() > bound);
                drops_caught += 1;
            }
        }
        assert!(
            drops_caught > n / 2,
            "{} {act}: the drop check ran {drops_caught} times",
            C::DTYPE
        );
    }
}

#[test]
fn pre_activation_grad_is_within_unit_roundoff_bounds() {
    pre_activation_grad_within_bounds::<bf16>();
    pre_activation_grad_within_bounds::<f16>();
    pre_activation_grad_within_bounds::<f32>();
    pre_activation_grad_within_bounds::<f64>();
}

#[test]
fn pre_activation_grad_does_not_depend_on_the_thread_count() {
    // Four row blocks of rows_per_task(3) rows each, and a partial fifth.
    let (n, rows) = (3, 4 * rows_per_task(3) + 17);
    let (dy, y) = grad_inputs::<bf16>(rows, n, Activation::Sigmoid);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        let g = pool
            .install(|| pre_activation_grad(dy.clone(), Some(&y), n, Activation::Sigmoid, true));
        let sums: Vec<u32> = g.col_sums.unwrap().iter().map(|s| s.to_bits()).collect();
        (g.dz, g.max_abs.to_bits(), sums)
    };
    let one = run(1);
    assert_eq!(run(2), one);
    assert_eq!(run(5), one);
}

#[test]
fn max_abs_of_dz_keeps_a_nan_from_any_block() {
    let (n, rows) = (4, 3 * rows_per_task(4));
    let mut dy = values::<f32>(rows * n, 6);
    dy[rows * n - 1] = f32::NAN; // in the last block only
    let g = pre_activation_grad(dy, None, n, Activation::Linear, false);
    assert!(g.max_abs.is_nan());
    assert!(g.col_sums.is_none());
}

#[test]
fn sum_bound_holds_while_rows_u_is_at_most_a_half() {
    // rows · 2^-24 <= 1/2 up to 2^23 rows.
    assert_eq!(sum_bound(1 << 23, 1.5), 2.0 * f64::from(1u32 << 23) * 1.5);
    assert_eq!(sum_bound((1 << 23) + 1, 1.0), f64::INFINITY);
    assert!(!sum_bound(10, f64::NAN).is_finite());
    assert!(!sum_bound(10, f64::INFINITY).is_finite());
    // A worst case: every term at the bound, summed in f32, stays within it.
    let (rows, term) = (100_000, 0.1f32 + f32::EPSILON);
    let s = (0..rows).fold(0.0f32, |s, _| s + term);
    assert!(f64::from(s) <= sum_bound(rows, f64::from(term)));
}
