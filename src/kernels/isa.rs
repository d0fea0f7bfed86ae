//! Which instruction sets the kernels may use: the CPU's features, detected once per process and
//! cached, intersected with the ceiling set by `MIXPREC_KERNEL` ([`kernel_choice`]).
//!
//! AMX tiles also need the operating system's permission: on Linux, one
//! `arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)` per process, asked the first time [`isa`]
//! runs. If it is refused (an old kernel, a seccomp filter), AMX counts as absent. Other operating
//! systems do not get the AMX path.

use std::sync::OnceLock;

use super::{kernel_choice, KernelChoice};

/// The instruction sets the kernels may use. Every field implies the CPU has it *and* the kernel
/// choice allows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub struct Isa {
    /// AVX-512 F, BW, VL and DQ (the integer and f32 lanes the casts and packers use).
    pub avx512: bool,
    /// AVX512-BF16 (`vdpbf16ps`, `vcvtne2ps2bf16`).
    pub avx512_bf16: bool,
    /// F16C with AVX2 and FMA (f16 <-> f32 conversion in 256-bit lanes).
    pub f16c: bool,
    /// AMX-TILE and AMX-BF16, with the OS permission granted.
    pub amx_bf16: bool,
}

impl Isa {
    /// Nothing but portable code.
    pub const PORTABLE: Isa = Isa {
        avx512: false,
        avx512_bf16: false,
        f16c: false,
        amx_bf16: false,
    };

    /// These features capped by a [`KernelChoice`].
    pub fn capped(self, choice: KernelChoice) -> Isa {
        let simd = choice.allows_avx512();
        Isa {
            avx512: self.avx512 && simd,
            avx512_bf16: self.avx512_bf16 && simd,
            f16c: self.f16c && simd,
            amx_bf16: self.amx_bf16 && choice.allows_amx(),
        }
    }
}

/// What this CPU (and OS) supports, ignoring `MIXPREC_KERNEL`. Detected once.
pub fn cpu_isa() -> Isa {
    static CPU: OnceLock<Isa> = OnceLock::new();
    *CPU.get_or_init(detect)
}

/// What the kernels may use in this process: [`cpu_isa`] capped by [`kernel_choice`].
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let choice = kernel_choice();
        // Ask for AMX permission only when AMX may be used.
        if choice.allows_amx() {
            cpu_isa().capped(choice)
        } else {
            detect_without_amx().capped(choice)
        }
    })
}

#[cfg(target_arch = "x86_64")]
fn detect_without_amx() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    let avx512 = has!("avx512f") && has!("avx512bw") && has!("avx512vl") && has!("avx512dq");
    Isa {
        avx512,
        avx512_bf16: avx512 && has!("avx512bf16"),
        f16c: has!("f16c") && has!("avx2") && has!("fma"),
        amx_bf16: false,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_without_amx() -> Isa {
    Isa::PORTABLE
}

fn detect() -> Isa {
    let mut isa = detect_without_amx();
    isa.amx_bf16 = isa.avx512 && amx_bf16_in_cpuid() && request_amx_permission();
    isa
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
        assert_eq!(cpu_isa().capped(KernelChoice::Portable), Isa::PORTABLE);
        let no_amx = cpu_isa().capped(KernelChoice::Avx512);
        assert!(!no_amx.amx_bf16);
        assert_eq!(no_amx.avx512, cpu_isa().avx512);
    }

    #[test]
    fn isa_never_exceeds_the_cpu() {
        let (cpu, now) = (cpu_isa(), isa());
        assert!(!now.avx512 || cpu.avx512);
        assert!(!now.amx_bf16 || cpu.amx_bf16);
        eprintln!("cpu: {cpu:?}; in use ({:?}): {now:?}", kernel_choice());
    }
}
