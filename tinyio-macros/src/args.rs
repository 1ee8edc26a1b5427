use syn::parse::{Parse, ParseStream, Result};

pub(crate) struct Args;

impl Parse for Args {
    fn parse(input: ParseStream) -> Result<Self> {
        if input.is_empty() {
            Ok(Args)
        } else {
            Err(input.error("`#[tinyio::coroutine]` takes no arguments"))
        }
    }
}
