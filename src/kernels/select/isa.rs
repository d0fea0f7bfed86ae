//! What this CPU (and OS) supports: the only code that reads CPU features. Detected once per
//! process and cached; read only by [`super`], which turns it into the kernel choices.
//!
//! AMX tiles also need the operating system's permission: on Linux, one
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` per process, asked the first time
//! [`cpu`] runs. If it is refused (an old kernel, a seccomp filter), AMX counts as absent. Other
//! operating systems do not get the AMX path.

use std::sync::OnceLock;

use super::KernelChoice;

/// Instruction sets the CPU has. Every field implies the CPU has it (and, for AMX, the OS
/// granted it), possibly further capped by a [`KernelChoice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub(super) struct Isa {
    /// AVX-512 F, BW, VL and DQ (the integer and f32 lanes the casts and packers use).
    pub avx512: bool,
    /// AVX512-BF16 (`vdpbf16ps`, `vcvtne2ps2bf16`); implies `avx512`.
    pub avx512_bf16: bool,
    /// AMX-TILE and AMX-BF16, with the OS permission granted; implies `avx512`.
    pub amx_bf16: bool,
}

impl Isa {
    /// Nothing but portable code.
    #[cfg(any(test, not(target_arch = "x86_64")))]
    pub const PORTABLE: Isa = Isa {
        avx512: false,
        avx512_bf16: false,
        amx_bf16: false,
    };

    /// These features capped by a [`KernelChoice`].
    pub fn capped(self, choice: KernelChoice) -> Isa {
        let simd = choice.allows_avx512();
        Isa {
            avx512: self.avx512 && simd,
            avx512_bf16: self.avx512_bf16 && simd,
            amx_bf16: self.amx_bf16 && choice.allows_amx(),
        }
    }
}

/// Everything this CPU and OS support, AMX included (asking the OS for the tile state the first
/// time). Detected once.
pub(super) fn cpu() -> Isa {
    static CPU: OnceLock<Isa> = OnceLock::new();
    *CPU.get_or_init(|| {
        let mut isa = cpu_without_amx();
        isa.amx_bf16 = isa.avx512 && amx_bf16_in_cpuid() && request_amx_permission();
        isa
    })
}

/// [`cpu`] without AMX, and without asking the OS for the tile state (for a ceiling that forbids
/// AMX anyway). Detected once.
pub(super) fn cpu_without_amx() -> Isa {
    static CPU: OnceLock<Isa> = OnceLock::new();
    *CPU.get_or_init(detect_without_amx)
}

#[cfg(target_arch = "x86_64")]
fn detect_without_amx() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    let avx512 = has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq");
    Isa {
        avx512,
        avx512_bf16: avx512 && has!("avx512bf16"),
        amx_bf16: false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_without_amx() -> Isa {
    Isa::PORTABLE
}

/// CPUID leaf 7, sub-leaf 0, EDX: bit 22 AMX-BF16, bit 24 AMX-TILE. (`is_x86_feature_detected!`
/// does not name AMX on stable Rust.)
#[cfg(target_arch = "x86_64")]
fn amx_bf16_in_cpuid() -> bool {
    use std::arch::x86_64::{__cpuid, __cpuid_count};
    if __cpuid(0).eax < 7 {
        return false;
    }
    let edx = __cpuid_count(7, 0).edx;
    edx & (1 << 22) != 0 && edx & (1 << 24) != 0
}

#[cfg(not(target_arch = "x86_64"))]
fn amx_bf16_in_cpuid() -> bool {
    false
}

/// Linux: `arch_prctl(ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18)`. The permission is
/// process-wide (every thread, including rayon's, may then use the tiles). Called at most once.
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn request_amx_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: arch_prctl with ARCH_REQ_XCOMP_PERM takes an integer feature number and touches no
    // user memory; it only changes which XSAVE features this process may enable.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        )
    };
    rc == 0
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
fn request_amx_permission() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capping_at_portable_removes_every_feature() {
        assert_eq!(cpu().capped(KernelChoice::Portable), Isa::PORTABLE);
        let no_amx = cpu().capped(KernelChoice::Avx512);
        assert!(!no_amx.amx_bf16);
        assert_eq!(no_amx.avx512, cpu().avx512);
        assert_eq!(no_amx, cpu_without_amx().capped(KernelChoice::Avx512));
    }

    #[test]
    fn detected_features_imply_avx512() {
        let cpu = cpu();
        assert!(!cpu.amx_bf16 || cpu.avx512, "{cpu:?}");
        assert!(!cpu.avx512_bf16 || cpu.avx512, "{cpu:?}");
        eprintln!("cpu: {cpu:?}");
    }
}
