//! The derive input as the macro sees it: the struct, its policy parameter, and each field's role
//! (layer, variable, configuration, transient), read from `#[module(...)]` attributes.
//!
//! Parsing only rejects what cannot be represented (an enum, a tuple struct, an unknown key);
//! [`validate`](crate::validate) checks the rest.

use proc_macro2::TokenStream;
use syn::ext::IdentExt;
use syn::{
    Attribute, Data, DeriveInput, Error, Fields, GenericParam, Generics, Ident, Result, Type,
    TypeParamBound, Visibility, WherePredicate,
};

/// The message for anything that is not a struct with named fields.
pub const NEEDS_NAMED_STRUCT: &str = "#[derive(Module)] needs a struct with named fields of layers";

/// A struct that derives `Module`.
pub struct Input<'a> {
    pub vis: &'a Visibility,
    pub ident: &'a Ident,
    pub generics: &'a Generics,
    /// The type parameters bounded by `Policy` (inline or in the where-clause), in order.
    pub policies: Vec<&'a Ident>,
    /// `#[module(no_layer)]`: implement `Module` only.
    pub no_layer: bool,
    pub fields: Vec<Field<'a>>,
    /// The braces of the field list, for errors about the struct as a whole.
    pub brace_span: proc_macro2::Span,
}

/// One named field.
pub struct Field<'a> {
    pub ident: &'a Ident,
    pub ty: &'a Type,
    pub kind: Kind,
}

impl Field<'_> {
    /// The variable name: the field name without `r#`.
    pub fn name(&self) -> String {
        self.ident.unraw().to_string()
    }
}

/// What a field is to the module.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A layer (the default): visited, converted, and run in the `Layer` chain.
    Layer,
    /// `#[module(param)]`: a `Param<P>` or `Option<Param<P>>` held directly.
    Param,
    /// `#[module(skip)]`: configuration independent of `P`, cloned by `to_policy`.
    Skip,
    /// `#[module(reset)]`: transient state, `Default::default()` after `to_policy`.
    Reset,
}

impl<'a> Input<'a> {
    /// Reads the derive input; errors for enums, unions, tuple and unit structs, and malformed or
    /// unknown `#[module(...)]` attributes (all of them, combined).
    pub fn from_syn(node: &'a DeriveInput) -> Result<Self> {
        let data = match &node.data {
            Data::Struct(data) => data,
            Data::Enum(e) => return Err(Error::new_spanned(e.enum_token, NEEDS_NAMED_STRUCT)),
            Data::Union(u) => return Err(Error::new_spanned(u.union_token, NEEDS_NAMED_STRUCT)),
        };
        let named = match &data.fields {
            Fields::Named(named) => named,
            Fields::Unnamed(f) => return Err(Error::new_spanned(f, NEEDS_NAMED_STRUCT)),
            Fields::Unit => return Err(Error::new_spanned(node, NEEDS_NAMED_STRUCT)),
        };
        let mut errors = Errors::default();
        let no_layer = errors.keep(struct_attrs(&node.attrs)).unwrap_or(false);
        let fields = named
            .named
            .iter()
            .filter_map(|f| {
                let kind = errors.keep(field_attrs(&f.attrs))?;
                let ident = f.ident.as_ref()?;
                Some(Field {
                    ident,
                    ty: &f.ty,
                    kind,
                })
            })
            .collect();
        errors.finish()?;
        Ok(Input {
            vis: &node.vis,
            ident: &node.ident,
            generics: &node.generics,
            policies: policy_params(&node.generics),
            no_layer,
            fields,
            brace_span: named.brace_token.span.join(),
        })
    }

    /// True when every generic parameter but the policy is a const and there is no where-clause:
    /// then a unit `MlpFamily` can name `Mlp<P, ..>` for every `P`.
    pub fn has_only_policy_and_consts(&self) -> bool {
        self.generics.where_clause.is_none()
            && self.generics.params.iter().all(|p| match p {
                GenericParam::Type(t) => self.policies.first() == Some(&&t.ident),
                GenericParam::Const(_) => true,
                GenericParam::Lifetime(_) => false,
            })
    }
}

/// Several errors reported together (`Error::combine`).
#[derive(Default)]
pub struct Errors(Option<Error>);

impl Errors {
    pub fn push(&mut self, e: Error) {
        match &mut self.0 {
            Some(all) => all.combine(e),
            None => self.0 = Some(e),
        }
    }

    /// The value, or `None` after recording the error.
    pub fn keep<T>(&mut self, r: Result<T>) -> Option<T> {
        r.map_err(|e| self.push(e)).ok()
    }

    pub fn finish(self) -> Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// `#[module(no_layer)]` on the struct.
fn struct_attrs(attrs: &[Attribute]) -> Result<bool> {
    let mut no_layer = false;
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("no_layer") {
                no_layer = true;
                Ok(())
            } else {
                Err(meta.error(format!(
                    "unknown #[module] key `{}` on a struct (expected: no_layer)",
                    path_text(&meta.path)
                )))
            }
        })?;
    }
    Ok(no_layer)
}

/// At most one of `#[module(param)]`, `#[module(skip)]`, `#[module(reset)]` on a field.
fn field_attrs(attrs: &[Attribute]) -> Result<Kind> {
    let mut found: Option<(Kind, Ident)> = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("module")) {
        attr.parse_nested_meta(|meta| {
            let kind = match meta.path.get_ident().map(Ident::to_string).as_deref() {
                Some("param") => Kind::Param,
                Some("skip") => Kind::Skip,
                Some("reset") => Kind::Reset,
                _ => {
                    return Err(meta.error(format!(
                    "unknown #[module] key `{}` on a field (expected one of: param, skip, reset)",
                    path_text(&meta.path)
                )))
                }
            };
            let key = meta.path.get_ident().cloned();
            match (&found, key) {
                (Some((_, first)), _) => Err(meta.error(format!(
                    "a field takes one #[module] key, and this one already has `{first}`"
                ))),
                (None, Some(key)) => {
                    found = Some((kind, key));
                    Ok(())
                }
                (None, None) => Err(meta.error("expected one of: param, skip, reset")),
            }
        })?;
    }
    Ok(found.map_or(Kind::Layer, |(kind, _)| kind))
}

fn path_text(path: &syn::Path) -> String {
    let tokens: TokenStream = quote::quote!(#path);
    tokens.to_string().replace(' ', "")
}

/// Type parameters with a `Policy` bound, inline (`P: Policy`) or in the where-clause.
pub fn policy_params(generics: &Generics) -> Vec<&Ident> {
    let inline = generics
        .type_params()
        .filter(|t| has_policy_bound(&t.bounds));
    let mut found: Vec<&Ident> = inline.map(|t| &t.ident).collect();
    let predicates = generics.where_clause.iter().flat_map(|w| &w.predicates);
    for pred in predicates {
        let WherePredicate::Type(pred) = pred else {
            continue;
        };
        let Type::Path(tp) = &pred.bounded_ty else {
            continue;
        };
        let Some(ident) = tp.path.get_ident() else {
            continue;
        };
        let is_param = generics.type_params().any(|t| &t.ident == ident);
        if is_param && has_policy_bound(&pred.bounds) && !found.contains(&ident) {
            found.push(ident);
        }
    }
    // Declaration order, whichever place the bound was written in.
    let order = |i: &Ident| generics.type_params().position(|t| &t.ident == i);
    found.sort_by_key(|i| order(i));
    found
}

fn has_policy_bound<'a>(bounds: impl IntoIterator<Item = &'a TypeParamBound>) -> bool {
    bounds.into_iter().any(|b| match b {
        TypeParamBound::Trait(t) => t.path.segments.last().is_some_and(|s| s.ident == "Policy"),
        _ => false,
    })
}

/// True when `ty`'s tokens mention `ident` anywhere (`Dense<P>`, `Option<Param<P>>`,
/// `(Dense<P>, Dense<P>)`, even inside a macro call).
pub fn mentions(ty: &Type, ident: &Ident) -> bool {
    fn walk(tokens: TokenStream, ident: &Ident) -> bool {
        tokens.into_iter().any(|t| match t {
            proc_macro2::TokenTree::Ident(i) => &i == ident,
            proc_macro2::TokenTree::Group(g) => walk(g.stream(), ident),
            _ => false,
        })
    }
    walk(quote::quote!(#ty), ident)
}

/// How a `#[module(param)]` field holds its variable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum ParamShape {
    /// `Param<P>`.
    Plain,
    /// `Option<Param<P>>`.
    Optional,
}

/// The shape of a `#[module(param)]` field's type, read from the last path segment (`Option<_>`
/// or `Param<_>`); `None` for anything else.
pub fn param_shape(ty: &Type) -> Option<ParamShape> {
    let Type::Path(tp) = ty else { return None };
    let last = tp.path.segments.last()?;
    if last.ident == "Param" {
        return Some(ParamShape::Plain);
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(syn::GenericArgument::Type(inner))
            if last.ident == "Option" && args.args.len() == 1 =>
        {
            (param_shape(inner)? == ParamShape::Plain).then_some(ParamShape::Optional)
        }
        _ => None,
    }
}
