//! [`wide`]: runs plain element-wise Rust with AVX-512 enabled, so the compiler vectorizes it in
//! 512-bit lanes on CPUs that have them.
//!
//! The crate is compiled for baseline x86-64, where loops like the optimizer updates vectorize
//! in 128-bit SSE lanes only (measured: Adam's update ran `sqrtps`/`divps` on four lanes). Code
//! inlined into a `#[target_feature(enable = "avx512f")]` function is compiled with AVX-512
//! available. The results are bit-identical to the portable build's: every lane does the same
//! IEEE operation (Rust never contracts `a * b + c` into a fused multiply-add), only more lanes
//! at once.

/// An element-wise loop for [`wide`]. Implementations mark [`run`](Self::run)
/// `#[inline(always)]`, so its body is compiled inside the AVX-512 trampoline (a closure would be
/// left to the inliner's judgement, and was not inlined in practice).
pub(crate) trait WideOp {
    /// What the loop returns.
    type Output;
    /// Runs the loop.
    fn run(self) -> Self::Output;
}

/// Runs `op`, compiled with AVX-512 (F, BW, VL, DQ) enabled when the selection point picked it
/// ([`Kernels::elementwise`](super::Kernels::elementwise): CPU detection and `MIXPREC_KERNEL`),
/// and as ordinary code otherwise.
#[inline]
pub(crate) fn wide<O: WideOp>(op: O) -> O::Output {
    #[cfg(target_arch = "x86_64")]
    if super::selected().elementwise() == super::KernelChoice::Avx512 {
        // SAFETY: the selection point picks AVX-512 only when it detected AVX-512 F/BW/VL/DQ,
        // all the trampoline enables.
        return unsafe { avx512(op) };
    }
    op.run()
}

/// Runs `op` from code compiled with AVX-512.
///
/// # Safety
///
/// The CPU must support AVX-512 F, BW, VL and DQ.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
#[inline]
unsafe fn avx512<O: WideOp>(op: O) -> O::Output {
    op.run()
}
