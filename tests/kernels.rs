//! The pre-packed weight API through the public interface: packing a weight stored in any
//! element type equals packing its rounded copy. (The tests of each kernel path against the f64
//! reference reach internals and live in `src/kernels/tests/`.)

use half::{bf16, f16};
use mixprec::kernels::{gemm_packed, pack_b, pack_b_from, pack_b_from_f32, MatRef, PackedB};
use mixprec::Element;

#[path = "../src/kernels/tests/values.rs"]
mod values;
use values::values;

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
