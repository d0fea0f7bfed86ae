//! [`Param<P>`]: one trainable variable of a layer in policy `P`: the master value in
//! `P::Variable`, its gradient (also `P::Variable`, accumulated in f32), and a cached copy in
//! `P::Compute` that every mutation clears, so it can never be stale.

use std::sync::OnceLock;

mod update;

pub(crate) use update::{ElementwiseUpdate, VarAccOf, PAR_CHUNK};

use crate::dtype::{cast_to_vec, Element};
use crate::kernels::{pack_b_from, AlignedVec, MatRef, PackedB};
use crate::policy::Policy;
use crate::tensor::Tensor;

/// A trainable variable: master value, gradient, cached compute-type copy.
///
/// ```
/// use mixprec::{param::Param, policy::MixedBf16, Tensor};
/// let mut w = Param::<MixedBf16>::new(Tensor::from_vec(vec![2], vec![1.0f32, 2.0])?);
/// assert_eq!(w.compute()[1], half::bf16::from_f32(2.0));
/// w.update(|v| v[1] = 3.0);                   // clears the cached bf16 copy
/// assert_eq!(w.compute()[1], half::bf16::from_f32(3.0));
/// # Ok::<(), mixprec::Error>(())
/// ```
pub struct Param<P: Policy> {
    value: Tensor<P::Variable>,
    /// The gradient, in a 64-byte-aligned buffer: a layer's dW product writes it with tile
    /// stores, and into a `Vec` (which starts 16 bytes off a cache line) every row store splits,
    /// measured 27–31% slower at k = 256 (784 × 256 × 1024 and 1024 × 256 × 1024).
    grad: Option<AlignedVec<P::Variable>>,
    /// [`grad`](Self::grad)'s tensor: a copy of `grad` made when first asked for after it changed.
    grad_tensor: OnceLock<Tensor<P::Variable>>,
    /// The producer of `grad` proved every element finite ([`Param::write_grad`]).
    grad_finite: bool,
    compute: OnceLock<Vec<P::Compute>>,
    /// The value as a packed matrix operand `B` for the selected kernel, as is (`[0]`) and
    /// transposed (`[1]`); only 2-D variables (kernels) use it.
    packed: [OnceLock<PackedB<P::Compute>>; 2],
    /// False for state a layer updates itself (BatchNormalization's moving statistics):
    /// optimizers skip it, the finiteness scan ignores it, and no backward pass writes its
    /// gradient. Checkpoints, `get_weights` and `param_count` include it, as Keras's do.
    trainable: bool,
    /// The policy of the layer that owns the variable: `P`'s, except for a statistic a layer
    /// keeps in [`Policy::Stats`] ([`Param::statistic`]), which reports its layer's.
    owner: crate::DTypePolicy,
}

impl<P: Policy> Param<P> {
    /// A variable holding `value`, with no gradient yet.
    pub fn new(value: Tensor<P::Variable>) -> Self {
        Param {
            value,
            grad: None,
            grad_tensor: OnceLock::new(),
            grad_finite: false,
            compute: OnceLock::new(),
            packed: Default::default(),
            trainable: true,
            owner: P::RUNTIME,
        }
    }

    /// A non-trainable statistic of a layer in policy `L`, kept in `L`'s accumulator policy
    /// `L::Stats` (f32, or f64 for `F64`) whatever `L` computes in: BatchNormalization's moving
    /// mean and variance. It reports `L`'s policy as its layer's
    /// ([`VariableInfo::policy`](crate::module::VariableInfo::policy)) and `P::Variable` as its
    /// stored type, so a checkpoint records it beside its layer's other variables.
    pub fn statistic<L: Policy<Stats = P>>(value: Tensor<P::Variable>) -> Self {
        Param {
            owner: L::RUNTIME,
            ..Param::non_trainable(value)
        }
    }

    /// The policy of the layer that owns the variable (see [`statistic`](Self::statistic)).
    pub fn layer_policy(&self) -> crate::DTypePolicy {
        self.owner
    }

    /// A non-trainable variable holding `value` (Keras's `trainable=False` weights: state the
    /// layer updates itself, like BatchNormalization's moving mean and variance). Optimizers
    /// skip it, and it never has a gradient.
    ///
    /// ```
    /// use mixprec::{param::Param, policy::F32, Tensor};
    /// let mean = Param::<F32>::non_trainable(Tensor::from_vec(vec![2], vec![0.0f32; 2])?);
    /// assert!(!mean.is_trainable());
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    pub fn non_trainable(value: Tensor<P::Variable>) -> Self {
        Param {
            trainable: false,
            ..Param::new(value)
        }
    }

    /// False for a variable made by [`non_trainable`](Self::non_trainable).
    pub fn is_trainable(&self) -> bool {
        self.trainable
    }

    /// The master value.
    pub fn value(&self) -> &Tensor<P::Variable> {
        &self.value
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        self.value.shape()
    }

    /// The number of scalars.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// True for a variable without elements.
    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }

    /// The value in the compute type: the master value itself when the two types are equal,
    /// otherwise a copy converted once and cached until the next mutation.
    pub fn compute(&self) -> &[P::Compute] {
        let master = self.value.as_slice();
        match P::Compute::from_view(P::Variable::view(master)) {
            Some(same) => same,
            None => self.compute.get_or_init(|| cast_to_vec(master)),
        }
    }

    /// The value as a matrix `[rows, cols]`: a 2-D value as it is, a longer shape
    /// `[k₁, …, cols]` with its leading dimensions folded into `rows` (a convolution kernel
    /// `[kh, kw, in, filters]` is the row-major `[kh·kw·in, filters]` matrix, the same memory).
    /// `None` for fewer than two dimensions.
    pub(crate) fn matrix_dims(&self) -> Option<(usize, usize)> {
        match *self.value.shape() {
            [.., _, cols] => Some((self.value.len().checked_div(cols).unwrap_or(0), cols)),
            _ => None,
        }
    }

    /// The value as a matrix (2-D as is, a longer shape `[k₁, …, cols]` with its leading
    /// dimensions folded into the rows) as a packed right-hand operand in the
    /// compute type, as is or transposed, converted and packed once and cached until the next
    /// mutation. Mixed policies pack straight from the f32 master value (rounding while
    /// packing), with no compute copy.
    ///
    /// # Panics
    ///
    /// If the value has fewer than two dimensions (an internal contract: only kernels are
    /// packed).
    pub fn packed(&self, transposed: bool) -> &PackedB<P::Compute> {
        let (rows, cols) = self.matrix_dims().unwrap_or_else(|| {
            panic!(
                "Param::packed: a variable of at least 2 dimensions, not {:?}",
                self.value.shape()
            )
        });
        self.packed[usize::from(transposed)].get_or_init(|| {
            let w = MatRef::row_major(self.value.as_slice(), rows, cols);
            pack_b_from::<P::Variable, P::Compute>(if transposed { w.t() } else { w })
        })
    }

    /// Drops every cached form of the value (before a mutation).
    fn invalidate(&mut self) {
        self.compute = OnceLock::new();
        self.packed = Default::default();
    }

    /// Mutates the master value in place and clears the cached compute copy.
    pub fn update(&mut self, f: impl FnOnce(&mut [P::Variable])) {
        self.invalidate();
        f(self.value.as_mut_slice());
    }

    /// Replaces the master value (same shape) and clears the cached compute copy.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when the shapes differ.
    pub fn set(&mut self, value: Tensor<P::Variable>) -> crate::Result<()> {
        if value.shape() != self.value.shape() {
            return Err(crate::Error::shape(
                "variable",
                crate::error::fmt_shape(self.value.shape()),
                value.shape(),
            ));
        }
        self.invalidate();
        self.value = value;
        Ok(())
    }

    /// The gradient of the last backward pass, if any.
    ///
    /// Layers write gradients into an aligned buffer that optimizers read in place; the tensor
    /// returned here is a copy of it, made the first time it is asked for after each backward
    /// pass (or the tensor given to [`set_grad`](Self::set_grad)).
    pub fn grad(&self) -> Option<&Tensor<P::Variable>> {
        let g = self.grad.as_ref()?;
        Some(
            self.grad_tensor
                .get_or_init(|| Tensor::from_parts(self.value.shape().to_vec(), g.to_vec())),
        )
    }

    /// The gradient's elements, read in place (no copy).
    pub(crate) fn grad_slice(&self) -> Option<&[P::Variable]> {
        self.grad.as_deref()
    }

    /// True when the layer that wrote the gradient proved it finite from bounds on its inputs,
    /// so it need not be scanned for NaN and infinity. False when unknown (not "not finite").
    pub fn grad_known_finite(&self) -> bool {
        self.grad.is_some() && self.grad_finite
    }

    /// The value and the gradient together, the value mutable (for optimizers); clears the caches.
    pub fn value_and_grad_mut(&mut self) -> (&mut [P::Variable], Option<&[P::Variable]>) {
        self.invalidate();
        (self.value.as_mut_slice(), self.grad.as_deref())
    }

    /// Writes a new gradient with `fill`, which receives a buffer in the accumulator type `A`
    /// to overwrite completely. When the variable type is `A` (f32 master weights), that buffer is
    /// the previous step's gradient storage, reused without allocating or zeroing; otherwise the
    /// gradient is formed in `A` and rounded once to the variable type.
    ///
    /// `bound` is an upper bound on the magnitude of every element `fill` writes (infinity when
    /// unknown). When it is finite in `A` and stays finite when rounded to the variable type, the
    /// gradient is marked as known to be finite and [`grads_are_finite`] skips scanning it.
    ///
    /// [`grads_are_finite`]: crate::optimizers::grads_are_finite
    pub(crate) fn write_grad<A: Element>(&mut self, bound: f64, fill: impl FnOnce(&mut [A])) {
        debug_assert!(self.trainable, "no gradient for a non-trainable variable");
        // Rounding is monotonic, so |g| <= bound implies |round(g)| <= round(bound).
        self.grad_finite = A::from_f64_rne(bound).as_f64().is_finite()
            && P::Variable::from_f64_rne(bound).as_f64().is_finite();
        let len = self.value.len();
        self.grad_tensor = OnceLock::new();
        let mut grad = match self.grad.take() {
            Some(g) if g.len() == len => g,
            _ => AlignedVec::zeroed(len),
        };
        match A::from_view_mut(P::Variable::view_mut(&mut grad)) {
            Some(same) => fill(same),
            None => {
                let mut acc = vec![A::default(); len];
                fill(&mut acc);
                crate::dtype::cast_slice(&acc, &mut grad);
            }
        }
        self.grad = Some(grad);
    }

    /// Sets the gradient (for custom layers, and tests of optimizers).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`](crate::Error::ShapeMismatch) when the shape differs from the
    /// value's.
    pub fn set_grad(&mut self, grad: Tensor<P::Variable>) -> crate::Result<()> {
        if !self.trainable {
            return Err(crate::Error::InvalidArgument {
                what: "gradient",
                found: "a gradient for a non-trainable variable".into(),
                expected: "gradients only for trainable variables (Param::is_trainable)",
            });
        }
        if grad.shape() != self.value.shape() {
            let expected = crate::error::fmt_shape(self.value.shape());
            return Err(crate::Error::shape("gradient", expected, grad.shape()));
        }
        let mut aligned = AlignedVec::zeroed(grad.len());
        aligned.copy_from_slice(grad.as_slice());
        self.grad = Some(aligned);
        self.grad_tensor = OnceLock::from(grad);
        self.grad_finite = false;
        Ok(())
    }

    /// Drops the gradient.
    pub fn clear_grad(&mut self) {
        self.grad = None;
        self.grad_tensor = OnceLock::new();
    }

    /// The same variable in policy `Q` (value cast to `Q::Variable`, no gradient).
    pub fn to_policy<Q: Policy>(&self) -> Param<Q> {
        Param {
            trainable: self.trainable,
            ..Param::new(self.value.cast())
        }
    }
}

impl<P: Policy> Clone for Param<P> {
    fn clone(&self) -> Self {
        Param {
            value: self.value.clone(),
            grad: self.grad.clone(),
            grad_tensor: self.grad_tensor.clone(),
            grad_finite: self.grad_finite,
            compute: OnceLock::new(),
            packed: Default::default(),
            trainable: self.trainable,
            owner: self.owner,
        }
    }
}

impl<P: Policy> PartialEq for Param<P> {
    /// Two variables are equal when their values are; gradients and caches are transient.
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl<P: Policy> std::fmt::Debug for Param<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param")
            .field("value", &self.value)
            .field("has_grad", &self.grad.is_some())
            .field("trainable", &self.trainable)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{MixedF16, F32};

    #[test]
    fn compute_copy_is_never_stale() {
        let mut p = Param::<MixedF16>::new(Tensor::from_vec(vec![1], vec![1.0f32]).unwrap());
        assert_eq!(p.compute()[0].to_f32(), 1.0);
        p.value_and_grad_mut().0[0] = 2.0;
        assert_eq!(p.compute()[0].to_f32(), 2.0);
        p.set(Tensor::from_vec(vec![1], vec![4.0f32]).unwrap())
            .unwrap();
        assert_eq!(p.compute()[0].to_f32(), 4.0);
    }

    /// The public gradient tensor is a copy made on demand; it must follow every write, set and
    /// clear, and the in-place buffer a layer's product writes must be 64-byte aligned.
    #[test]
    fn grad_tensor_follows_every_write_and_the_buffer_is_aligned() {
        let mut p = Param::<F32>::new(Tensor::from_vec(vec![2, 3], vec![0.0f32; 6]).unwrap());
        assert!(p.grad().is_none());
        p.write_grad::<f32>(1.0, |g| g.fill(0.5));
        assert_eq!(p.grad().unwrap().as_slice(), &[0.5; 6]);
        assert_eq!(p.grad().unwrap().shape(), &[2, 3]);
        let ptr = p.grad_slice().unwrap().as_ptr();
        assert!((ptr as usize).is_multiple_of(64));
        p.write_grad::<f32>(1.0, |g| g.fill(-1.0));
        assert_eq!(
            p.grad_slice().unwrap().as_ptr(),
            ptr,
            "the buffer is reused"
        );
        assert_eq!(p.grad().unwrap().as_slice(), &[-1.0; 6]);
        let t = Tensor::from_vec(vec![2, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        p.set_grad(t.clone()).unwrap();
        assert_eq!(p.grad(), Some(&t));
        assert_eq!(p.grad_slice().unwrap(), t.as_slice());
        assert!((p.grad_slice().unwrap().as_ptr() as usize).is_multiple_of(64));
        let q = p.clone();
        assert_eq!(q.grad(), Some(&t));
        p.clear_grad();
        assert!(p.grad().is_none() && p.grad_slice().is_none());
        p.write_grad::<f32>(1.0, |g| g.fill(2.0));
        assert_eq!(p.grad().unwrap().as_slice(), &[2.0; 6]);
    }

    #[test]
    fn compute_borrows_master_when_types_match() {
        let p = Param::<F32>::new(Tensor::from_vec(vec![1], vec![1.0f32]).unwrap());
        assert_eq!(p.compute().as_ptr(), p.value().as_slice().as_ptr());
    }
}
