/// Adds one to what `other` answers.
pub fn add(
    x: u64,
    text: String,
    __tinyio_arg2: (u64, u64),
) -> ::tinyio::Coroutine<'static, u64> {
    ::tinyio::__private::coroutine(
        &::tinyio::__private::Site {
            name: "add",
            file: ::core::file!(),
            line: ::core::line!(),
        },
        move |__tinyio_co| async move {
            let x = x;
            let mut text = text;
            let __tinyio_arg2 = __tinyio_arg2;
            let (lo, _) = __tinyio_arg2;
            #[allow(clippy::diverging_sub_expression)]
            let __tinyio_out: u64 = '__tinyio_body: {
                let y = (::tinyio::__private::suspend(
                        &__tinyio_co,
                        other(x),
                        ::core::line!(),
                    )
                    .await?);
                let checked = (::tinyio::__private::suspend(
                        &__tinyio_co,
                        other(y),
                        ::core::line!(),
                    )
                    .await);
                if y > 10 {
                    {
                        let __tinyio_ret: u64 = y;
                        break '__tinyio_body __tinyio_ret;
                    };
                }
                text.push('1');
                let n: u64 = text.parse()?;
                assert_eq!(
                    (::tinyio::__private::suspend(& __tinyio_co, other(n),
                    ::core::line!()). await ?), n * 2
                );
                (::tinyio::__private::suspend(&__tinyio_co, (), ::core::line!()).await?);
                y + n + lo + checked.unwrap_or(0)
            };
            #[allow(unreachable_code)] ::core::result::Result::Ok(__tinyio_out)
        },
    )
}
