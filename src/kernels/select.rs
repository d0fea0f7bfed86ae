//! The one kernel-selection point: which kernel each operation runs on, decided from the CPU's
//! features and a [`KernelChoice`] ceiling (`MIXPREC_KERNEL`), once per process.
//!
//! The CPU's features are read in `select/isa.rs` and nowhere else; only this module sees them.
//! Every other kernel file asks [`selected`] (the process's choice) or, to compare paths in one
//! process, [`kernels_for`] (an explicit ceiling), and the `SAFETY` argument of every SIMD call
//! rests on that answer: a [`Kernels`] is only ever built here, from detected features.

#[allow(unsafe_code)] // one `arch_prctl` system call, to be granted the AMX tile state
mod isa;

use std::sync::OnceLock;

use crate::DType;

/// Which family of kernels runs: the fastest this CPU supports, or a forced ceiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum KernelChoice {
    /// Portable Rust (plus matrixmultiply for f32/f64): runs everywhere.
    Portable,
    /// AVX-512 (with AVX512-BF16 and F16C where present), but no AMX tiles.
    Avx512,
    /// Up to AMX-BF16 tiles.
    Amx,
    /// The fastest path the CPU supports.
    Auto,
}

impl KernelChoice {
    /// Parses a `MIXPREC_KERNEL` value; `None` for an unknown one.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "portable" | "fallback" => Some(KernelChoice::Portable),
            "avx512" | "avx512bf16" => Some(KernelChoice::Avx512),
            "amx" | "amx-bf16" | "amxbf16" => Some(KernelChoice::Amx),
            "auto" | "" => Some(KernelChoice::Auto),
            _ => None,
        }
    }

    /// True when this ceiling allows AVX-512 paths.
    pub fn allows_avx512(self) -> bool {
        self >= KernelChoice::Avx512
    }

    /// True when this ceiling allows AMX tiles.
    pub fn allows_amx(self) -> bool {
        self >= KernelChoice::Amx
    }
}

/// The ceiling for this process, read once from `MIXPREC_KERNEL` (an unknown value means
/// [`KernelChoice::Auto`] after one warning on stderr).
fn kernel_choice() -> KernelChoice {
    static CHOICE: OnceLock<KernelChoice> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("MIXPREC_KERNEL") {
        Err(_) => KernelChoice::Auto,
        Ok(v) => KernelChoice::parse(&v).unwrap_or_else(|| {
            eprintln!(
                "mixprec: unknown MIXPREC_KERNEL {v:?} (expected one of: portable, avx512, amx, \
                 auto); using auto"
            );
            KernelChoice::Auto
        }),
    })
}

/// Which kernel each operation runs on: the answer of the selection point, [`selected`] for this
/// process. Each answer is [`KernelChoice::Portable`] or the one fast family that operation has.
///
/// A `Kernels` is built only by this module, from the detected CPU features capped by a ceiling,
/// so an answer of [`KernelChoice::Avx512`] proves the CPU has AVX-512 F, BW, VL and DQ (and for
/// the bf16 product AVX512-BF16 too), and an
/// answer of [`KernelChoice::Amx`] proves AMX-TILE and AMX-BF16 with the OS's permission (and
/// AVX-512 as well). The kernels' `SAFETY` comments rely on exactly that.
///
/// ```
/// use mixprec::kernels::{selected, KernelChoice};
/// use mixprec::DType;
/// let k = selected();
/// assert_eq!(k.gemm(DType::Float64), KernelChoice::Portable); // f64 is always matrixmultiply
/// if k.gemm(DType::BFloat16) == KernelChoice::Amx {
///     assert!(k.ceiling().allows_amx());
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Kernels {
    ceiling: KernelChoice,
    gemm_bf16: KernelChoice,
    gemm_f16: KernelChoice,
    gemm_f32_packed: KernelChoice,
    pack: KernelChoice,
    pack_bf16_native: bool,
    cast: KernelChoice,
    wide: KernelChoice,
}

impl Kernels {
    /// The ceiling this selection was made under (`MIXPREC_KERNEL` for [`selected`]).
    pub fn ceiling(&self) -> KernelChoice {
        self.ceiling
    }

    /// The matrix kernel of a product in compute type `compute` (the [`PackedB`] layout and the
    /// kernel that reads it):
    ///
    /// - bf16: [`KernelChoice::Amx`] (AMX-BF16 tiles), [`KernelChoice::Avx512`] (AVX512-BF16's
    ///   `vdpbf16ps` on k-pair panels, when the CPU has it but no AMX, or under an AVX-512
    ///   ceiling) or portable (each operand widened to f32 once per call, then matrixmultiply's
    ///   `sgemm`);
    /// - f16: [`KernelChoice::Avx512`] (AVX-512 FMA panels holding the f16 values widened) or
    ///   portable (widened, `sgemm`);
    /// - f32: [`KernelChoice::Avx512`] when a pre-packed weight feeds the AVX-512 FMA panels
    ///   (a product of two views, [`gemm`](super::gemm()), always calls `sgemm`), or portable;
    /// - f64: always portable (`dgemm`).
    ///
    /// [`PackedB`]: super::PackedB
    pub fn gemm(&self, compute: DType) -> KernelChoice {
        match compute {
            DType::BFloat16 => self.gemm_bf16,
            DType::Float16 => self.gemm_f16,
            DType::Float32 => self.gemm_f32_packed,
            DType::Float64 => KernelChoice::Portable,
        }
    }

    /// The bulk casts between the 16-bit types and f32: [`KernelChoice::Avx512`] (512-bit lanes)
    /// or portable. Both give the same bits.
    pub fn cast(&self) -> KernelChoice {
        self.cast
    }

    /// The element-wise loops (optimizer updates, bias and activation passes):
    /// [`KernelChoice::Avx512`] (compiled with AVX-512 enabled) or portable. Both give the same
    /// bits.
    pub fn elementwise(&self) -> KernelChoice {
        self.wide
    }

    /// The packing of operands into the tile and panel layouts: [`KernelChoice::Avx512`]
    /// (512-bit loads, stores and register transposes) or portable.
    pub(crate) fn pack(&self) -> KernelChoice {
        self.pack
    }

    /// True when f32 packed into AMX tiles, and the bf16 rows of the row-wise layers'
    /// [`rowwise`](super::rowwise) kernels, are rounded to bf16 by AVX512-BF16's
    /// `vcvtne2ps2bf16` (then [`pack`](Self::pack) and [`elementwise`](Self::elementwise) are
    /// [`KernelChoice::Avx512`] too, and the CPU has AVX512-BF16); false for the integer
    /// rounding of the casts.
    pub(crate) fn pack_bf16_native(&self) -> bool {
        self.pack_bf16_native
    }
}

/// The kernels this process uses: the CPU's features capped by `MIXPREC_KERNEL` (see
/// [`crate::kernels`]), decided once, on first use.
pub fn selected() -> Kernels {
    static SELECTED: OnceLock<Kernels> = OnceLock::new();
    *SELECTED.get_or_init(|| kernels_for(kernel_choice()))
}

/// The kernels for an explicit `ceiling` (capped by what the CPU has), ignoring
/// `MIXPREC_KERNEL`: what [`selected`] would answer under that ceiling. This is where every
/// choice is made.
pub(crate) fn kernels_for(ceiling: KernelChoice) -> Kernels {
    // Ask the OS for the AMX tile state only when the ceiling allows AMX.
    let cpu = if ceiling.allows_amx() {
        isa::cpu()
    } else {
        isa::cpu_without_amx()
    };
    decide(cpu.capped(ceiling), ceiling)
}

/// The whole decision table: the kernel of each operation given the features `isa` (detected,
/// already capped by `ceiling`). Private, so every `Kernels` comes from detected features.
fn decide(isa: isa::Isa, ceiling: KernelChoice) -> Kernels {
    let level = |has: bool, fast: KernelChoice| {
        if has {
            fast
        } else {
            KernelChoice::Portable
        }
    };
    // The AVX-512 kernels exist on x86-64 only (where alone the features can be detected).
    let avx512 = isa.avx512 && cfg!(target_arch = "x86_64");
    Kernels {
        ceiling,
        // Detection sets AMX only together with AVX-512 (the AMX path packs with it). Without
        // AMX, `vdpbf16ps` (AVX512-BF16) where the CPU has it.
        gemm_bf16: if isa.amx_bf16 && avx512 {
            KernelChoice::Amx
        } else {
            level(isa.avx512_bf16 && avx512, KernelChoice::Avx512)
        },
        gemm_f16: level(avx512, KernelChoice::Avx512),
        gemm_f32_packed: level(avx512, KernelChoice::Avx512),
        pack: level(avx512, KernelChoice::Avx512),
        pack_bf16_native: isa.avx512_bf16 && avx512,
        cast: level(avx512, KernelChoice::Avx512),
        wide: level(avx512, KernelChoice::Avx512),
    }
}

/// The matrix kernel a compute type runs on in this process (CPU features capped by
/// `MIXPREC_KERNEL`), in words, for `mixprec info`.
pub fn kernel_name(dtype: DType) -> &'static str {
    let fast = selected().gemm(dtype) != KernelChoice::Portable;
    match dtype {
        DType::BFloat16 if selected().gemm(dtype) == KernelChoice::Amx => {
            "AMX-BF16 tiles (tdpbf16ps), f32 accumulation"
        }
        DType::BFloat16 if fast => "AVX512-BF16 vdpbf16ps panels, f32 accumulation",
        DType::BFloat16 => "widened to f32 once per call, matrixmultiply sgemm",
        DType::Float16 if fast => {
            "AVX-512 FMA panels (weights rounded to f16, kept widened), f32 accumulation"
        }
        DType::Float16 => "widened to f32 once per call, matrixmultiply sgemm",
        DType::Float32 if fast => {
            "matrixmultiply sgemm; AVX-512 FMA panels for cached layer weights"
        }
        DType::Float32 => "matrixmultiply sgemm",
        DType::Float64 => "matrixmultiply dgemm",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_choice_parses_every_documented_name() {
        assert_eq!(
            KernelChoice::parse("portable"),
            Some(KernelChoice::Portable)
        );
        assert_eq!(
            KernelChoice::parse("fallback"),
            Some(KernelChoice::Portable)
        );
        assert_eq!(KernelChoice::parse("AVX512"), Some(KernelChoice::Avx512));
        assert_eq!(KernelChoice::parse("amx"), Some(KernelChoice::Amx));
        assert_eq!(KernelChoice::parse("auto"), Some(KernelChoice::Auto));
        assert_eq!(KernelChoice::parse(""), Some(KernelChoice::Auto));
        assert_eq!(KernelChoice::parse("sse2"), None);
    }

    #[test]
    fn kernel_choice_levels_are_ordered_ceilings() {
        assert!(!KernelChoice::Portable.allows_avx512());
        assert!(KernelChoice::Avx512.allows_avx512() && !KernelChoice::Avx512.allows_amx());
        assert!(KernelChoice::Amx.allows_amx() && KernelChoice::Auto.allows_amx());
    }

    #[test]
    fn every_choice_follows_the_cpu_and_the_ceiling() {
        let cpu = isa::cpu();
        let ops = |k: Kernels| {
            [
                k.gemm(DType::BFloat16),
                k.gemm(DType::Float16),
                k.gemm(DType::Float32),
                k.gemm(DType::Float64),
                k.pack(),
                k.cast(),
                k.elementwise(),
            ]
        };
        let portable = kernels_for(KernelChoice::Portable);
        assert!(ops(portable).iter().all(|&c| c == KernelChoice::Portable));
        assert!(!portable.pack_bf16_native());
        for ceiling in [KernelChoice::Avx512, KernelChoice::Amx, KernelChoice::Auto] {
            let k = kernels_for(ceiling);
            assert_eq!(k.ceiling(), ceiling);
            let simd = if cpu.avx512 && cfg!(target_arch = "x86_64") {
                KernelChoice::Avx512
            } else {
                KernelChoice::Portable
            };
            for c in [k.gemm(DType::Float16), k.gemm(DType::Float32), k.pack()] {
                assert_eq!(c, simd, "{ceiling:?}");
            }
            assert_eq!((k.cast(), k.elementwise()), (simd, simd));
            assert_eq!(k.pack_bf16_native(), cpu.avx512_bf16, "{ceiling:?}");
            let amx = cpu.amx_bf16 && ceiling.allows_amx();
            assert_eq!(k.gemm(DType::BFloat16) == KernelChoice::Amx, amx);
            let dp = !amx && cpu.avx512_bf16 && cfg!(target_arch = "x86_64");
            assert_eq!(k.gemm(DType::BFloat16) == KernelChoice::Avx512, dp);
            assert_eq!(k.gemm(DType::Float64), KernelChoice::Portable);
        }
    }

    /// The table against the conditions each kernel file used to test on the feature bits.
    #[test]
    fn each_feature_set_picks_the_kernels_it_supports() {
        use KernelChoice::{Amx, Avx512, Portable};
        let x86 = cfg!(target_arch = "x86_64");
        let feature_sets = [
            (false, false, false),
            (true, false, false),
            (true, true, false),
            (true, false, true),
            (true, true, true),
        ];
        for (avx512, avx512_bf16, amx_bf16) in feature_sets {
            let cpu = isa::Isa {
                avx512,
                avx512_bf16,
                amx_bf16,
            };
            for ceiling in [Portable, Avx512, Amx, KernelChoice::Auto] {
                let k = decide(cpu.capped(ceiling), ceiling);
                let simd = avx512 && x86 && ceiling.allows_avx512();
                let tiles = amx_bf16 && x86 && ceiling.allows_amx();
                let want = |on: bool, fast| if on { fast } else { Portable };
                let case = format!("{cpu:?} under {ceiling:?}");
                let dp = want(simd && avx512_bf16, Avx512);
                let bf = if tiles && simd { Amx } else { dp };
                assert_eq!(k.gemm(DType::BFloat16), bf, "{case}");
                assert_eq!(k.gemm(DType::Float16), want(simd, Avx512), "{case}");
                assert_eq!(k.gemm(DType::Float32), want(simd, Avx512), "{case}");
                assert_eq!(k.gemm(DType::Float64), Portable, "{case}");
                assert_eq!(k.pack(), want(simd, Avx512), "{case}");
                assert_eq!(k.cast(), want(simd, Avx512), "{case}");
                assert_eq!(k.elementwise(), want(simd, Avx512), "{case}");
                assert_eq!(k.pack_bf16_native(), simd && avx512_bf16, "{case}");
                assert_eq!(k.ceiling(), ceiling);
            }
        }
    }

    #[test]
    fn the_process_selection_is_the_env_ceiling_and_never_exceeds_the_cpu() {
        let (cpu, now) = (kernels_for(KernelChoice::Auto), selected());
        assert_eq!(now, kernels_for(kernel_choice()));
        assert!(now.cast() <= cpu.cast() && now.gemm(DType::BFloat16) <= cpu.gemm(DType::BFloat16));
        eprintln!("cpu: {cpu:?}; in use: {now:?}");
    }
}
