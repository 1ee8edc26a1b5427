use crate::valid;
use proc_macro2::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};
use quote::{ToTokens, quote, quote_spanned};
use syn::visit_mut::{self, VisitMut};
use syn::{Block, Error, Expr, Item, Lifetime, Macro, Stmt};

/// Rewrites `yield_!` and `try_yield!` in a coroutine body, turns `return` into a `break` out of
/// the `body` block, and reports `.await`.
pub(crate) fn rewrite(block: &mut Block, co: &Ident, body: &Lifetime) -> Vec<Error> {
    let mut rewriter = Rewriter {
        co,
        body,
        errors: Vec::new(),
    };
    rewriter.visit_block_mut(block);
    rewriter.errors
}

struct Rewriter<'a> {
    co: &'a Ident,
    body: &'a Lifetime,
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

fn macro_kind(mac: &Macro) -> Option<(Suspend, Span)> {
    let ident = &mac.path.segments.last()?.ident;
    Some((suspend_kind(ident)?, ident.span()))
}

impl Rewriter<'_> {
    fn suspend(&mut self, kind: Suspend, span: Span, args: TokenStream) -> TokenStream {
        let value = if args.is_empty() {
            quote_spanned!(span=> ())
        } else {
            match syn::parse2::<Expr>(args.clone()) {
                Ok(mut expr) => {
                    self.visit_expr_mut(&mut expr);
                    expr.into_token_stream()
                }
                Err(error) => {
                    self.errors.push(error);
                    args
                }
            }
        };
        let co = self.co;
        let question = matches!(kind, Suspend::Yield).then(|| quote_spanned!(span=> ?));
        quote_spanned! {span=>
            (::tinyio::__private::suspend(&#co, #value, ::core::line!()).await #question)
        }
    }

    fn rewrite_tokens(&mut self, tokens: TokenStream) -> TokenStream {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut out = Vec::new();
        let mut rest = tokens.as_slice();
        while let [first, tail @ ..] = rest {
            if let [
                TokenTree::Ident(ident),
                TokenTree::Punct(bang),
                TokenTree::Group(args),
                tail @ ..,
            ] = rest
                && bang.as_char() == '!'
                && args.delimiter() != Delimiter::None
                && let Some(kind) = suspend_kind(ident)
            {
                pop_path_prefix(&mut out);
                out.extend(self.suspend(kind, ident.span(), args.stream()));
                rest = tail;
                continue;
            }
            out.push(match first {
                TokenTree::Group(group) => {
                    let mut new =
                        Group::new(group.delimiter(), self.rewrite_tokens(group.stream()));
                    new.set_span(group.span());
                    new.into()
                }
                other => other.clone(),
            });
            rest = tail;
        }
        out.into_iter().collect()
    }
}

/// Drops the `tinyio::` of `tinyio::yield_!(...)` found in a macro's tokens.
fn pop_path_prefix(out: &mut Vec<TokenTree>) {
    while let [.., TokenTree::Punct(a), TokenTree::Punct(b)] = out.as_slice() {
        if a.as_char() != ':' || b.as_char() != ':' {
            return;
        }
        out.truncate(out.len() - 2);
        match out.last() {
            Some(TokenTree::Ident(segment))
                if syn::parse2::<Ident>(segment.to_token_stream()).is_ok() =>
            {
                out.pop();
            }
            _ => return,
        }
    }
}

impl VisitMut for Rewriter<'_> {
    fn visit_expr_mut(&mut self, expr: &mut Expr) {
        match expr {
            Expr::Closure(_) | Expr::Async(_) | Expr::Const(_) => {}
            Expr::Macro(node) => match macro_kind(&node.mac) {
                Some((kind, span)) => {
                    let attrs = &node.attrs;
                    let suspend = self.suspend(kind, span, node.mac.tokens.clone());
                    *expr = Expr::Verbatim(quote!(#(#attrs)* #suspend));
                }
                None => self.visit_macro_mut(&mut node.mac),
            },
            Expr::Return(node) => {
                if let Some(value) = &mut node.expr {
                    self.visit_expr_mut(value);
                }
                let (attrs, body, value) = (&node.attrs, self.body, &node.expr);
                let span = node.return_token.span;
                *expr = Expr::Verbatim(quote_spanned!(span=> #(#attrs)* break #body #value));
            }
            Expr::Await(node) => {
                self.errors.push(valid::await_in_body(&node.await_token));
                visit_mut::visit_expr_await_mut(self, node);
            }
            _ => visit_mut::visit_expr_mut(self, expr),
        }
    }

    fn visit_stmt_mut(&mut self, stmt: &mut Stmt) {
        if let Stmt::Macro(node) = stmt
            && let Some((kind, span)) = macro_kind(&node.mac)
        {
            let attrs = &node.attrs;
            let suspend = self.suspend(kind, span, node.mac.tokens.clone());
            *stmt = Stmt::Expr(Expr::Verbatim(quote!(#(#attrs)* #suspend)), node.semi_token);
        } else {
            visit_mut::visit_stmt_mut(self, stmt);
        }
    }

    fn visit_item_mut(&mut self, _: &mut Item) {}

    fn visit_macro_mut(&mut self, mac: &mut Macro) {
        mac.tokens = self.rewrite_tokens(std::mem::take(&mut mac.tokens));
    }
}
