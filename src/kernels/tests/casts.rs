//! The selected casts against the portable ones, bit for bit, on every bf16 and f16 pattern and a
//! sweep of f32 patterns.

use half::{bf16, f16};

use crate::kernels::cast::{self, portable};
use crate::kernels::{selected, KernelChoice};

/// Every bf16 and every f16 bit pattern, and a sweep of f32 patterns with the specials, in a
/// slice whose length is not a multiple of 16 (exercises the masked tail).
fn f32_patterns() -> Vec<f32> {
    let mut v: Vec<f32> = (0..=u32::MAX / 1021)
        .map(|i| f32::from_bits(i * 1021))
        .collect();
    v.extend(
        [
            0.0,
            -0.0,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            -f32::NAN,
            f32::MAX,
            f32::MIN_POSITIVE,
            f32::from_bits(1),
            f32::from_bits(0x8000_0001),
            f32::from_bits(0x7f80_0001), // NaN with low payload only
            f32::from_bits(0xff80_0001),
            f32::from_bits(0x3f80_8000), // bf16 tie, to even (down)
            f32::from_bits(0x3f81_8000), // bf16 tie, to even (up)
            65504.0,
            65520.0, // rounds to inf in f16
            5.960_464_5e-8,
        ]
        .iter()
        .copied(),
    );
    v.truncate(v.len() - (v.len() % 16) + 13);
    v
}

fn same_bits_or_both_nan(a: u16, b: u16, nan: impl Fn(u16) -> bool) -> bool {
    a == b || (nan(a) && nan(b) && (a ^ b) & 0x8000 == 0)
}

#[test]
fn casts_match_portable_bit_for_bit() {
    if selected().cast() == KernelChoice::Portable {
        eprintln!("note: the selected casts are the portable ones here (CPU or MIXPREC_KERNEL)");
    }
    let src = f32_patterns();
    let (mut fast, mut port) = (vec![bf16::ZERO; src.len()], vec![bf16::ZERO; src.len()]);
    cast::f32_to_bf16(&src, &mut fast);
    portable::f32_to_bf16(&src, &mut port);
    for (i, (x, y)) in fast.iter().zip(&port).enumerate() {
        assert_eq!(
            x.to_bits(),
            y.to_bits(),
            "f32_to_bf16({:#x})",
            src[i].to_bits()
        );
    }
    let (mut fast, mut port) = (vec![f16::ZERO; src.len()], vec![f16::ZERO; src.len()]);
    cast::f32_to_f16(&src, &mut fast);
    portable::f32_to_f16(&src, &mut port);
    for (i, (x, y)) in fast.iter().zip(&port).enumerate() {
        let nan = |b: u16| b & 0x7c00 == 0x7c00 && b & 0x3ff != 0;
        assert!(
            same_bits_or_both_nan(x.to_bits(), y.to_bits(), nan),
            "f32_to_f16({:#x}): {:#x} vs {:#x}",
            src[i].to_bits(),
            x.to_bits(),
            y.to_bits()
        );
        assert!(!src[i].is_nan() || x.is_nan());
    }
    let all: Vec<u16> = (0..=u16::MAX).chain(0..7).collect();
    let bfs: Vec<bf16> = all.iter().map(|&b| bf16::from_bits(b)).collect();
    let (mut fast, mut port) = (vec![0f32; all.len()], vec![0f32; all.len()]);
    cast::bf16_to_f32(&bfs, &mut fast);
    portable::bf16_to_f32(&bfs, &mut port);
    assert!(fast
        .iter()
        .zip(&port)
        .all(|(x, y)| x.to_bits() == y.to_bits()));
    let hs: Vec<f16> = all.iter().map(|&b| f16::from_bits(b)).collect();
    cast::f16_to_f32(&hs, &mut fast);
    portable::f16_to_f32(&hs, &mut port);
    for (i, (x, y)) in fast.iter().zip(&port).enumerate() {
        assert!(
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
            "f16_to_f32({:#x})",
            all[i]
        );
    }
}

#[test]
fn casts_handle_every_short_length() {
    for len in 0..40 {
        let src: Vec<f32> = (0..len).map(|i| i as f32 * 1.5 - 7.25).collect();
        let mut h = vec![bf16::ZERO; len];
        cast::f32_to_bf16(&src, &mut h);
        let mut back = vec![0f32; len];
        cast::bf16_to_f32(&h, &mut back);
        assert_eq!(back, src, "len {len}");
        let mut h = vec![f16::ZERO; len];
        cast::f32_to_f16(&src, &mut h);
        cast::f16_to_f32(&h, &mut back);
        assert_eq!(back, src, "len {len}");
    }
}
