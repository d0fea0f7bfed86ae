//! Accumulator workspaces: the buffers a layer's product kernels sum into, in the accumulator
//! type of its compute type (f32 for the 16-bit types and f32, f64 for f64), kept between calls.
//!
//! A product kernel overwrites its output, so a reused buffer needs no zeroing; reusing it saves
//! allocating and faulting in a fresh `rows × n` buffer per pass (a page fault per 4 KiB was
//! about a quarter of a 1024 × 1024 × 1024 MixedBf16 forward pass).

use std::cell::RefCell;
use std::fmt;

use crate::dtype::{cast_to_vec, cast_vec, DType, Element, VecOf};
use crate::policy::Policy;

/// The accumulator type of policy `P`: f32, or f64 for `F64`.
pub(crate) type AccOf<P> = <<P as Policy>::Compute as Element>::Acc;

/// One buffer a layer keeps between passes. Its values are never read before a kernel
/// overwrites them; only its allocation is reused. Cloning gives an empty workspace (a cloned
/// layer does not copy transient buffers).
pub(crate) struct Workspace<A> {
    buf: Vec<A>,
}

impl<A> Workspace<A> {
    /// The buffer, leaving this workspace empty until [`restore`](Self::restore).
    pub(crate) fn take(&mut self) -> Vec<A> {
        std::mem::take(&mut self.buf)
    }

    /// Keeps `buf` for the next pass.
    pub(crate) fn restore(&mut self, buf: Vec<A>) {
        self.buf = buf;
    }

    /// Elements held.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }
}

impl<A> Default for Workspace<A> {
    fn default() -> Self {
        Workspace { buf: Vec::new() }
    }
}

impl<A> Clone for Workspace<A> {
    fn clone(&self) -> Self {
        Workspace::default()
    }
}

impl<A> fmt::Debug for Workspace<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Workspace({})", self.buf.len())
    }
}

/// The accumulators of a layer's training passes, kept between steps: `forward` for the output
/// product (`rows × outputs`), `backward` for the input gradient's (`rows × inputs`). They hold
/// something only when the compute type is 16-bit; for F32 and F64 the accumulator *is* the
/// output ([`round_acc`] moves it out).
pub(crate) struct Scratch<P: Policy> {
    /// The forward product's accumulator.
    pub(crate) forward: Workspace<AccOf<P>>,
    /// The input gradient's accumulator.
    pub(crate) backward: Workspace<AccOf<P>>,
}

impl<P: Policy> Default for Scratch<P> {
    fn default() -> Self {
        Scratch {
            forward: Workspace::default(),
            backward: Workspace::default(),
        }
    }
}

impl<P: Policy> Clone for Scratch<P> {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl<P: Policy> fmt::Debug for Scratch<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scratch")
            .field("forward", &self.forward.len())
            .field("backward", &self.backward.len())
            .finish()
    }
}

thread_local! {
    /// The f32 accumulator of inference passes whose output is not f32 (the 16-bit compute
    /// types), kept per thread between calls. It is as large as the largest such pass this
    /// thread ran.
    static INFER_ACC: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with an accumulator for an inference pass computing in `C`: the thread's reused f32
/// buffer when the accumulator is f32 but the output is not (so [`round_acc`] converts and the
/// buffer is not given away), a new vector otherwise (F32, F64: the buffer becomes the output).
pub(crate) fn with_infer_acc<C: Element, R>(f: impl FnOnce(&mut Vec<C::Acc>) -> R) -> R {
    let reuse = C::Acc::DTYPE == DType::Float32 && C::DTYPE != DType::Float32;
    if !reuse {
        return f(&mut Vec::new());
    }
    let buf = INFER_ACC.with(RefCell::take);
    let mut acc = C::Acc::from_vec_of(VecOf::F32(buf)).unwrap_or_default();
    let out = f(&mut acc);
    if let VecOf::F32(buf) = C::Acc::into_vec_of(acc) {
        INFER_ACC.with(|c| *c.borrow_mut() = buf);
    }
    out
}

/// The accumulator rounded once to the compute type `C`: the buffer itself when the types agree
/// (F32, F64; `acc` is left empty), a converted copy otherwise (`acc` is left for reuse).
pub(crate) fn round_acc<C: Element>(acc: &mut Vec<C::Acc>) -> Vec<C> {
    if C::DTYPE == C::Acc::DTYPE {
        cast_vec(std::mem::take(acc))
    } else {
        cast_to_vec(acc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::MixedBf16;
    use half::{bf16, f16};

    #[test]
    fn round_acc_moves_when_the_types_agree_and_rounds_once_otherwise() {
        let mut acc = vec![1.0f32, 2.5, -3.0];
        let ptr = acc.as_ptr();
        let out: Vec<f32> = round_acc(&mut acc);
        assert_eq!(out.as_ptr(), ptr, "f32 output is the accumulator itself");
        assert!(acc.is_empty());

        // Each element rounds once, to nearest even, as from_f64_rne of the f32 value: in bf16
        // (ulp 2^-7 at 1) 1 + 2^-9 rounds down to 1 and 1 + 3·2^-9 up to 1 + 2^-7.
        let vals = [
            1.0 + 2f32.powi(-9),
            1.0 + 3.0 * 2f32.powi(-9),
            -65519.0,
            1e-9,
        ];
        let mut acc = vals.to_vec();
        let out: Vec<bf16> = round_acc(&mut acc);
        assert_eq!(acc, vals, "the accumulator is kept for reuse");
        for (&v, &o) in vals.iter().zip(&out) {
            assert_eq!(o, bf16::from_f64_rne(f64::from(v)), "{v}");
        }
        let out: Vec<f16> = round_acc(&mut acc);
        assert_eq!(out[2], f16::from_f64_rne(-65519.0));
        // f16 (ulp 2^-10 at 1) holds 1 + 2^-9 exactly.
        assert_eq!(out[0].to_f64(), 1.0 + 2f64.powi(-9));
        assert_eq!(
            round_acc::<bf16>(&mut vals.to_vec())[..2],
            [bf16::ONE, bf16::from_f32(1.0 + 2f32.powi(-7))]
        );
    }

    #[test]
    fn inference_accumulator_is_reused_per_thread_only_for_16_bit_outputs() {
        let first = with_infer_acc::<bf16, _>(|acc| {
            acc.resize(4096, 0.0);
            acc.as_ptr() as usize
        });
        let (second, cap) =
            with_infer_acc::<bf16, _>(|acc| (acc.as_ptr() as usize, acc.capacity()));
        assert_eq!(first, second, "the same allocation again");
        assert!(cap >= 4096);
        // f32 and f64 outputs get a fresh buffer (it becomes the output).
        assert_eq!(with_infer_acc::<f32, _>(|acc| acc.capacity()), 0);
        assert_eq!(with_infer_acc::<f64, _>(|acc| acc.capacity()), 0);
        // Another thread has its own buffer.
        let other = std::thread::spawn(|| with_infer_acc::<f16, _>(|acc| acc.capacity()));
        assert_eq!(other.join().unwrap(), 0);
    }

    #[test]
    fn workspaces_are_not_cloned() {
        let mut s = Scratch::<MixedBf16>::default();
        s.forward.restore(vec![1.0; 8]);
        assert_eq!(s.forward.len(), 8);
        assert_eq!(s.clone().forward.len(), 0);
        assert_eq!(format!("{s:?}"), "Scratch { forward: 8, backward: 0 }");
        assert_eq!(s.forward.take().len(), 8);
        assert_eq!(s.forward.len(), 0);
    }
}
