//! Skip connections: [`Residual<L>`] (`y = x + L(x)`, a layer of a sequential stack) and
//! [`Add`], Keras's merge layer for tensors of one shape. Both add in f64 and round once, so
//! the sum of a 16-bit stream and a branch of another type is the correctly rounded sum.

use std::marker::PhantomData;

use crate::dtype::Element;
use crate::error::{fmt_shape, Error, Result};
use crate::layers::ops::saved::{Geometry, Saved};
use crate::layers::Layer;
use crate::module::{Module, ParamVisitor, ParamVisitorMut};
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;

/// `a + b` element-wise (`b` of any float type), formed in f64 and rounded once to `T`: the
/// correctly rounded sum (an f64 sum of two values of at most 24 significant bits, rounded once
/// more to a type of at most 24 bits, is innocuous double rounding).
pub(crate) fn add_round<T: Element, U: Element>(a: &[T], b: &[U]) -> Vec<T> {
    crate::kernels::par_collect(a.len(), |range, out| {
        for ((o, x), y) in out.iter_mut().zip(&a[range.clone()]).zip(&b[range]) {
            *o = T::from_f64_rne(x.as_f64() + y.as_f64());
        }
    })
}

/// Keras's `Add` merge layer: the element-wise sum of tensors of one shape, each cast to the
/// compute type first (as Keras's merge layers cast their inputs), summed in f64 and rounded
/// once. Its gradient is the output gradient itself for every input.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::Add;
/// let a = Tensor::from_vec(vec![2], vec![1.0f32, 2.0])?;
/// let b = Tensor::from_vec(vec![2], vec![bf16::from_f32(0.5), bf16::from_f32(-2.0)])?;
/// let y = Add::<MixedBf16>::new().call(&a, &b)?;
/// assert_eq!(y.to_f64_vec(), vec![1.5, 0.0]);
/// assert!(Add::<F32>::new().call(&a, &Tensor::<f32>::zeros(vec![3])?).is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Add<P: Policy = DefaultPolicy> {
    _policy: PhantomData<P>,
}

impl<P: Policy> Add<P> {
    /// The layer.
    pub fn new() -> Self {
        Add {
            _policy: PhantomData,
        }
    }

    /// `a + b` in the compute type, rounded once.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when the shapes differ (Keras's `Add` does not broadcast the
    /// batch either).
    pub fn call<A: Element, B: Element>(
        &self,
        a: &Tensor<A>,
        b: &Tensor<B>,
    ) -> Result<Tensor<P::Compute>> {
        if a.shape() != b.shape() {
            return Err(Error::shape("Add input", fmt_shape(a.shape()), b.shape()));
        }
        let a = a.cast_ref::<P::Compute>();
        Ok(Tensor::from_parts(
            a.shape().to_vec(),
            add_round(a.as_slice(), b.as_slice()),
        ))
    }
}

/// A residual block: `y = x + L(x)`, the skip connection of ResNets and transformers, as one
/// layer of a sequential stack. The stream keeps its type: the branch's output
/// (`L::Output`, which may differ, as a bf16 block with an f32 tail) is cast at the join, added
/// in f64 and rounded once to `L::Input`. In the backward pass the output gradient flows both
/// ways: cast to `L::Output` into the branch, and added (again rounded once) to the branch's
/// input gradient.
///
/// The branch's variables keep their names (a `Residual` adds no path component), and its
/// policy decides loss scaling as it would alone.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::layers::Residual;
/// let block = Residual::new(Dense::<MixedBf16>::new(8, 8).with_activation(Activation::Relu));
/// let model = (Dense::<MixedBf16>::new(4, 8), block, Dense::<F32>::new(8, 3));
/// assert_eq!(model.param_names()[2], "1.kernel");
/// let y = model.infer(&Tensor::zeros(vec![2, 4])?)?;
/// assert_eq!(y.shape(), &[2, 3]);
/// // A branch that changes the width cannot be added to its input.
/// let bad = Residual::new(Dense::<F32>::new(4, 5));
/// assert!(bad.infer(&Tensor::zeros(vec![1, 4])?).is_err());
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct Residual<L> {
    branch: L,
    /// The output shape of the last training pass.
    saved: Saved<Geometry<Vec<usize>>>,
}

impl<L: PartialEq> PartialEq for Residual<L> {
    /// Equal branches (what is saved for backward is transient).
    fn eq(&self, other: &Self) -> bool {
        self.branch == other.branch
    }
}

impl<L> Residual<L> {
    /// `x + branch(x)`.
    pub fn new(branch: L) -> Self {
        Residual {
            branch,
            saved: Saved::default(),
        }
    }

    /// The branch.
    pub fn branch(&self) -> &L {
        &self.branch
    }

    /// The branch, mutably.
    pub fn branch_mut(&mut self) -> &mut L {
        &mut self.branch
    }
}

impl<L: Module> Module for Residual<L> {
    type NeedsLossScale = L::NeedsLossScale;
    type At<Q: Policy> = Residual<L::At<Q>>;

    fn visit_params<V: ParamVisitor>(&self, prefix: &str, visitor: &mut V) {
        self.branch.visit_params(prefix, visitor);
    }

    fn visit_params_mut<V: ParamVisitorMut>(&mut self, visitor: &mut V) {
        self.branch.visit_params_mut(visitor);
    }

    fn to_policy<Q: Policy>(&self) -> Self::At<Q> {
        Residual::new(self.branch.to_policy::<Q>())
    }

    fn needs_loss_scale(&self) -> bool {
        self.branch.needs_loss_scale()
    }
}

impl<L: Layer> Residual<L> {
    fn join(x: &Tensor<L::Input>, fx: &Tensor<L::Output>) -> Result<Tensor<L::Input>> {
        if fx.shape() != x.shape() {
            return Err(Error::shape(
                "Residual branch output (it must keep its input's shape)",
                fmt_shape(x.shape()),
                fx.shape(),
            ));
        }
        Ok(Tensor::from_parts(
            x.shape().to_vec(),
            add_round(x.as_slice(), fx.as_slice()),
        ))
    }
}

impl<L: Layer> Layer for Residual<L> {
    type Input = L::Input;
    type Output = L::Input;

    fn infer(&self, x: &Tensor<L::Input>) -> Result<Tensor<L::Input>> {
        Self::join(x, &self.branch.infer(x)?)
    }

    fn train_forward(&mut self, x: Tensor<L::Input>) -> Result<Tensor<L::Input>> {
        let fx = self.branch.train_forward(x.clone())?;
        let y = Self::join(&x, &fx).inspect_err(|_| self.branch.clear_saved())?;
        self.saved.save(Geometry(y.shape().to_vec()));
        Ok(y)
    }

    fn backward(
        &mut self,
        dy: Tensor<L::Input>,
        need_input_grad: bool,
    ) -> Result<Option<Tensor<L::Input>>> {
        let Geometry(shape) = self.saved.take("Residual")?;
        if dy.shape() != shape.as_slice() {
            self.branch.clear_saved();
            let expected = fmt_shape(&shape);
            return Err(Error::shape(
                "Residual output gradient",
                expected,
                dy.shape(),
            ));
        }
        let d_branch = self
            .branch
            .backward(dy.cast_ref::<L::Output>().into_owned(), need_input_grad)?;
        Ok(d_branch.map(|d| Tensor::from_parts(shape, add_round(dy.as_slice(), d.as_slice()))))
    }

    fn saved_bytes(&self) -> usize {
        self.branch.saved_bytes()
    }

    fn clear_saved(&mut self) {
        self.saved.clear();
        self.branch.clear_saved();
    }

    fn output_dim(&self, input: usize) -> Option<usize> {
        self.branch.output_dim(input).filter(|&d| d == input)
    }

    fn output_shape(&self, input: &[usize]) -> Option<Vec<usize>> {
        self.branch.output_shape(input).filter(|s| s == input)
    }
}
