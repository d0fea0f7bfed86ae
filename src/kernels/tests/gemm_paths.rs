//! Matrix products on every path against an f64 reference, within a bound derived from f32's
//! unit roundoff; NaN/inf propagation; pre-packed weights; and proof that the bound catches
//! plausible kernel bugs.

use half::{bf16, f16};

use super::{gamma, gemm_reference, kernel_paths, U32, U64};
use crate::kernels::gemm::{gemm_with, pack_b_from_f32_with, pack_b_with};
use crate::kernels::{gemm_packed, kernels_for, KernelChoice, MatRef};
use crate::{DType, Element};

const TINY: f64 = 1.1754943508222875e-38; // 2^-126: AMX reads subnormal inputs as zero

use super::values::values;

/// `|c - ref| <= γ_{k+1}(Σ|a||b| + |c0|) + f64 slack + flushed-subnormal term`, per element.
fn check_bound<T: Element>(
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c0: &[f32],
    got: &[f32],
) -> Result<(), String> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    for (idx, (exact, mag)) in gemm_reference(a, b, c0).into_iter().enumerate() {
        let (i, j) = (idx / n, idx % n);
        let bound = (gamma(k + 1, U32) + gamma(k + 1, U64)) * mag + TINY * (k + 1) as f64 * 8.0;
        let err = (got[idx] as f64 - exact).abs();
        if err.is_nan() || err > bound {
            return Err(format!(
                "C[{i}][{j}] = {} but reference {exact} (err {err:e} > bound {bound:e}, \
                 m={m} k={k} n={n})",
                got[idx]
            ));
        }
    }
    Ok(())
}

fn run<T: Element<Acc = f32>>(
    path: KernelChoice,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    c0: &[f32],
    accumulate: bool,
) -> Vec<f32> {
    let mut c = c0.to_vec();
    gemm_with(path, a, b, &mut c, accumulate);
    c
}

fn gemm_matches_reference_on_shapes<T: Element<Acc = f32>>() {
    let shapes = [
        (1, 1, 1),
        (1, 33, 17),
        (15, 31, 15),
        (16, 32, 16),
        (17, 33, 17),
        (33, 100, 1),
        (31, 65, 33),
        (64, 96, 48),
        (5, 1000, 7),
        (130, 257, 70),
    ];
    for path in kernel_paths() {
        for &(m, k, n) in &shapes {
            let a = values::<T>(m * k, (m * 7 + k) as u64);
            let b = values::<T>(k * n, (n * 13 + k) as u64);
            let bt: Vec<T> = (0..n * k).map(|i| b[(i % k) * n + i / k]).collect();
            let c0 = values::<f32>(m * n, 99);
            let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
            let btv = MatRef::row_major(&bt, n, k).t();
            for acc in [false, true] {
                let base = if acc { c0.clone() } else { vec![0.0; m * n] };
                let got = run(path, av, bv, &c0, acc);
                check_bound(av, bv, &base, &got).unwrap_or_else(|e| panic!("{path:?}: {e}"));
                let got_t = run(path, av, btv, &c0, acc);
                assert_eq!(
                    got, got_t,
                    "{path:?}: transposed B view differs ({m},{k},{n})"
                );
            }
        }
    }
}

#[test]
fn gemm_bf16_every_path_matches_f64_reference() {
    gemm_matches_reference_on_shapes::<bf16>();
}

#[test]
fn gemm_f16_every_path_matches_f64_reference() {
    gemm_matches_reference_on_shapes::<f16>();
}

#[test]
fn gemm_f32_every_path_matches_f64_reference() {
    gemm_matches_reference_on_shapes::<f32>();
}

#[test]
fn gemm_bf16_large_shape_uses_threads_and_matches_portable_within_bound() {
    let (m, k, n) = (200, 1030, 300);
    let a = values::<bf16>(m * k, 1);
    let b = values::<bf16>(k * n, 2);
    let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
    for path in kernel_paths() {
        let got = run(path, av, bv, &vec![0.0; m * n], false);
        check_bound(av, bv, &vec![0.0; m * n], &got).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
}

#[test]
fn gemm_backward_views_match_reference() {
    // dX = dY·Wᵀ and dW = Xᵀ·dY, through transposed views only.
    let (rows, inp, units) = (37, 70, 45);
    let x = values::<bf16>(rows * inp, 3);
    let w = values::<bf16>(inp * units, 4);
    let dy = values::<bf16>(rows * units, 5);
    for path in kernel_paths() {
        let (dyv, wt) = (
            MatRef::row_major(&dy, rows, units),
            MatRef::row_major(&w, inp, units).t(),
        );
        let dx = run(path, dyv, wt, &vec![0.0; rows * inp], false);
        check_bound(dyv, wt, &vec![0.0; rows * inp], &dx).unwrap();
        let xt = MatRef::row_major(&x, rows, inp).t();
        let dw = run(path, xt, dyv, &vec![0.0; inp * units], false);
        check_bound(xt, dyv, &vec![0.0; inp * units], &dw).unwrap();
    }
}

fn nan_and_inf_propagate<T: Element<Acc = f32>>() {
    let (m, k, n) = (17, 40, 18);
    for path in kernel_paths() {
        let mut a = values::<T>(m * k, 6);
        // B strictly positive, so an infinite A entry gives an infinite row of C.
        let b: Vec<T> = values::<T>(k * n, 7)
            .iter()
            .map(|x| T::from_f32_rne(x.as_f32().abs() + 0.5))
            .collect();
        a[3 * k + 39] = T::nan(); // row 3, the last (partial) k chunk
        a[5 * k] = T::infinity(); // row 5 times positive B: +inf
        a[16 * k + 2] = T::neg_infinity();
        let c = run(
            path,
            MatRef::row_major(&a, m, k),
            MatRef::row_major(&b, k, n),
            &vec![0.0; m * n],
            false,
        );
        for j in 0..n {
            assert!(c[3 * n + j].is_nan(), "{path:?}: NaN lost at (3,{j})");
            assert_eq!(c[5 * n + j], f32::INFINITY, "{path:?}: (5,{j})");
            assert_eq!(c[16 * n + j], f32::NEG_INFINITY, "{path:?}: (16,{j})");
            assert!(c[4 * n + j].is_finite(), "{path:?}: (4,{j}) polluted");
        }
        // inf · 0 is NaN in every path.
        let z = [T::zero(); 2];
        let inf = [T::infinity(), T::one()];
        let c = run(
            path,
            MatRef::row_major(&inf, 1, 2),
            MatRef::row_major(&z, 2, 1),
            &[0.0],
            false,
        );
        assert!(c[0].is_nan(), "{path:?}: inf·0 must be NaN");
    }
}

#[test]
fn gemm_propagates_nan_and_inf_for_every_type() {
    nan_and_inf_propagate::<bf16>();
    nan_and_inf_propagate::<f16>();
    nan_and_inf_propagate::<f32>();
}

#[test]
fn gemm_packed_equals_gemm_and_pack_from_f32_rounds_once() {
    let (m, k, n) = (19, 77, 35);
    let w32 = values::<f32>(k * n, 8);
    let wb: Vec<bf16> = w32.iter().map(|&x| bf16::from_f32(x)).collect();
    let x = values::<bf16>(m * k, 9);
    for path in kernel_paths() {
        let direct = run(
            path,
            MatRef::row_major(&x, m, k),
            MatRef::row_major(&wb, k, n),
            &vec![0.0; m * n],
            false,
        );
        let p1 = pack_b_with(path, MatRef::row_major(&wb, k, n));
        let p2 = pack_b_from_f32_with::<bf16>(path, MatRef::row_major(&w32, k, n));
        assert_eq!(p1.kernel(), p2.kernel());
        if path == KernelChoice::Amx {
            assert_eq!(p1.kernel(), KernelChoice::Amx);
        }
        for p in [&p1, &p2] {
            let mut c = vec![1.0; m * n];
            gemm_packed(MatRef::row_major(&x, m, k), p, &mut c, false);
            assert_eq!(c, direct, "{path:?}");
            gemm_packed(MatRef::row_major(&x, m, k), p, &mut c, true);
            let twice: Vec<f32> = direct.iter().map(|v| 2.0 * v).collect();
            check_bound(
                MatRef::row_major(&x, m, k),
                MatRef::row_major(&wb, k, n),
                &direct,
                &c,
            )
            .unwrap();
            assert!(c
                .iter()
                .zip(&twice)
                .all(|(a, b)| (a - b).abs() <= 1e-3 * b.abs() + 1e-6));
        }
        // f16 and the f32 pass-through pack from f32 too.
        let p16 = pack_b_from_f32_with::<f16>(path, MatRef::row_major(&w32, k, n));
        let x16: Vec<f16> = values::<f16>(m * k, 10);
        let w16: Vec<f16> = w32.iter().map(|&x| f16::from_f32(x)).collect();
        let mut c = vec![0.0; m * n];
        gemm_packed(MatRef::row_major(&x16, m, k), &p16, &mut c, false);
        let want = run(
            path,
            MatRef::row_major(&x16, m, k),
            MatRef::row_major(&w16, k, n),
            &c,
            false,
        );
        assert_eq!(c, want, "{path:?}: f16");
        // Wide enough that a packing task covers more than one run of the row buffers.
        let (m2, k2, n2) = (3, 5, 2000);
        let w32 = values::<f32>(k2 * n2, 11);
        let w16: Vec<f16> = w32.iter().map(|&x| f16::from_f32(x)).collect();
        let x16: Vec<f16> = values::<f16>(m2 * k2, 12);
        let p16 = pack_b_from_f32_with::<f16>(path, MatRef::row_major(&w32, k2, n2));
        let mut c = vec![0.0; m2 * n2];
        gemm_packed(MatRef::row_major(&x16, m2, k2), &p16, &mut c, false);
        let want = run(
            path,
            MatRef::row_major(&x16, m2, k2),
            MatRef::row_major(&w16, k2, n2),
            &c,
            false,
        );
        assert_eq!(c, want, "{path:?}: f16, n = {n2}");
    }
}

/// The bf16 paths that run a hardware dot product (AMX tiles, `vdpbf16ps` pairs) on this CPU.
fn bf16_dot_product_paths() -> Vec<KernelChoice> {
    let paths: Vec<KernelChoice> = [KernelChoice::Avx512, KernelChoice::Amx]
        .into_iter()
        .filter(|&c| kernels_for(c).gemm(DType::BFloat16) == c)
        .collect();
    if paths.is_empty() {
        eprintln!("skip: CPU lacks AVX512-BF16 and AMX-BF16");
    }
    paths
}

#[test]
fn bf16_avx512_path_is_vdpbf16ps_exactly_when_the_cpu_has_avx512_bf16() {
    let has = std::arch::is_x86_feature_detected!("avx512bf16")
        && kernels_for(KernelChoice::Avx512).gemm(DType::Float32) == KernelChoice::Avx512;
    let w = values::<bf16>(6 * 5, 1);
    let p = pack_b_with(KernelChoice::Avx512, MatRef::row_major(&w, 6, 5));
    let want = if has {
        KernelChoice::Avx512
    } else {
        KernelChoice::Portable
    };
    assert_eq!(p.kernel(), want);
    assert_eq!(
        kernels_for(KernelChoice::Avx512).gemm(DType::BFloat16),
        want
    );
}

#[test]
fn dot_product_paths_flush_only_subnormal_inputs_within_the_absolute_term() {
    // A subnormal bf16 times 1 gives 0 on AMX and vdpbf16ps (DAZ) and the subnormal on the
    // portable path; a subnormal partial sum is flushed too (FTZ).
    let sub = bf16::from_bits(0x0001);
    let a = [
        sub,
        bf16::ONE,
        bf16::from_bits(0x0080),
        bf16::ZERO,
        bf16::ONE,
    ];
    let b = [
        bf16::ONE,
        bf16::ONE,
        bf16::from_bits(0x3f00),
        bf16::ONE,
        bf16::ZERO,
    ];
    for path in bf16_dot_product_paths() {
        let (av, bv) = (
            MatRef::row_major(&a[..2], 1, 2),
            MatRef::row_major(&b[..2], 2, 1),
        );
        let got = run(path, av, bv, &[0.0], false);
        assert_eq!(got[0], 1.0, "{path:?}");
        check_bound(av, bv, &[0.0], &got).unwrap();
        // 2^-126 · 0.5 is a subnormal product: flushed to zero, within the absolute term.
        let (av, bv) = (
            MatRef::row_major(&a[2..], 1, 3),
            MatRef::row_major(&b[2..], 3, 1),
        );
        let got = run(path, av, bv, &[0.0], false);
        assert!(
            got[0] == 0.0 || got[0] == 2f32.powi(-127),
            "{path:?}: {}",
            got[0]
        );
        check_bound(av, bv, &[0.0], &got).unwrap();
    }
}

/// A plausible bug of a k-pair layout: the halves of B's pairs swapped, so each pair adds
/// `a[2q]·b[2q+1] + a[2q+1]·b[2q]` (exact in f64).
fn gemm_with_swapped_pairs(a: MatRef<'_, bf16>, b: MatRef<'_, bf16>) -> Vec<f32> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for p in 0..k {
                let q = if p + 1 < k { p ^ 1 } else { p };
                s += a.at(i, p).as_f64() * b.at(q, j).as_f64();
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

#[test]
fn bound_catches_swapped_pair_halves_and_a_dropped_odd_k() {
    let (m, k, n) = (13, 301, 33);
    let a = values::<bf16>(m * k, 21);
    let b = values::<bf16>(k * n, 22);
    let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
    let zero = vec![0.0; m * n];
    assert!(check_bound(av, bv, &zero, &gemm_with_swapped_pairs(av, bv)).is_err());
    // The unpaired last k (301 is odd) dropped: the first 300 only.
    let a2: Vec<bf16> = (0..m * (k - 1))
        .map(|i| a[(i / (k - 1)) * k + i % (k - 1)])
        .collect();
    let dropped = run(
        KernelChoice::Portable,
        MatRef::row_major(&a2, m, k - 1),
        MatRef::row_major(&b[..(k - 1) * n], k - 1, n),
        &zero,
        false,
    );
    assert!(check_bound(av, bv, &zero, &dropped).is_err());
    for path in kernel_paths() {
        check_bound(av, bv, &zero, &run(path, av, bv, &zero, false)).unwrap();
    }
}

/// A plausible bug: the same product, but every partial sum rounded to bf16.
fn gemm_accumulating_in_bf16(a: MatRef<'_, bf16>, b: MatRef<'_, bf16>) -> Vec<f32> {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bf16::ZERO;
            for p in 0..k {
                s = bf16::from_f32(s.to_f32() + a.at(i, p).to_f32() * b.at(p, j).to_f32());
            }
            c[i * n + j] = s.to_f32();
        }
    }
    c
}

#[test]
fn bound_catches_bf16_accumulation_and_a_dropped_k_block() {
    let (m, k, n) = (8, 300, 8);
    let a = values::<bf16>(m * k, 11);
    let b = values::<bf16>(k * n, 12);
    let (av, bv) = (MatRef::row_major(&a, m, k), MatRef::row_major(&b, k, n));
    let zero = vec![0.0; m * n];
    assert!(check_bound(av, bv, &zero, &gemm_accumulating_in_bf16(av, bv)).is_err());
    // Dropping the last, partial k chunk (300 = 9·32 + 12): multiply only the first 288.
    let kk = 288;
    let a2: Vec<bf16> = (0..m * kk).map(|i| a[(i / kk) * k + i % kk]).collect();
    let dropped = run(
        KernelChoice::Portable,
        MatRef::row_major(&a2, m, kk),
        MatRef::row_major(&b[..kk * n], kk, n),
        &zero,
        false,
    );
    assert!(check_bound(av, bv, &zero, &dropped).is_err());
    // ... while the real product passes on every path.
    for path in kernel_paths() {
        check_bound(av, bv, &zero, &run(path, av, bv, &zero, false)).unwrap();
    }
}
