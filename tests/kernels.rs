//! The pre-packed weight API through the public interface: packing a weight stored in any
//! element type equals packing its rounded copy. (The tests of each kernel path against the f64
//! reference reach internals and live in `src/kernels/tests/`.)

use half::{bf16, f16};
use mixprec::kernels::{gemm_packed, pack_b, pack_b_from, pack_b_from_f32, MatRef, PackedB};
use mixprec::Element;

/// Deterministic values in [-2, 2) with a few exact zeros, rounded to `T`.
fn values<T: Element>(len: usize, seed: u64) -> Vec<T> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let x = (s >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0;
            T::from_f64_rne(if s.is_multiple_of(17) { 0.0 } else { x })
        })
        .collect()
}

#[test]
fn pack_b_from_any_variable_type_equals_packing_the_rounded_copy() {
    use mixprec::dtype::cast_to_vec;
    let (m, k, n) = (5, 41, 37);
    fn product<T: Element<Acc = f32>>(x: &[T], p: &PackedB<T>, m: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0f32; m * p.cols()];
        gemm_packed(MatRef::row_major(x, m, k), p, &mut c, false);
        c
    }
    let w64: Vec<f64> = values::<f64>(k * n, 21);
    let w32: Vec<f32> = cast_to_vec(&w64);
    let wb: Vec<bf16> = cast_to_vec(&w64);
    let xb = values::<bf16>(m * k, 22);
    let xh = values::<f16>(m * k, 23);
    // f32 variable -> bf16 product, bf16 -> bf16, f64 -> bf16 (one rounding from f64).
    let want = product(&xb, &pack_b(MatRef::row_major(&wb, k, n)), m, k);
    assert_eq!(
        product(&xb, &pack_b_from(MatRef::row_major(&wb, k, n)), m, k),
        want
    );
    let from32 = product(&xb, &pack_b_from(MatRef::row_major(&w32, k, n)), m, k);
    let packed32 = pack_b_from_f32(MatRef::row_major(&w32, k, n));
    let want32 = product(&xb, &packed32, m, k);
    assert_eq!(from32, want32);
    let from64 = product(&xb, &pack_b_from(MatRef::row_major(&w64, k, n)), m, k);
    assert_eq!(from64, want);
    // bf16 variable -> f16 product: rounded copy bf16 -> f16.
    let wh: Vec<f16> = cast_to_vec(&wb);
    let want = product(&xh, &pack_b(MatRef::row_major(&wh, k, n)), m, k);
    assert_eq!(
        product(&xh, &pack_b_from(MatRef::row_major(&wb, k, n)), m, k),
        want
    );
}
