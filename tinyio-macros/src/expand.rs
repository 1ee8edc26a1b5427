use crate::{valid, visit};
use proc_macro2::{Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::visit_mut::{self, VisitMut};
use syn::{
    Block, Expr, FnArg, GenericParam, ItemFn, Lifetime, ParenthesizedGenericArguments, Pat,
    PatIdent, Path, ReceiverKind, Result, ReturnType, Signature, Stmt, TraitBound, Type, TypeFnPtr,
    TypeImplTrait, TypeReference, parse_quote,
};

// Input:
//     #[tinyio::coroutine]
//     pub fn add(x: &u64, mut n: u64, (a, _): (u64, Guard)) -> u64 {
//         let y = yield_!(other(*x));
//         if y > 10 {
//             return y;
//         }
//         n += a;
//         y + n
//     }
//
// Output:
//     pub fn add<'__tinyio, '__tinyio0>(x: &'__tinyio0 u64, n: u64, __tinyio_arg2: (u64, Guard))
//         -> ::tinyio::Coroutine<'__tinyio, u64>
//     where
//         '__tinyio0: '__tinyio,
//     {
//         ::tinyio::__private::coroutine(
//             &::tinyio::__private::Site { name: "add", file: ::core::file!(), line: ::core::line!() },
//             move |__tinyio_co| async move {
//                 let x = x;
//                 let mut n = n;
//                 let __tinyio_arg2 = __tinyio_arg2;
//                 let (a, _) = __tinyio_arg2;
//                 #[allow(clippy::diverging_sub_expression)] // for a tail like `tinyio::bail!(..)`
//                 let __tinyio_out: u64 = '__tinyio_body: {
//                     let y = (::tinyio::__private::suspend(&__tinyio_co, other(*x), ::core::line!()).await?);
//                     if y > 10 {
//                         { let __tinyio_ret: u64 = y; break '__tinyio_body __tinyio_ret }
//                     }
//                     n += a;
//                     y + n
//                 };
//                 #[allow(unreachable_code)]
//                 ::core::result::Result::Ok(__tinyio_out)
//             },
//         )
//     }
//
// `::tinyio` stands for the runtime's path: `crate = path`, else the name the user's Cargo.toml
// gives the package (see `args::runtime`). `try_yield!` is the same call without the `?`; `yield_!`s that are not rewritten (in a closure,
// say) reach the runtime's `macro_rules!`, a `compile_error!` that says where they may be used. The arguments are moved into the body, as an `async fn` does, so that they live
// as long as the coroutine (a `self` receiver is captured by `let _ = &self;`). With no borrowed,
// generic or `impl Trait` argument and no `self`, the coroutine is `'static` and the signature
// keeps its generics. The typed `let`s make rustc report a wrong tail or `return` value on the
// user's expression, each on its own. A function without `-> T` that ends in an expression has
// it checked by `::tinyio::__private::unit`, whose error says to add the return type (rustc's
// own hint only comes on a function's body).
pub(crate) fn coroutine(krate: &Path, mut item: ItemFn) -> Result<TokenStream> {
    let co = Ident::new("__tinyio_co", Span::mixed_site());
    let label = Lifetime::new("'__tinyio_body", Span::mixed_site());
    let output = output_type(&item.sig);
    let mut errors = valid::signature(&item.sig);
    errors.extend(
        item.attrs.iter().filter(|attr| valid::is_coroutine(attr)).map(valid::applied_twice),
    );
    errors.extend(visit::rewrite(&mut item.block, krate, &co, &label, output.as_ref()));
    valid::combine(errors)?;
    if let (ReturnType::Default, Some(Stmt::Expr(tail, None))) =
        (&item.sig.output, item.block.stmts.last_mut())
    {
        let first = tail.to_token_stream().into_iter().next();
        let span = first.map_or(Span::call_site(), |token| token.span());
        let value = Ident::new("__tinyio_tail", Span::mixed_site().located_at(span));
        *tail = Expr::Verbatim(quote! {{
            let #value = #tail;
            #[allow(unreachable_code)]
            #krate::__private::unit(#value)
        }});
    }
    let captures = capture_args(&mut item.sig);
    let body = transform_block(&item.sig, krate, output, captures, &item.block, &co, &label);
    transform_sig(&mut item.sig, krate);
    replace_body(&mut item, body);
    Ok(item.into_token_stream())
}

/// Moves every argument into the body: `let x = x;`, with the `mut` of `mut x` moved to the
/// `let`. Other patterns are bound to a hidden argument, then destructured inside.
fn capture_args(sig: &mut Signature) -> TokenStream {
    let mut captures = TokenStream::new();
    for (i, arg) in sig.inputs.iter_mut().enumerate() {
        let arg = match arg {
            FnArg::Receiver(receiver) => {
                let self_token = receiver.self_token;
                captures.extend(quote!(let _ = &#self_token;));
                continue;
            }
            FnArg::Typed(arg) => arg,
        };
        let attrs = &arg.attrs;
        match &mut *arg.pat {
            Pat::Ident(PatIdent { by_ref: None, mutability, ident, subpat: None, .. }) => {
                let mutability = mutability.take();
                // Unused-variable warnings point at the user's name; clippy's underscore lints
                // see a generated use.
                let mut arg = ident.clone();
                arg.set_span(Span::call_site());
                let name = if ident.unraw().to_string().starts_with('_') { &arg } else { &*ident };
                captures.extend(quote!(#(#attrs)* let #mutability #name = #arg;));
            }
            pat => {
                let hidden = Ident::new(&format!("__tinyio_arg{i}"), Span::mixed_site());
                captures.extend(quote!(#(#attrs)* let #hidden = #hidden;));
                if !matches!(pat, Pat::Wild(_)) {
                    captures.extend(quote!(#(#attrs)* let #pat = #hidden;));
                }
                *pat = parse_quote!(#hidden);
            }
        }
    }
    captures
}

pub(crate) fn replace_body(item: &mut ItemFn, body: TokenStream) {
    item.block.stmts = vec![Stmt::Expr(Expr::Verbatim(body), None)];
}

/// The type that the body's value and each `return` value are checked against: none for an
/// `impl Trait` output, which a `let` cannot name.
fn output_type(sig: &Signature) -> Option<TokenStream> {
    match &sig.output {
        ReturnType::Default => Some(quote_spanned!(sig.paren_token.span.close()=> ())),
        ReturnType::Type(_, ty) if mentions_impl(ty.to_token_stream()) => None,
        ReturnType::Type(_, ty) => Some(ty.to_token_stream()),
    }
}

fn transform_block(
    sig: &Signature,
    krate: &Path,
    output: Option<TokenStream>,
    captures: TokenStream,
    block: &Block,
    co: &Ident,
    label: &Lifetime,
) -> TokenStream {
    let out = Ident::new("__tinyio_out", Span::mixed_site());
    let annotation = output.map(|ty| quote!(: #ty));
    let name = sig.ident.unraw().to_string();
    let line = quote_spanned!(sig.ident.span()=> ::core::line!());
    quote! {
        #krate::__private::coroutine(
            &#krate::__private::Site { name: #name, file: ::core::file!(), line: #line },
            move |#co| async move {
                #captures
                #[allow(clippy::diverging_sub_expression)]
                let #out #annotation = #label: #block;
                #[allow(unreachable_code)]
                ::core::result::Result::Ok(#out)
            },
        )
    }
}

fn mentions_impl(tokens: TokenStream) -> bool {
    tokens.into_iter().any(|token| match token {
        TokenTree::Ident(ident) => ident == "impl",
        TokenTree::Group(group) => mentions_impl(group.stream()),
        _ => false,
    })
}

pub(crate) fn transform_sig(sig: &mut Signature, krate: &Path) {
    let mut lifetimes = Lifetimes::default();
    for arg in &mut sig.inputs {
        lifetimes.visit_fn_arg_mut(arg);
    }
    if let Some(lifetime) = lifetimes.output_lifetime(sig)
        && let ReturnType::Type(_, ty) = &mut sig.output
    {
        let mut output = Lifetimes { output: Some(lifetime), ..Lifetimes::default() };
        output.visit_type_mut(ty);
    }
    let has_self = sig.receiver().is_some();
    let lifetime = if lifetimes.mentioned || has_self || !sig.generics.params.is_empty() {
        bound_captures(sig, lifetimes, has_self)
    } else {
        Lifetime::new("'static", Span::call_site())
    };
    let ret = match &sig.output {
        ReturnType::Default => quote!(()),
        ReturnType::Type(_, ty) => ty.to_token_stream(),
    };
    sig.output = parse_quote!(-> #krate::Coroutine<#lifetime, #ret>);
}

fn bound_captures(sig: &mut Signature, lifetimes: Lifetimes, has_self: bool) -> Lifetime {
    let bound = Lifetime::new("'__tinyio", Span::call_site());
    let generics = &mut sig.generics;
    let mut outlive: Vec<TokenStream> = Vec::new();
    for param in &mut generics.params {
        match param {
            // Next to the user's bounds, so that clippy sees one bound location.
            GenericParam::Lifetime(param) if !param.bounds.is_empty() => {
                param.bounds.push(bound.clone());
            }
            GenericParam::Lifetime(param) => outlive.push(param.lifetime.to_token_stream()),
            GenericParam::Type(param) => outlive.push(param.ident.to_token_stream()),
            GenericParam::Const(_) => {}
        }
    }
    for lifetime in lifetimes.explicit {
        let declared = generics.lifetimes().any(|param| param.lifetime == lifetime);
        if !declared {
            outlive.push(lifetime.into_token_stream());
        }
    }
    for lifetime in lifetimes.elided {
        outlive.push(lifetime.to_token_stream());
        generics.params.push(parse_quote!(#lifetime));
    }
    if has_self {
        outlive.push(quote!(Self));
    }
    generics.params.insert(0, parse_quote!(#bound));
    let where_clause = generics.make_where_clause();
    // Spanned at the attribute, so that clippy doesn't blame the user's `T: Trait` for a second
    // bound location.
    for captured in outlive {
        let captured = captured.into_iter().map(|mut token| {
            token.set_span(Span::call_site());
            token
        });
        where_clause.predicates.push(parse_quote!(#(#captured)*: #bound));
    }
    bound
}

/// Names the elided lifetimes of the arguments and bounds their `impl Trait` types; with
/// `output`, gives the return type's elided lifetimes the one that elision would pick.
#[derive(Default)]
struct Lifetimes {
    mentioned: bool,
    elided: Vec<Lifetime>,
    explicit: Vec<Lifetime>,
    output: Option<Lifetime>,
}

impl Lifetimes {
    fn fresh(&mut self, span: Span) -> Lifetime {
        if let Some(output) = &self.output {
            return output.clone();
        }
        let lifetime = Lifetime::new(&format!("'__tinyio{}", self.elided.len()), span);
        self.elided.push(lifetime.clone());
        lifetime
    }

    fn output_lifetime(&self, sig: &Signature) -> Option<Lifetime> {
        match sig.receiver().map(|receiver| &receiver.kind) {
            Some(ReceiverKind::Reference(_, lifetime, _)) => lifetime.clone(),
            Some(ReceiverKind::Typed(_, ty)) => match &**ty {
                Type::Reference(ty) => ty.lifetime.clone(),
                _ => None,
            },
            _ if self.elided.len() == 1 && self.explicit.is_empty() => self.elided.first().cloned(),
            _ => None,
        }
    }
}

impl VisitMut for Lifetimes {
    fn visit_fn_arg_mut(&mut self, arg: &mut FnArg) {
        visit_mut::visit_fn_arg_mut(self, arg);
        if let FnArg::Receiver(receiver) = arg
            && let ReceiverKind::Reference(and, lifetime @ None, _) = &mut receiver.kind
        {
            *lifetime = Some(self.fresh(and.span));
        }
    }

    fn visit_type_reference_mut(&mut self, ty: &mut TypeReference) {
        self.mentioned = true;
        match &mut ty.lifetime {
            Some(lifetime) => self.visit_lifetime_mut(lifetime),
            None => ty.lifetime = Some(self.fresh(ty.and_token.span)),
        }
        self.visit_type_mut(&mut ty.elem);
    }

    fn visit_lifetime_mut(&mut self, lifetime: &mut Lifetime) {
        self.mentioned = true;
        if lifetime.ident == "_" {
            *lifetime = self.fresh(lifetime.apostrophe);
        } else if lifetime.ident != "static" && !self.explicit.contains(lifetime) {
            self.explicit.push(lifetime.clone());
        }
    }

    fn visit_type_impl_trait_mut(&mut self, ty: &mut TypeImplTrait) {
        visit_mut::visit_type_impl_trait_mut(self, ty);
        self.mentioned = true;
        if self.output.is_none() {
            ty.bounds.push(parse_quote!('__tinyio));
        }
    }

    // Lifetimes elided or bound in `fn(&T)`, `Fn(&T)` and `for<'a>` belong to those types.
    fn visit_type_fn_ptr_mut(&mut self, _: &mut TypeFnPtr) {}

    fn visit_parenthesized_generic_arguments_mut(&mut self, _: &mut ParenthesizedGenericArguments) {
    }

    fn visit_trait_bound_mut(&mut self, bound: &mut TraitBound) {
        if bound.lifetimes.is_none() {
            visit_mut::visit_trait_bound_mut(self, bound);
        }
    }
}
