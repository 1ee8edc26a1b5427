use proc_macro_crate::{FoundCrate, crate_name};
use proc_macro2::{Ident, Span};
use syn::parse::{Parse, ParseStream, Result};
use syn::{LitStr, Path, Token, parse_quote};

/// What `#[tinyio::coroutine(...)]` accepts: nothing, or `crate = path`, the path the expansion
/// names the runtime crate by.
pub(crate) struct Args {
    pub(crate) krate: Path,
}

impl Parse for Args {
    fn parse(input: ParseStream) -> Result<Self> {
        if input.is_empty() {
            return Ok(Args { krate: runtime() });
        }
        if !input.peek(Token![crate]) {
            return Err(input.error(
                "`#[tinyio::coroutine]` takes no arguments but `crate = path`, the path of the \
                 tinyio crate (for instance `#[tio::coroutine(crate = tio)]`)",
            ));
        }
        input.parse::<Token![crate]>()?;
        input.parse::<Token![=]>()?;
        if let Ok(text) = input.parse::<LitStr>() {
            let message = format!("write the path without quotes: `crate = {}`", text.value());
            return Err(syn::Error::new(text.span(), message));
        }
        let krate = input.call(Path::parse_mod_style)?;
        input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("unexpected argument after `crate = path`"));
        }
        Ok(Args { krate })
    }
}

/// The runtime crate as the user's Cargo.toml names it: the package `tinyio-loop` (or
/// `tinyio`) under its dependency name; `::tinyio` inside the runtime crate itself (which is
/// `extern crate self as tinyio`) or when no manifest says.
pub(crate) fn runtime() -> Path {
    path_of(crate_name("tinyio-loop").or_else(|_| crate_name("tinyio")).ok())
}

pub(crate) fn path_of(found: Option<FoundCrate>) -> Path {
    match found {
        Some(FoundCrate::Name(name)) => {
            let name = Ident::new(&name, Span::call_site());
            parse_quote!(::#name)
        }
        Some(FoundCrate::Itself) | None => parse_quote!(::tinyio),
    }
}
