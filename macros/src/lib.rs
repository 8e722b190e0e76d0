//! Procedural macros of procpool. Use them through the `procpool` crate,
//! which documents them: `procpool::pool_task` and `procpool::main`.

use proc_macro::TokenStream;

mod context;
mod docs;
mod expand;
mod model;
mod parse;
mod validate;

/// See `procpool::pool_task`.
#[proc_macro_attribute]
pub fn pool_task(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::pool_task(args.into(), item.into()).into()
}

/// See `procpool::main`.
#[proc_macro_attribute]
pub fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::main(args.into(), item.into()).into()
}
