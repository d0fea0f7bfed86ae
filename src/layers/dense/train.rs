//! Dense's training side: the [`Layer`] impl (inference, the training pass that saves `x` and,
//! for a non-linear activation, `y` in the compute type (GELU: its input `z`, which its
//! derivative needs), and the backward pass).

use super::Dense;
use crate::dtype::max_abs;
use crate::error::{Error, Result};
use crate::kernels::{gemm, gemm_packed, MatRef};
use crate::layers::ops::fused::{
    gemm_bias_activation_with_input, pre_activation_grad, sum_bound, PreActivationGrad,
};
use crate::layers::ops::saved::InputOutput;
use crate::layers::ops::saved::{compute_io, saved_slot};
use crate::layers::ops::workspace::{round_acc, AccOf};
use crate::layers::{Activation, Layer};
use crate::param::Param;
use crate::policy::Policy;
use crate::tensor::Tensor;

impl<P: Policy> Layer for Dense<P> {
    compute_io!();

    fn train_forward(&mut self, x: Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let rows = self.check_input(x.shape())?;
        let mut acc = self.scratch.forward.take();
        // What the activation's derivative reads: nothing (linear), `y`, or GELU's input `z`.
        let (y, deriv) = if self.activation.derivative_needs_input() {
            let (z, y) = gemm_bias_activation_with_input(
                MatRef::row_major(x.as_slice(), rows, self.input_dim()),
                self.kernel.packed(false),
                self.bias.as_ref().map(Param::compute),
                self.activation,
                &mut acc,
            );
            let y = self.output(x.shape(), y);
            (y, Some(self.output(x.shape(), z)))
        } else {
            let y = self.output(x.shape(), self.forward_out(x.as_slice(), rows, &mut acc));
            let keep_y = self.activation != Activation::Linear;
            let deriv = keep_y.then(|| y.clone());
            (y, deriv)
        };
        self.scratch.forward.restore(acc);
        let x = x.reshape(vec![rows, self.input_dim()])?;
        self.saved.save(InputOutput { x, deriv });
        Ok(y)
    }

    fn backward(
        &mut self,
        dy: Tensor<P::Compute>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<P::Compute>>> {
        let saved = self.saved.take("Dense")?;
        let (rows, k, n) = (saved.x.shape()[0], self.input_dim(), self.units());
        if dy.len() != rows * n || dy.shape().last() != Some(&n) {
            return Err(Error::shape(
                "dense output gradient",
                format!("[{rows}, {n}]"),
                dy.shape(),
            ));
        }
        let in_shape = {
            let mut s = dy.shape().to_vec();
            *s.last_mut().expect("checked") = k;
            s
        };
        let y = saved.deriv.as_ref().map(Tensor::as_slice);
        let PreActivationGrad {
            dz,
            max_abs: mz,
            col_sums,
        } = pre_activation_grad(dy.into_vec(), y, n, self.activation, self.bias.is_some());
        let dz_m = MatRef::row_major(&dz, rows, n);
        // dW = xᵀ·dz, summed in f32 from compute-type operands.
        // Written straight into the gradient's storage when it is f32 (mixed policies, F32).
        let x_t = MatRef::row_major(saved.x.as_slice(), rows, k).t();
        // Bounds that prove the gradients finite, so the finiteness scan before the update can
        // skip them: every term of dW's sums is at most max|x|·max|dz|, every term of db's at
        // most max|dz|. NaN or infinity in x or dz gives no bound.
        let mx = max_abs(saved.x.as_slice());
        self.kernel
            .write_grad::<AccOf<P>>(sum_bound(rows, mx * mz), |dw| gemm(x_t, dz_m, dw, false));
        if let (Some(b), Some(sums)) = (&mut self.bias, col_sums) {
            b.write_grad::<AccOf<P>>(sum_bound(rows, mz), |db| db.copy_from_slice(&sums));
        }
        if !need_input_grad {
            return Ok(None);
        }
        // dx = dz·Wᵀ, summed in f32, rounded once, in the reused accumulator (overwritten).
        let mut dx = self.scratch.backward.take();
        dx.resize(rows * k, AccOf::<P>::default());
        gemm_packed(dz_m, self.kernel.packed(true), &mut dx, false);
        let out = Tensor::from_parts(in_shape, round_acc::<P::Compute>(&mut dx));
        self.scratch.backward.restore(dx);
        Ok(Some(out))
    }

    saved_slot!();

    fn output_dim(&self, input: usize) -> Option<usize> {
        (input == self.input_dim()).then_some(self.units())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layers::DenseConfig;
    use crate::policy::{MixedBf16, F32, F64};
    use half::bf16;

    /// Loss L = Σ c ⊙ y with fixed c, so dL/dy = c; compare backward with central differences.
    #[test]
    fn backward_matches_finite_differences_in_f64() {
        for act in Activation::ALL {
            let mut d = DenseConfig::new(4)
                .seed(5)
                .activation(act)
                .init::<F64>(3)
                .unwrap();
            // A non-zero bias so relu sees both signs.
            d.bias
                .as_mut()
                .unwrap()
                .update(|b| b.copy_from_slice(&[0.1, -0.2, 0.3, -0.05]));
            let x = Tensor::from_vec(vec![2, 3], vec![0.5, -1.0, 0.25, 1.5, 0.3, -0.7]).unwrap();
            let c: Vec<f64> = (0..8).map(|i| (i as f64 - 3.5) / 4.0).collect();
            let loss = |d: &Dense<F64>, x: &Tensor<f64>| -> f64 {
                d.forward(x)
                    .unwrap()
                    .as_slice()
                    .iter()
                    .zip(&c)
                    .map(|(y, c)| y * c)
                    .sum()
            };
            d.train_forward(x.clone()).unwrap();
            let dy = Tensor::from_vec(vec![2, 4], c.clone()).unwrap();
            let dx = d.backward(dy, true).unwrap().unwrap();
            let h = 1e-6;
            let grad_w = d.kernel.grad().unwrap().as_slice().to_vec();
            for i in 0..12 {
                let (mut p, mut m) = (d.clone(), d.clone());
                p.kernel.update(|w| w[i] += h);
                m.kernel.update(|w| w[i] -= h);
                let fd = (loss(&p, &x) - loss(&m, &x)) / (2.0 * h);
                assert!(
                    (fd - grad_w[i]).abs() < 1e-6,
                    "{act} dW[{i}]: {fd} vs {}",
                    grad_w[i]
                );
            }
            let grad_b = d.bias.as_ref().unwrap().grad().unwrap().as_slice().to_vec();
            for i in 0..4 {
                let (mut p, mut m) = (d.clone(), d.clone());
                p.bias.as_mut().unwrap().update(|b| b[i] += h);
                m.bias.as_mut().unwrap().update(|b| b[i] -= h);
                let fd = (loss(&p, &x) - loss(&m, &x)) / (2.0 * h);
                assert!(
                    (fd - grad_b[i]).abs() < 1e-6,
                    "{act} db[{i}]: {fd} vs {}",
                    grad_b[i]
                );
            }
            for i in 0..6 {
                let (mut xp, mut xm) = (x.clone(), x.clone());
                xp.as_mut_slice()[i] += h;
                xm.as_mut_slice()[i] -= h;
                let fd = (loss(&d, &xp) - loss(&d, &xm)) / (2.0 * h);
                let g = dx.as_slice()[i];
                assert!((fd - g).abs() < 1e-6, "{act} dx[{i}]: {fd} vs {g}");
            }
        }
    }

    /// The finiteness proof marks ordinary gradients, and never one that overflowed: f32 sums
    /// past f32::MAX in F32, and f32 sums past f16's 65504 in F16, are left to the scan.
    #[test]
    fn gradients_are_marked_finite_only_when_the_bound_proves_it() {
        use crate::optimizers::grads_are_finite;
        use crate::policy::F16;
        fn run<P: Policy>(x: f32, dy: f32) -> (bool, bool, bool) {
            use crate::dtype::Element;
            let k = Tensor::from_vec(vec![2, 1], vec![1.0f32, 1.0]).unwrap();
            let mut d = Dense::<P>::from_weights(k, None).unwrap();
            let x = Tensor::from_vec(vec![1, 2], vec![x, x]).unwrap().cast();
            d.train_forward(x).unwrap();
            let dy = Tensor::from_vec(vec![1, 1], vec![dy]).unwrap().cast();
            d.backward(dy, false).unwrap();
            let g = d.kernel.grad().unwrap().as_slice()[0].as_f64();
            (
                d.kernel.grad_known_finite(),
                grads_are_finite(&d),
                g.is_finite(),
            )
        }
        assert_eq!(run::<F32>(0.5, 3.0), (true, true, true));
        assert_eq!(run::<MixedBf16>(0.5, 3.0), (true, true, true));
        assert_eq!(run::<F32>(3e38, 10.0), (false, false, false));
        assert_eq!(run::<F16>(2.0, 3.0), (true, true, true));
        assert_eq!(run::<F16>(200.0, 400.0), (false, false, false));
        // A finite gradient whose bound is too loose to prove it is still scanned, and passes.
        assert_eq!(run::<F16>(150.0, 400.0), (false, true, true));
    }

    /// The accumulators reused between steps are overwritten, never read: a layer that ran a
    /// larger batch before gives the same outputs and input gradients as a fresh clone.
    fn reused_accumulators_hold_nothing_stale<P: Policy>() {
        let mut d = DenseConfig::new(5)
            .seed(3)
            .activation(Activation::Relu)
            .init::<P>(7)
            .unwrap();
        let batch = |rows: usize, salt: f32| -> Tensor<P::Compute> {
            let v = (0..rows * 7)
                .map(|i| (i as f32 * 0.37 + salt).sin())
                .collect();
            Tensor::from_vec(vec![rows, 7], v).unwrap().cast()
        };
        let y = d.train_forward(batch(6, 1.0)).unwrap();
        d.backward(y, true).unwrap();
        let mut fresh = d.clone();
        let (y1, y2) = (
            d.train_forward(batch(2, 5.0)).unwrap(),
            fresh.train_forward(batch(2, 5.0)).unwrap(),
        );
        assert_eq!(y1, y2, "{}: forward", P::NAME);
        assert_eq!(
            d.backward(y1, true).unwrap(),
            fresh.backward(y2, true).unwrap(),
            "{}: input gradient",
            P::NAME
        );
    }

    #[test]
    fn reused_accumulators_hold_nothing_stale_in_every_policy() {
        use crate::policy::{MixedF16, F16};
        reused_accumulators_hold_nothing_stale::<F32>();
        reused_accumulators_hold_nothing_stale::<F64>();
        reused_accumulators_hold_nothing_stale::<F16>();
        reused_accumulators_hold_nothing_stale::<MixedF16>();
        reused_accumulators_hold_nothing_stale::<MixedBf16>();
    }

    #[test]
    fn backward_without_forward_is_an_error() {
        let mut d = Dense::<F32>::new(2, 2);
        let dy = Tensor::<f32>::zeros(vec![1, 2]).unwrap();
        assert!(matches!(
            d.backward(dy, true),
            Err(Error::BackwardWithoutForward { .. })
        ));
    }

    #[test]
    fn training_pass_saves_compute_type_bytes() {
        let x = Tensor::<bf16>::zeros(vec![8, 4]).unwrap();
        let mut d = Dense::<MixedBf16>::new(4, 3).with_activation(Activation::Relu);
        d.train_forward(x).unwrap();
        assert_eq!(d.saved_bytes(), (8 * 4 + 8 * 3) * 2);
    }

    /// After an optimizer step the forward pass must use the new weights: the cached packed
    /// kernel (and its transpose) are rebuilt, never stale.
    fn packed_cache_follows_updates<P: Policy>() {
        use crate::module::Module;
        use crate::optimizers::{Optimizer, Sgd};
        let mut d = DenseConfig::new(3)
            .seed(9)
            .activation(Activation::Tanh)
            .init::<P>(5)
            .unwrap();
        let x: Tensor<P::Compute> =
            Tensor::from_vec(vec![2, 5], (0..10).map(|i| i as f32 / 10.0).collect())
                .unwrap()
                .cast();
        let before = d.forward(&x).unwrap(); // builds the packed cache
        let y = d.train_forward(x.clone()).unwrap();
        d.backward(y, true).unwrap(); // builds the transposed cache
        let _ = Sgd::new(0.5).step(&mut d).unwrap();
        // Adam repacks the cached copies block by block inside its update pass.
        let _ = crate::optimizers::Adam::new(0.1).step(&mut d).unwrap();
        // A clone starts with empty caches, so it packs the current weights afresh.
        let fresh = d.clone();
        let after = d.forward(&x).unwrap();
        assert_ne!(before, after, "{}: the step changed nothing", P::NAME);
        assert_eq!(
            after,
            fresh.forward(&x).unwrap(),
            "{}: stale packed kernel",
            P::NAME
        );
        // The transposed cache too: the input gradients agree with a fresh layer's.
        let mut fresh = fresh;
        let (y1, y2) = (
            d.train_forward(x.clone()).unwrap(),
            fresh.train_forward(x).unwrap(),
        );
        assert_eq!(
            d.backward(y1, true).unwrap(),
            fresh.backward(y2, true).unwrap()
        );
        let _ = d.param_count();
    }

    #[test]
    fn packed_cache_follows_updates_in_every_policy() {
        use crate::policy::{Bf16, MixedF16, F16};
        packed_cache_follows_updates::<F32>();
        packed_cache_follows_updates::<F64>();
        packed_cache_follows_updates::<F16>();
        packed_cache_follows_updates::<Bf16>();
        packed_cache_follows_updates::<MixedF16>();
        packed_cache_follows_updates::<MixedBf16>();
    }
}
