//! The generated code: the `Module` impl, the `Layer` impl that chains the layer fields, and the
//! run-time family (`MlpFamily`, `AnyMlp`, `to_any`, `to_global_policy`). On any error the output
//! is the error plus a stub `Module` impl ([`fallback`]), so users see only the real error.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{DeriveInput, GenericParam, Generics, Ident, Result};

use crate::parse::{mentions, param_shape, Field, Input, Kind, ParamShape};
use crate::validate::validate;

mod layer;

/// `#[derive(Module)]`: the impls, or the errors plus a stub.
pub fn derive(node: &DeriveInput) -> TokenStream {
    match try_derive(node) {
        Ok(tokens) => tokens,
        Err(e) => {
            let mut tokens = e.to_compile_error();
            tokens.extend(fallback(node));
            tokens
        }
    }
}

fn try_derive(node: &DeriveInput) -> Result<TokenStream> {
    let input = Input::from_syn(node)?;
    let p = validate(&input)?;
    let cx = Cx {
        input: &input,
        p,
        q: Ident::new("__Q", Span::call_site()),
    };
    let mut tokens = cx.module_impl();
    let holds_params = input.fields.iter().any(|f| f.kind == Kind::Param);
    if !holds_params && !input.no_layer {
        tokens.extend(cx.layer_impl());
        if input.has_only_policy_and_consts() {
            tokens.extend(cx.family());
        }
    }
    Ok(tokens)
}

/// What every generator needs: the input, its policy parameter `p`, and the name `q` of the
/// target policy in `to_policy` and `At`.
struct Cx<'a> {
    input: &'a Input<'a>,
    p: &'a Ident,
    q: Ident,
}

/// A local name that cannot clash with the user's items (`macro_rules!` hygiene).
fn local(name: &str) -> Ident {
    Ident::new(name, Span::mixed_site())
}

impl Cx<'_> {
    fn layers(&self) -> Vec<&Field<'_>> {
        let fields = self.input.fields.iter();
        fields.filter(|f| f.kind == Kind::Layer).collect()
    }

    /// `Mlp<Q, N>`: the struct's type with the policy parameter replaced by `with`.
    fn at(&self, with: &Ident) -> TokenStream {
        at_type(self.input.ident, self.input.generics, self.p, with)
    }

    fn module_impl(&self) -> TokenStream {
        let Input {
            ident, generics, ..
        } = self.input;
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        let q = &self.q;
        let at_q = self.at(q);
        let (prefix, v) = (local("prefix"), local("v"));
        let visit = self.input.fields.iter().map(|x| self.visit(x, &prefix, &v));
        let visit_mut = self.input.fields.iter().map(|x| self.visit_mut(x, &v));
        let convert = self.input.fields.iter().map(|x| self.convert(x));
        let needs = self.needs_loss_scale();
        let needs_value = self.needs_loss_scale_value();
        // A layer field whose type does not use the policy parameter keeps its own policy and is
        // copied by `to_policy`; bounding it here reports a field that is not a module once, at
        // the field, instead of at every use in the generated bodies.
        let fixed = self
            .input
            .fields
            .iter()
            .filter(|f| f.kind == Kind::Layer && !mentions(f.ty, self.p));
        let fixed = fixed.map(|f| {
            let ty = f.ty;
            quote_spanned!(ty.span()=> #ty: ::mixprec::module::Module + ::core::clone::Clone,)
        });
        let own = where_clause.map(|w| {
            let preds = w.predicates.iter();
            quote!(#(#preds,)*)
        });
        quote! {
            #[automatically_derived]
            impl #impl_generics ::mixprec::module::Module for #ident #ty_generics
            where
                #own
                #(#fixed)*
            {
                type NeedsLossScale = #needs;
                type At<#q: ::mixprec::policy::Policy> = #at_q;

                fn visit_params<__V: ::mixprec::module::ParamVisitor>(
                    &self,
                    #prefix: &::core::primitive::str,
                    #v: &mut __V,
                ) {
                    #(#visit)*
                }

                fn visit_params_mut<__V: ::mixprec::module::ParamVisitorMut>(
                    &mut self,
                    #v: &mut __V,
                ) {
                    #(#visit_mut)*
                }

                fn to_policy<#q: ::mixprec::policy::Policy>(&self) -> Self::At<#q> {
                    #ident { #(#convert)* }
                }

                fn needs_loss_scale(&self) -> ::core::primitive::bool {
                    #needs_value
                }
            }
        }
    }

    /// The run-time OR for `Module::needs_loss_scale`: a `Param<P>` field contributes `P`'s bit,
    /// a layer field its own `needs_loss_scale()` (so a run-time model inside a derived struct
    /// answers from the layers it holds, not from its type's bit).
    fn needs_loss_scale_value(&self) -> TokenStream {
        let p = self.p;
        let parts = self.input.fields.iter().filter_map(|f| {
            let member = f.ident;
            match f.kind {
                Kind::Param => Some(quote! {
                    __bit::<<#p as ::mixprec::policy::Policy>::NeedsLossScale>()
                }),
                Kind::Layer => Some(quote_spanned! {f.ty.span()=>
                    ::mixprec::module::Module::needs_loss_scale(&self.#member)
                }),
                Kind::Skip | Kind::Reset => None,
            }
        });
        let parts: Vec<TokenStream> = parts.collect();
        if parts.is_empty() {
            return quote!(false);
        }
        quote! {
            #[allow(dead_code)]
            fn __bit<B: ::mixprec::policy::LossScaleBit>() -> ::core::primitive::bool {
                B::BOOL
            }
            #(#parts)||*
        }
    }

    /// The OR of every part's loss-scale bit: a `Param<P>` field contributes `P`'s, a layer
    /// field its `Module::NeedsLossScale`.
    fn needs_loss_scale(&self) -> TokenStream {
        let p = self.p;
        let bits: Vec<TokenStream> = self
            .input
            .fields
            .iter()
            .filter_map(|f| match f.kind {
                Kind::Param => Some(quote!(<#p as ::mixprec::policy::Policy>::NeedsLossScale)),
                Kind::Layer => {
                    let ty = f.ty;
                    Some(quote_spanned!(ty.span()=> <#ty as ::mixprec::module::Module>::NeedsLossScale))
                }
                Kind::Skip | Kind::Reset => None,
            })
            .collect();
        let mut bits = bits.into_iter().rev();
        // `validate` guarantees at least one layer or variable field.
        let last = bits.next().unwrap_or_else(|| {
            quote!(<::mixprec::policy::F32 as ::mixprec::policy::Policy>::NeedsLossScale)
        });
        bits.fold(
            last,
            |acc, b| quote!(<#b as ::mixprec::policy::LossScaleBit>::Or<#acc>),
        )
    }

    fn visit(&self, field: &Field<'_>, prefix: &Ident, v: &Ident) -> TokenStream {
        let (member, name, x) = (field.ident, field.name(), local("x"));
        let path = quote!(&::mixprec::module::join_name(#prefix, #name));
        let visitor = quote!(::mixprec::module::ParamVisitor);
        match (field.kind, param_shape(field.ty)) {
            (Kind::Layer, _) => quote_spanned! {field.ty.span()=>
                ::mixprec::module::Module::visit_params(&self.#member, #path, #v);
            },
            (Kind::Param, Some(ParamShape::Optional)) => quote! {
                if let ::core::option::Option::Some(#x) = &self.#member {
                    #visitor::visit(#v, #path, #x);
                }
            },
            (Kind::Param, _) => quote!(#visitor::visit(#v, #path, &self.#member);),
            (Kind::Skip | Kind::Reset, _) => TokenStream::new(),
        }
    }

    fn visit_mut(&self, field: &Field<'_>, v: &Ident) -> TokenStream {
        let (member, x) = (field.ident, local("x"));
        let visitor = quote!(::mixprec::module::ParamVisitorMut);
        match (field.kind, param_shape(field.ty)) {
            (Kind::Layer, _) => quote_spanned! {field.ty.span()=>
                ::mixprec::module::Module::visit_params_mut(&mut self.#member, #v);
            },
            (Kind::Param, Some(ParamShape::Optional)) => quote! {
                if let ::core::option::Option::Some(#x) = &mut self.#member {
                    #visitor::visit(#v, #x);
                }
            },
            (Kind::Param, _) => quote!(#visitor::visit(#v, &mut self.#member);),
            (Kind::Skip | Kind::Reset, _) => TokenStream::new(),
        }
    }

    /// `field: <the field in policy Q>,`. A layer field whose type does not use the policy
    /// parameter (`head: Dense<F32>`) keeps its own policy: it is copied as it is.
    fn convert(&self, field: &Field<'_>) -> TokenStream {
        let (member, q) = (field.ident, &self.q);
        let value = match (field.kind, param_shape(field.ty)) {
            (Kind::Layer, _) if !mentions(field.ty, self.p) => quote_spanned! {field.ty.span()=>
                ::mixprec::module::fixed_policy_copy(&self.#member)
            },
            (Kind::Layer, _) => quote_spanned! {field.ty.span()=>
                ::mixprec::module::Module::to_policy::<#q>(&self.#member)
            },
            (Kind::Param, Some(ParamShape::Optional)) => quote! {
                ::core::option::Option::map(
                    ::core::option::Option::as_ref(&self.#member),
                    ::mixprec::param::Param::to_policy::<#q>,
                )
            },
            (Kind::Param, _) => quote!(::mixprec::param::Param::to_policy::<#q>(&self.#member)),
            (Kind::Skip, _) => quote!(::core::clone::Clone::clone(&self.#member)),
            (Kind::Reset, _) => quote!(::core::default::Default::default()),
        };
        quote!(#member: #value,)
    }
}

/// `Name<.., with, ..>`: the type with the policy parameter `p` replaced.
fn at_type(ident: &Ident, generics: &Generics, p: &Ident, with: &Ident) -> TokenStream {
    let args = generics.params.iter().map(|param| match param {
        GenericParam::Type(t) if &t.ident == p => quote!(#with),
        GenericParam::Type(t) => t.ident.to_token_stream(),
        GenericParam::Const(c) => c.ident.to_token_stream(),
        GenericParam::Lifetime(l) => l.lifetime.to_token_stream(),
    });
    quote!(#ident<#(#args),*>)
}

/// The generics as a declaration, without default values (`<'a, P: Policy, const N: usize>`).
fn strip_defaults(generics: &Generics) -> TokenStream {
    let mut g = generics.clone();
    for param in &mut g.params {
        match param {
            GenericParam::Type(t) => t.default = None,
            GenericParam::Const(c) => c.default = None,
            GenericParam::Lifetime(_) => {}
        }
    }
    g.where_clause = None;
    quote!(#g)
}

/// A stub `Module` impl for an input with a policy parameter, so a failed derive does not also
/// report every use of `Mlp<P>: Module` (as thiserror's `fallback.rs`). The body is never run:
/// the compile error above it stops the build.
fn fallback(node: &DeriveInput) -> TokenStream {
    let policies = crate::parse::policy_params(&node.generics);
    let Some(p) = policies.first() else {
        return TokenStream::new();
    };
    let ident = &node.ident;
    let (impl_generics, ty_generics, where_clause) = node.generics.split_for_impl();
    let q = Ident::new("__Q", Span::call_site());
    let at_q = at_type(ident, &node.generics, p, &q);
    quote! {
        #[automatically_derived]
        impl #impl_generics ::mixprec::module::Module for #ident #ty_generics #where_clause {
            type NeedsLossScale = <#p as ::mixprec::policy::Policy>::NeedsLossScale;
            type At<#q: ::mixprec::policy::Policy> = #at_q;
            fn visit_params<__V: ::mixprec::module::ParamVisitor>(
                &self,
                _: &::core::primitive::str,
                _: &mut __V,
            ) {
            }
            fn visit_params_mut<__V: ::mixprec::module::ParamVisitorMut>(&mut self, _: &mut __V) {}
            fn to_policy<#q: ::mixprec::policy::Policy>(&self) -> Self::At<#q> {
                ::core::unreachable!("#[derive(Module)] failed to compile")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use syn::{parse_quote, DeriveInput, File, Item};

    /// The generated items, parsed back.
    fn items(node: DeriveInput) -> Vec<Item> {
        let tokens = super::derive(&node);
        match syn::parse2::<File>(tokens) {
            Ok(file) => file.items,
            Err(e) => panic!("generated code does not parse: {e}"),
        }
    }

    fn count(items: &[Item], is: fn(&Item) -> bool) -> usize {
        items.iter().filter(|i| is(i)).count()
    }

    #[test]
    fn struct_of_layers_gets_module_layer_and_family() {
        let items = items(parse_quote!(
            pub struct Mlp<P: Policy> {
                a: Dense<P>,
                b: Dense<P>,
            }
        ));
        // Module, Layer, PolicyFamily, inherent impl; family struct; alias.
        assert_eq!(count(&items, |i| matches!(i, Item::Impl(_))), 4);
        assert_eq!(count(&items, |i| matches!(i, Item::Struct(_))), 1);
        assert_eq!(count(&items, |i| matches!(i, Item::Type(_))), 1);
    }

    #[test]
    fn struct_with_variables_gets_module_only() {
        let node = parse_quote!(
            struct D<P: Policy> {
                #[module(param)]
                w: Param<P>,
            }
        );
        let items = items(node);
        assert_eq!(items.len(), 1);
        let no_layer = parse_quote!(
            #[module(no_layer)]
            struct M<P: Policy> {
                a: Dense<P>,
            }
        );
        assert_eq!(self::items(no_layer).len(), 1);
    }

    #[test]
    fn error_comes_with_a_stub_impl_when_a_policy_is_known() {
        let items = items(parse_quote!(
            enum E<P: Policy> {
                A(Dense<P>),
            }
        ));
        assert!(
            matches!(&items[0], Item::Macro(m) if m.mac.path.segments.last().is_some_and(|s| s.ident == "compile_error"))
        );
        assert!(matches!(&items[1], Item::Impl(_)));
        let no_policy = self::items(parse_quote!(
            struct S {
                a: Dense<F32>,
            }
        ));
        assert_eq!(no_policy.len(), 1);
    }
}
