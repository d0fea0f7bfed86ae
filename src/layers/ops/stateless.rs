//! [`impl_stateless_module!`]: the [`Module`](crate::Module) impl of a layer without variables
//! (softmax, the activation layers). It visits nothing, and its `NeedsLossScale` is its policy's
//! (whether it computes in float16: its f16 input gradients underflow as any f16 layer's do, so a
//! model made only of such layers and f32 ones still asks for loss scaling, as `Dense` would).
//! The layer type supplies `fn to_policy_of<Q: Policy>(&self) -> Self<Q>`.

/// `impl<P: Policy> Module for $ty<P>` for a layer without variables.
macro_rules! impl_stateless_module {
    ($ty:ident) => {
        impl<P: $crate::policy::Policy> $crate::module::Module for $ty<P> {
            type NeedsLossScale = <P as $crate::policy::Policy>::NeedsLossScale;
            type At<Q: $crate::policy::Policy> = $ty<Q>;

            fn visit_params<V: $crate::module::ParamVisitor>(
                &self,
                _prefix: &str,
                _visitor: &mut V,
            ) {
            }

            fn visit_params_mut<V: $crate::module::ParamVisitorMut>(&mut self, _visitor: &mut V) {}

            fn to_policy<Q: $crate::policy::Policy>(&self) -> $ty<Q> {
                self.to_policy_of::<Q>()
            }
        }
    };
}

pub(crate) use impl_stateless_module;
