//! The generated `Layer` impl (the layer fields chained in order, casting between neighbours)
//! and the run-time family (`MlpFamily`, `AnyMlp`, `to_any`, `to_global_policy`).

use super::*;

impl Cx<'_> {
    /// `Layer` for the layer fields in declaration order, as the tuple impls in `sequential.rs`:
    /// each field's input is its predecessor's output cast to the field's input type (Keras's
    /// autocast: no copy when the types are equal).
    pub(super) fn layer_impl(&self) -> TokenStream {
        let Input {
            ident, generics, ..
        } = self.input;
        let (impl_generics, ty_generics, where_clause) = generics.split_for_impl();
        let layers = self.layers();
        let (Some(first), Some(last)) = (layers.first(), layers.last()) else {
            return TokenStream::new();
        };
        let (first_ty, last_ty) = (first.ty, last.ty);
        let layer = quote!(::mixprec::layers::Layer);
        let tensor = quote!(::mixprec::tensor::Tensor);
        let own = where_clause.map(|w| {
            let preds = w.predicates.iter();
            quote!(#(#preds,)*)
        });
        let bounds = layers.iter().map(|f| {
            let ty = f.ty;
            quote_spanned!(ty.span()=> #ty: #layer,)
        });
        let members: Vec<_> = layers.iter().map(|f| f.ident).collect();
        let (head, rest) = (members[0], &members[1..]);
        let back = rest.iter().rev();
        let (x, d, dy, need) = (
            local("x"),
            local("d"),
            local("dy"),
            local("need_input_grad"),
        );
        let (input, n) = (local("input"), local("n"));
        quote! {
            #[automatically_derived]
            impl #impl_generics #layer for #ident #ty_generics
            where
                #own
                #(#bounds)*
            {
                type Input = <#first_ty as #layer>::Input;
                type Output = <#last_ty as #layer>::Output;

                fn infer(
                    &self,
                    #x: &#tensor<Self::Input>,
                ) -> ::mixprec::Result<#tensor<Self::Output>> {
                    let #x = #layer::infer(&self.#head, #x)?;
                    #(let #x = #layer::infer(&self.#rest, &#tensor::cast_ref(&#x))?;)*
                    ::core::result::Result::Ok(#x)
                }

                fn train_forward(
                    &mut self,
                    #x: #tensor<Self::Input>,
                ) -> ::mixprec::Result<#tensor<Self::Output>> {
                    let #x = #layer::train_forward(&mut self.#head, #x)?;
                    #(let #x = #layer::train_forward(&mut self.#rest, #tensor::into_cast(#x))?;)*
                    ::core::result::Result::Ok(#x)
                }

                fn backward(
                    &mut self,
                    #dy: #tensor<Self::Output>,
                    #need: bool,
                ) -> ::mixprec::Result<::core::option::Option<#tensor<Self::Input>>> {
                    let #d = #dy;
                    #(
                        let #d = #layer::backward(&mut self.#back, #tensor::into_cast(#d), true)?
                            .expect("asked for the input gradient");
                    )*
                    #layer::backward(&mut self.#head, #tensor::into_cast(#d), #need)
                }

                fn saved_bytes(&self) -> usize {
                    #layer::saved_bytes(&self.#head) #(+ #layer::saved_bytes(&self.#rest))*
                }

                fn clear_saved(&mut self) {
                    #(#layer::clear_saved(&mut self.#members);)*
                }

                fn output_dim(&self, #input: usize) -> ::core::option::Option<usize> {
                    let #n = #input;
                    #(let #n = #layer::output_dim(&self.#members, #n)?;)*
                    ::core::option::Option::Some(#n)
                }

                fn output_shape(
                    &self,
                    #input: &[usize],
                ) -> ::core::option::Option<::std::vec::Vec<usize>> {
                    let #n = #input.to_vec();
                    #(let #n = #layer::output_shape(&self.#members, &#n)?;)*
                    ::core::option::Option::Some(#n)
                }
            }
        }
    }

    /// `MlpFamily`, `AnyMlp`, and `Mlp::to_any` / `Mlp::to_global_policy`.
    pub(super) fn family(&self) -> TokenStream {
        let Input {
            vis,
            ident,
            generics,
            ..
        } = self.input;
        let (impl_generics, ty_generics, _) = generics.split_for_impl();
        let (p, q) = (self.p, &self.q);
        // The family names its parameter as the struct does, so errors read `Mlp<P>`.
        let (at_p, at_q) = (self.at(p), self.at(q));
        let family = format_ident!("{}Family", ident);
        let any = format_ident!("Any{}", ident);
        // The const parameters, which the family and the alias carry too.
        let consts: Vec<_> = generics.const_params().collect();
        let const_names: Vec<_> = consts.iter().map(|c| &c.ident).collect();
        let (decl, args) = match consts.is_empty() {
            true => (quote!(), quote!()),
            false => (quote!(<#(#consts),*>), quote!(<#(#const_names),*>)),
        };
        let dispatch = quote!(::mixprec::layers);
        let mut builder_generics = Generics::clone(generics);
        builder_generics.params.insert(0, syn::parse_quote!('a));
        let (b_impl, b_ty, _) = builder_generics.split_for_impl();
        let b_decl = strip_defaults(&builder_generics);
        let (policy, never, m) = (local("policy"), local("never"), local("m"));
        let family_doc = format!(
            "The family `P ↦ {ident}<P>`: names `{ident}` in every policy for `{any}` \
             (written by `#[derive(Module)]`)."
        );
        let any_doc = format!(
            "A `{ident}` whose policy was chosen at run time: one of its six monomorphizations, \
             from `{ident}::to_any` or `{ident}::to_global_policy` (written by `#[derive(Module)]`)."
        );
        quote! {
            #[doc = #family_doc]
            #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
            #[allow(dead_code)]
            #vis struct #family #decl;

            #[automatically_derived]
            impl #decl #dispatch::PolicyFamily for #family #args {
                type At<#p: ::mixprec::policy::Policy> = #at_p;
            }

            #[doc = #any_doc]
            #[allow(dead_code)]
            #vis type #any #decl = #dispatch::ByPolicy<#family #args>;

            #[allow(dead_code)]
            impl #impl_generics #ident #ty_generics {
                /// This model in `policy`, chosen at run time: its variables cast with
                /// `to_policy` (no gradients or saved activations carried over).
                #vis fn to_any(&self, #policy: ::mixprec::DTypePolicy) -> #any #args {
                    struct Convert #b_decl (&'a #ident #ty_generics);

                    impl #b_impl #dispatch::FamilyBuilder<#family #args> for Convert #b_ty {
                        type Error = ::core::convert::Infallible;
                        fn build<#q: ::mixprec::policy::Policy>(
                            self,
                        ) -> ::core::result::Result<#at_q, ::core::convert::Infallible> {
                            ::core::result::Result::Ok(
                                ::mixprec::module::Module::to_policy::<#q>(self.0),
                            )
                        }
                    }

                    match #dispatch::ByPolicy::build(#policy, Convert(self)) {
                        ::core::result::Result::Ok(#m) => #m,
                        ::core::result::Result::Err(#never) => match #never {},
                    }
                }

                /// This model in the current global policy (read once, now; later changes do
                /// not affect the result), as [`to_any`](Self::to_any).
                #vis fn to_global_policy(&self) -> #any #args {
                    self.to_any(::mixprec::global_policy())
                }
            }
        }
    }
}
