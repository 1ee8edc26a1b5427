//! The `#[tinyio::coroutine]` attribute of [tinyio-loop].
//!
//! Use it through the runtime crate, as `tinyio::coroutine`; its documentation shows what an
//! annotated function becomes. This crate only rewrites syntax:
//!
//! ```text
//! #[tinyio::coroutine]
//! fn add(x: u64) -> u64 {
//!     let y = tinyio::yield_!(other(x));
//!     y + 1
//! }
//! ```
//!
//! becomes a plain `fn add(x: u64) -> tinyio::Coroutine<'static, u64>`.
//!
//! [tinyio-loop]: https://docs.rs/tinyio-loop

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod args;
mod expand;
mod fallback;
mod valid;
mod visit;

#[cfg(test)]
mod tests;

use proc_macro::TokenStream;

/// Turns a function that suspends with `yield_!` into one that returns a `tinyio::Coroutine`.
///
/// Use it as `tinyio::coroutine`, where it is documented.
#[proc_macro_attribute]
pub fn coroutine(args: TokenStream, input: TokenStream) -> TokenStream {
    attribute(args.into(), input.into()).into()
}

fn attribute(
    args: proc_macro2::TokenStream,
    input: proc_macro2::TokenStream,
) -> proc_macro2::TokenStream {
    let Ok(item) = syn::parse2::<syn::ItemFn>(input.clone()) else {
        return fallback::not_a_function(input);
    };
    match syn::parse2::<args::Args>(args) {
        Ok(args) => expand::coroutine(&args.krate, item.clone())
            .unwrap_or_else(|error| fallback::coroutine(error, &args.krate, item)),
        Err(error) => fallback::coroutine(error, &args::runtime(), item),
    }
}
