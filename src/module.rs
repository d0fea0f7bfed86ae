//! [`Module`]: the mixed-precision plumbing every layer and model has: its variables with stable
//! names, visiting them (with their gradients) for optimizers, counting them, and converting the
//! whole model to another policy. `#[derive(Module)]` writes it for a struct of layers; the
//! built-in layers implement it by hand around their [`Param`]s, and tuples of layers implement it
//! as a sequential stack.
//!
//! The compute side (forward and backward passes) is [`Layer`](crate::layers::Layer).

use crate::param::Param;
use crate::policy::Policy;

/// A layer or model whose variables live in [`Param`]s of one policy.
pub trait Module {
    /// The policy of every variable.
    type Policy: Policy;
    /// The same module in policy `Q` (`Dense<P>` ↦ `Dense<Q>`).
    type At<Q: Policy>: Module<Policy = Q>;

    /// Calls `f` with each variable's name (`prefix` joined with the path: `hidden.kernel`) and
    /// the variable, in a fixed order.
    fn visit_params(&self, prefix: &str, f: &mut dyn FnMut(&str, &Param<Self::Policy>));

    /// Calls `f` with each variable, mutably, in the same order as
    /// [`visit_params`](Self::visit_params). Optimizers key their state by this order.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&mut Param<Self::Policy>));

    /// The same module with every variable cast to `Q::Variable` (gradients and saved
    /// activations are not carried over).
    fn to_policy<Q: Policy>(&self) -> Self::At<Q>;

    /// Number of scalars in all variables.
    fn param_count(&self) -> usize {
        let mut n = 0;
        self.visit_params("", &mut |_, p| n += p.len());
        n
    }

    /// Bytes held by all variables (in the variable type).
    fn variable_bytes(&self) -> usize {
        self.param_count() * <Self::Policy as Policy>::VARIABLE_DTYPE.size_of()
    }

    /// Every variable's name, in visiting order.
    fn param_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit_params("", &mut |n, _| names.push(n.to_string()));
        names
    }
}

/// `prefix.name`, or `name` when the prefix is empty: how variable paths are built.
pub fn join_name(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}
