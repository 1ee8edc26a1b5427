use crate::{attribute, expand};
use proc_macro2::TokenStream;
use quote::{ToTokens, quote};
use std::path::Path;

fn pretty(tokens: TokenStream) -> String {
    prettyplease::unparse(&syn::parse2(tokens).expect("the expansion parses as a file"))
}

fn expansion(item: TokenStream) -> String {
    pretty(attribute(TokenStream::new(), item))
}

fn signature(item: TokenStream) -> String {
    let expanded = expansion(item);
    let words = expanded[..expanded.find('{').unwrap()].split_whitespace();
    words.collect::<Vec<_>>().join(" ").replace("( ", "(").replace(", )", ")")
}

fn errors(item: TokenStream) -> Vec<String> {
    let item = syn::parse2(item).unwrap();
    let error =
        expand::coroutine(&syn::parse_quote!(::tinyio), item).expect_err("the input is rejected");
    error.into_iter().map(|error| error.to_string()).collect()
}

#[test]
fn snapshot() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/expand");
    let mut file =
        syn::parse_file(&std::fs::read_to_string(dir.join("coroutine.rs")).unwrap()).unwrap();
    let syn::Item::Fn(mut item) = file.items.remove(0) else { panic!("the input is a fn") };
    item.attrs.retain(|attr| !attr.path().segments.iter().any(|s| s.ident == "coroutine"));
    let expanded = expansion(quote!(#item));
    let path = dir.join("coroutine.expanded.rs");
    if std::env::var_os("TINYIO_BLESS").is_some_and(|v| v == "1") {
        std::fs::write(&path, &expanded).unwrap();
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    if let Some((line, (old, new))) = (1..)
        .zip(expected.lines().chain(["<end>"]).zip(expanded.lines().chain(["<end>"])))
        .find(|(_, (old, new))| old != new)
    {
        panic!(
            "{} differs from the expansion at line {line}; rerun with TINYIO_BLESS=1 to \
             accept it\n- {old}\n+ {new}\n--- the whole expansion:\n{expanded}",
            path.display(),
        );
    }
}

#[test]
fn plain_arguments_give_a_static_coroutine() {
    assert_eq!(
        signature(quote!(
            pub(crate) fn f(x: u64, mut s: String) -> u64 {
                x
            }
        )),
        "pub(crate) fn f(x: u64, s: String) -> ::tinyio::Coroutine<'static, u64>",
    );
    assert_eq!(
        signature(quote!(
            fn f() {}
        )),
        "fn f() -> ::tinyio::Coroutine<'static, ()>"
    );
    assert_eq!(
        signature(quote!(
            fn f(g: fn(&u8) -> u8, h: Box<dyn Fn(&u8)>) {}
        )),
        "fn f(g: fn(&u8) -> u8, h: Box<dyn Fn(&u8)>) -> ::tinyio::Coroutine<'static, ()>",
    );
}

#[test]
fn borrowed_arguments_are_named_and_bounded() {
    assert_eq!(
        signature(quote!(
            fn f(x: &str, y: &mut Vec<Cow<'_, str>>) -> usize {
                0
            }
        )),
        "fn f<'__tinyio, '__tinyio0, '__tinyio1, '__tinyio2>(x: &'__tinyio0 str, y: &'__tinyio1 mut \
         Vec<Cow<'__tinyio2, str>>) -> ::tinyio::Coroutine<'__tinyio, usize> where '__tinyio0: \
         '__tinyio, '__tinyio1: '__tinyio, '__tinyio2: '__tinyio,",
    );
    assert_eq!(
        signature(quote!(
            fn f<'a>(x: &'a str, y: &'static str) -> &'a str {
                x
            }
        )),
        "fn f<'__tinyio, 'a>(x: &'a str, y: &'static str) -> ::tinyio::Coroutine<'__tinyio, &'a \
         str> where 'a: '__tinyio,",
    );
    assert_eq!(
        signature(quote!(
            fn f<'a, 'b: 'a>(x: &'a str, y: &'b str) {}
        )),
        "fn f<'__tinyio, 'a, 'b: 'a + '__tinyio>(x: &'a str, y: &'b str) -> \
         ::tinyio::Coroutine<'__tinyio, ()> where 'a: '__tinyio,",
    );
}

#[test]
fn elided_output_lifetimes_follow_the_arguments() {
    assert_eq!(
        signature(quote!(
            fn f(x: &str) -> &str {
                x
            }
        )),
        "fn f<'__tinyio, '__tinyio0>(x: &'__tinyio0 str) -> ::tinyio::Coroutine<'__tinyio, \
         &'__tinyio0 str> where '__tinyio0: '__tinyio,",
    );
}

#[test]
fn generics_are_bounded() {
    assert_eq!(
        signature(quote!(
            fn f<T: Clone, const N: usize>(x: [T; N]) -> T
            where
                T: Send,
            {
                x[0].clone()
            }
        )),
        "fn f<'__tinyio, T: Clone, const N: usize>(x: [T; N]) -> ::tinyio::Coroutine<'__tinyio, T> \
         where T: Send, T: '__tinyio,",
    );
}

#[test]
fn impl_trait_arguments_are_bounded() {
    assert_eq!(
        signature(quote!(
            fn f(x: impl Display, y: impl Fn(&u8)) -> String {
                x.to_string()
            }
        )),
        "fn f<'__tinyio>(x: impl Display + '__tinyio, y: impl Fn(&u8) + '__tinyio) -> \
         ::tinyio::Coroutine<'__tinyio, String>",
    );
}

#[test]
fn impl_trait_output_is_not_annotated() {
    let expanded = expansion(quote!(
        fn f() -> impl Display {
            1
        }
    ));
    assert!(expanded.contains("-> ::tinyio::Coroutine<'static, impl Display>"), "{expanded}");
    assert!(expanded.contains("let __tinyio_out = '__tinyio_body: {"), "{expanded}");
}

#[test]
fn methods_capture_self() {
    assert_eq!(
        signature(quote!(
            fn get(&self) -> u64 {
                self.v
            }
        )),
        "fn get<'__tinyio, '__tinyio0>(&'__tinyio0 self) -> ::tinyio::Coroutine<'__tinyio, u64> \
         where '__tinyio0: '__tinyio, Self: '__tinyio,",
    );
    assert_eq!(
        signature(quote!(
            fn name(&mut self) -> &str {
                &self.name
            }
        )),
        "fn name<'__tinyio, '__tinyio0>(&'__tinyio0 mut self) -> ::tinyio::Coroutine<'__tinyio, \
         &'__tinyio0 str> where '__tinyio0: '__tinyio, Self: '__tinyio,",
    );
    assert_eq!(
        signature(quote!(
            fn into(mut self) -> u64 {
                self.v
            }
        )),
        "fn into<'__tinyio>(mut self) -> ::tinyio::Coroutine<'__tinyio, u64> where Self: '__tinyio,",
    );
}

#[test]
fn attributes_and_inner_attributes_stay() {
    let expanded = expansion(quote! {
        /// Docs.
        #[inline]
        #[cfg(unix)]
        fn f() { #![allow(unused)] }
    });
    assert!(expanded.starts_with("/// Docs.\n#[inline]\n#[cfg(unix)]\nfn f()"), "{expanded}");
    assert!(expanded.contains("#![allow(unused)]"), "{expanded}");
}

#[test]
fn yields_inside_other_macros_are_rewritten() {
    let expanded = expansion(quote! {
        fn f() {
            assert_eq!(yield_!(c), 3);
            println!("{}", [tinyio::yield_!(a), ::tinyio::try_yield!()]);
            let v = vec![yield_!(a), yield_!{b}];
            my_macro!(return x);
        }
    });
    let compact = expanded.replace(char::is_whitespace, "");
    let suspend = "(::tinyio::__private::suspend(&__tinyio_co,";
    assert_eq!(compact.matches(suspend).count(), 5, "{expanded}");
    for call in [
        "assert_eq!((::tinyio::__private::suspend(&__tinyio_co,c,",
        "[(::tinyio::__private::suspend(&__tinyio_co,a,",
        ",(::tinyio::__private::suspend(&__tinyio_co,(),::core::line!()).await)]",
        "(::tinyio::__private::suspend(&__tinyio_co,b,",
    ] {
        assert!(compact.contains(call), "{call} in {expanded}");
    }
    assert!(!compact.contains("yield_!"), "{expanded}");
    assert!(compact.contains("my_macro!(returnx)"), "{expanded}");
}

#[test]
fn suspension_points_are_plain_calls() {
    let expanded = expansion(quote! {
        fn f() {
            yield_!();
            yield_!(a);
        }
    });
    assert!(!expanded.contains("use ::tinyio"), "{expanded}");
    let compact = expanded.replace(char::is_whitespace, "");
    assert_eq!(compact.matches("(::tinyio::__private::suspend(").count(), 2, "{expanded}");
}

#[test]
fn nested_closures_async_blocks_and_items_are_left_alone() {
    let expanded = expansion(quote! {
        fn f() -> u32 {
            let c = || { return 1; };
            let d = async { x.await };
            let e = const { 1 };
            fn inner() -> u32 { return 2; }
            #[tinyio::coroutine]
            fn nested() -> u32 { yield_!(c); 3 }
            c()
        }
    });
    assert!(expanded.contains("yield_!(c)"), "{expanded}");
    assert_eq!(expanded.matches("return").count(), 2, "{expanded}");
    assert!(!expanded.contains("__private::suspend("), "{expanded}");
}

#[test]
fn reports_suspensions_that_cannot_suspend() {
    let message = |name: &str| {
        format!(
            "`{name}!` can only be used directly in a `#[tinyio::coroutine]` function, not in a \
             closure, async block or nested function"
        )
    };
    assert_eq!(
        errors(quote! {
            fn f() -> u32 {
                let c = || { yield_!(a); };
                let d = async { tinyio::try_yield!(b) };
                fn inner() -> u32 { yield_!(c) }
                impl S { fn m() { yield_!(d) } }
                c()
            }
        }),
        [message("yield_"), message("try_yield"), message("yield_"), message("yield_")],
    );
}

#[test]
fn arguments_are_moved_into_the_body() {
    let item = quote! {
        fn f(x: u8, mut y: u8, (a, mut b): (u8, u8), _: Guard, _g: Guard, r#type: u8) {}
    };
    assert_eq!(
        signature(item.clone()),
        "fn f(x: u8, y: u8, __tinyio_arg2: (u8, u8), __tinyio_arg3: Guard, _g: Guard, r#type: u8) \
         -> ::tinyio::Coroutine<'static, ()>",
    );
    let compact = expansion(item).replace(char::is_whitespace, "");
    assert!(
        compact.contains(
            "asyncmove{letx=x;letmuty=y;let__tinyio_arg2=__tinyio_arg2;let(a,mutb)=__tinyio_arg2;\
             let__tinyio_arg3=__tinyio_arg3;let_g=_g;letr#type=r#type;#[allow("
        ),
        "{compact}"
    );
    let method = expansion(quote! {
        fn m(mut self: Box<Self>, #[cfg(unix)] x: u8) {}
    })
    .replace(char::is_whitespace, "");
    assert!(method.contains("fnm<'__tinyio>(mutself:Box<Self>,#[cfg(unix)]x:u8,)"), "{method}");
    assert!(method.contains("asyncmove{let_=&self;#[cfg(unix)]letx=x;#[allow("), "{method}");
}

#[test]
fn returns_break_out_of_the_body() {
    let expanded = expansion(quote!(
        fn f(x: u32) -> u32 {
            if x > 1 {
                return x;
            }
            loop {
                return;
            }
        }
    ));
    let compact = expanded.replace(char::is_whitespace, "");
    assert!(
        compact.contains("{let__tinyio_ret:u32=x;break'__tinyio_body__tinyio_ret;}"),
        "{expanded}"
    );
    // `return;` is checked like a value, so that a non-`()` output is reported at the `return`.
    assert!(
        compact.contains("{let__tinyio_ret:u32=();break'__tinyio_body__tinyio_ret;}"),
        "{expanded}"
    );
    let opaque = expansion(quote!(
        fn f(x: u32) -> impl Display {
            return x;
        }
    ));
    assert!(opaque.contains("break '__tinyio_body x;"), "{opaque}");
}

#[test]
fn rejects_async_fn() {
    assert_eq!(
        errors(quote!(
            async fn f() {}
        )),
        [
            "`#[tinyio::coroutine]` cannot be applied to an `async fn`; remove `async` and suspend with \
          `yield_!(...)`, or wrap a future with `tinyio::from_future`"
        ],
    );
}

#[test]
fn rejects_const_extern_and_variadic_fn() {
    assert_eq!(
        errors(quote!(
            const unsafe extern "C" fn f(x: u32, ...) {}
        )),
        [
            "`#[tinyio::coroutine]` cannot be applied to a `const fn`; remove `const`",
            "`#[tinyio::coroutine]` cannot be applied to an `extern` function; remove the ABI",
            "`#[tinyio::coroutine]` cannot be applied to a C-variadic function; remove `...`",
        ],
    );
}

#[test]
fn rejects_await_but_not_in_async_blocks() {
    let message = "`.await` cannot be used in a `#[tinyio::coroutine]` function; wrap the future \
                   with `tinyio::from_future(fut)` and `yield_!` it";
    assert_eq!(
        errors(quote!(
            fn f() {
                a.await;
                let b = async { c.await };
                yield_!(d.await)
            }
        )),
        [message, message],
    );
}

#[test]
fn two_mistakes_give_two_errors() {
    assert_eq!(
        errors(quote!(
            async fn f() {
                x.await
            }
        ))
        .len(),
        2
    );
}

#[test]
fn rejects_arguments_and_still_emits_the_function() {
    let expanded = pretty(attribute(
        quote!(flavor = 1),
        quote!(
            fn f(x: &u8) -> u8 {
                *x
            }
        ),
    ));
    assert!(
        expanded.contains(
            "compile_error! {\n    \"`#[tinyio::coroutine]` takes no arguments but `crate = path`"
        ),
        "{expanded}"
    );
    assert!(expanded.contains("-> ::tinyio::Coroutine<'__tinyio, u8>"), "{expanded}");
    assert!(expanded.contains("::core::unreachable!()"), "{expanded}");
}

#[test]
fn fallback_drops_what_was_rejected() {
    let expanded = expansion(quote!(
        pub async fn f(x: u8) -> u8 {
            x.await
        }
    ));
    assert!(
        expanded
            .contains("#[allow(unused)]\npub fn f(x: u8) -> ::tinyio::Coroutine<'static, u8> {"),
        "{expanded}"
    );
    assert_eq!(expanded.matches("compile_error!").count(), 2, "{expanded}");
}

#[test]
fn rejects_what_is_not_a_function() {
    let expanded = expansion(quote!(
        struct S;
    ));
    assert!(
        expanded.contains("\"`#[tinyio::coroutine]` can only be applied to a function\""),
        "{expanded}"
    );
    assert!(expanded.contains("struct S;"), "{expanded}");
}

#[test]
fn rejects_a_method_without_body() {
    let expanded = attribute(
        TokenStream::new(),
        quote!(
            fn f(&self) -> u32;
        ),
    )
    .to_string();
    assert!(expanded.contains("`#[tinyio::coroutine]` needs a function body"), "{expanded}");
    assert!(expanded.ends_with("fn f (& self) -> u32 ;"), "{expanded}");
}

#[test]
fn the_crate_is_found_under_the_name_the_manifest_gives() {
    use crate::args::path_of;
    use proc_macro_crate::FoundCrate;
    let path = |found| path_of(found).to_token_stream().to_string();
    assert_eq!(path(Some(FoundCrate::Name("tinyio".into()))), ":: tinyio");
    assert_eq!(path(Some(FoundCrate::Name("tio".into()))), ":: tio");
    // Inside the runtime crate, which is `extern crate self as tinyio`, and with no manifest.
    assert_eq!(path(Some(FoundCrate::Itself)), ":: tinyio");
    assert_eq!(path(None), ":: tinyio");
}

#[test]
fn crate_argument_names_the_runtime_everywhere() {
    let expanded = pretty(attribute(
        quote!(crate = my::tio),
        quote!(
            fn f(x: &u8) -> u8 {
                let y = yield_!(other());
                let z = tinyio::try_yield!();
                assert_eq!(yield_!(other()), 1);
                *x
            }
        ),
    ));
    let compact = expanded.replace(char::is_whitespace, "");
    assert!(compact.contains("->my::tio::Coroutine<'__tinyio,u8>"), "{expanded}");
    assert!(
        compact.contains("my::tio::__private::coroutine(&my::tio::__private::Site{"),
        "{expanded}"
    );
    assert_eq!(compact.matches("(my::tio::__private::suspend(").count(), 3, "{expanded}");
    assert!(!compact.contains("tinyio::"), "{expanded}");
    // The fallback names it too, and a trailing comma is fine.
    let fallback = pretty(attribute(
        quote!(crate = tio,),
        quote!(
            async fn f() {}
        ),
    ));
    assert!(fallback.contains("-> tio::Coroutine<'static, ()>"), "{fallback}");
}

#[test]
fn crate_argument_is_a_path_and_alone() {
    let error = |args: TokenStream| {
        let expanded = pretty(attribute(
            args,
            quote!(
                fn f() {}
            ),
        ));
        assert_eq!(expanded.matches("compile_error!").count(), 1, "{expanded}");
        expanded
    };
    assert!(error(quote!(crate = "tio")).contains("write the path without quotes: `crate = tio`"),);
    assert!(
        error(quote!(crate = tio, flavor = 1)).contains("unexpected argument after `crate = path`")
    );
    assert!(error(quote!(krate = tio)).contains("takes no arguments but `crate = path`"));
    assert!(error(quote!(crate)).contains("expected `=`"));
}

#[test]
fn a_tail_without_return_type_is_checked_for_unit() {
    let expanded = expansion(quote!(
        fn f(x: u32) {
            x + 1
        }
    ));
    let compact = expanded.replace(char::is_whitespace, "");
    assert!(
        compact.contains(
            "{let__tinyio_tail=x+1;#[allow(unreachable_code)]::tinyio::__private::unit(__tinyio_tail)}"
        ),
        "{expanded}"
    );
    for item in [
        quote!(
            fn f(x: u32) -> () {
                x;
            }
        ),
        quote!(
            fn f(x: u32) {
                x;
            }
        ),
        quote!(
            fn f() -> u32 {
                1
            }
        ),
    ] {
        let expanded = expansion(item);
        assert!(!expanded.contains("unit("), "{expanded}");
    }
}
