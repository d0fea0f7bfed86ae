//! [`Module`]: the mixed-precision plumbing every layer and model has: its variables with stable
//! names, visiting them (with their gradients) for optimizers, counting them, and converting the
//! whole model to another policy. `#[derive(Module)]` writes it for a struct of layers; the
//! built-in layers implement it by hand around their [`Param`]s, and tuples and `Vec`s of layers
//! implement it as sequential stacks.
//!
//! Every variable keeps its own policy, as every Keras layer has its own `DTypePolicy`: a model
//! can hold a `Dense<MixedBf16>` body and a `Dense<F32>` head. Visiting is therefore generic over
//! the variable's policy: a [`ParamVisitor`] has one generic method, which the compiler
//! instantiates once per policy the model holds, so an optimizer's element-wise loop runs in the
//! accumulator type of each variable with no run-time dispatch.
//!
//! The compute side (forward and backward passes) is [`Layer`](crate::layers::Layer).

use crate::error::{fmt_shape, Error, Result};
use crate::param::Param;
use crate::policy::{LossScaleBit, Policy};
use crate::tensor::Tensor;
use crate::DTypePolicy;

/// Generic code over each variable of a module, read-only: [`Module::visit_params`] calls
/// [`visit`](Self::visit) with the variable's path and the variable, in its own policy.
///
/// ```
/// use mixprec::prelude::*;
/// use mixprec::module::ParamVisitor;
/// use mixprec::param::Param;
///
/// /// Counts the bytes of every variable in its own variable type.
/// struct Bytes(usize);
/// impl ParamVisitor for Bytes {
///     fn visit<P: Policy>(&mut self, _name: &str, p: &Param<P>) {
///         self.0 += p.len() * P::VARIABLE_DTYPE.size_of();
///     }
/// }
/// let model = (Dense::<Bf16>::new(4, 8), Dense::<F32>::new(8, 2));
/// let mut bytes = Bytes(0);
/// model.visit_params("", &mut bytes);
/// assert_eq!(bytes.0, (4 * 8 + 8) * 2 + (8 * 2 + 2) * 4);
/// assert_eq!(bytes.0, model.variable_bytes());
/// ```
pub trait ParamVisitor {
    /// Called once per variable, in the module's fixed order.
    fn visit<P: Policy>(&mut self, name: &str, param: &Param<P>);
}

/// Generic code over each variable of a module, mutably: [`Module::visit_params_mut`] calls
/// [`visit`](Self::visit) with each variable in the same order as
/// [`visit_params`](Module::visit_params). Optimizers key their state by this order.
pub trait ParamVisitorMut {
    /// Called once per variable.
    fn visit<P: Policy>(&mut self, param: &mut Param<P>);
}

/// A layer or model whose variables live in [`Param`]s, each in its own policy.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a layer or model (it does not implement `Module`)",
    label = "not a layer",
    note = "in a `#[derive(Module)]` struct, every field without an attribute is a layer; mark configuration `#[module(skip)]` and transient state `#[module(reset)]`"
)]
pub trait Module {
    /// [`B1`](typenum::B1) when training must scale the loss: some variable's layer computes in
    /// float16. The OR of the parts' bits ([`Or`](crate::policy::Or)), so one `Dense<MixedF16>`
    /// among `Dense<F32>` layers makes the whole model need loss scaling, and a plain optimizer
    /// for it a compile error.
    type NeedsLossScale: LossScaleBit;
    /// The same module in policy `Q` (`Dense<P>` ↦ `Dense<Q>`). Parts whose policy is fixed by
    /// their type (`head: Dense<F32>` in a derived `Net<P>`) keep it.
    type At<Q: Policy>: Module;

    /// Calls `visitor` with each variable's name (`prefix` joined with the path:
    /// `hidden.kernel`) and the variable, in a fixed order.
    fn visit_params<V: ParamVisitor>(&self, prefix: &str, visitor: &mut V);

    /// Calls `visitor` with each variable, mutably, in the same order as
    /// [`visit_params`](Self::visit_params).
    fn visit_params_mut<V: ParamVisitorMut>(&mut self, visitor: &mut V);

    /// The same module with every variable whose policy follows the module's parameter cast to
    /// `Q::Variable` (gradients and saved activations are not carried over).
    fn to_policy<Q: Policy>(&self) -> Self::At<Q>;

    /// Whether training this value must scale the loss: some layer it holds computes in
    /// float16. By default the type's answer, [`NeedsLossScale`](Self::NeedsLossScale); tuples
    /// and `Vec`s OR their parts' answers, and a model whose layers' policies are chosen at run
    /// time ([`LayeredMlp`](crate::models::LayeredMlp), whose bit is `B1` because it *may* hold
    /// a float16 layer) answers from the layers it does hold. The type's bit decides at compile
    /// time which optimizers may train the model; this value decides at run time whether
    /// [`AutoOptimizer::for_model`](crate::optimizers::AutoOptimizer::for_model) wraps the
    /// optimizer. It is never true where the bit is `B0`.
    fn needs_loss_scale(&self) -> bool {
        <Self::NeedsLossScale as typenum::Bit>::BOOL
    }

    /// Number of scalars in all variables.
    fn param_count(&self) -> usize {
        self.variables().iter().map(|v| v.len()).sum()
    }

    /// Bytes held by all variables, each in its own variable type.
    fn variable_bytes(&self) -> usize {
        self.variables()
            .iter()
            .map(|v| v.len() * v.dtype.size_of())
            .sum()
    }

    /// Every variable's name, in visiting order.
    fn param_names(&self) -> Vec<String> {
        self.variables().into_iter().map(|v| v.name).collect()
    }

    /// Every variable's value widened to f64 (exact), in visiting order: Keras's `get_weights`.
    ///
    /// ```
    /// use mixprec::prelude::*;
    /// let mut model = (Dense::<Bf16>::new(2, 2), Dense::<F32>::new(2, 1));
    /// let mut w = model.get_weights();
    /// w[1] = Tensor::from_vec(vec![2], vec![0.5, 1.0 / 3.0])?; // the first bias
    /// model.set_weights(&w)?;
    /// // Rounded once to the bias's variable type, bf16: 1/3 becomes 0.333984375.
    /// assert_eq!(model.get_weights()[1].as_slice(), &[0.5, 0.333984375]);
    /// assert!(model.set_weights(&w[..3]).is_err()); // one tensor per variable
    /// # Ok::<(), mixprec::Error>(())
    /// ```
    fn get_weights(&self) -> Vec<Tensor<f64>> {
        struct Get(Vec<Tensor<f64>>);
        impl ParamVisitor for Get {
            fn visit<P: Policy>(&mut self, _: &str, p: &Param<P>) {
                self.0.push(p.value().cast());
            }
        }
        let mut get = Get(Vec::new());
        self.visit_params("", &mut get);
        get.0
    }

    /// Sets every variable from `weights` (one tensor per variable, in visiting order, as
    /// [`get_weights`](Self::get_weights) returns them), each rounded once to its variable type:
    /// Keras's `set_weights`. All or nothing: every count, shape and value is checked before any
    /// variable changes.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidArgument`] for another number of tensors, or a value that is not finite in
    /// its variable type (NaN, infinity, or beyond 65504 for a float16 variable);
    /// [`Error::ShapeMismatch`] for a tensor of another shape. The model is then unchanged.
    fn set_weights(&mut self, weights: &[Tensor<f64>]) -> Result<()> {
        let vars = self.variables();
        if weights.len() != vars.len() {
            return Err(Error::InvalidArgument {
                what: "weights",
                found: format!("{} tensors", weights.len()),
                expected: "one tensor per variable, in the order of get_weights",
            });
        }
        for (v, w) in vars.iter().zip(weights) {
            if w.shape() != v.shape.as_slice() {
                let expected = format!("{} {}", v.name, fmt_shape(&v.shape));
                return Err(Error::shape("weight", expected, w.shape()));
            }
            let max = v.dtype.max_finite();
            if let Some(i) = w
                .as_slice()
                .iter()
                .position(|x| x.is_nan() || x.abs() > max)
            {
                return Err(Error::InvalidArgument {
                    what: "weights",
                    found: format!("{} at index {i} of {}", w.as_slice()[i], v.name),
                    expected: "finite values within the variable type's range",
                });
            }
        }
        struct Set<'a>(std::slice::Iter<'a, Tensor<f64>>);
        impl ParamVisitorMut for Set<'_> {
            fn visit<P: Policy>(&mut self, p: &mut Param<P>) {
                let w = self.0.next().expect("counted above");
                p.set(w.cast()).expect("shapes checked above");
            }
        }
        self.visit_params_mut(&mut Set(weights.iter()));
        Ok(())
    }

    /// Every variable's name, shape and policy, in visiting order.
    ///
    /// ```
    /// use mixprec::prelude::*;
    /// let model = (Dense::<MixedBf16>::new(4, 8), Dense::<F32>::new(8, 2));
    /// let policies: Vec<_> = model.variables().iter().map(|v| (v.name.clone(), v.policy)).collect();
    /// assert_eq!(policies[0], ("0.kernel".to_string(), DTypePolicy::MixedBFloat16));
    /// assert_eq!(policies[3], ("1.bias".to_string(), DTypePolicy::Float32));
    /// ```
    fn variables(&self) -> Vec<VariableInfo> {
        struct Collect(Vec<VariableInfo>);
        impl ParamVisitor for Collect {
            fn visit<P: Policy>(&mut self, name: &str, p: &Param<P>) {
                self.0.push(VariableInfo {
                    name: name.to_string(),
                    shape: p.shape().to_vec(),
                    policy: p.layer_policy(),
                    dtype: P::VARIABLE_DTYPE,
                    trainable: p.is_trainable(),
                });
            }
        }
        let mut c = Collect(Vec::new());
        self.visit_params("", &mut c);
        c.0
    }
}

/// What [`Module::variables`] reports for one variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VariableInfo {
    /// The path (`hidden.kernel`).
    pub name: String,
    /// The shape.
    pub shape: Vec<usize>,
    /// The policy of the layer that owns it.
    pub policy: DTypePolicy,
    /// The type it is stored in: its policy's variable type, except for a statistic
    /// ([`Param::statistic`]), stored in the accumulator type (float32 in a bfloat16 layer).
    pub dtype: crate::DType,
    /// False for a variable optimizers do not train ([`Param::non_trainable`]).
    pub trainable: bool,
}

impl VariableInfo {
    /// Number of scalars.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// True for a variable without elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path of the layer that owns it: the name without its last component (`hidden` for
    /// `hidden.kernel`, `body.0` for `body.0.bias`, `""` for a lone layer's `kernel`). The key of
    /// the layer in a checkpoint's [`DTypePolicyMap`](crate::DTypePolicyMap).
    pub fn layer(&self) -> &str {
        layer_path(&self.name)
    }
}

/// The layer path of the variable called `name` (see [`VariableInfo::layer`]).
///
/// ```
/// assert_eq!(mixprec::module::layer_path("body.0.kernel"), "body.0");
/// assert_eq!(mixprec::module::layer_path("bias"), "");
/// ```
pub fn layer_path(name: &str) -> &str {
    name.rsplit_once('.').map_or("", |(layer, _)| layer)
}

/// A copy of a part whose policy is fixed by its type (`head: Dense<F32>` in a derived `Net<P>`),
/// for [`Module::to_policy`]: the variables as they are, without their gradients. What
/// `#[derive(Module)]` writes for such a field.
pub fn fixed_policy_copy<M: Module + Clone>(part: &M) -> M {
    struct ClearGrads;
    impl ParamVisitorMut for ClearGrads {
        fn visit<P: Policy>(&mut self, p: &mut Param<P>) {
            p.clear_grad();
        }
    }
    let mut copy = part.clone();
    copy.visit_params_mut(&mut ClearGrads);
    copy
}

/// `prefix.name`, or `name` when the prefix is empty: how variable paths are built.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
