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
                 `{second}`): a module has one policy, so keep only `{first}`"
            ),
        )),
    }
}

fn check_field(field: &Field<'_>, p: &Ident) -> Result<()> {
    let (name, ty) = (field.name(), field.ty);
    let uses_p = mentions(ty, p);
    match field.kind {
        Kind::Layer if !uses_p => Err(Error::new_spanned(
            ty,
            format!(
                "field `{name}` is not a layer: its type does not use the policy parameter `{p}`; \
                 mark it #[module(skip)] if it is configuration"
            ),
        )),
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
