//! [`Dense`]: `y = activation(x·W + b)`, Keras's `Dense` with its policy as a type parameter,
//! with its training pass and backward pass.

use std::marker::PhantomData;

use rayon::prelude::*;

use crate::dtype::{cast_cow, cast_slice, cast_to_vec, cast_vec, Element};
use crate::error::{fmt_shape, Error, Result};
use crate::init::glorot_uniform;
use crate::kernels::{gemm_packed, MatRef};
use crate::layers::dispatch::{ByPolicy, FamilyBuilder, PolicyFamily};
use crate::layers::Activation;
use crate::param::Param;
use crate::policy::{DefaultPolicy, Policy};
use crate::tensor::Tensor;
use crate::Module;
use crate::{global_policy, DTypePolicy};

/// The accumulator type of policy `P`: f32, or f64 for `F64`.
type AccOf<P> = <<P as Policy>::Compute as Element>::Acc;

mod train;

/// The seed [`Dense::new`] initialises with; [`Dense::with_seed`] picks another.
pub const DEFAULT_SEED: u64 = 0;

/// A densely connected layer: `y = activation(x·W + b)`.
///
/// - `kernel` `W`: shape `[input_dim, units]`, stored in `P::Variable`, initialised Glorot
///   uniform `U(-k, k)` with `k = sqrt(6 / (input_dim + units))` (Keras's default).
/// - `bias` `b`: shape `[units]`, stored in `P::Variable`, initialised to zeros; optional.
/// - Forward: `x` and the variables are read in `P::Compute`; products are summed in
///   `<P::Compute as Element>::Acc` (f32; f64 for `F64`) together with the bias and the
///   activation, and the result is rounded once to `P::Compute`.
/// - Backward: `dW = xᵀ·dz` and `db = Σ dz` accumulated in f32 from compute-type operands and
///   stored in `P::Variable`; `dx = dz·Wᵀ` rounded once to `P::Compute`. The training pass saves
///   `x` and, for a non-linear activation, `y`, both in the compute type.
///
/// ```
/// use mixprec::prelude::*;
/// let w = Tensor::from_vec(vec![2, 3], vec![1.0f32, 0.0, -1.0, 0.5, 2.0, 0.0])?;
/// let b = Tensor::from_vec(vec![3], vec![0.0f32, 1.0, 0.0])?;
/// let dense = Dense::<MixedBf16>::from_weights(w, Some(b))?.with_activation(Activation::Relu);
/// let x = Tensor::from_vec(vec![1, 2], vec![bf16::from_f32(2.0), bf16::from_f32(4.0)])?;
/// assert_eq!(dense.forward(&x).to_f64_vec(), vec![4.0, 9.0, 0.0]);
/// # Ok::<(), mixprec::Error>(())
/// ```
#[derive(Debug, Clone, Module)]
pub struct Dense<P: Policy = DefaultPolicy> {
    #[module(param)]
    kernel: Param<P>,
    #[module(param)]
    bias: Option<Param<P>>,
    #[module(skip)]
    activation: Activation,
    #[module(reset)]
    saved: Option<Saved<P>>,
    #[module(reset)]
    scratch: Scratch<P>,
    #[module(reset)]
    _policy: PhantomData<P>,
}

/// The accumulator buffers of the training passes, kept between steps when the compute type is
/// 16-bit (F16, Bf16, MixedF16, MixedBf16): the product kernels overwrite them, so reusing them
/// saves allocating, zeroing and faulting in a fresh `rows × units` (forward) and
/// `rows × input_dim` (backward) f32 buffer per step. For F32 and F64 the accumulator *is* the
/// output (`round_acc` moves it out), so these stay empty. Cloning a layer does not copy them.
struct Scratch<P: Policy> {
    forward: Vec<AccOf<P>>,
    backward: Vec<AccOf<P>>,
}

impl<P: Policy> Default for Scratch<P> {
    fn default() -> Self {
        Scratch {
            forward: Vec::new(),
            backward: Vec::new(),
        }
    }
}

impl<P: Policy> Clone for Scratch<P> {
    fn clone(&self) -> Self {
        Scratch::default()
    }
}

impl<P: Policy> std::fmt::Debug for Scratch<P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scratch")
            .field("forward", &self.forward.len())
            .field("backward", &self.backward.len())
            .finish()
    }
}

/// Rows per parallel task in Dense's element-wise passes over `rows × n` matrices: about 32 Ki
/// elements, a fixed split (independent of the thread count) so sums are reproducible.
pub(crate) fn rows_per_task(n: usize) -> usize {
    ((1 << 15) / n.max(1)).max(1)
}

thread_local! {
    /// The f32 accumulator of inference passes whose output is not f32 (the 16-bit compute
    /// types), kept per thread between calls: a fresh `rows × units` buffer per call cost a page
    /// fault per 4 KiB (about a quarter of a 1024 × 1024 × 1024 MixedBf16 forward pass). It is
    /// as large as the largest such pass this thread ran.
    static INFER_ACC: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with an accumulator buffer for an inference pass: the thread's reused f32 buffer
/// when the accumulator is f32 but the output is not (so the buffer is not given away), a new
/// vector otherwise.
fn with_acc<P: Policy, R>(f: impl FnOnce(&mut Vec<AccOf<P>>) -> R) -> R {
    use crate::dtype::VecOf;
    let reuse = AccOf::<P>::DTYPE == crate::dtype::DType::Float32
        && P::COMPUTE_DTYPE != crate::dtype::DType::Float32;
    if !reuse {
        return f(&mut Vec::new());
    }
    let buf = INFER_ACC.with(|c| c.take());
    let mut acc = AccOf::<P>::from_vec_of(VecOf::F32(buf)).unwrap_or_default();
    let out = f(&mut acc);
    if let VecOf::F32(buf) = AccOf::<P>::into_vec_of(acc) {
        INFER_ACC.with(|c| *c.borrow_mut() = buf);
    }
    out
}

/// The accumulator rounded once to the compute type: the buffer itself when the types agree
/// (F32, F64), a converted copy otherwise (the buffer is left for reuse).
fn round_acc<P: Policy>(acc: &mut Vec<AccOf<P>>) -> Vec<P::Compute> {
    if P::COMPUTE_DTYPE == AccOf::<P>::DTYPE {
        cast_vec(std::mem::take(acc))
    } else {
        cast_to_vec(acc)
    }
}

/// What the training pass keeps for the backward pass, in the compute type.
#[derive(Debug, Clone)]
struct Saved<P: Policy> {
    /// The input, `rows × input_dim`.
    x: Tensor<P::Compute>,
    /// The output, kept only when the activation's derivative needs it.
    y: Option<Tensor<P::Compute>>,
}

impl<P: Policy> PartialEq for Dense<P> {
    /// Equal variables and activation; saved activations and gradients are transient.
    fn eq(&self, other: &Self) -> bool {
        self.kernel == other.kernel
            && self.bias == other.bias
            && self.activation == other.activation
    }
}

impl<P: Policy> Dense<P> {
    /// A layer mapping `input_dim` features to `units`, Glorot-uniform kernel from
    /// [`DEFAULT_SEED`], zero bias, linear activation.
    ///
    /// # Panics
    ///
    /// If `input_dim` or `units` is zero, or their product overflows; [`try_new`](Self::try_new)
    /// returns that as an error instead.
    pub fn new(input_dim: usize, units: usize) -> Self {
        Self::try_new(input_dim, units).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`new`](Self::new), with bad sizes as an error.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] if `input_dim` or `units` is zero; [`Error::TooLarge`] if the
    /// kernel would need more than [`MAX_ALLOCATION_BYTES`](crate::tensor::MAX_ALLOCATION_BYTES)
    /// (an overflowing size included), [`Error::AllocationFailed`] if the system refuses it.
    /// Nothing is allocated before these checks.
    pub fn try_new(input_dim: usize, units: usize) -> Result<Self> {
        for (what, v) in [("input_dim", input_dim), ("units", units)] {
            if v == 0 {
                return Err(Error::InvalidArgument {
                    what,
                    found: "0".into(),
                    expected: "at least 1",
                });
            }
        }
        Self::try_init(input_dim, units, DEFAULT_SEED, true, Activation::Linear)
    }

    fn try_init(
        input_dim: usize,
        units: usize,
        seed: u64,
        use_bias: bool,
        act: Activation,
    ) -> Result<Self> {
        let kernel = Tensor::from_parts(
            vec![input_dim, units],
            glorot_uniform(input_dim, units, seed)?,
        );
        Ok(Dense {
            kernel: Param::new(kernel),
            bias: use_bias.then(|| Self::zero_bias(units)),
            activation: act,
            saved: None,
            scratch: Scratch::default(),
            _policy: PhantomData,
        })
    }

    fn zero_bias(units: usize) -> Param<P> {
        Param::new(Tensor::from_parts(
            vec![units],
            vec![P::Variable::default(); units],
        ))
    }

    /// A layer with the given weights, cast to `P::Variable` (rounded to nearest-even).
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] if `kernel` is not `[input_dim, units]` with both at least 1, or
    /// `bias` is not `[units]`.
    pub fn from_weights(kernel: Tensor<f32>, bias: Option<Tensor<f32>>) -> Result<Self> {
        let units = match *kernel.shape() {
            [i, u] if i > 0 && u > 0 => u,
            _ => {
                let expected = "[input_dim, units] with both >= 1".to_string();
                return Err(Error::shape("kernel", expected, kernel.shape()));
            }
        };
        if let Some(b) = &bias {
            if b.shape() != [units] {
                return Err(Error::shape("bias", fmt_shape(&[units]), b.shape()));
            }
        }
        Ok(Dense {
            kernel: Param::new(kernel.into_cast()),
            bias: bias.map(|b| Param::new(b.into_cast())),
            activation: Activation::Linear,
            saved: None,
            scratch: Scratch::default(),
            _policy: PhantomData,
        })
    }

    /// Re-initialises the kernel from `seed` (Glorot uniform) and the bias to zeros.
    ///
    /// # Panics
    ///
    /// Only if a kernel of this layer's size cannot be allocated again (a layer from
    /// [`from_weights`](Self::from_weights) beyond
    /// [`MAX_ALLOCATION_BYTES`](crate::tensor::MAX_ALLOCATION_BYTES)); layers from
    /// [`try_new`](Self::try_new) were checked.
    pub fn with_seed(self, seed: u64) -> Self {
        let (input_dim, units, use_bias) = (self.input_dim(), self.units(), self.bias.is_some());
        drop(self.kernel);
        Self::try_init(input_dim, units, seed, use_bias, self.activation)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sets the activation.
    pub fn with_activation(self, activation: Activation) -> Self {
        Dense { activation, ..self }
    }

    /// Drops the bias (`use_bias=False`) or adds a zero one.
    pub fn with_bias(self, use_bias: bool) -> Self {
        let units = self.units();
        let bias = match (use_bias, self.bias) {
            (true, Some(b)) => Some(b),
            (true, None) => Some(Self::zero_bias(units)),
            (false, _) => None,
        };
        Dense { bias, ..self }
    }

    /// Input features.
    pub fn input_dim(&self) -> usize {
        self.kernel.shape()[0]
    }

    /// Output features.
    pub fn units(&self) -> usize {
        self.kernel.shape()[1]
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// The kernel, `[input_dim, units]`, in the variable type.
    pub fn kernel(&self) -> &Tensor<P::Variable> {
        self.kernel.value()
    }

    /// The bias, `[units]`, in the variable type.
    pub fn bias(&self) -> Option<&Tensor<P::Variable>> {
        self.bias.as_ref().map(Param::value)
    }

    /// The kernel variable (value, gradient, compute copy).
    pub fn kernel_param(&self) -> &Param<P> {
        &self.kernel
    }

    /// The bias variable.
    pub fn bias_param(&self) -> Option<&Param<P>> {
        self.bias.as_ref()
    }

    /// The kernel in the compute type: the master value when `Variable == Compute`, otherwise a
    /// copy converted once and cached until the next update.
    pub fn kernel_compute(&self) -> &[P::Compute] {
        self.kernel.compute()
    }

    /// `activation(x·W + b)` for `x` of shape `[.., input_dim]`; the result has shape
    /// `[.., units]`.
    ///
    /// # Panics
    ///
    /// If `x`'s last dimension is not `input_dim` (the message names both shapes);
    /// [`try_forward`](Self::try_forward) returns that as an error instead.
    pub fn forward(&self, x: &Tensor<P::Compute>) -> Tensor<P::Compute> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`forward`](Self::forward), with a wrong input shape as an error.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., input_dim]`.
    pub fn try_forward(&self, x: &Tensor<P::Compute>) -> Result<Tensor<P::Compute>> {
        let rows = self.check_input(x.shape())?;
        let y = with_acc::<P, _>(|acc| self.forward_out(x.as_slice(), rows, acc));
        Ok(self.output(x.shape(), y))
    }

    /// Keras's `layer(x)`: casts `x` (any float type) to the compute type, then
    /// [`forward`](Self::forward). A cast to the same type is free.
    ///
    /// # Panics
    ///
    /// As [`forward`](Self::forward); [`try_call`](Self::try_call) returns an error instead.
    pub fn call<T: Element>(&self, x: &Tensor<T>) -> Tensor<P::Compute> {
        self.try_call(x).unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`call`](Self::call), with a wrong input shape as an error.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., input_dim]`.
    pub fn try_call<T: Element>(&self, x: &Tensor<T>) -> Result<Tensor<P::Compute>> {
        let rows = self.check_input(x.shape())?;
        let xc = cast_cow::<T, P::Compute>(x.as_slice());
        let y = with_acc::<P, _>(|acc| self.forward_out(&xc, rows, acc));
        Ok(self.output(x.shape(), y))
    }

    /// Checks `[.., input_dim]` and returns the number of rows.
    fn check_input(&self, shape: &[usize]) -> Result<usize> {
        match shape.split_last() {
            Some((&last, lead)) if last == self.input_dim() => Ok(lead.iter().product()),
            _ => Err(Error::shape(
                "dense input",
                format!("[.., {}]", self.input_dim()),
                shape,
            )),
        }
    }

    /// The output values under the input's leading dimensions.
    fn output(&self, in_shape: &[usize], y: Vec<P::Compute>) -> Tensor<P::Compute> {
        let mut shape = in_shape.to_vec();
        *shape.last_mut().expect("checked: rank >= 1") = self.units();
        Tensor::from_parts(shape, y)
    }

    /// `activation(x·W + b)`, `rows × units`, row-major, in the compute type. The product is
    /// summed into `acc` (resized; its old values are overwritten, never read), which becomes
    /// the output when the compute type is the accumulator type (F32, F64) and is kept for reuse
    /// otherwise.
    fn forward_out(
        &self,
        x: &[P::Compute],
        rows: usize,
        acc: &mut Vec<AccOf<P>>,
    ) -> Vec<P::Compute> {
        let (k, n) = (self.input_dim(), self.units());
        acc.resize(rows * n, AccOf::<P>::default());
        // The kernel, packed once for the selected matrix kernel and cached until it changes.
        let w = self.kernel.packed(false);
        gemm_packed(MatRef::row_major(x, rows, k), w, acc, false);
        // The bias is read in the compute type (as Keras reads every variable), widened once.
        let bias = self
            .bias
            .as_ref()
            .map(|b| cast_to_vec::<_, AccOf<P>>(b.compute()));
        let activation = self.activation;
        let elementwise = bias.is_some() || activation != Activation::Linear;
        if P::COMPUTE_DTYPE == AccOf::<P>::DTYPE {
            // The accumulator is the output: bias and activation in place, in one pass.
            if elementwise {
                acc.par_chunks_mut(rows_per_task(n) * n).for_each(|acc| {
                    crate::kernels::wide(BiasActivation {
                        acc,
                        bias: bias.as_deref(),
                        activation,
                    })
                });
            }
            return round_acc::<P>(acc);
        }
        if !elementwise {
            return round_acc::<P>(acc);
        }
        // A 16-bit output: bias, activation and the one rounding in a single parallel pass that
        // writes the output once (the accumulator is only read).
        let acc: &[AccOf<P>] = acc;
        crate::kernels::par_collect(acc.len(), |range, out| {
            let mut tmp = [AccOf::<P>::default(); crate::kernels::COLLECT_CHUNK];
            let (src, tmp) = (&acc[range.clone()], &mut tmp[..range.len()]);
            tmp.copy_from_slice(src);
            bias_activation_from(tmp, range.start % n, n, bias.as_deref(), activation);
            cast_slice(tmp, out);
        })
    }
}

/// [`BiasActivation`] over a run of a row-major `? × n` accumulator that starts at column `col`
/// (not necessarily at a row's start).
fn bias_activation_from<A: Element>(
    mut acc: &mut [A],
    mut col: usize,
    n: usize,
    bias: Option<&[A]>,
    activation: Activation,
) {
    let Some(bias) = bias else {
        crate::kernels::wide(BiasActivation {
            acc,
            bias: None,
            activation,
        });
        return;
    };
    while !acc.is_empty() {
        // A partial row up to the next row start, or as many whole rows as remain.
        let len = if col == 0 && acc.len() >= n {
            acc.len() / n * n
        } else {
            (n - col).min(acc.len())
        };
        let (head, rest) = acc.split_at_mut(len);
        let b = if col == 0 && len >= n {
            bias
        } else {
            &bias[col..col + len]
        };
        crate::kernels::wide(BiasActivation {
            acc: head,
            bias: Some(b),
            activation,
        });
        acc = rest;
        col = (col + len) % n;
    }
}

/// `acc[r][j] = activation(acc[r][j] + bias[j])` over a row-major accumulator, in wide lanes.
struct BiasActivation<'a, A> {
    acc: &'a mut [A],
    bias: Option<&'a [A]>,
    activation: Activation,
}

impl<A: Element> crate::kernels::WideOp for BiasActivation<'_, A> {
    type Output = ();

    #[inline(always)]
    fn run(self) {
        fn rows<A: Element>(acc: &mut [A], bias: Option<&[A]>, f: impl Fn(A) -> A) {
            match bias {
                Some(b) => acc
                    .chunks_exact_mut(b.len())
                    .for_each(|row| row.iter_mut().zip(b).for_each(|(y, &b)| *y = f(*y + b))),
                None => acc.iter_mut().for_each(|y| *y = f(*y)),
            }
        }
        let (acc, bias) = (self.acc, self.bias);
        // One loop per activation, so each compiles to straight-line lanes.
        match self.activation {
            Activation::Linear => rows(acc, bias, |y| y),
            Activation::Relu => rows(acc, bias, |y| Activation::Relu.apply(y)),
            Activation::Sigmoid => rows(acc, bias, |y| Activation::Sigmoid.apply(y)),
            Activation::Tanh => rows(acc, bias, |y| Activation::Tanh.apply(y)),
        }
    }
}

/// The family `P ↦ Dense<P>`, for [`ByPolicy`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DenseFamily;

impl PolicyFamily for DenseFamily {
    type At<P: Policy> = Dense<P>;
}

/// A [`Dense`] whose policy was chosen at run time (from a string, a config, or the global
/// policy, read once at construction).
///
/// ```
/// use mixprec::prelude::*;
/// let dense = AnyDense::with_policy("mixed_float16".parse()?, 3, 2)?;
/// assert_eq!(dense.policy(), DTypePolicy::MixedFloat16);
/// let y = dense.call_f32(&Tensor::from_vec(vec![1, 3], vec![1.0f32, 2.0, 3.0])?)?;
/// assert_eq!(y.shape(), &[1, 2]);
/// # Ok::<(), mixprec::Error>(())
/// ```
pub type AnyDense = ByPolicy<DenseFamily>;

struct NewDense {
    input_dim: usize,
    units: usize,
}

impl FamilyBuilder<DenseFamily> for NewDense {
    type Error = Error;
    fn build<P: Policy>(self) -> Result<Dense<P>> {
        Dense::try_new(self.input_dim, self.units)
    }
}

impl AnyDense {
    /// A `Dense` in the current [`global_policy`] (read now; later changes do not affect it).
    ///
    /// # Errors
    ///
    /// As [`Dense::try_new`].
    pub fn new(input_dim: usize, units: usize) -> Result<Self> {
        Self::with_policy(global_policy(), input_dim, units)
    }

    /// A `Dense` in `policy`.
    ///
    /// # Errors
    ///
    /// As [`Dense::try_new`].
    pub fn with_policy(policy: DTypePolicy, input_dim: usize, units: usize) -> Result<Self> {
        ByPolicy::build(policy, NewDense { input_dim, units })
    }

    /// Casts `x` to the compute type, runs the typed forward pass, and widens the result to f32.
    ///
    /// # Errors
    ///
    /// [`Error::ShapeMismatch`] when `x` is not `[.., input_dim]`.
    pub fn call_f32(&self, x: &Tensor<f32>) -> Result<Tensor<f32>> {
        self.predict_f32(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Bf16, MixedBf16, F32, F64};
    use half::bf16;

    /// The 16-bit forward pass adds the bias, applies the activation and rounds in one pass over
    /// runs of the accumulator that start mid-row; every element must get its own column's bias
    /// and be rounded once: compared with the product plus a row-by-row epilogue, bit for bit.
    fn fused_epilogue_matches_row_by_row<P: Policy>() {
        for (rows, k, n) in [
            (300, 5, 37),
            (9, 3, 1000),
            (3, 4, 2049),
            (700, 2, 1),
            (5, 6, 7),
        ] {
            for act in [Activation::Linear, Activation::Relu, Activation::Tanh] {
                let mut d = Dense::<P>::new(k, n).with_seed(7).with_activation(act);
                let bias: Vec<f32> = (0..n).map(|j| (j % 13) as f32 * 0.37 - 2.0).collect();
                d.bias
                    .as_mut()
                    .unwrap()
                    .set(Tensor::from_vec(vec![n], bias).unwrap().cast())
                    .unwrap();
                let xv: Vec<f32> = (0..rows * k)
                    .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
                    .collect();
                let x: Tensor<P::Compute> = Tensor::from_vec(vec![rows, k], xv).unwrap().cast();
                let y = d.forward(&x);
                let mut acc = vec![AccOf::<P>::default(); rows * n];
                gemm_packed(
                    MatRef::row_major(x.as_slice(), rows, k),
                    d.kernel.packed(false),
                    &mut acc,
                    false,
                );
                let bias: Vec<AccOf<P>> = cast_to_vec(d.bias.as_ref().unwrap().compute());
                for (i, (&a, &got)) in acc.iter().zip(y.as_slice()).enumerate() {
                    let want =
                        <P::Compute as Element>::from_f64_rne(act.apply(a + bias[i % n]).as_f64());
                    assert!(
                        want.as_f64().to_bits() == got.as_f64().to_bits(),
                        "{} {rows}x{k}x{n} {act:?} element {i}: {got:?} != {want:?}",
                        P::NAME
                    );
                }
            }
        }
    }

    #[test]
    fn fused_epilogue_matches_row_by_row_in_16_bit_policies() {
        fused_epilogue_matches_row_by_row::<MixedBf16>();
        fused_epilogue_matches_row_by_row::<crate::policy::MixedF16>();
        fused_epilogue_matches_row_by_row::<Bf16>();
        fused_epilogue_matches_row_by_row::<F32>();
    }

    #[test]
    fn forward_rejects_wrong_shape_and_names_both() {
        let d = Dense::<F32>::new(4, 2);
        let x = Tensor::<f32>::zeros(vec![3, 5]).unwrap();
        let err = d.try_forward(&x).unwrap_err();
        assert_eq!(
            err.to_string(),
            "shape mismatch in dense input: expected [.., 4], found [3, 5]"
        );
        let scalar = Tensor::<f32>::from_vec(vec![], vec![1.0]).unwrap();
        assert!(d.try_forward(&scalar).is_err());
    }

    #[test]
    fn forward_accepts_leading_dimensions() {
        let d = Dense::<F64>::new(3, 2).with_seed(3);
        let x = Tensor::from_vec(vec![2, 2, 3], (0..12).map(f64::from).collect()).unwrap();
        let y = d.forward(&x);
        assert_eq!(y.shape(), &[2, 2, 2]);
        let flat = d.forward(&x.clone().reshape(vec![4, 3]).unwrap());
        assert_eq!(y.as_slice(), flat.as_slice());
    }

    #[test]
    fn from_weights_rejects_bad_shapes() {
        let k = Tensor::from_vec(vec![2, 3], vec![0f32; 6]).unwrap();
        let bad_bias = Tensor::from_vec(vec![2], vec![0f32; 2]).unwrap();
        let err = Dense::<F32>::from_weights(k, Some(bad_bias)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "shape mismatch in bias: expected [3], found [2]"
        );
        let flat = Tensor::from_vec(vec![6], vec![0f32; 6]).unwrap();
        assert!(Dense::<F32>::from_weights(flat, None).is_err());
        let empty = Tensor::from_vec(vec![0, 3], vec![]).unwrap();
        assert!(Dense::<F32>::from_weights(empty, None).is_err());
    }

    #[test]
    fn try_new_rejects_zero_units() {
        let err = Dense::<F32>::try_new(4, 0).unwrap_err();
        assert_eq!(err.to_string(), "invalid units: 0 (at least 1)");
    }

    #[test]
    fn kernel_compute_borrows_when_types_match() {
        fn shares<P: Policy>(d: &Dense<P>) -> bool {
            d.kernel_compute().as_ptr().cast::<u8>() == d.kernel().as_slice().as_ptr().cast::<u8>()
        }
        assert!(shares(&Dense::<F32>::new(2, 2)));
        assert!(shares(&Dense::<Bf16>::new(2, 2)));
        assert!(!shares(&Dense::<MixedBf16>::new(2, 2)));
    }

    #[test]
    fn mixed_bf16_stores_f32_and_rounds_once() {
        // kernel 1 + 2^-9 rounds to 1 in bf16; x = 1; bias 2^-9 rounds to itself.
        let k = Tensor::from_vec(vec![1, 1], vec![1.0 + 2f32.powi(-9)]).unwrap();
        let b = Tensor::from_vec(vec![1], vec![2f32.powi(-9)]).unwrap();
        let d = Dense::<MixedBf16>::from_weights(k, Some(b)).unwrap();
        assert_eq!(d.kernel().as_slice(), &[1.0 + 2f32.powi(-9)]); // master copy exact
        let x = Tensor::from_vec(vec![1, 1], vec![bf16::ONE]).unwrap();
        // f32 sum 1 + 2^-9, rounded once to bf16: 1 (a tie would go to even; this is below it).
        assert_eq!(d.forward(&x).as_slice(), &[bf16::ONE]);
    }
}
