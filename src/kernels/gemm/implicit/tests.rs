//! The implicit convolution against the window-matrix path it replaces: `im2col` of the padded
//! input under `"valid"` padding, then `gemm_packed` with the same packed kernel, for both
//! implicit kernels (the AMX tiles and `vdpbf16ps` k-pairs, each where the CPU has it). The two
//! read the same bf16 values in the same k order, so the bits must agree; that path is itself
//! tested against an f64 reference (`kernels/tests`).

use half::bf16;

use super::*;
use crate::kernels::gemm::{gemm_packed, pack_b_with, MatRef};
use crate::kernels::KernelChoice;
use crate::layers::ops::im2col::im2col;
use crate::layers::ops::window::{Padding, Window2d};

/// Deterministic values in [-2, 2), a few of them exact zeros (also the kernel-gradient tests').
pub(in crate::kernels::gemm) fn values(len: usize, seed: usize) -> Vec<bf16> {
    (0..len)
        .map(|i| {
            let h = (i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 4093;
            bf16::from_f32(h as f32 / 1023.25 - 2.0)
        })
        .collect()
}

/// `(batch, in_h, in_w, channels, (kh, kw), (sh, sw), (dh, dw), filters)`.
type Case = (
    usize,
    usize,
    usize,
    usize,
    (usize, usize),
    (usize, usize),
    (usize, usize),
    usize,
);

/// The kernel choices whose bf16 packing has an implicit product: the AMX tiles, and under an
/// AVX-512 ceiling the `vdpbf16ps` k-pairs (each capped by what the CPU has).
const CHOICES: [KernelChoice; 2] = [KernelChoice::Amx, KernelChoice::Avx512];

/// The implicit product and the window-matrix product of one case with the kernel packed for
/// `choice`, or `None` where that packing has no implicit product on this CPU.
fn both(choice: KernelChoice, case: Case, x: &[bf16]) -> Option<(Vec<f32>, Vec<f32>)> {
    let (batch, in_h, in_w, c, (kh, kw), (sh, sw), (dh, dw), n) = case;
    let shape = [batch, in_h, in_w, c];
    let win = Window2d::new(
        "t",
        &shape,
        Some(c),
        [(kh, sh, dh), (kw, sw, dw)],
        Padding::Valid,
    )
    .expect("the case fits");
    let g = ImplicitConv {
        batch,
        in_h,
        in_w,
        channels: c,
        out_h: win.h.output,
        out_w: win.w.output,
        kernel: (kh, kw),
        stride: (sh, sw),
        dilation: (dh, dw),
    };
    let w = values(g.taps() * n, 7);
    let packed = pack_b_with(choice, MatRef::row_major(&w, g.taps(), n));
    if !implicit_ready(&packed, c) {
        return None;
    }
    let mut cols = vec![bf16::ZERO; g.rows() * g.taps()];
    im2col(&x[..g.input_len()], &win, 0..g.rows(), &mut cols);
    let mut want = vec![0f32; g.rows() * n];
    gemm_packed(
        MatRef::row_major(&cols, g.rows(), g.taps()),
        &packed,
        &mut want,
        false,
    );
    let mut got = vec![f32::NAN; g.rows() * n];
    assert!(conv_implicit(x, &g, &packed, &mut got));
    Some((got, want))
}

fn input(case: Case) -> Vec<bf16> {
    let (batch, in_h, in_w, c, _, (_, sw), _, _) = case;
    let len = batch * in_h * in_w * c;
    let mut x = values(len, 3);
    x.resize(len + 32 * sw * c, bf16::ZERO);
    x
}

#[test]
fn the_implicit_convolution_has_the_bits_of_the_window_matrix_product() {
    let cases: [Case; 11] = [
        (2, 34, 34, 64, (3, 3), (1, 1), (1, 1), 64), // the bench's block, padded for "same"
        (1, 7, 9, 32, (3, 3), (1, 1), (1, 1), 16),   // a row shorter than one tile
        (2, 12, 41, 32, (3, 2), (1, 1), (1, 1), 48), // a row tail of 7 pixels, 1.5 strip pairs
        (1, 11, 40, 96, (3, 3), (2, 2), (1, 1), 70), // strides, filters past a strip pair
        (1, 13, 37, 32, (3, 3), (1, 1), (2, 3), 32), // dilation
        (3, 5, 5, 32, (1, 1), (1, 1), (1, 1), 33),   // a 1×1 kernel
        (1, 9, 70, 64, (5, 4), (2, 3), (1, 2), 40),  // everything at once
        (1, 3, 3, 32, (3, 3), (1, 1), (1, 1), 16),   // one output pixel
        // Even channel counts that only k-pairs take (a tap of 1 or 3 pairs, taps cut in blocks
        // of 2 taps, 256 pairs, at 256 channels, and a row of 13 pixels: one full strip and one
        // of 1).
        (2, 9, 15, 2, (3, 3), (1, 1), (1, 1), 8),
        (1, 8, 10, 6, (3, 3), (1, 2), (2, 1), 40),
        (1, 5, 15, 256, (3, 3), (1, 1), (1, 1), 36),
    ];
    let mut ran = 0;
    for choice in CHOICES {
        for case in cases {
            let Some((got, want)) = both(choice, case, &input(case)) else {
                continue;
            };
            ran += 1;
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(
                same,
                "{choice:?} {case:?}: implicit and window-matrix products differ"
            );
        }
    }
    if ran == 0 {
        eprintln!("neither AMX tiles nor AVX512-BF16 here: the implicit convolution does not run");
    }
}

/// Infinities and NaNs in the input reach exactly the outputs whose windows read them.
#[test]
fn specials_reach_the_windows_that_read_them() {
    let case: Case = (1, 10, 20, 32, (3, 3), (1, 1), (1, 1), 32);
    let mut x = input(case);
    x[(4 * 20 + 7) * 32 + 5] = bf16::INFINITY;
    x[(8 * 20 + 19) * 32] = bf16::NAN;
    for choice in CHOICES {
        let Some((got, want)) = both(choice, case, &x) else {
            continue;
        };
        let same = got
            .iter()
            .zip(&want)
            .all(|(a, b)| a.to_bits() == b.to_bits());
        assert!(
            same,
            "{choice:?}: specials land elsewhere than in the window-matrix product"
        );
        assert!(got.iter().any(|v| v.is_nan()) && got.iter().any(|v| v.is_finite()));
    }
}

/// The comparison sees a dropped tap: the bug an offset table one chunk short would make.
#[test]
fn a_dropped_tap_is_seen() {
    let case: Case = (1, 6, 6, 32, (3, 3), (1, 1), (1, 1), 16);
    let x = input(case);
    for choice in CHOICES {
        let Some((got, _)) = both(choice, case, &x) else {
            continue;
        };
        // The same case with the last tap's input channels zeroed in the window matrix.
        let g = ImplicitConv {
            batch: 1,
            in_h: 6,
            in_w: 6,
            channels: 32,
            out_h: 4,
            out_w: 4,
            kernel: (3, 3),
            stride: (1, 1),
            dilation: (1, 1),
        };
        let win = Window2d::new("t", &[1, 6, 6, 32], None, [(3, 1, 1); 2], Padding::Valid).unwrap();
        let mut cols = vec![bf16::ZERO; g.rows() * g.taps()];
        im2col(&x[..g.input_len()], &win, 0..g.rows(), &mut cols);
        cols.chunks_exact_mut(g.taps())
            .for_each(|r| r[8 * 32..].fill(bf16::ZERO));
        let w = values(g.taps() * 16, 7);
        let packed = pack_b_with(choice, MatRef::row_major(&w, g.taps(), 16));
        let mut dropped = vec![0f32; g.rows() * 16];
        gemm_packed(
            MatRef::row_major(&cols, g.rows(), g.taps()),
            &packed,
            &mut dropped,
            false,
        );
        assert!(got.iter().zip(&dropped).any(|(a, b)| a != b), "{choice:?}");
    }
}

/// Other types, channels that are not a multiple of 32 on the tiles, odd channel counts on
/// k-pairs, and the portable packing are left to the caller.
#[test]
fn it_declines_what_it_does_not_run() {
    let w = vec![0f32; 9 * 32 * 8];
    for choice in CHOICES {
        let packed = pack_b_with(choice, MatRef::row_major(&w, 9 * 32, 8));
        assert!(!implicit_ready(&packed, 32));
    }
    let wb = vec![bf16::ZERO; 9 * 16 * 8];
    let tiles = pack_b_with(KernelChoice::Amx, MatRef::row_major(&wb, 9 * 16, 8));
    if tiles.vnni().is_some() {
        assert!(!implicit_ready(&tiles, 16));
    }
    let odd = vec![bf16::ZERO; 9 * 3 * 8];
    for choice in CHOICES {
        let packed = pack_b_with(choice, MatRef::row_major(&odd, 9 * 3, 8));
        assert!(!implicit_ready(&packed, 3));
    }
    let portable = pack_b_with(KernelChoice::Portable, MatRef::row_major(&wb, 9 * 16, 8));
    assert!(!implicit_ready(&portable, 32));
}
