//! Scalars: the sealed [`Element`] trait for `half::f16`, `half::bf16`, `f32` and `f64`, the
//! runtime tag [`DType`], and bulk slice casts ([`cast_slice`], [`cast_cow`], [`cast_vec`]).
//!
//! Casts round to nearest, ties to even; NaN stays NaN; values beyond a type's range become ±inf.
//! The slice casts go through the vectorized kernels in `src/kernels/cast.rs` (AVX-512 where
//! [`Kernels::cast`](crate::kernels::Kernels::cast) says so); look there for the SIMD paths.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use half::{bf16, f16};

use crate::error::Error;
use crate::kernels;

/// Keras's name for a floating-point type, the runtime twin of [`Element`].
///
/// ```
/// use mixprec::DType;
/// assert_eq!(DType::BFloat16.name(), "bfloat16");
/// assert_eq!("float16".parse::<DType>()?, DType::Float16);
/// assert_eq!(DType::Float32.size_of(), 4);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    /// IEEE binary16 (`half::f16`): 11-bit significand, max 65504.
    Float16,
    /// bfloat16 (`half::bf16`): f32's range with an 8-bit significand.
    BFloat16,
    /// IEEE binary32.
    Float32,
    /// IEEE binary64.
    Float64,
}

impl DType {
    /// All four, from narrowest to widest.
    pub const ALL: [DType; 4] = [
        DType::Float16,
        DType::BFloat16,
        DType::Float32,
        DType::Float64,
    ];

    /// Keras's name: `"float16"`, `"bfloat16"`, `"float32"` or `"float64"`.
    pub const fn name(self) -> &'static str {
        match self {
            DType::Float16 => "float16",
            DType::BFloat16 => "bfloat16",
            DType::Float32 => "float32",
            DType::Float64 => "float64",
        }
    }

    /// Bytes per element.
    pub const fn size_of(self) -> usize {
        match self {
            DType::Float16 | DType::BFloat16 => 2,
            DType::Float32 => 4,
            DType::Float64 => 8,
        }
    }

    /// The largest finite value: 65504 for float16, about 3.39e38 for bfloat16, `f32::MAX`,
    /// `f64::MAX`.
    pub fn max_finite(self) -> f64 {
        match self {
            DType::Float16 => f16::MAX.to_f64(),
            DType::BFloat16 => bf16::MAX.to_f64(),
            DType::Float32 => f64::from(f32::MAX),
            DType::Float64 => f64::MAX,
        }
    }

    /// Unit roundoff `u = 2^-p` for a `p`-bit significand: the largest relative error of one
    /// rounding to nearest.
    pub fn unit_roundoff(self) -> f64 {
        match self {
            DType::Float16 => <f16 as Element>::UNIT_ROUNDOFF,
            DType::BFloat16 => <bf16 as Element>::UNIT_ROUNDOFF,
            DType::Float32 => <f32 as Element>::UNIT_ROUNDOFF,
            DType::Float64 => <f64 as Element>::UNIT_ROUNDOFF,
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for DType {
    type Err = Error;

    /// Parses Keras's exact, case-sensitive name.
    fn from_str(s: &str) -> Result<Self, Error> {
        DType::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| Error::UnknownDType {
                found: s.to_string(),
            })
    }
}

/// A borrowed slice of one of the four element types, so generic code can reach the concrete
/// slice without `unsafe` (the match folds away after monomorphization).
#[derive(Debug, Clone, Copy)]
pub enum SliceRef<'a> {
    /// `[f16]`
    F16(&'a [f16]),
    /// `[bf16]`
    Bf16(&'a [bf16]),
    /// `[f32]`
    F32(&'a [f32]),
    /// `[f64]`
    F64(&'a [f64]),
}

/// The mutable twin of [`SliceRef`].
#[derive(Debug)]
pub enum SliceMut<'a> {
    /// `[f16]`
    F16(&'a mut [f16]),
    /// `[bf16]`
    Bf16(&'a mut [bf16]),
    /// `[f32]`
    F32(&'a mut [f32]),
    /// `[f64]`
    F64(&'a mut [f64]),
}

/// An owned vector of one of the four element types (see [`SliceRef`]).
#[derive(Debug, Clone, PartialEq)]
pub enum VecOf {
    /// `Vec<f16>`
    F16(Vec<f16>),
    /// `Vec<bf16>`
    Bf16(Vec<bf16>),
    /// `Vec<f32>`
    F32(Vec<f32>),
    /// `Vec<f64>`
    F64(Vec<f64>),
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for half::f16 {}
    impl Sealed for half::bf16 {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point scalar mixprec computes or stores in: `f16`, `bf16`, `f32` or `f64`.
///
/// Sealed: the kernels are written for exactly these four.
///
/// ```
/// use mixprec::{Element, DType};
/// use half::bf16;
/// assert_eq!(<bf16 as Element>::DTYPE, DType::BFloat16);
/// assert_eq!(<bf16 as Element>::UNIT_ROUNDOFF, 2f64.powi(-8));
/// assert_eq!(bf16::from_f32_rne(1.0 + 2f32.powi(-8)).to_f32(), 1.0); // tie to even
/// ```
pub trait Element:
    sealed::Sealed
    + Copy
    + Default
    + PartialEq
    + PartialOrd
    + fmt::Debug
    + fmt::Display
    + Send
    + Sync
    + 'static
    + num_traits::Float
{
    /// The runtime tag.
    const DTYPE: DType;
    /// Unit roundoff `u`: 2^-11 (f16), 2^-8 (bf16), 2^-24 (f32), 2^-53 (f64).
    const UNIT_ROUNDOFF: f64;
    /// The accumulator of products of this type: `f32` for the 16-bit types and f32, `f64` for f64.
    type Acc: Element;

    /// Rounds an `f32` to nearest, ties to even.
    fn from_f32_rne(x: f32) -> Self;
    /// Widens to `f32` (rounding only for `f64`).
    fn as_f32(self) -> f32;
    /// Rounds an `f64` to nearest, ties to even (one rounding, never through f32).
    fn from_f64_rne(x: f64) -> Self;
    /// Widens to `f64` (exact).
    fn as_f64(self) -> f64;

    /// This slice as a [`SliceRef`].
    fn view(s: &[Self]) -> SliceRef<'_>;
    /// This slice as a [`SliceMut`].
    fn view_mut(s: &mut [Self]) -> SliceMut<'_>;
    /// Reinterprets a [`SliceRef`] as `&[Self]` when it holds this type.
    fn from_view(s: SliceRef<'_>) -> Option<&[Self]>;
    /// Reinterprets a [`SliceMut`] as `&mut [Self]` when it holds this type.
    fn from_view_mut(s: SliceMut<'_>) -> Option<&mut [Self]>;
    /// Wraps a vector as a [`VecOf`].
    fn into_vec_of(v: Vec<Self>) -> VecOf;
    /// Unwraps a [`VecOf`] holding this type, or gives it back.
    fn from_vec_of(v: VecOf) -> Result<Vec<Self>, VecOf>;
}

macro_rules! impl_views {
    ($t:ty, $variant:ident) => {
        fn view(s: &[Self]) -> SliceRef<'_> {
            SliceRef::$variant(s)
        }
        fn view_mut(s: &mut [Self]) -> SliceMut<'_> {
            SliceMut::$variant(s)
        }
        fn from_view(s: SliceRef<'_>) -> Option<&[Self]> {
            match s {
                SliceRef::$variant(s) => Some(s),
                _ => None,
            }
        }
        fn from_view_mut(s: SliceMut<'_>) -> Option<&mut [Self]> {
            match s {
                SliceMut::$variant(s) => Some(s),
                _ => None,
            }
        }
        fn into_vec_of(v: Vec<Self>) -> VecOf {
            VecOf::$variant(v)
        }
        fn from_vec_of(v: VecOf) -> Result<Vec<Self>, VecOf> {
            match v {
                VecOf::$variant(v) => Ok(v),
                other => Err(other),
            }
        }
    };
}

impl VecOf {
    /// The number of elements.
    pub fn len(&self) -> usize {
        match self {
            VecOf::F16(v) => v.len(),
            VecOf::Bf16(v) => v.len(),
            VecOf::F32(v) => v.len(),
            VecOf::F64(v) => v.len(),
        }
    }

    /// True when there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type.
    pub fn dtype(&self) -> DType {
        match self {
            VecOf::F16(_) => DType::Float16,
            VecOf::Bf16(_) => DType::BFloat16,
            VecOf::F32(_) => DType::Float32,
            VecOf::F64(_) => DType::Float64,
        }
    }
}

impl Element for f16 {
    const DTYPE: DType = DType::Float16;
    const UNIT_ROUNDOFF: f64 = 1.0 / 2048.0;
    type Acc = f32;
    fn from_f32_rne(x: f32) -> Self {
        f16::from_f32(x)
    }
    fn as_f32(self) -> f32 {
        f16::to_f32(self)
    }
    fn from_f64_rne(x: f64) -> Self {
        f16::from_f32(f64_to_f32_round_to_odd(x))
    }
    fn as_f64(self) -> f64 {
        f16::to_f64(self)
    }
    impl_views!(f16, F16);
}

impl Element for bf16 {
    const DTYPE: DType = DType::BFloat16;
    const UNIT_ROUNDOFF: f64 = 1.0 / 256.0;
    type Acc = f32;
    fn from_f32_rne(x: f32) -> Self {
        bf16::from_f32(x)
    }
    fn as_f32(self) -> f32 {
        bf16::to_f32(self)
    }
    fn from_f64_rne(x: f64) -> Self {
        bf16::from_f32(f64_to_f32_round_to_odd(x))
    }
    fn as_f64(self) -> f64 {
        bf16::to_f64(self)
    }
    impl_views!(bf16, Bf16);
}

impl Element for f32 {
    const DTYPE: DType = DType::Float32;
    const UNIT_ROUNDOFF: f64 = 1.0 / 16_777_216.0;
    type Acc = f32;
    fn from_f32_rne(x: f32) -> Self {
        x
    }
    fn as_f32(self) -> f32 {
        self
    }
    fn from_f64_rne(x: f64) -> Self {
        x as f32
    }
    fn as_f64(self) -> f64 {
        self as f64
    }
    impl_views!(f32, F32);
}

impl Element for f64 {
    const DTYPE: DType = DType::Float64;
    const UNIT_ROUNDOFF: f64 = f64::EPSILON / 2.0;
    type Acc = f64;
    fn from_f32_rne(x: f32) -> Self {
        x as f64
    }
    fn as_f32(self) -> f32 {
        self as f32
    }
    fn from_f64_rne(x: f64) -> Self {
        x
    }
    fn as_f64(self) -> f64 {
        self
    }
    impl_views!(f64, F64);
}

/// `x` rounded to f32 with round-to-odd: truncate, and set the last bit when anything was cut.
///
/// Rounding that result to nearest-even in a format with at most 22 significand bits (f16: 11,
/// bf16: 8) gives the correctly rounded value of `x`, which two plain roundings (f64 → f32 → 16
/// bits) do not: the first can create a false tie. `half`'s `from_f64` truncates the low 32 bits
/// and has exactly that flaw, so mixprec does not use it.
fn f64_to_f32_round_to_odd(x: f64) -> f32 {
    let t = x as f32;
    if x.is_nan() || t as f64 == x {
        return t;
    }
    // Inexact: step to the truncation (toward zero) if rounding went away from zero, then mark
    // the result inexact with an odd last bit. Overflow gives ±f32::MAX (odd), which still rounds
    // to ±inf in both 16-bit types.
    let mut bits = t.to_bits();
    if (t as f64).abs() > x.abs() {
        bits -= 1;
    }
    f32::from_bits(bits | 1)
}

/// Converts `src` into `dst` element by element, rounding to nearest-even.
///
/// Same type: a `memcpy`. To or from `f32`: the vectorized kernels of `src/kernels/cast.rs`
/// ([`Kernels::cast`](crate::kernels::Kernels::cast)).
/// Between the two 16-bit types: through `f32` in cache-sized chunks (exact widening, one
/// rounding). With `f64` on one side: one direct rounding per element.
///
/// # Panics
///
/// If the lengths differ: this is an internal helper's contract, and every public caller checks
/// lengths first.
///
/// ```
/// use half::bf16;
/// let src = [1.0f32, 1.00390625, f32::NAN, f32::MAX];
/// let mut dst = [bf16::ZERO; 4];
/// mixprec::dtype::cast_slice(&src, &mut dst);
/// assert_eq!(dst[1], bf16::ONE); // 1 + 2^-8 is a tie: rounds to even
/// assert!(dst[2].is_nan());
/// assert_eq!(dst[3], bf16::INFINITY); // f32::MAX rounds up past bf16::MAX
/// ```
pub fn cast_slice<T: Element, U: Element>(src: &[T], dst: &mut [U]) {
    assert_eq!(src.len(), dst.len(), "cast_slice: lengths differ");
    match (T::view(src), U::view_mut(dst)) {
        (SliceRef::F16(s), SliceMut::F16(d)) => d.copy_from_slice(s),
        (SliceRef::Bf16(s), SliceMut::Bf16(d)) => d.copy_from_slice(s),
        (SliceRef::F32(s), SliceMut::F32(d)) => d.copy_from_slice(s),
        (SliceRef::F64(s), SliceMut::F64(d)) => d.copy_from_slice(s),
        (SliceRef::F16(s), SliceMut::F32(d)) => kernels::cast::f16_to_f32(s, d),
        (SliceRef::Bf16(s), SliceMut::F32(d)) => kernels::cast::bf16_to_f32(s, d),
        (SliceRef::F32(s), SliceMut::F16(d)) => kernels::cast::f32_to_f16(s, d),
        (SliceRef::F32(s), SliceMut::Bf16(d)) => kernels::cast::f32_to_bf16(s, d),
        (SliceRef::F16(s), SliceMut::Bf16(d)) => via_f32(s, d),
        (SliceRef::Bf16(s), SliceMut::F16(d)) => via_f32(s, d),
        _ => {
            for (d, s) in dst.iter_mut().zip(src) {
                *d = U::from_f64_rne(s.as_f64());
            }
        }
    }
}

/// 16-bit to 16-bit through an f32 buffer on the stack (widening is exact, so one rounding).
fn via_f32<T: Element, U: Element>(src: &[T], dst: &mut [U]) {
    const CHUNK: usize = 512;
    let mut buf = [0f32; CHUNK];
    for (s, d) in src.chunks(CHUNK).zip(dst.chunks_mut(CHUNK)) {
        let b = &mut buf[..s.len()];
        cast_slice(s, b);
        cast_slice(&*b, d);
    }
}

/// `src` in type `U`: borrowed when `T` is `U` (no copy), one bulk conversion otherwise.
///
/// This is how a layer reads its `Variable`-typed weights in its `Compute` type.
///
/// ```
/// use std::borrow::Cow;
/// use half::bf16;
/// let w = vec![0.5f32, 2.0];
/// assert!(matches!(mixprec::dtype::cast_cow::<f32, f32>(&w), Cow::Borrowed(_)));
/// let b = mixprec::dtype::cast_cow::<f32, bf16>(&w);
/// assert_eq!(b[1], bf16::from_f32(2.0));
/// ```
pub fn cast_cow<T: Element, U: Element>(src: &[T]) -> Cow<'_, [U]> {
    match U::from_view(T::view(src)) {
        Some(same) => Cow::Borrowed(same),
        None => Cow::Owned(cast_to_vec(src)),
    }
}

/// `src` converted into a new vector.
///
/// Converts through a buffer on the stack into the vector's spare capacity, so the new memory is
/// written once (a zero-filled vector would be written twice; measured as a `memset` of 1 MiB per
/// layer in the training step).
pub fn cast_to_vec<T: Element, U: Element>(src: &[T]) -> Vec<U> {
    if src.len() >= 1 << 16 {
        // Large: converted in parallel, still written once.
        return kernels::par_collect(src.len(), |r, out| cast_slice(&src[r], out));
    }
    const CHUNK: usize = 2048;
    let mut out = Vec::with_capacity(src.len());
    let mut buf = [U::default(); CHUNK];
    for s in src.chunks(CHUNK) {
        let b = &mut buf[..s.len()];
        cast_slice(s, b);
        out.extend_from_slice(b);
    }
    out
}

/// `v` in type `U`: the same allocation when `T` is `U`, one bulk conversion otherwise.
pub fn cast_vec<T: Element, U: Element>(v: Vec<T>) -> Vec<U> {
    match U::from_vec_of(T::into_vec_of(v)) {
        Ok(same) => same,
        Err(other) => match other {
            VecOf::F16(v) => cast_to_vec(&v),
            VecOf::Bf16(v) => cast_to_vec(&v),
            VecOf::F32(v) => cast_to_vec(&v),
            VecOf::F64(v) => cast_to_vec(&v),
        },
    }
}

/// The largest magnitude in `s` as f64 (exact): NaN when an element is NaN, infinity when one
/// is infinite (and none is NaN), 0 for an empty slice.
///
/// Takes the maximum of the elements' magnitude bits (sign cleared), which orders IEEE values
/// like their magnitudes and puts NaN above infinity, without an early exit, so the loop
/// vectorizes.
///
/// ```
/// use mixprec::dtype::max_abs;
/// assert_eq!(max_abs(&[1.0f32, -3.5, 2.0]), 3.5);
/// assert!(max_abs(&[half::bf16::INFINITY, half::bf16::NAN]).is_nan());
/// assert_eq!(max_abs::<f32>(&[]), 0.0);
/// ```
pub fn max_abs<T: Element>(s: &[T]) -> f64 {
    const TASK: usize = 1 << 15;
    if s.len() > 2 * TASK {
        use rayon::prelude::*;
        return s.par_chunks(TASK).map(max_abs_here).reduce(
            || 0.0,
            |a, b| {
                if a.is_nan() || b.is_nan() {
                    f64::NAN
                } else {
                    a.max(b)
                }
            },
        );
    }
    max_abs_here(s)
}

/// [`max_abs`] on the calling thread.
fn max_abs_here<T: Element>(s: &[T]) -> f64 {
    match T::view(s) {
        SliceRef::F16(s) => {
            f16::from_bits(s.iter().fold(0, |m, x| m.max(x.to_bits() & 0x7fff))).to_f64()
        }
        SliceRef::Bf16(s) => {
            bf16::from_bits(s.iter().fold(0, |m, x| m.max(x.to_bits() & 0x7fff))).to_f64()
        }
        SliceRef::F32(s) => f64::from(f32::from_bits(
            s.iter().fold(0, |m, x| m.max(x.to_bits() & 0x7fff_ffff)),
        )),
        SliceRef::F64(s) => {
            f64::from_bits(s.iter().fold(0, |m, x| m.max(x.to_bits() & !(1 << 63))))
        }
    }
}

/// True when no element of `s` is NaN or ±inf ([`max_abs`] is finite).
///
/// ```
/// use mixprec::dtype::all_finite;
/// assert!(all_finite(&[1.0f32, -0.0, f32::MAX]));
/// assert!(!all_finite(&[1.0f32, f32::NAN]));
/// assert!(!all_finite(&[half::bf16::NEG_INFINITY]));
/// ```
pub fn all_finite<T: Element>(s: &[T]) -> bool {
    max_abs(s).is_finite()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_abs_of_a_large_slice_sees_every_element() {
        // Large enough to be split across threads.
        let mut v = vec![1.0f32; 300_000];
        v[299_999] = -7.0;
        assert_eq!(max_abs(&v), 7.0);
        v[5] = f32::INFINITY;
        assert_eq!(max_abs(&v), f64::INFINITY);
        v[200_000] = f32::NAN;
        assert!(max_abs(&v).is_nan());
        v[5] = 1.0;
        assert!(
            max_abs(&v).is_nan(),
            "NaN in a later block than the maximum"
        );
    }

    #[test]
    fn all_finite_agrees_with_is_finite_for_every_16_bit_pattern() {
        for bits in 0..=u16::MAX {
            let (h, b) = (f16::from_bits(bits), bf16::from_bits(bits));
            assert_eq!(all_finite(&[f16::ONE, h]), h.is_finite(), "f16 {bits:#06x}");
            assert_eq!(
                all_finite(&[b, bf16::ONE]),
                b.is_finite(),
                "bf16 {bits:#06x}"
            );
        }
        let specials = [f32::MAX, f32::MIN, f32::MIN_POSITIVE, -0.0, 1e-45];
        assert!(all_finite(&specials) && all_finite::<f32>(&[]));
        for bad in [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, -f32::NAN] {
            let mut v = vec![1.0f32; 100];
            v[63] = bad;
            assert!(!all_finite(&v), "{bad}");
            assert!(!all_finite(&[f64::from(bad)]), "{bad} as f64");
        }
        assert!(all_finite(&[f64::MAX, -f64::MAX]));
    }

    #[test]
    fn unit_roundoff_matches_dtype_table() {
        assert_eq!(f16::UNIT_ROUNDOFF, DType::Float16.unit_roundoff());
        assert_eq!(bf16::UNIT_ROUNDOFF, DType::BFloat16.unit_roundoff());
        assert_eq!(f32::UNIT_ROUNDOFF, DType::Float32.unit_roundoff());
        assert_eq!(f64::UNIT_ROUNDOFF, DType::Float64.unit_roundoff());
        assert_eq!(f16::UNIT_ROUNDOFF, 2f64.powi(-11));
        assert_eq!(bf16::UNIT_ROUNDOFF, 2f64.powi(-8));
        assert_eq!(f32::UNIT_ROUNDOFF, 2f64.powi(-24));
        assert_eq!(f64::UNIT_ROUNDOFF, 2f64.powi(-53));
    }

    #[test]
    fn dtype_parse_rejects_unknown_name() {
        for bad in ["Float32", "fp16", "half", "", "float"] {
            assert!(bad.parse::<DType>().is_err(), "{bad}");
        }
        for d in DType::ALL {
            assert_eq!(d.name().parse::<DType>().unwrap(), d);
        }
    }

    #[test]
    fn cast_vec_same_type_keeps_allocation() {
        let v = vec![1.0f32, 2.0, 3.0];
        let p = v.as_ptr();
        let w: Vec<f32> = cast_vec(v);
        assert_eq!(w.as_ptr(), p);
    }

    #[test]
    fn f64_to_bf16_rounds_once() {
        // 1 + 2^-8 + 2^-30: through f32 it would become the tie 1 + 2^-8 and round to 1;
        // one rounding from f64 gives 1 + 2^-7.
        let x = 1.0 + 2f64.powi(-8) + 2f64.powi(-30);
        let mut d = [bf16::ZERO];
        cast_slice(&[x], &mut d);
        assert_eq!(d[0].to_f64(), 1.0 + 2f64.powi(-7));
    }
}
