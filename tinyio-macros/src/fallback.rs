use crate::{expand, valid};
use proc_macro2::TokenStream;
use quote::quote;
use syn::{Error, ItemFn, Path, parse_quote};

/// The errors, plus the function with its final signature, so that callers still type-check.
pub(crate) fn coroutine(error: Error, krate: &Path, mut item: ItemFn) -> TokenStream {
    let sig = &mut item.sig;
    (sig.asyncness, sig.constness, sig.abi, sig.variadic) = (None, None, None, None);
    expand::transform_sig(sig, krate);
    expand::replace_body(&mut item, quote!(::core::unreachable!()));
    item.attrs.push(parse_quote!(#[allow(unused)]));
    let error = error.into_compile_error();
    quote!(#error #item)
}

pub(crate) fn not_a_function(input: TokenStream) -> TokenStream {
    let error = if let Ok(method) = syn::parse2::<syn::TraitItemFn>(input.clone()) {
        valid::no_body(&method)
    } else {
        match syn::parse2::<syn::Item>(input.clone()) {
            Ok(_) => valid::not_a_function(),
            Err(error) => error,
        }
    };
    let error = error.into_compile_error();
    quote!(#error #input)
}
