//! `Conv2D::forward` against a direct (nested-loop) f64 convolution, for all six policies, with
//! the bound of `common::dense_bound` (a convolution output is a `kh·kw·in`-term dot product
//! plus the bias, summed in f32 and rounded once, exactly as a Dense output); then wrong
//! convolutions (a flipped kernel, "same" padding off by one, bf16 accumulation) that the same
//! bound rejects. CI runs this file under every kernel ceiling (`MIXPREC_KERNEL`), so
//! `MixedBf16` is checked on the AMX tiles and on the portable path.

#[macro_use]
mod common;

use common::*;
use mixprec::layers::{Activation, Conv2D, Conv2DConfig, Padding};
use mixprec::policy::{ComputeOf, MixedBf16, Policy};
use mixprec::{bf16, Element, Module, Tensor};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Cases per policy: each is at most a few thousand multiply-adds.
const CASES: u32 = 64;

#[derive(Debug, Clone)]
struct ConvCase {
    /// `[batch, h, w, in]`.
    x_shape: [usize; 4],
    filters: usize,
    kernel: (usize, usize),
    strides: (usize, usize),
    dilation: (usize, usize),
    padding: Padding,
    act: Activation,
    x: Vec<f32>,
    w: Vec<f32>,
    b: Option<Vec<f32>>,
}

impl ConvCase {
    fn taps(&self) -> usize {
        self.kernel.0 * self.kernel.1 * self.x_shape[3]
    }
}

/// One axis's output size and leading padding, written from Keras's rule independently of the
/// library: valid `floor((in - k_eff)/s) + 1`; same `ceil(in/s)` with
/// `pad_total = max((out - 1)·s + k_eff - in, 0)`, `pad_total / 2` before (`round_up` moves
/// the odd one before instead: a wrong rule).
fn axis(input: usize, k: usize, s: usize, d: usize, p: Padding, round_up: bool) -> (usize, i64) {
    let eff = (k - 1) * d + 1;
    match p {
        Padding::Valid => ((input - eff) / s + 1, 0),
        _ => {
            let out = input.div_ceil(s);
            let total = ((out - 1) * s + eff).saturating_sub(input);
            (
                out,
                (if round_up {
                    total.div_ceil(2)
                } else {
                    total / 2
                }) as i64,
            )
        }
    }
}

/// The f64 convolution of compute-typed operands (`x`, `w`, `b` already rounded as the layer
/// reads them): outputs and `S = Σ|x·w| + |b|` per output. `flip` reads the kernel flipped in
/// space, `round_up` pads "same" the wrong way round: the wrong convolutions.
fn reference(
    c: &ConvCase,
    x: &[f64],
    w: &[f64],
    b: Option<&[f64]>,
    flip: bool,
    round_up: bool,
) -> Reference {
    let [n, h, wd, ci] = c.x_shape;
    let ((kh, kw), (sh, sw), (dh, dw)) = (c.kernel, c.strides, c.dilation);
    let (oh, ph) = axis(h, kh, sh, dh, c.padding, round_up);
    let (ow, pw) = axis(wd, kw, sw, dw, c.padding, round_up);
    let f = c.filters;
    let (mut y, mut s) = (vec![], vec![]);
    for img in 0..n {
        for oy in 0..oh {
            for ox in 0..ow {
                for j in 0..f {
                    let mut terms = vec![];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * sh + ky * dh) as i64 - ph;
                            let ix = (ox * sw + kx * dw) as i64 - pw;
                            if iy < 0 || ix < 0 || iy >= h as i64 || ix >= wd as i64 {
                                continue;
                            }
                            let (wy, wx) = if flip {
                                (kh - 1 - ky, kw - 1 - kx)
                            } else {
                                (ky, kx)
                            };
                            for ch in 0..ci {
                                let xv = x[((img * h + iy as usize) * wd + ix as usize) * ci + ch];
                                terms.push((xv, w[((wy * kw + wx) * ci + ch) * f + j]));
                            }
                        }
                    }
                    let bj = b.map_or(0.0, |b| b[j]);
                    let z = dot2(terms.iter().copied().chain(std::iter::once((bj, 1.0))));
                    y.push(act_f64(c.act, z));
                    s.push(terms.iter().map(|(a, b)| (a * b).abs()).sum::<f64>() + bj.abs());
                }
            }
        }
    }
    Reference { y, s }
}

/// The compute-typed operands of `P`, widened to f64.
fn operands<P: Policy>(c: &ConvCase) -> (Vec<f64>, Vec<f64>, Option<Vec<f64>>) {
    let x =
        c.x.iter()
            .map(|&v| ComputeOf::<P>::from_f64_rne(f64::from(v)).as_f64())
            .collect();
    let w = c.w.iter().map(|&v| weight_as_compute::<P>(v)).collect();
    let b =
        c.b.as_ref()
            .map(|b| b.iter().map(|&v| weight_as_compute::<P>(v)).collect());
    (x, w, b)
}

/// The layer's output for `c`, widened to f64.
fn run_layer<P: Policy>(c: &ConvCase) -> Vec<f64> {
    let mut conv: Conv2D<P> = Conv2DConfig::new(c.filters, c.kernel)
        .strides(c.strides)
        .dilation_rate(c.dilation)
        .padding(c.padding)
        .activation(c.act)
        .use_bias(c.b.is_some())
        .init(c.x_shape[3])
        .unwrap();
    let (kh, kw) = c.kernel;
    let mut weights = vec![Tensor::from_vec(
        vec![kh, kw, c.x_shape[3], c.filters],
        c.w.iter().map(|&v| f64::from(v)).collect(),
    )
    .unwrap()];
    if let Some(b) = &c.b {
        weights.push(
            Tensor::from_vec(vec![c.filters], b.iter().map(|&v| f64::from(v)).collect()).unwrap(),
        );
    }
    conv.set_weights(&weights).unwrap();
    let x: Vec<ComputeOf<P>> =
        c.x.iter()
            .map(|&v| ComputeOf::<P>::from_f64_rne(f64::from(v)))
            .collect();
    let y = conv
        .forward(&Tensor::from_vec(c.x_shape.to_vec(), x).unwrap())
        .unwrap();
    y.to_f64_vec()
}

const ACTS: [Activation; 4] = [
    Activation::Linear,
    Activation::Relu,
    Activation::Sigmoid,
    Activation::Tanh,
];

/// Random convolutions: batch 1–2, 1–7 × 1–7 × 1–4 inputs, 1–5 filters, kernels 1–3, strides
/// and dilations 1–2 (combined too), either padding ("valid" only where the window fits), any
/// activation; `|x| < 16`, `|w| < 8`, `|b| < 128` as in the Dense property tests.
fn conv_case() -> impl Strategy<Value = ConvCase> {
    let dims = (1usize..=2, 1usize..=7, 1usize..=7, 1usize..=4, 1usize..=5);
    let window = (
        (1usize..=3, 1usize..=3),
        (1usize..=2, 1usize..=2),
        (1usize..=2, 1usize..=2),
    );
    (
        dims,
        window,
        any::<bool>(),
        any::<bool>(),
        prop::sample::select(ACTS.to_vec()),
    )
        .prop_flat_map(|((n, h, w, ci, f), (k, s, d), valid, use_bias, act)| {
            let fits = (k.0 - 1) * d.0 < h && (k.1 - 1) * d.1 < w;
            let padding = if valid && fits {
                Padding::Valid
            } else {
                Padding::Same
            };
            (
                Just(([n, h, w, ci], f, k, s, d, padding, act)),
                prop::collection::vec(scalar(3), n * h * w * ci),
                prop::collection::vec(scalar(2), k.0 * k.1 * ci * f),
                prop::collection::vec(scalar(6), f).prop_map(move |b| use_bias.then_some(b)),
            )
        })
        .prop_map(
            |((x_shape, filters, kernel, strides, dilation, padding, act), x, w, b)| ConvCase {
                x_shape,
                filters,
                kernel,
                strides,
                dilation,
                padding,
                act,
                x,
                w,
                b,
            },
        )
}

fn check<P: Policy>(c: &ConvCase) -> Result<(), String> {
    let y = run_layer::<P>(c);
    let (x, w, b) = operands::<P>(c);
    let r = reference(c, &x, &w, b.as_deref(), false, false);
    match bound_violation::<ComputeOf<P>>(&y, &r, c.taps(), c.act) {
        None => Ok(()),
        Some(msg) => Err(msg),
    }
}

fn conv_forward_matches_f64_reference<P: Policy>() {
    let config = Config {
        cases: CASES,
        source_file: Some(file!()),
        ..Config::default()
    };
    TestRunner::new(config)
        .run(&conv_case(), |c| {
            check::<P>(&c).map_err(TestCaseError::fail)
        })
        .unwrap_or_else(|e| panic!("{}: {e}", P::NAME));
}

for_each_policy!(conv_forward_matches_f64_reference;
    f32_conv_forward_matches_f64_reference,
    f64_conv_forward_matches_f64_reference,
    f16_conv_forward_matches_f64_reference,
    bf16_conv_forward_matches_f64_reference,
    mixed_f16_conv_forward_matches_f64_reference,
    mixed_bf16_conv_forward_matches_f64_reference);

/// A seeded case large enough for the tiled kernels (AMX for bf16: 288 rows, 288 taps, 32
/// filters; 32 channels, so bf16 on AMX runs the implicit product that reads the padded input):
/// 2 × 12 × 12 × 32, 3×3, "same", stride `s`; values in [-1, 1), bias in [-4, 4).
fn fixed_case(strides: (usize, usize), padding: Padding) -> ConvCase {
    let mut rng = SplitMix(0xc0ffee);
    let x_shape = [2, 12, 12, 32];
    ConvCase {
        x: rng.vec(2 * 12 * 12 * 32, -1.0, 1.0),
        w: rng.vec(9 * 32 * 32, -1.0, 1.0),
        b: Some(rng.vec(32, -4.0, 4.0)),
        x_shape,
        filters: 32,
        kernel: (3, 3),
        strides,
        dilation: (1, 1),
        padding,
        act: Activation::Linear,
    }
}

fn conv_fixed_cases_are_within_bound<P: Policy>() {
    for (s, p) in [
        ((1, 1), Padding::Same),
        ((2, 2), Padding::Same),
        ((2, 1), Padding::Valid),
    ] {
        check::<P>(&fixed_case(s, p)).unwrap_or_else(|e| panic!("{} {s:?} {p}: {e}", P::NAME));
    }
    check::<P>(&many_blocks_case()).unwrap_or_else(|e| panic!("{} many blocks: {e}", P::NAME));
}

/// 5 × 12 × 12 × 512 into 4 filters, 3×3 "same": 4608 taps, so the product runs in blocks of
/// 384 output rows for the 16-bit types and 128 for f32 and f64 (720 rows: full blocks and a
/// partial one) in every policy.
fn many_blocks_case() -> ConvCase {
    let mut rng = SplitMix(0xb10c);
    ConvCase {
        x: rng.vec(5 * 144 * 512, -1.0, 1.0),
        w: rng.vec(9 * 512 * 4, -1.0, 1.0),
        b: Some(rng.vec(4, -4.0, 4.0)),
        x_shape: [5, 12, 12, 512],
        filters: 4,
        kernel: (3, 3),
        strides: (1, 1),
        dilation: (1, 1),
        padding: Padding::Same,
        act: Activation::Tanh,
    }
}

for_each_policy!(conv_fixed_cases_are_within_bound;
    f32_conv_fixed_cases_are_within_bound,
    f64_conv_fixed_cases_are_within_bound,
    f16_conv_fixed_cases_are_within_bound,
    bf16_conv_fixed_cases_are_within_bound,
    mixed_f16_conv_fixed_cases_are_within_bound,
    mixed_bf16_conv_fixed_cases_are_within_bound);

/// The best any bf16 convolution can do (the exact value rounded once) passes the bound, and
/// wrong convolutions fail it: the kernel flipped in space (convolution instead of Keras's
/// cross-correlation), "same" padding with the odd pad before (12 in, stride 2: pad_total 1),
/// and a bf16 accumulator.
#[test]
fn bound_rejects_wrong_convolutions() {
    let c = fixed_case((2, 2), Padding::Same);
    let (x, w, b) = operands::<MixedBf16>(&c);
    let right = reference(&c, &x, &w, b.as_deref(), false, false);
    let k = c.taps();
    let rounded: Vec<f64> = right
        .y
        .iter()
        .map(|&z| bf16::from_f64_rne(z).to_f64())
        .collect();
    assert!(within_bound::<bf16>(&rounded, &right, k, c.act));
    let round = |r: Reference| -> Vec<f64> {
        r.y.iter()
            .map(|&z| bf16::from_f64_rne(z).to_f64())
            .collect()
    };
    let flipped = round(reference(&c, &x, &w, b.as_deref(), true, false));
    assert!(
        !within_bound::<bf16>(&flipped, &right, k, c.act),
        "flipped kernel passed"
    );
    let shifted = round(reference(&c, &x, &w, b.as_deref(), false, true));
    assert_eq!(shifted.len(), right.y.len());
    assert!(
        !within_bound::<bf16>(&shifted, &right, k, c.act),
        "off-by-one padding passed"
    );
    // Accumulating in bf16: each of the 145 adds rounds to 8 bits.
    let oh = 6;
    let mut acc_bf16 = vec![];
    for img in 0..2 {
        for oy in 0..oh {
            for ox in 0..oh {
                for j in 0..32 {
                    let mut acc = bf16::from_f64_rne(b.as_ref().unwrap()[j]);
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = ((oy * 2 + ky) as i64, (ox * 2 + kx) as i64);
                            if iy >= 12 || ix >= 12 {
                                continue; // pad_before 0 at stride 2 on 12
                            }
                            for ch in 0..16 {
                                let xv = x[((img * 12 + iy as usize) * 12 + ix as usize) * 16 + ch];
                                acc = bf16::from_f64_rne(
                                    acc.to_f64() + xv * w[((ky * 3 + kx) * 16 + ch) * 32 + j],
                                );
                            }
                        }
                    }
                    acc_bf16.push(acc.to_f64());
                }
            }
        }
    }
    assert!(
        !within_bound::<bf16>(&acc_bf16, &right, k, c.act),
        "bf16 accumulation passed"
    );
}
