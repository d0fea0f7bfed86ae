//! Property tests: every gemm path this CPU has (portable, AVX-512, AMX) on random odd shapes,
//! strided and transposed views, with and without accumulation, against an f64 reference within
//! `γ_{k+1}·(Σ|a||b| + |c0|)` (f32 unit roundoff 2^-24; products of 16-bit values are exact in
//! f32), and against each other within twice that.
//!
//! Case counts are small (the whole file runs in seconds on 2 cores); shapes are drawn to hit
//! the tile edges: 1, 15, 16, 17, 31, 32, 33, 127, k not a multiple of 32, and k above 1000.

use half::{bf16, f16};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;

use super::{gamma, gemm_reference, kernel_paths, U32, U64};
use crate::kernels::gemm::{gemm_with, pack_b_from_f32_with, pack_b_with};
use crate::kernels::{gemm_packed, MatRef};
use crate::Element;

/// Failing cases are kept next to this file (`prop_gemm.proptest-regressions`), as they were
/// when it was an integration test.
fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Per-element f64 reference and bound.
fn reference<T: Element>(a: MatRef<'_, T>, b: MatRef<'_, T>, c0: &[f32]) -> Vec<(f64, f64)> {
    let k = a.cols();
    let gamma_k = gamma(k + 1, U32) + gamma(k + 1, U64);
    gemm_reference(a, b, c0)
        .into_iter()
        .map(|(exact, mag)| (exact, gamma_k * mag + 1e-37))
        .collect()
}

/// A shape dimension biased to the tile edges.
fn dim(max: usize) -> impl Strategy<Value = usize> {
    prop_oneof![
        prop::sample::select(vec![1usize, 15, 16, 17, 31, 32, 33]),
        1..=max,
    ]
}

#[derive(Debug, Clone)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c0: Vec<f32>,
    a_t: bool,
    b_t: bool,
    accumulate: bool,
}

fn case(max_mn: usize, max_k: usize) -> impl Strategy<Value = Case> {
    (dim(max_mn), dim(max_k), dim(max_mn)).prop_flat_map(|(m, k, n)| {
        let v = |len| prop::collection::vec(-4.0f32..4.0, len);
        (
            v(m * k),
            v(k * n),
            v(m * n),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(move |(a, b, c0, a_t, b_t, accumulate)| Case {
                m,
                k,
                n,
                a,
                b,
                c0,
                a_t,
                b_t,
                accumulate,
            })
    })
}

/// A view of `data` as an `r × c` matrix, stored row-major or as the transpose of a `c × r`.
fn view<T>(data: &[T], r: usize, c: usize, transposed: bool) -> MatRef<'_, T> {
    if transposed {
        MatRef::row_major(data, c, r).t()
    } else {
        MatRef::row_major(data, r, c)
    }
}

fn check<T: Element<Acc = f32>>(cs: &Case) -> Result<(), TestCaseError> {
    let a: Vec<T> = cs.a.iter().map(|&x| T::from_f32_rne(x)).collect();
    let b: Vec<T> = cs.b.iter().map(|&x| T::from_f32_rne(x)).collect();
    let (av, bv) = (view(&a, cs.m, cs.k, cs.a_t), view(&b, cs.k, cs.n, cs.b_t));
    let base = if cs.accumulate {
        cs.c0.clone()
    } else {
        vec![0.0; cs.m * cs.n]
    };
    let want = reference(av, bv, &base);
    let mut portable = None;
    for path in kernel_paths() {
        let mut c = cs.c0.clone();
        gemm_with(path, av, bv, &mut c, cs.accumulate);
        for (idx, (&got, &(r, bound))) in c.iter().zip(&want).enumerate() {
            let err = (got as f64 - r).abs();
            prop_assert!(
                err <= bound,
                "{:?} {:?} C[{}]: {} vs {} (err {:e} > {:e})",
                T::DTYPE,
                path,
                idx,
                got,
                r,
                err,
                bound
            );
        }
        // The pre-packed path is within the same bound; for the 16-bit types, where `gemm`
        // itself packs B the same way, it computes the same bits. (f32 `gemm` calls
        // matrixmultiply directly, while a packed f32 B feeds the AVX-512 FMA kernel.)
        let mut cp = cs.c0.clone();
        gemm_packed(av, &pack_b_with(path, bv), &mut cp, cs.accumulate);
        if T::DTYPE == crate::DType::Float32 {
            for (idx, (&got, &(r, bound))) in cp.iter().zip(&want).enumerate() {
                prop_assert!(
                    (got as f64 - r).abs() <= bound,
                    "{:?} packed C[{}]",
                    path,
                    idx
                );
            }
        } else {
            prop_assert_eq!(&cp, &c, "{:?} {:?}: gemm_packed differs", T::DTYPE, path);
        }
        match &portable {
            None => portable = Some(c),
            Some(p) => {
                for ((x, y), &(_, bound)) in c.iter().zip(p).zip(&want) {
                    prop_assert!(((x - y).abs() as f64) <= 2.0 * bound);
                }
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn prop_gemm_bf16_paths_within_bound(cs in case(40, 100)) {
        check::<bf16>(&cs)?;
    }

    #[test]
    fn prop_gemm_f16_paths_within_bound(cs in case(40, 100)) {
        check::<f16>(&cs)?;
    }

    #[test]
    fn prop_gemm_f32_paths_within_bound(cs in case(40, 100)) {
        check::<f32>(&cs)?;
    }
}

proptest! {
    #![proptest_config(config(12))]

    #[test]
    fn prop_gemm_bf16_large_k_and_edges_within_bound(cs in case(130, 1100)) {
        check::<bf16>(&cs)?;
    }

    #[test]
    fn prop_gemm_f16_f32_large_k_and_edges_within_bound(cs in case(130, 1100)) {
        check::<f16>(&cs)?;
        check::<f32>(&cs)?;
    }

    #[test]
    fn prop_pack_from_f32_equals_pack_of_rounded(
        k in dim(70), n in dim(70), t in any::<bool>(), seed in any::<u32>()
    ) {
        let w: Vec<f32> = (0..k * n)
            .map(|i| ((i as u32).wrapping_mul(2_654_435_761) ^ seed) as f32 * 1e-9 - 2.0)
            .collect();
        let wb: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
        let x: Vec<bf16> = (0..3 * k).map(|i| bf16::from_f32(i as f32 * 0.25 - 1.0)).collect();
        for path in kernel_paths() {
            let (mut c1, mut c2) = (vec![0f32; 3 * n], vec![0f32; 3 * n]);
            let p1 = pack_b_from_f32_with::<bf16>(path, view(&w, k, n, t));
            let p2 = pack_b_with(path, view(&wb, k, n, t));
            gemm_packed(MatRef::row_major(&x, 3, k), &p1, &mut c1, false);
            gemm_packed(MatRef::row_major(&x, 3, k), &p2, &mut c2, false);
            prop_assert_eq!(c1, c2, "{:?}", path);
        }
    }
}
