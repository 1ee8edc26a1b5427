use crate::valid;
use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Error, Expr, Item, Lifetime, Macro, Path, Stmt, Token};

/// Rewrites `yield_!` and `try_yield!` in a coroutine body into suspension calls, turns `return`
/// into a `break` out of the `body` block, its value checked against `output` on its own, and
/// reports `.await`.
pub(crate) fn rewrite(
    block: &mut Block,
    krate: &Path,
    co: &Ident,
    body: &Lifetime,
    output: Option<&TokenStream>,
) -> Vec<Error> {
    let mut rewriter = Rewriter { krate, co, body, output, errors: Vec::new() };
    rewriter.visit_block_mut(block);
    rewriter.errors
}

struct Rewriter<'a> {
    krate: &'a Path,
    co: &'a Ident,
    body: &'a Lifetime,
    output: Option<&'a TokenStream>,
    errors: Vec<Error>,
}

#[derive(Clone, Copy)]
enum Suspend {
    Yield,
    TryYield,
}

fn suspend_kind(ident: &Ident) -> Option<Suspend> {
    match ident.to_string().as_str() {
        "yield_" => Some(Suspend::Yield),
        "try_yield" => Some(Suspend::TryYield),
        _ => None,
    }
}

impl Rewriter<'_> {
    /// What a `yield_!`/`try_yield!` named by `ident` becomes: one call into the runtime.
    fn suspend(&mut self, ident: &Ident, args: TokenStream) -> Option<TokenStream> {
        let kind = suspend_kind(ident)?;
        let (krate, span) = (self.krate, ident.span());
        let value = if args.is_empty() {
            quote_spanned!(span=> ())
        } else {
            match syn::parse2::<Expr>(args.clone()) {
                Ok(mut expr) => {
                    self.visit_expr_mut(&mut expr);
                    expr.into_token_stream()
                }
                Err(error) => {
                    // `yield_!(a, b)`: say to yield a tuple rather than "unexpected token".
                    let several =
                        Punctuated::<Expr, Token![,]>::parse_terminated.parse2(args.clone());
                    let comma = several
                        .ok()
                        .and_then(|values| values.pairs().next()?.punct().map(|&&comma| comma));
                    self.errors
                        .push(comma.map_or(error, |comma| valid::several_values(ident, &comma)));
                    args
                }
            }
        };
        // The call, its `.await`, `?` and parentheses span the value, as its argument does:
        // rustc then reports a value that cannot be yielded once, on the value, rather than once
        // more on the call; clippy's `await_holding_*` lints show the `.await` there; and the
        // parentheses are not linted as unneeded. `line!()` stays at the `yield_!`.
        let mut spans = value.clone().into_iter().map(|token| token.span());
        let first = spans.next().unwrap_or(span);
        let last = spans.last().unwrap_or(first);
        let suspend = respan(quote!(#krate::__private::suspend), first);
        let co = self.co;
        let mut args = Group::new(
            Delimiter::Parenthesis,
            quote_spanned!(span=> &#co, #value, ::core::line!()),
        );
        args.set_span(last);
        let question = matches!(kind, Suspend::Yield).then(|| quote_spanned!(first=> ?));
        let mut call = Group::new(
            Delimiter::Parenthesis,
            quote_spanned!(first=> #suspend #args .await #question),
        );
        call.set_span(first);
        Some(call.into_token_stream())
    }

    fn rewrite_tokens(&mut self, tokens: TokenStream) -> TokenStream {
        let mut out = Vec::new();
        let mut tokens = tokens.into_iter().peekable();
        while let Some(token) = tokens.next() {
            let token = match token {
                TokenTree::Group(group) => {
                    let mut new =
                        Group::new(group.delimiter(), self.rewrite_tokens(group.stream()));
                    new.set_span(group.span());
                    new.into()
                }
                other => other,
            };
            let is_bang = matches!(&token, TokenTree::Punct(bang) if bang.as_char() == '!');
            if let (true, Some(TokenTree::Ident(ident)), Some(TokenTree::Group(args))) =
                (is_bang, out.last().cloned(), tokens.peek())
                && args.delimiter() != Delimiter::None
                && let Some(call) = self.suspend(&ident, args.stream())
            {
                // Drop the macro's name and any path before it (`tinyio::yield_`).
                out.pop();
                while matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == ':') {
                    out.pop();
                    if matches!(out.last(), Some(TokenTree::Punct(p)) if p.as_char() == ':') {
                        out.pop();
                    }
                    if matches!(out.last(), Some(TokenTree::Ident(_))) {
                        out.pop();
                    }
                }
                out.extend(call);
                tokens.next();
                continue;
            }
            out.push(token);
        }
        out.into_iter().collect()
    }
}

fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    let respanned = tokens.into_iter().map(|mut token| {
        token.set_span(span);
        token
    });
    respanned.collect()
}

impl Rewriter<'_> {
    /// Reports each `yield_!`/`try_yield!` in `tokens`: code the rewrite leaves alone (a
    /// closure, an async block, a nested item) cannot suspend the coroutine.
    fn stray(&mut self, tokens: TokenStream) {
        let mut tokens = tokens.into_iter().peekable();
        while let Some(token) = tokens.next() {
            match token {
                TokenTree::Group(group) => self.stray(group.stream()),
                TokenTree::Ident(ident)
                    if suspend_kind(&ident).is_some()
                        && matches!(tokens.peek(), Some(TokenTree::Punct(p)) if p.as_char() == '!') =>
                {
                    self.errors.push(valid::stray_suspend(&ident));
                }
                _ => {}
            }
        }
    }

    /// The suspension call for a `yield_!(...)`/`try_yield!(...)` macro, if it is one.
    fn suspend_macro(&mut self, mac: &Macro) -> Option<TokenStream> {
        let ident = &mac.path.segments.last()?.ident;
        self.suspend(ident, mac.tokens.clone())
    }
}

impl VisitMut for Rewriter<'_> {
    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(node) = stmt
            && let Some(call) = self.suspend_macro(&node.mac)
        {
            let attrs = &node.attrs;
            *stmt = Stmt::Expr(Expr::Verbatim(quote!(#(#attrs)* #call)), Some(Default::default()));
            return;
        }
        visit_mut::visit_stmt_mut(self, stmt);
    }

    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        if let Expr::Macro(node) = expr
            && let Some(call) = self.suspend_macro(&node.mac)
        {
            let attrs = &node.attrs;
            *expr = Expr::Verbatim(quote!(#(#attrs)* #call));
            return;
        }
        match expr {
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) => {
                self.stray(expr.to_token_stream());
            }
            Expr::Return(node) => {
                if let (None, Some(_)) = (&node.expr, self.output) {
                    // `return;` is checked as `return ();`, on the `return`: a `break` without a
                    // value would be reported at the attribute, with a help to write `42` there.
                    node.expr =
                        Some(Box::new(Expr::Verbatim(quote_spanned!(node.return_token.span=> ()))));
                }
                if let Some(value) = &mut node.expr {
                    self.visit_expr_mut(value);
                }
                let (attrs, body, span) = (&node.attrs, self.body, node.return_token.span);
                *expr = Expr::Verbatim(match (&node.expr, self.output) {
                    (Some(value), Some(ty)) => {
                        let ret = Ident::new("__tinyio_ret", Span::mixed_site());
                        quote_spanned!(span=> #(#attrs)* { let #ret: #ty = #value; break #body #ret })
                    }
                    (value, _) => quote_spanned!(span=> #(#attrs)* break #body #value),
                });
            }
            Expr::Await(node) => {
                self.errors.push(valid::await_in_body(&node.await_token));
                visit_mut::visit_expr_await_mut(self, node);
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_item_mut(&mut self, item: &mut Item) {
        if !matches!(item, Item::Fn(f) if f.attrs.iter().any(valid::is_coroutine)) {
            self.stray(item.to_token_stream());
        }
    }

    // Other macros: their tokens may hold `yield_!`s (`assert_eq!(yield_!(c), 3)`).
    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        mac.tokens = self.rewrite_tokens(std::mem::take(&mut mac.tokens));
    }
}
