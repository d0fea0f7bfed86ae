//! Checks on a parsed [`Input`] that the type checker would report late or confusingly: the policy
//! parameter, empty structs, and fields whose type does not fit their role. Every problem is
//! reported, combined into one `syn::Error`.

use syn::{Error, Ident, Result};

use crate::parse::{mentions, param_shape, Errors, Field, Input, Kind};

/// Checks `input`; on success returns its one policy parameter.
pub fn validate<'a>(input: &Input<'a>) -> Result<&'a Ident> {
    let mut errors = Errors::default();
    let policy = errors.keep(policy(input));
    if input
        .fields
        .iter()
        .all(|f| matches!(f.kind, Kind::Skip | Kind::Reset))
    {
        errors.push(Error::new(
            input.brace_span,
            format!(
                "`{}` has no layer or variable field: #[derive(Module)] needs at least one \
                 (`hidden: Dense<P>`, or `#[module(param)] kernel: Param<P>`)",
                input.ident
            ),
        ));
    }
    if let Some(p) = policy {
        for field in &input.fields {
            if let Err(e) = check_field(field, p) {
                errors.push(e);
            }
        }
    }
    errors.finish()?;
    policy.ok_or_else(|| Error::new(input.brace_span, "no policy parameter"))
}

/// The one type parameter bounded by `Policy`.
fn policy<'a>(input: &Input<'a>) -> Result<&'a Ident> {
    let name = input.ident;
    match input.policies.as_slice() {
        [p] => Ok(p),
        [] => {
            let suggested = input
                .generics
                .type_params()
                .next()
                .map_or_else(|| "P".to_string(), |t| t.ident.to_string());
            let msg = format!(
                "`{name}` has no type parameter bounded by `Policy`: add one, as in \
                 `struct {name}<{suggested}: Policy>`, and use it in the fields' types"
            );
            Err(match input.generics.params.is_empty() {
                true => Error::new_spanned(name, msg),
                false => Error::new_spanned(input.generics, msg),
            })
        }
        [first, second, ..] => Err(Error::new_spanned(
            second,
            format!(
                "`{name}` has more than one type parameter bounded by `Policy` (`{first}`, \
                 `{second}`): keep only `{first}`, the policy the model is converted with; a field can \
                 fix its own policy in its type (`head: Dense<F32>`)"
            ),
        )),
    }
}

fn check_field(field: &Field<'_>, p: &Ident) -> Result<()> {
    let (name, ty) = (field.name(), field.ty);
    let uses_p = mentions(ty, p);
    match field.kind {
        Kind::Param if param_shape(ty).is_none() || !uses_p => Err(Error::new_spanned(
            ty,
            format!(
                "field `{name}` is marked #[module(param)], so its type must be `Param<{p}>` or \
                 `Option<Param<{p}>>`"
            ),
        )),
        Kind::Skip if uses_p => Err(Error::new_spanned(
            ty,
            format!(
                "field `{name}` is marked #[module(skip)] but its type uses the policy parameter \
                 `{p}`, so it cannot be cloned into another policy; use #[module(reset)] for \
                 transient state, or no attribute for a layer"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use syn::{parse_quote, DeriveInput};

    use crate::parse::Input;

    /// Every message `#[derive(Module)]` reports for `node`, in order.
    fn errors(node: DeriveInput) -> Vec<String> {
        let checked = Input::from_syn(&node).and_then(|input| super::validate(&input).map(drop));
        match checked {
            Ok(()) => Vec::new(),
            Err(e) => e.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn accepts_dense_shaped_struct() {
        let node = parse_quote! {
            struct Dense<P: Policy = DefaultPolicy> {
                #[module(param)] kernel: Param<P>,
                #[module(param)] bias: Option<Param<P>>,
                #[module(skip)] activation: Activation,
                #[module(reset)] saved: Option<Saved<P>>,
                #[module(reset)] _policy: PhantomData<P>,
            }
        };
        assert_eq!(errors(node), Vec::<String>::new());
        let bound_in_where = parse_quote! {
            struct Mlp<P> where P: mixprec::policy::Policy { hidden: Dense<P> }
        };
        assert_eq!(errors(bound_in_where), Vec::<String>::new());
    }

    #[test]
    fn rejects_tuple_unit_and_union() {
        let expected = [crate::parse::NEEDS_NAMED_STRUCT];
        assert_eq!(
            errors(parse_quote!(
                struct S<P: Policy>(Dense<P>);
            )),
            expected
        );
        assert_eq!(
            errors(parse_quote!(
                struct S;
            )),
            expected
        );
        assert_eq!(errors(parse_quote!(union U { a: u32 })), expected);
    }

    #[test]
    fn rejects_empty_struct_and_config_only_struct() {
        let msg = "`Mlp` has no layer or variable field: #[derive(Module)] needs at least one \
                   (`hidden: Dense<P>`, or `#[module(param)] kernel: Param<P>`)";
        assert_eq!(
            errors(parse_quote!(
                struct Mlp<P: Policy> {}
            )),
            [msg]
        );
        let config_only = parse_quote!(
            struct Mlp<P: Policy> {
                #[module(skip)]
                n: usize,
            }
        );
        assert_eq!(errors(config_only), [msg]);
    }

    #[test]
    fn names_the_parameter_to_bound() {
        let unbounded = parse_quote!(
            struct Mlp<T> {
                hidden: Dense<T>,
            }
        );
        assert_eq!(
            errors(unbounded),
            [
                "`Mlp` has no type parameter bounded by `Policy`: add one, as in \
              `struct Mlp<T: Policy>`, and use it in the fields' types"
            ]
        );
        let two = parse_quote!(
            struct Mlp<P: Policy, Q: Policy> {
                a: Dense<P>,
            }
        );
        assert_eq!(
            errors(two),
            [
                "`Mlp` has more than one type parameter bounded by `Policy` (`P`, `Q`): keep \
              only `P`, the policy the model is converted with; a field can fix its own policy \
              in its type (`head: Dense<F32>`)"
            ]
        );
    }

    #[test]
    fn reports_every_bad_field_together() {
        let node = parse_quote! {
            struct Mlp<P: Policy> {
                #[module(param)] scale: Vec<P>,
                #[module(skip)] cache: Vec<P>,
            }
        };
        assert_eq!(
            errors(node),
            [
                "field `scale` is marked #[module(param)], so its type must be `Param<P>` or \
                 `Option<Param<P>>`",
                "field `cache` is marked #[module(skip)] but its type uses the policy parameter \
                 `P`, so it cannot be cloned into another policy; use #[module(reset)] for \
                 transient state, or no attribute for a layer",
            ]
        );
    }

    #[test]
    fn rejects_unknown_and_repeated_keys() {
        let node = parse_quote! {
            #[module(no_layers)]
            struct Mlp<P: Policy> {
                #[module(skip, reset)] a: Dense<P>,
                #[module(layer)] b: Dense<P>,
            }
        };
        assert_eq!(
            errors(node),
            [
                "unknown #[module] key `no_layers` on a struct (expected: no_layer)",
                "a field takes one #[module] key, and this one already has `skip`",
                "unknown #[module] key `layer` on a field (expected one of: param, skip, reset)",
            ]
        );
    }
}
