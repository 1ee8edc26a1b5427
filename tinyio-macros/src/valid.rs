use proc_macro2::Ident;
use proc_macro2::Span;
use syn::{Attribute, Error, Result, Signature, Token, TraitItemFn};

pub(crate) fn signature(sig: &Signature) -> Vec<Error> {
    let mut errors = Vec::new();
    if let Some(token) = &sig.asyncness {
        errors.push(Error::new(
            token.span,
            "`#[tinyio::coroutine]` cannot be applied to an `async fn`; remove `async` and suspend with \
             `yield_!(...)`, or wrap a future with `tinyio::from_future`",
        ));
    }
    if let Some(token) = &sig.constness {
        errors.push(Error::new(
            token.span,
            "`#[tinyio::coroutine]` cannot be applied to a `const fn`; remove `const`",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(Error::new_spanned(
            abi,
            "`#[tinyio::coroutine]` cannot be applied to an `extern` function; remove the ABI",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(Error::new_spanned(
            variadic.dots,
            "`#[tinyio::coroutine]` cannot be applied to a C-variadic function; remove `...`",
        ));
    }
    errors
}

pub(crate) fn await_in_body(token: &Token![await]) -> Error {
    Error::new(
        token.span,
        "`.await` cannot be used in a `#[tinyio::coroutine]` function; wrap the future with \
         `tinyio::from_future(fut)` and `yield_!` it",
    )
}

pub(crate) fn stray_suspend(name: &Ident) -> Error {
    let message = format!(
        "`{name}!` can only be used directly in a `#[tinyio::coroutine]` function, not in a \
         closure, async block or nested function"
    );
    Error::new(name.span(), message)
}

/// Whether `attr` is this attribute, under whatever path (`tinyio::coroutine`, `tio::coroutine`).
pub(crate) fn is_coroutine(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|segment| segment.ident == "coroutine")
}

pub(crate) fn applied_twice(attr: &Attribute) -> Error {
    Error::new_spanned(
        attr,
        "`#[tinyio::coroutine]` is applied twice to this function; remove one (twice, it would \
         return a coroutine whose output is a coroutine)",
    )
}

pub(crate) fn several_values(name: &Ident, comma: &Token![,]) -> Error {
    let message = format!(
        "`{name}!` takes one value; to wait for several at once, yield a tuple of them: \
         `{name}!((a, b))`"
    );
    Error::new(comma.span, message)
}

pub(crate) fn not_a_function() -> Error {
    Error::new(Span::call_site(), "`#[tinyio::coroutine]` can only be applied to a function")
}

pub(crate) fn no_body(method: &TraitItemFn) -> Error {
    Error::new_spanned(
        method.semi_token,
        "`#[tinyio::coroutine]` needs a function body; declare the method as returning \
         `tinyio::Coroutine<'_, T>` instead",
    )
}

pub(crate) fn combine(errors: Vec<Error>) -> Result<()> {
    let mut errors = errors.into_iter();
    match errors.next() {
        None => Ok(()),
        Some(mut first) => {
            first.extend(errors);
            Err(first)
        }
    }
}
