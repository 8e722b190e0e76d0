//! Code generation: the function itself, `apply_<fn>`, `apply_async_<fn>`,
//! the map family (in [`map`]), the marker type's trait impls, the worker's
//! entry points and the registration, one function each, from a [`Model`];
//! the errors for `#[pool_task]` where it cannot go are in [`misuse`].

mod map;
mod misuse;

use proc_macro2::{Span, TokenStream};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{parse_quote, ItemFn};

use crate::context;
use crate::docs;
use crate::model::Model;
use crate::parse::{MainArgs, TaskArgs};
use crate::validate::{self, TaskFn};
use map::map_fns;
use misuse::{in_block, not_a_function, take_repeated};

/// `#[pool_task]`: on error, the function is still emitted next to the
/// errors, so one mistake does not cascade into "cannot find `square`".
pub(crate) fn pool_task(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => return with_error(item.clone(), not_a_function(item)),
    };
    let repeated = take_repeated(&mut func);
    let args = syn::parse2::<TaskArgs>(args);
    let task = validate::task_fn(&func);
    let mut error = match (args, task) {
        (Ok(args), Ok(task)) => match context::enclosing(&func.sig.ident) {
            None => {
                // rustc's one error at `Self` says it all (see
                // `mentions_self`): the function alone.
                let generated = match validate::mentions_self(&func.sig) {
                    true => func.to_token_stream(),
                    false => generate(&args, &task),
                };
                return match repeated {
                    Some(error) => with_error(generated, error),
                    None => generated,
                };
            }
            Some(block) => in_block(&func, block),
        },
        (Err(a), Err(mut t)) => {
            t.combine(a);
            t
        }
        (Err(e), _) | (_, Err(e)) => e,
    };
    if let Some(repeated) = repeated {
        error.combine(repeated);
    }
    // Rust itself rejects a C-variadic definition (unstable): without the
    // `...` only our error is shown.
    if func.sig.variadic.take().is_some() {
        func.sig.inputs.pop_punct();
    }
    with_error(func.into_token_stream(), error)
}

/// `#[procpool::main]`: `init()` becomes the first statement of `main`.
///
/// Attributes expand outermost first. Below an async runtime's attribute
/// (`#[tokio::main] #[procpool::main] async fn main()`) this sees the plain
/// `fn main` that one made. Above it, it sees the `async fn` itself, with
/// the runtime's attribute still to expand: `init()` must then run before
/// the runtime starts its threads (the fork server forks only while the
/// program has one thread, and a worker must serve before it starts a
/// runtime), so `main` becomes a plain `fn` that calls `init()` and then
/// the `async fn main` with its attributes, declared inside it.
pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new(Span::call_site(), "`#[procpool::main]` goes on `fn main`");
            return with_error(item, error);
        }
    };
    let krate = match syn::parse2::<MainArgs>(args) {
        Ok(MainArgs { krate: Some(path) }) => path.into_token_stream(),
        Ok(MainArgs { krate: None }) => quote!(::procpool),
        Err(error) => return with_error(func.into_token_stream(), error),
    };
    if func.sig.asyncness.is_some() {
        return main_above_runtime(func, &krate);
    }
    func.block.stmts.insert(0, parse_quote!(#krate::init();));
    func.into_token_stream()
}

/// `#[procpool::main]` on an `async fn main` whose runtime's attribute is
/// below it (see [`main`]).
fn main_above_runtime(func: ItemFn, krate: &TokenStream) -> TokenStream {
    let asyncness = func.sig.asyncness.expect("an async fn");
    // Documentation and lints are no runtime: an `async fn main` with no
    // other attribute is an error at `async`, not rustc's about a future.
    let runtime = func.attrs.iter().any(|attr| {
        !["doc", "allow", "warn", "deny", "expect"]
            .iter()
            .any(|n| attr.path().is_ident(n))
    });
    if !runtime {
        let error = syn::Error::new(
            asyncness.span(),
            "`async fn main` needs an async runtime's attribute, e.g. `#[tokio::main]` \
             (`#[procpool::main]` then calls `init()` before the runtime starts)",
        );
        return with_error(func.into_token_stream(), error);
    }
    let (attrs, vis, sig, block) = (&func.attrs, &func.vis, &func.sig, &func.block);
    let ident = &sig.ident;
    let output = &sig.output;
    quote! {
        #vis fn #ident() #output {
            #krate::init();
            #(#attrs)*
            #sig #block
            #ident()
        }
    }
}

fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#item #error)
}

fn generate(args: &TaskArgs, task: &TaskFn<'_>) -> TokenStream {
    let m = Model::new(args, task);
    let item = task.item;
    let marker = &m.marker;
    let apply = apply_fns(&m);
    let map_family = map_fns(&m);
    let impls = marker_impls(&m);
    let entries = worker_entries(&m);
    let registration = registration(&m);
    quote! {
        #item

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        struct #marker;

        #apply
        #map_family

        // (The worker's entry points call the task: a `#[deprecated]` one
        // warns its callers, through the generated functions too, not its
        // own registration.)
        #[allow(deprecated)]
        const _: () = {
            #impls
            #entries
            #registration
        };
    }
}

/// The task's `#[deprecated]` attributes, put on each generated function:
/// `apply_<fn>` and the rest are the task's callers' way to call it.
fn deprecations(m: &Model<'_>) -> TokenStream {
    let attrs = m.task.item.attrs.iter();
    let deprecated = attrs.filter(|attr| attr.path().is_ident("deprecated"));
    quote!(#(#deprecated)*)
}

/// `apply_<fn>` and `apply_async_<fn>`.
fn apply_fns(m: &Model<'_>) -> TokenStream {
    let Model {
        krate,
        marker,
        pool,
        params,
        ret,
        name,
        ..
    } = m;
    let vis = &m.task.item.vis;
    let (apply, apply_async) = (m.family("apply", ""), m.family("apply_async", ""));
    let pushes = m.args.iter().map(|a| &a.push);
    let encode = quote!(#krate::__private::ArgsEncoder::new() #(#pushes)* .finish());
    let apply_doc = docs::apply(&m.fn_name, &pool.to_string());
    let apply_async_doc = docs::apply_async(&m.fn_name, &pool.to_string());
    let name_doc = name_doc(name);
    let deprecated = deprecations(m);
    quote! {
        #[doc = #apply_doc]
        #[doc = #name_doc]
        #deprecated
        #[allow(
            clippy::too_many_arguments,
            clippy::used_underscore_binding,
            dead_code,
            non_snake_case
        )]
        #vis fn #apply(#pool: &#krate::Pool, #(#params),*) -> ::core::result::Result<#ret, #krate::Error> {
            #krate::__private::call_task::<#marker>(#pool, #encode)
        }

        #[doc = #apply_async_doc]
        #[doc = #name_doc]
        #deprecated
        #[allow(
            clippy::too_many_arguments,
            clippy::used_underscore_binding,
            dead_code,
            non_snake_case
        )]
        #vis fn #apply_async(#pool: &#krate::Pool, #(#params),*) -> #krate::AsyncResult<#ret> {
            #krate::__private::submit_task::<#marker>(#pool, #encode)
        }
    }
}

/// `Registered as "...".`, below each generated function's doc.
fn name_doc(name: &TokenStream) -> TokenStream {
    quote!(::core::concat!("\n\nRegistered as `", #name, "`."))
}

/// The marker type's impls: one per argument (`ValueArg` / `RefArgAt`),
/// `TaskOutput`, `Task` and `EncodeItem` (for every item type the map
/// family accepts). The serde bounds are checked once, in these impls, each
/// at the user's own type (see `procpool::task`).
fn marker_impls(m: &Model<'_>) -> TokenStream {
    let Model {
        krate,
        marker,
        name,
        signature,
        item_impl_ty,
        item_params,
        item_pat,
        ..
    } = m;
    let arg_impls = m.args.iter().map(|a| &a.marker_impl);
    let item_pushes = m.args.iter().map(|a| &a.item_push);
    // One argument taken by value: a number goes in the dense form.
    let dense = match m.task.args.as_slice() {
        [arg] if arg.referent.is_none() => quote! {
            #[inline]
            fn dense_kind() -> ::core::option::Option<#krate::__private::DenseKind> {
                #krate::__private::dense_kind::<#marker, 0>()
            }

            #[inline]
            fn encode_dense(
                __procpool_item: #item_impl_ty,
                __procpool_chunk: &mut ::std::vec::Vec<u8>,
            ) {
                #krate::__private::encode_dense::<#marker, 0>(&__procpool_item, __procpool_chunk)
            }
        },
        _ => TokenStream::new(),
    };
    let output = m.static_ret();
    let output_impl = quote_spanned! {m.ret_span=>
        impl #krate::__private::TaskOutput for #marker {
            type Output = #output;
        }
    };
    quote! {
        #(#arg_impls)*
        #output_impl

        impl #krate::__private::Task for #marker {
            const INFO: #krate::__private::TaskInfo = #krate::__private::TaskInfo {
                name: #name,
                signature: #signature,
                fingerprint: #krate::__private::fingerprint(#signature),
            };
        }

        impl<#(#item_params),*> #krate::__private::EncodeItem<#item_impl_ty> for #marker {
            #[inline]
            fn encode_item(
                __procpool_item: #item_impl_ty,
                __procpool_chunk: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), ::std::string::String> {
                // The item's parts by reference: an item refused for its
                // depth is dropped by `settle_item`, on a large stack.
                #[allow(clippy::redundant_closure_call)]
                let __procpool_encoded = (|| {
                    let #item_pat = &__procpool_item;
                    #(#item_pushes)*
                    ::core::result::Result::Ok(())
                })();
                #krate::__private::settle_item(__procpool_item, __procpool_encoded)
            }
            #dense
        }
    }
}

/// What the worker runs: one call, a chunk of a map, and the signature
/// calls by name must match.
fn worker_entries(m: &Model<'_>) -> TokenStream {
    let Model {
        krate,
        marker,
        ret,
        vars,
        ..
    } = m;
    let fn_ident = &m.task.item.sig.ident;
    let decodes: Vec<_> = m.args.iter().map(|a| &a.decode).collect();
    let passes: Vec<_> = m.args.iter().map(|a| &a.pass).collect();
    let by_name_types = m.args.iter().map(|a| &a.by_name_ty);
    // The result is handed over whole: a block of bytes (`Vec<u8>`,
    // `serde_bytes::ByteBuf`) is sent without a copy.
    quote! {
        fn __procpool_call_batch(
            __procpool_bytes: &[u8],
            __procpool_out: &mut ::std::vec::Vec<u8>,
        ) -> ::core::result::Result<(), #krate::__private::CallError> {
            #krate::__private::run_chunk::<#marker, _>(
                __procpool_bytes,
                __procpool_out,
                |__procpool_args| {
                    #(#decodes)*
                    ::core::result::Result::Ok((#(#vars,)*))
                },
                |(#(#vars,)*)| #fn_ident(#(#passes),*),
            )
        }

        // (The borrows choose the impl: see `procpool::task::returned`.)
        #[allow(clippy::needless_borrow)]
        fn __procpool_returned_err(
            __procpool_bytes: &[u8],
        ) -> ::core::option::Option<::std::string::String> {
            #[allow(unused_imports)]
            use #krate::__private::{ErrWithDebug as _, ErrWithoutDebug as _, NotAResult as _};
            let __procpool_out = #krate::__private::decode_output::<#marker>(__procpool_bytes).ok()?;
            (&&&#krate::__private::Returned(&__procpool_out)).__procpool_err_text()
        }

        fn __procpool_by_name_signature() -> ::std::string::String {
            #krate::__private::by_name_signature::<(#(#by_name_types,)*), #ret>()
        }

        fn __procpool_call(
            mut __procpool_args: #krate::__private::ArgsDecoder<'_>,
        ) -> ::core::result::Result<#krate::__private::Encoded, #krate::__private::CallError> {
            #(#decodes)*
            __procpool_args.finish()?;
            let __procpool_out: #ret = #fn_ident(#(#passes),*);
            #krate::__private::encode_output::<#marker>(__procpool_out)
        }
    }
}

/// The task's entry in the registry.
fn registration(m: &Model<'_>) -> TokenStream {
    let Model { krate, marker, .. } = m;
    quote! {
        #krate::__private::inventory::submit! {
            #krate::__private::Registration {
                info: <#marker as #krate::__private::Task>::INFO,
                call: __procpool_call,
                call_batch: __procpool_call_batch,
                by_name_signature: __procpool_by_name_signature,
                returned_err: __procpool_returned_err,
                file: ::core::file!(),
                line: ::core::line!(),
            }
        }
    }
}
