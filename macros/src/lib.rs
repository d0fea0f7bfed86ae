//! Procedural macros for [mixprec](https://docs.rs/mixprec): the mixed-precision plumbing of
//! layers and models. Use them through the re-exports in `mixprec`, where they are documented
//! with runnable examples (`mixprec::Module`).
//!
//! The derive is split as thiserror's is: `parse` reads the struct and its `#[module(...)]`
//! attributes, `validate` checks them, `expand` writes the impls (or the errors plus a stub).

mod expand;
mod parse;
mod validate;

use proc_macro::TokenStream;
use syn::{parse_macro_input, DeriveInput};

/// Derives `mixprec::module::Module` for a struct of layers generic over a policy `P: Policy`,
/// and, unless a field is a `#[module(param)]` variable or the struct says `#[module(no_layer)]`,
/// `mixprec::layers::Layer` (the layer fields run in declaration order), `MlpFamily`, `AnyMlp`,
/// `to_any` and `to_global_policy`.
///
/// Field attributes: `#[module(param)]` (a `Param<P>` or `Option<Param<P>>`),
/// `#[module(skip)]` (configuration independent of `P`, cloned), `#[module(reset)]` (transient
/// state, `Default::default()` after `to_policy`). See `mixprec::Module` for examples.
#[proc_macro_derive(Module, attributes(module))]
pub fn derive_module(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    expand::derive(&input).into()
}
