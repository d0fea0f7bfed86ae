//! Shared test helpers: an f64 reference `Dense`, the error bound it is checked with (driven by
//! `Element::UNIT_ROUNDOFF`), a correctly-rounded reference for casts, a tiny seeded RNG for fixed
//! inputs, and proptest strategies.
//!
//! Each integration test file compiles this module on its own and uses only part of it.
#![allow(dead_code, unused_macros)]

pub mod fd;

use mixprec::layers::Activation;
use mixprec::policy::{ComputeOf, Policy, VariableOf};
use mixprec::Element;
use num_traits::Float;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// The f64 reference Dense
// ---------------------------------------------------------------------------------------------

/// `x` rounded the way `Dense<P>` reads a weight given as f32: to `P::Variable` (what
/// `from_weights` stores), then to `P::Compute` (what `forward` multiplies with). Scalar
/// conversions, not the bulk casts the layer uses, so the two paths check each other.
pub fn weight_as_compute<P: Policy>(w: f32) -> f64 {
    let v = VariableOf::<P>::from_f64_rne(f64::from(w));
    ComputeOf::<P>::from_f64_rne(v.as_f64()).as_f64()
}

/// The activation in f64, written independently of `Activation::apply`.
pub fn act_f64(act: Activation, z: f64) -> f64 {
    match act {
        Activation::Linear => z,
        Activation::Relu => z.max(0.0),
        Activation::Sigmoid => 1.0 / (1.0 + (-z).exp()),
        Activation::Tanh => z.tanh(),
        Activation::Gelu => 0.5 * z * erfc_f64(-z / std::f64::consts::SQRT_2),
        Activation::GeluTanh => {
            // Keras's 0.5·z·(1 + tanh t); for t < 0, where 1 + tanh t cancels, the same
            // value as z·e^{2t}/(1 + e^{2t}).
            let t = (2.0 / std::f64::consts::PI).sqrt() * (z + 0.044715 * z * z * z);
            if t < 0.0 {
                let e = (2.0 * t).exp();
                z * e / (1.0 + e)
            } else {
                0.5 * z * (1.0 + t.tanh())
            }
        }
        other => panic!("no f64 reference for activation {other}"),
    }
}

/// `erfc(a)` in f64, written independently of the crate's (libm's): for `a < 0.8` from
/// `erf(a) = 2/√π · e^{-a²} · Σ 2^n a^{2n+1} / (1·3·…·(2n+1))` (all terms of one sign, so no
/// cancellation; `1 − erf` loses at most two bits there), for `a >= 0.8` from its
/// continued fraction `e^{-a²}/√π / (a + (1/2)/(a + 1/(a + (3/2)/(a + …))))`. Both to a few f64
/// ulps, far inside the f32 bounds the tests use them for.
pub fn erfc_f64(a: f64) -> f64 {
    if a.is_nan() {
        return a;
    }
    if a < -6.0 {
        return 2.0; // 2 − erfc(6) = 2 − 2.2e-17 rounds to 2
    }
    if a < 0.8 {
        let x = a.abs();
        let (mut term, mut sum, mut n) = (x, x, 0.0f64);
        while term > sum * 1e-18 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        let erf = (2.0 / std::f64::consts::PI.sqrt() * (-x * x).exp() * sum).copysign(a);
        1.0 - erf
    } else {
        let mut t = a;
        for k in (1..=4000).rev() {
            t = a + (f64::from(k) / 2.0) / t;
        }
        (-a * a).exp() / std::f64::consts::PI.sqrt() / t
    }
}

/// Lipschitz constant `L` of the activation: an error `e` in its input moves its output by at
/// most `L·e` (linear, relu and tanh: 1; sigmoid: max σ' = 1/4).
pub fn lipschitz(act: Activation) -> f64 {
    match act {
        Activation::Sigmoid => 0.25,
        // max GELU' = 1.1289 (at z = √2), about the same for the tanh form.
        Activation::Gelu | Activation::GeluTanh => 1.15,
        _ => 1.0,
    }
}

/// Error-free transformation `a + b = s + e` (Knuth's TwoSum).
fn two_sum(a: f64, b: f64) -> (f64, f64) {
    let s = a + b;
    let bb = s - a;
    (s, (a - (s - bb)) + (b - bb))
}

/// `Σ a_i b_i` as accurately as if computed in twice f64's precision and rounded (Ogita, Rump,
/// Oishi's Dot2): error ≤ u64·|z| + γ_n(u64)²·Σ|a_i b_i|. A plain f64 sum would carry an error of
/// the same order as the F64 layer's, which would make the F64 check meaningless.
pub fn dot2(terms: impl Iterator<Item = (f64, f64)>) -> f64 {
    let (mut s, mut c) = (0.0f64, 0.0f64);
    for (a, b) in terms {
        let p = a * b;
        let pe = a.mul_add(b, -p); // TwoProduct via FMA: a·b = p + pe exactly
        let (t, se) = two_sum(s, p);
        s = t;
        c += pe + se;
    }
    s + c
}

/// One Dense forward problem: `x` `[lead.., input_dim]`, kernel `[input_dim, units]` row-major,
/// optional bias `[units]`, all as f32 (the values a user would pass to `from_weights`).
#[derive(Debug, Clone)]
pub struct DenseCase {
    pub lead: Vec<usize>,
    pub input_dim: usize,
    pub units: usize,
    pub x: Vec<f32>,
    pub kernel: Vec<f32>,
    pub bias: Option<Vec<f32>>,
    pub act: Activation,
}

impl DenseCase {
    /// Number of input rows (the product of the leading dimensions).
    pub fn rows(&self) -> usize {
        self.lead.iter().product()
    }

    /// The input shape `[lead.., input_dim]`.
    pub fn x_shape(&self) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.push(self.input_dim);
        s
    }

    /// The output shape `[lead.., units]`.
    pub fn y_shape(&self) -> Vec<usize> {
        let mut s = self.lead.clone();
        s.push(self.units);
        s
    }

    /// `x` as the compute-typed tensor data the layer is given.
    pub fn x_compute<P: Policy>(&self) -> Vec<ComputeOf<P>> {
        self.x
            .iter()
            .map(|&v| ComputeOf::<P>::from_f64_rne(f64::from(v)))
            .collect()
    }
}

/// The reference outputs of one case: `y[i]` and the magnitude `s[i] = Σ_p |x_ip·w_pj| + |b_j|`
/// that scales the accumulation error of output `i`.
#[derive(Debug, Clone)]
pub struct Reference {
    pub y: Vec<f64>,
    pub s: Vec<f64>,
}

/// `y_ref = act(x·W_c + b_c)` in f64 for policy `P`, with `x` as given (compute type) and the
/// kernel and bias rounded to the compute type as the layer reads them.
pub fn reference_dense<P: Policy>(case: &DenseCase) -> Reference {
    let ops = Operands::of::<P>(case);
    reference_from_compute(
        &ops.x,
        &ops.w,
        ops.b.as_deref(),
        case.input_dim,
        case.units,
        case.act,
    )
}

/// The compute-typed values a `Dense<P>` multiplies, widened to f64 (exact).
#[derive(Debug, Clone)]
pub struct Operands {
    pub x: Vec<f64>,
    pub w: Vec<f64>,
    pub b: Option<Vec<f64>>,
}

impl Operands {
    pub fn of<P: Policy>(case: &DenseCase) -> Self {
        Operands {
            x: case.x_compute::<P>().iter().map(|v| v.as_f64()).collect(),
            w: case
                .kernel
                .iter()
                .map(|&v| weight_as_compute::<P>(v))
                .collect(),
            b: case
                .bias
                .as_ref()
                .map(|b| b.iter().map(|&v| weight_as_compute::<P>(v)).collect()),
        }
    }
}

/// The reference from compute-typed values already widened to f64.
pub fn reference_from_compute(
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    k: usize,
    n: usize,
    act: Activation,
) -> Reference {
    let rows = x.len() / k;
    let mut y = Vec::with_capacity(rows * n);
    let mut s = Vec::with_capacity(rows * n);
    for r in 0..rows {
        let xr = &x[r * k..(r + 1) * k];
        for j in 0..n {
            let bj = b.map_or(0.0, |b| b[j]);
            let col = (0..k).map(|p| (xr[p], w[p * n + j]));
            let z = dot2(col.clone().chain(std::iter::once((bj, 1.0))));
            y.push(act_f64(act, z));
            s.push(col.map(|(a, c)| (a * c).abs()).sum::<f64>() + bj.abs());
        }
    }
    Reference { y, s }
}

// ---------------------------------------------------------------------------------------------
// The bound
// ---------------------------------------------------------------------------------------------

/// `η` for type `T`: half its smallest subnormal, the largest absolute error of one rounding
/// into `T`'s subnormal range (smallest subnormal = smallest normal · 2u).
pub fn eta<T: Element>() -> f64 {
    T::min_positive_value().as_f64() * T::UNIT_ROUNDOFF
}

/// Relative error, in units of the accumulator's roundoff, of one activation evaluated in the
/// accumulator type at a `z` with `|z| <= s`: 0 for linear and relu (exact), 4 for sigmoid (exp
/// within 1 ulp, then one add and one divide: about 2.5 ulp) and tanh (libm's tanh is within
/// 2 ulp). GELU's condition number grows with `|z|` on the negative side, where its output is
/// tiny: the rounding of its argument moves exact GELU by `z²·φ(z)·u_A`, at most
/// `(z² + 1)·u_A·|y|` (Mills's ratio), and the tanh form by `2|t|·3u_A·|y|` with
/// `t = √(2/π)(z + 0.044715z³)`; 8 ulp more for erfc (1 ulp) or exp and the cubic, then a
/// multiply or divide.
pub fn act_ulps(act: Activation, s: f64) -> f64 {
    match act {
        Activation::Linear | Activation::Relu => 0.0,
        Activation::Gelu => 8.0 + 2.0 * s * s,
        Activation::GeluTanh => 8.0 + 6.0 * (s + 0.05 * s * s * s),
        _ => 4.0,
    }
}

/// The largest admissible `|y − y_ref|` for one output of a `Dense` computing in `C`.
///
/// The layer forms `z = Σ_p x_p·w_p + b` (`k + 1` terms, the bias being one more) in
/// `A = C::Acc` (f32; f64 for `F64`), applies the activation in `A`, then rounds once to `C`.
/// With `u` = C's unit roundoff, `u_A` = A's, `S = Σ|x_p·w_p| + |b|` and `L` the activation's
/// Lipschitz constant:
///
/// 1. Accumulation (Higham, Thm 3.1, any summation order, FMA or not): products of two 16-bit
///    values are exact in f32, and for f32/f64 each product's rounding is one more factor
///    `(1+δ)`, so `|ẑ − z| ≤ γ_{k+1}(u_A)·S` with `γ_n(u) = n·u / (1 − n·u)`. Underflowing
///    products add at most `η_A` each: `(k + 2)·η_A` in all.
/// 2. Activation: moves that error by at most `L`, and adds its own rounding in `A`, at most
///    `act_ulps·u_A·|act(ẑ)|` plus `A`'s smallest normal for a tail that underflows in `A`
///    (sigmoid(−100) is `0` in f32).
/// 3. One rounding to `C`: `≤ u·|â| + η_C` with `|â| ≤ |y_ref| + E` (E = steps 1 and 2).
///
/// So `|y − y_ref| ≤ (1 + u)·E + u·|y_ref| + η_C`, i.e. the `c·u·S + u·|y_ref| + η` of the
/// issue with `c = (1 + u)·L·γ_{k+1}(u_A) / u`: about `(k+1)·2^-13·L` for f16, `(k+1)·2^-16·L` for
/// bf16 (f32 accumulation is that much finer than the compute type) and `(k+1)·L` for f32 and f64.
///
/// The f64 reference carries its own error, at most `u64·|z| + γ_{k+1}(u64)²·S ≤ 2·u64·S` from
/// `dot2` plus 2 ulp from f64's `exp`/`tanh`; `4·u64·(S + |y_ref|)` covers it (it matters only
/// for `F64`, where it doubles the margin of step 1 at most).
pub fn dense_bound<C: Element>(k: usize, s: f64, y_ref: f64, act: Activation) -> f64 {
    let u = C::UNIT_ROUNDOFF;
    let ua = <C::Acc as Element>::UNIT_ROUNDOFF;
    let n = (k + 1) as f64;
    let gamma = n * ua / (1.0 - n * ua);
    let accumulation = lipschitz(act) * (gamma * s + (k + 2) as f64 * eta::<C::Acc>());
    let ulps = act_ulps(act, s);
    let act_tail = if ulps > 0.0 {
        <C::Acc as Float>::min_positive_value().as_f64()
    } else {
        0.0
    };
    let activation = ulps * ua * (y_ref.abs() + accumulation) + act_tail;
    let e = accumulation + activation;
    let reference = 4.0 * f64::UNIT_ROUNDOFF * (s + y_ref.abs());
    (1.0 + u) * e + u * y_ref.abs() + eta::<C>() + reference
}

/// The first output that breaks [`dense_bound`], described, or `None` when all are within it.
pub fn bound_violation<C: Element>(
    y: &[f64],
    r: &Reference,
    k: usize,
    act: Activation,
) -> Option<String> {
    assert_eq!(y.len(), r.y.len(), "output lengths differ");
    (0..y.len()).find_map(|i| {
        let bound = dense_bound::<C>(k, r.s[i], r.y[i], act);
        let err = (y[i] - r.y[i]).abs();
        // A NaN output (or error) is a violation too.
        (err.is_nan() || err > bound).then(|| {
            format!(
                "output {i}: y = {}, y_ref = {}, |y − y_ref| = {err:e} > bound {bound:e} \
                 (S = {}, k = {k}, {act}, {:?})",
                y[i],
                r.y[i],
                r.s[i],
                C::DTYPE
            )
        })
    })
}

/// True when every output is within [`dense_bound`].
pub fn within_bound<C: Element>(y: &[f64], r: &Reference, k: usize, act: Activation) -> bool {
    bound_violation::<C>(y, r, k, act).is_none()
}

// ---------------------------------------------------------------------------------------------
// Correctly rounded reference for casts
// ---------------------------------------------------------------------------------------------

/// A binary floating-point format: `p` significand bits (with the implicit one), normal
/// exponents `emin..=emax`.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub p: i32,
    pub emin: i32,
    pub emax: i32,
}

pub const F16: Format = Format {
    p: 11,
    emin: -14,
    emax: 15,
};
pub const BF16: Format = Format {
    p: 8,
    emin: -126,
    emax: 127,
};
pub const F32: Format = Format {
    p: 24,
    emin: -126,
    emax: 127,
};

impl Format {
    /// The largest finite value, `(2 − 2^(1−p))·2^emax`.
    pub fn max_finite(self) -> f64 {
        (2.0 - 2f64.powi(1 - self.p)) * 2f64.powi(self.emax)
    }

    /// `x` rounded to nearest, ties to even, into this format (as an f64), computed with
    /// integer-valued f64 arithmetic only: scale by the ulp of `x`'s binade (exact, a power of
    /// two), `round_ties_even`, scale back. Overflow gives ±inf; NaN stays NaN.
    pub fn round(self, x: f64) -> f64 {
        if !x.is_finite() || x == 0.0 {
            return x;
        }
        let a = x.abs();
        let biased = ((a.to_bits() >> 52) & 0x7ff) as i32;
        let e = (biased - 1023).max(self.emin); // f64 subnormals sit far below every emin here
        let ulp = 2f64.powi(e - (self.p - 1));
        let r = (a / ulp).round_ties_even() * ulp;
        let r = if r > self.max_finite() {
            f64::INFINITY
        } else {
            r
        };
        r.copysign(x)
    }
}

// ---------------------------------------------------------------------------------------------
// Seeded inputs and strategies
// ---------------------------------------------------------------------------------------------

/// SplitMix64: a few lines, the same numbers everywhere, for fixed "seeded" inputs.
#[derive(Debug, Clone)]
pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[lo, hi)`.
    pub fn uniform(&mut self, lo: f32, hi: f32) -> f32 {
        let unit = (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32;
        lo + (hi - lo) * unit
    }

    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.uniform(lo, hi)).collect()
    }
}

/// A fixed, seeded case with mixed signs (so sums cancel) and a bias of a few units.
pub fn seeded_case(seed: u64, lead: Vec<usize>, k: usize, n: usize, act: Activation) -> DenseCase {
    let mut rng = SplitMix(seed);
    let rows: usize = lead.iter().product();
    DenseCase {
        x: rng.vec(rows * k, -1.0, 1.0),
        kernel: rng.vec(k * n, -1.0, 1.0),
        bias: Some(rng.vec(n, -4.0, 4.0)),
        lead,
        input_dim: k,
        units: n,
        act,
    }
}

/// Zero, or `±m·2^e` with `m ∈ [1, 2)` and `e ∈ [-12, max_exp]`: many binades, mixed signs,
/// every product far from underflow, every magnitude well inside f16's range.
pub fn scalar(max_exp: i32) -> impl Strategy<Value = f32> {
    prop_oneof![
        1 => Just(0.0f32),
        9 => (any::<bool>(), 1.0f32..2.0, -12i32..=max_exp).prop_map(|(neg, m, e)| {
            let v = m * 2f32.powi(e);
            if neg { -v } else { v }
        }),
    ]
}

/// Leading dimensions: `[rows]` with `rows ∈ 1..=5`, or `[a, b]` with both in `1..=3`.
pub fn lead_dims() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        (1usize..=5).prop_map(|r| vec![r]),
        (1usize..=3, 1usize..=3).prop_map(|(a, b)| vec![a, b]),
    ]
}

/// Random Dense problems: sizes 1 to 40 in, 1 to 12 out (odd sizes included), with or without
/// bias, any activation. `|x| < 16`, `|w| < 8`, `|b| < 128`, `input_dim ≤ 40`: every
/// `|z| < 40·128 + 128`, far inside f16's 65504.
pub fn dense_case() -> impl Strategy<Value = DenseCase> {
    (
        lead_dims(),
        1usize..=40,
        1usize..=12,
        any::<bool>(),
        prop::sample::select(Activation::ALL.to_vec()),
    )
        .prop_flat_map(|(lead, k, n, use_bias, act)| {
            let rows: usize = lead.iter().product();
            (
                Just(lead),
                Just(k),
                Just(n),
                prop::collection::vec(scalar(3), rows * k),
                prop::collection::vec(scalar(2), k * n),
                prop::collection::vec(scalar(6), n).prop_map(move |b| use_bias.then_some(b)),
                Just(act),
            )
        })
        .prop_map(|(lead, input_dim, units, x, kernel, bias, act)| DenseCase {
            lead,
            input_dim,
            units,
            x,
            kernel,
            bias,
            act,
        })
}

/// Runs one generic test body for each of the six policies, as thin `#[test]` wrappers in the
/// same run: `for_each_policy!(body_fn; f32_name, f64_name, f16_name, bf16_name, mf16_name,
/// mbf16_name);`. Declare the module with `#[macro_use] mod common;`.
macro_rules! for_each_policy {
    ($body:ident; $f32:ident, $f64:ident, $f16:ident, $bf16:ident, $mf16:ident, $mbf16:ident) => {
        #[test]
        fn $f32() {
            $body::<mixprec::policy::F32>();
        }
        #[test]
        fn $f64() {
            $body::<mixprec::policy::F64>();
        }
        #[test]
        fn $f16() {
            $body::<mixprec::policy::F16>();
        }
        #[test]
        fn $bf16() {
            $body::<mixprec::policy::Bf16>();
        }
        #[test]
        fn $mf16() {
            $body::<mixprec::policy::MixedF16>();
        }
        #[test]
        fn $mbf16() {
            $body::<mixprec::policy::MixedBf16>();
        }
    };
}

/// γ_k = k·u / (1 - k·u): the worst-case relative error of a k-term sum accumulated with unit
/// roundoff `u` (Higham, Accuracy and Stability of Numerical Algorithms, §3.1).
pub fn gamma(k: usize, u: f64) -> f64 {
    let ku = k as f64 * u;
    ku / (1.0 - ku)
}

// ---------------------------------------------------------------------------------------------
// Models and files
// ---------------------------------------------------------------------------------------------

/// A `Dense<P>` of `units` outputs for `inputs` features, initialised from `seed`.
pub fn dense<P: Policy>(
    inputs: usize,
    units: usize,
    seed: u64,
    act: Activation,
) -> mixprec::layers::Dense<P> {
    mixprec::layers::DenseConfig::new(units)
        .seed(seed)
        .activation(act)
        .init::<P>(inputs)
        .unwrap()
}

/// Sets every variable's gradient to `f(index, len)` (f32 values, rounded to the variable type).
pub struct SetGrads<F>(pub usize, pub F);
impl<F: FnMut(usize, usize) -> Vec<f32>> mixprec::module::ParamVisitorMut for SetGrads<F> {
    fn visit<P: Policy>(&mut self, p: &mut mixprec::param::Param<P>) {
        let shape = p.shape().to_vec();
        let g = (self.1)(self.0, p.len());
        self.0 += 1;
        p.set_grad(mixprec::Tensor::from_vec(shape, g).unwrap().cast())
            .unwrap();
    }
}

/// Sets the gradients of `m`'s variables, in visiting order, to `f(index, len)`.
pub fn set_grads<M: mixprec::Module>(m: &mut M, f: impl FnMut(usize, usize) -> Vec<f32>) {
    m.visit_params_mut(&mut SetGrads(0, f));
}

/// Whether `python3` can import safetensors and numpy. When it cannot, the tests that read our
/// checkpoints from Python skip locally, and fail under CI (`CI=true`, whose `.ci/run` installs
/// them), so CI never passes without running them.
pub fn python_safetensors_available() -> bool {
    let probe = std::process::Command::new("python3")
        .args(["-c", "import safetensors, numpy"])
        .output();
    if matches!(&probe, Ok(o) if o.status.success()) {
        return true;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "CI must have python3 with safetensors and numpy (.ci/run installs them)"
    );
    eprintln!("skipped: python3 with the safetensors and numpy modules is not available");
    false
}

/// Runs `python3 -c script arg` and returns its standard output; fails the test, showing
/// Python's standard error, when the script fails.
pub fn run_python(script: &str, arg: &std::path::Path) -> Vec<u8> {
    let out = std::process::Command::new("python3")
        .args(["-c", script, arg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Every variable's gradient, in visiting order, widened to f64.
pub fn grads<M: mixprec::Module>(m: &M) -> Vec<Vec<f64>> {
    struct Grads(Vec<Vec<f64>>);
    impl mixprec::module::ParamVisitor for Grads {
        fn visit<P: Policy>(&mut self, _: &str, p: &mixprec::param::Param<P>) {
            self.0.push(p.grad().expect("a gradient").to_f64_vec());
        }
    }
    let mut g = Grads(Vec::new());
    m.visit_params("", &mut g);
    g.0
}

/// `n` values in about [-1.2, 1.3], varied by `salt`: inputs and gradients for the per-layer
/// model tests.
pub fn ramp_values(n: usize, salt: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 + salt * 11) % 128) as f32 / 50.0 - 1.2)
        .collect()
}

/// A `DTypePolicyMap` with `default` and the `(key, policy)` pairs.
pub fn policy_map(default: &str, pairs: &[(&str, &str)]) -> mixprec::DTypePolicyMap {
    let mut m = mixprec::DTypePolicyMap::with_default(default.parse().unwrap());
    m.try_extend(pairs.iter().copied()).unwrap();
    m
}

/// Trains the run-time model `layered` (under `AutoOptimizer::for_model`, which must find no
/// float16 layer) and the typed `typed` (plain Adam) at learning rate `lr` for `epochs` on the
/// training part of the digits split at `test_split` with seed 3, and asserts that every epoch's
/// loss and the final weights are the same.
pub fn assert_trains_alike<A, B>(
    layered: &mut A,
    typed: &mut B,
    lr: f32,
    epochs: usize,
    test_split: f32,
) where
    A: mixprec::layers::Layer + mixprec::Module + Send,
    B: mixprec::layers::Layer + mixprec::Module + Send,
    mixprec::optimizers::AutoOptimizer<mixprec::optimizers::Adam>:
        mixprec::optimizers::OptimizerFor<A>,
    mixprec::optimizers::Adam: mixprec::optimizers::OptimizerFor<B>,
{
    use mixprec::optimizers::{Adam, AutoOptimizer, Optimizer};
    let (train, _) = mixprec::io::digits()
        .unwrap()
        .shuffle_split(test_split, 3)
        .unwrap();
    let (train, options) = (
        &train,
        &mixprec::train::FitOptions {
            epochs,
            seed: 3,
            ..Default::default()
        },
    );
    let mut auto = AutoOptimizer::for_model(layered, Adam::new(lr));
    assert!(!auto.scales_loss(), "no float16 layer: a plain optimizer");
    let h1 = mixprec::train::fit(layered, &mut auto, train, options).unwrap();
    let h2 = mixprec::train::fit(typed, &mut Adam::new(lr), train, options).unwrap();
    let losses = |h: &mixprec::train::History| h.epochs.iter().map(|e| e.loss).collect::<Vec<_>>();
    assert_eq!(losses(&h1), losses(&h2));
    assert_eq!(layered.get_weights(), typed.get_weights());
}

/// For each `(map, scaled)`: the model `build(map)` says it needs loss scaling exactly when
/// `scaled` (some layer computes in float16), and `AutoOptimizer::for_model` follows it.
pub fn assert_scales_exactly_when<M: mixprec::Module>(
    cases: &[(mixprec::DTypePolicyMap, bool)],
    build: impl Fn(&mixprec::DTypePolicyMap) -> M,
) {
    use mixprec::optimizers::{Adam, AutoOptimizer, Optimizer};
    for (m, scaled) in cases {
        let model = build(m);
        assert_eq!(model.needs_loss_scale(), *scaled, "{m}");
        let opt = AutoOptimizer::for_model(&model, Adam::new(1e-3));
        assert_eq!(opt.scales_loss(), *scaled, "{m}");
    }
}
