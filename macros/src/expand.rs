//! Code generation: the function itself, `apply_<fn>`, `apply_async_<fn>` and
//! the registration.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{parse_quote, ItemFn, Lifetime, Path, Type};

use crate::parse::TaskArgs;
use crate::validate::{self, TaskFn};

/// `#[pool_task]`: on error, the function is still emitted next to the
/// errors, so one mistake does not cascade into "cannot find `square`".
pub(crate) fn pool_task(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => return with_error(item.clone(), not_a_function(item)),
    };
    let args = syn::parse2::<TaskArgs>(args);
    let task = validate::task_fn(&func);
    let error = match (args, task) {
        (Ok(args), Ok(task)) => return generate(&args, &task),
        (Err(a), Err(mut t)) => {
            t.combine(a);
            t
        }
        (Err(e), _) | (_, Err(e)) => e,
    };
    // Rust itself rejects a C-variadic definition (unstable): without the
    // `...` only our error is shown.
    if func.sig.variadic.take().is_some() {
        func.sig.inputs.pop_punct();
    }
    with_error(func.into_token_stream(), error)
}

/// The error for `#[pool_task]` on something other than a function, at the
/// item's keyword and name (`struct Job`).
fn not_a_function(item: TokenStream) -> syn::Error {
    use syn::Item;
    fn head(keyword: &dyn ToTokens, name: &dyn ToTokens) -> TokenStream {
        let mut tokens = keyword.to_token_stream();
        name.to_tokens(&mut tokens);
        tokens
    }
    let (what, tokens) = match syn::parse2::<Item>(item.clone()) {
        Ok(Item::Struct(i)) => ("a struct", head(&i.struct_token, &i.ident)),
        Ok(Item::Enum(i)) => ("an enum", head(&i.enum_token, &i.ident)),
        Ok(Item::Union(i)) => ("a union", head(&i.union_token, &i.ident)),
        Ok(Item::Trait(i)) => ("a trait", head(&i.trait_token, &i.ident)),
        Ok(Item::Impl(i)) => ("an impl block", head(&i.impl_token, &i.self_ty)),
        Ok(Item::Mod(i)) => ("a module", head(&i.mod_token, &i.ident)),
        Ok(Item::Const(i)) => ("a const", head(&i.const_token, &i.ident)),
        Ok(Item::Static(i)) => ("a static", head(&i.static_token, &i.ident)),
        Ok(Item::Type(i)) => ("a type alias", head(&i.type_token, &i.ident)),
        Ok(Item::Use(i)) => ("a `use`", i.use_token.to_token_stream()),
        Ok(Item::ForeignMod(i)) => ("an `extern` block", i.abi.to_token_stream()),
        _ => ("this item", item),
    };
    let message = format!(
        "`#[pool_task]` goes on a free function, not on {what}: \
         `#[pool_task] fn name(arg: Type) -> Type {{ .. }}`"
    );
    syn::Error::new_spanned(tokens, message)
}

/// `#[procpool::main]`: `init()` becomes the first statement of `main`.
pub(crate) fn main(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let error = syn::Error::new(Span::call_site(), "`#[procpool::main]` goes on `fn main`");
            return with_error(item, error);
        }
    };
    if !args.is_empty() {
        let error = syn::Error::new(args.span(), "`#[procpool::main]` takes no arguments");
        return with_error(func.into_token_stream(), error);
    }
    func.block
        .stmts
        .insert(0, parse_quote!(::procpool::init();));
    func.into_token_stream()
}

fn with_error(item: TokenStream, error: syn::Error) -> TokenStream {
    let error = error.to_compile_error();
    quote!(#item #error)
}

fn generate(args: &TaskArgs, task: &TaskFn<'_>) -> TokenStream {
    let krate: Path = args
        .krate
        .clone()
        .unwrap_or_else(|| parse_quote!(::procpool));
    let item = task.item;
    let vis = &item.vis;
    let fn_ident = &item.sig.ident;
    let fn_name = fn_ident.unraw().to_string();
    let apply = format_ident!("apply_{}", fn_name, span = fn_ident.span());
    let apply_async = format_ident!("apply_async_{}", fn_name, span = fn_ident.span());
    let family = |prefix: &str| format_ident!("{}_{}", prefix, fn_name, span = fn_ident.span());
    let (map, map_with) = (
        family("map"),
        format_ident!("map_{}_with", fn_name, span = fn_ident.span()),
    );
    let (map_async, map_async_with) = (
        family("map_async"),
        format_ident!("map_async_{}_with", fn_name, span = fn_ident.span()),
    );
    let (imap, imap_with) = (
        family("imap"),
        format_ident!("imap_{}_with", fn_name, span = fn_ident.span()),
    );
    let (imap_unordered, imap_unordered_with) = (
        family("imap_unordered"),
        format_ident!("imap_unordered_{}_with", fn_name, span = fn_ident.span()),
    );

    let name = match &args.name {
        Some(lit) => quote!(#lit),
        None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
    };
    let signature = signature_text(task);
    let fingerprint = fingerprint(&signature);

    let pool = if task.args.iter().any(|a| a.ident == "pool") {
        format_ident!("procpool_pool")
    } else {
        format_ident!("pool")
    };
    let params = task.args.iter().map(|a| {
        let (ident, ty) = (a.ident, a.ty);
        quote!(#ident: #ty)
    });
    let params: Vec<_> = params.collect();
    let ret = match task.output {
        Some(ty) => quote!(#ty),
        None => quote!(()),
    };
    let ret_span = task
        .output
        .map_or_else(|| item.sig.ident.span(), |ty| ty.span());

    // The serde bounds are checked once, in the impls on `marker` (see
    // `__private::ValueArg`), each at the user's own type.
    let marker = format_ident!("__procpool_task_{}", fn_name, span = fn_ident.span());
    let mut arg_impls = Vec::new();
    let mut pushes = Vec::new();
    let mut decodes = Vec::new();
    let mut passes = Vec::new();
    // The map family: one input item per call (the argument, or a tuple).
    let mut item_types = Vec::new();
    let mut item_pushes = Vec::new();
    let mut by_name_types = Vec::new();
    let vars: Vec<_> = (0..task.args.len())
        .map(|i| format_ident!("__procpool_arg{}", i))
        .collect();
    for (i, a) in task.args.iter().enumerate() {
        let ident = a.ident;
        let var = format_ident!("__procpool_arg{}", i);
        let index = syn::Index::from(i);
        match a.referent {
            None => {
                let ty = static_lifetimes(a.ty);
                arg_impls.push(quote_spanned! {a.ty.span()=>
                    impl #krate::__private::ValueArg<#index> for #marker {
                        type Type = #ty;
                    }
                });
                if is_byte_vec(a.ty) {
                    // Sent as one block instead of byte by byte (same bytes).
                    pushes.push(quote!(.byte_vec::<#marker, #index>(&#ident)));
                    decodes
                        .push(quote!(let #var = __procpool_args.byte_vec::<#marker, #index>()?;));
                } else {
                    pushes.push(quote!(.value::<#marker, #index>(&#ident)));
                    decodes.push(quote!(let #var = __procpool_args.value::<#marker, #index>()?;));
                }
                passes.push(quote!(#var));
                item_types.push(a.ty.to_token_stream());
                item_pushes.push(quote!(
                    #krate::__private::encode_value::<#marker, #index>(&#var, __procpool_chunk)?;
                ));
                by_name_types.push(quote!(<#marker as #krate::__private::ValueArg<#index>>::Type));
            }
            Some(referent) => {
                let ty = static_lifetimes(referent);
                arg_impls.push(quote_spanned! {referent.span()=>
                    impl #krate::__private::RefArgAt<#index> for #marker {
                        type Referent = #ty;
                    }
                });
                if is_u8(referent, true) {
                    pushes.push(quote!(.byte_slice::<#marker, #index>(#ident)));
                    decodes
                        .push(quote!(let #var = __procpool_args.byte_slice::<#marker, #index>()?;));
                } else {
                    pushes.push(quote!(.by_ref::<#marker, #index>(#ident)));
                    decodes.push(quote!(let #var = __procpool_args.by_ref::<#marker, #index>()?;));
                }
                passes.push(quote!(#krate::__private::Lend::lend(&#var)));
                item_types.push(owned_referent(referent));
                item_pushes.push(quote!(
                    #krate::__private::encode_ref::<#marker, #index>(
                        ::core::borrow::Borrow::borrow(&#var),
                        __procpool_chunk,
                    )?;
                ));
                // Spelled out, not projected through `RefArg`: a referent
                // that is not decodable is reported once, at the impl above.
                by_name_types.push(owned_referent(referent));
            }
        }
    }
    let output_impl = {
        let ty = static_lifetimes_or_unit(task.output);
        quote_spanned! {ret_span=>
            impl #krate::__private::TaskOutput for #marker {
                type Output = #ty;
            }
        }
    };

    let byte_output = task.output.is_some_and(is_byte_vec);
    let (call_task, encode_output) = if byte_output {
        (
            format_ident!("call_task_bytes"),
            format_ident!("encode_byte_output"),
        )
    } else {
        (format_ident!("call_task"), format_ident!("encode_output"))
    };

    let apply_doc = format!(
        "Runs [`{fn_name}`] in a worker process of `{pool}` and waits for its result.\n\n\
         Generated by `#[pool_task]`. Fails with `procpool::Error` if the task panics, its \
         worker dies or the pool is closed."
    );
    let apply_async_doc = format!(
        "Queues [`{fn_name}`] to run in a worker process of `{pool}` and returns at once.\n\n\
         Generated by `#[pool_task]`. Collect the result with `get()`, or attach callbacks to \
         the returned `AsyncResult`."
    );
    let name_doc = quote!(::core::concat!("\n\nRegistered as `", #name, "`."));

    // One argument: items are that argument; otherwise a tuple (starmap).
    let (item_ty, item_pat) = if item_types.len() == 1 {
        let (ty, var) = (&item_types[0], &vars[0]);
        (quote!(#ty), quote!(#var))
    } else {
        (quote!((#(#item_types,)*)), quote!((#(#vars,)*)))
    };
    let item_text = item_text(task);
    let has_refs = task.args.iter().any(|a| a.referent.is_some());
    let docs = FamilyDocs::new(&fn_name, &pool.to_string(), &item_text, has_refs);
    let (map_doc, map_with_doc) = (&docs.map, &docs.map_with);
    let (map_async_doc, map_async_with_doc) = (&docs.map_async, &docs.map_async_with);
    let (imap_doc, imap_with_doc) = (&docs.imap, &docs.imap_with);
    let (imap_unordered_doc, imap_unordered_with_doc) =
        (&docs.imap_unordered, &docs.imap_unordered_with);
    let items_lt = Lifetime::new("'__procpool", Span::call_site());

    quote! {
        #item

        #[doc(hidden)]
        #[allow(non_camel_case_types, dead_code)]
        struct #marker;

        #[doc = #apply_doc]
        #[doc = #name_doc]
        #[allow(clippy::too_many_arguments, dead_code)]
        #vis fn #apply(#pool: &#krate::Pool, #(#params),*) -> ::core::result::Result<#ret, #krate::Error> {
            const __PROCPOOL_TASK: #krate::__private::TaskInfo = #krate::__private::TaskInfo {
                name: #name,
                signature: #signature,
                fingerprint: #fingerprint,
            };
            let __procpool_args = #krate::__private::ArgsEncoder::new() #(#pushes)* .finish();
            #krate::__private::#call_task::<#marker>(#pool, &__PROCPOOL_TASK, __procpool_args)
        }

        #[doc = #apply_async_doc]
        #[doc = #name_doc]
        #[allow(clippy::too_many_arguments, dead_code)]
        #vis fn #apply_async(#pool: &#krate::Pool, #(#params),*) -> #krate::AsyncResult<#ret> {
            const __PROCPOOL_TASK: #krate::__private::TaskInfo = #krate::__private::TaskInfo {
                name: #name,
                signature: #signature,
                fingerprint: #fingerprint,
            };
            let __procpool_args = #krate::__private::ArgsEncoder::new() #(#pushes)* .finish();
            #krate::__private::submit_task::<#marker>(#pool, &__PROCPOOL_TASK, __procpool_args)
        }

        #[doc = #map_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #map(
            #pool: &#krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty>,
        ) -> ::core::result::Result<::std::vec::Vec<#ret>, #krate::Error> {
            #krate::__private::map::<#marker>(#pool, items, #krate::MapOptions::new())
        }

        #[doc = #map_with_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #map_with(
            #pool: &#krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty>,
            options: #krate::MapOptions,
        ) -> ::core::result::Result<::std::vec::Vec<#ret>, #krate::Error> {
            #krate::__private::map::<#marker>(#pool, items, options)
        }

        #[doc = #map_async_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #map_async(
            #pool: &#krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty>,
        ) -> #krate::AsyncResult<::std::vec::Vec<#ret>> {
            #krate::__private::map_async::<#marker>(#pool, items, #krate::MapOptions::new())
        }

        #[doc = #map_async_with_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #map_async_with(
            #pool: &#krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty>,
            options: #krate::MapOptions,
        ) -> #krate::AsyncResult<::std::vec::Vec<#ret>> {
            #krate::__private::map_async::<#marker>(#pool, items, options)
        }

        #[doc = #imap_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #imap<#items_lt>(
            #pool: &#items_lt #krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty, IntoIter: #items_lt>,
        ) -> #krate::Imap<#items_lt, #ret> {
            #krate::__private::imap::<#marker>(#pool, items, #krate::MapOptions::new())
        }

        #[doc = #imap_with_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #imap_with<#items_lt>(
            #pool: &#items_lt #krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty, IntoIter: #items_lt>,
            options: #krate::MapOptions,
        ) -> #krate::Imap<#items_lt, #ret> {
            #krate::__private::imap::<#marker>(#pool, items, options)
        }

        #[doc = #imap_unordered_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #imap_unordered<#items_lt>(
            #pool: &#items_lt #krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty, IntoIter: #items_lt>,
        ) -> #krate::ImapUnordered<#items_lt, #ret> {
            #krate::__private::imap_unordered::<#marker>(#pool, items, #krate::MapOptions::new())
        }

        #[doc = #imap_unordered_with_doc]
        #[doc = #name_doc]
        #[allow(dead_code)]
        #vis fn #imap_unordered_with<#items_lt>(
            #pool: &#items_lt #krate::Pool,
            items: impl ::core::iter::IntoIterator<Item = #item_ty, IntoIter: #items_lt>,
            options: #krate::MapOptions,
        ) -> #krate::ImapUnordered<#items_lt, #ret> {
            #krate::__private::imap_unordered::<#marker>(#pool, items, options)
        }

        const _: () = {
            #(#arg_impls)*
            #output_impl

            impl #krate::__private::MapTask for #marker {
                const INFO: #krate::__private::TaskInfo = #krate::__private::TaskInfo {
                    name: #name,
                    signature: #signature,
                    fingerprint: #fingerprint,
                };
                type Item = #item_ty;
                fn encode_item(
                    __procpool_item: Self::Item,
                    __procpool_chunk: &mut ::std::vec::Vec<u8>,
                ) -> ::core::result::Result<(), ::std::string::String> {
                    let #item_pat = __procpool_item;
                    #(#item_pushes)*
                    ::core::result::Result::Ok(())
                }
            }

            fn __procpool_call_batch(
                __procpool_bytes: &[u8],
                __procpool_out: &mut ::std::vec::Vec<u8>,
            ) -> ::core::result::Result<(), #krate::__private::CallError> {
                #krate::__private::run_batch::<#marker, _>(
                    __procpool_bytes,
                    __procpool_out,
                    |__procpool_args| {
                        #(#decodes)*
                        ::core::result::Result::Ok((#(#vars,)*))
                    },
                    |(#(#vars,)*)| #fn_ident(#(#passes),*),
                )
            }

            fn __procpool_by_name_signature() -> ::std::string::String {
                #krate::__private::by_name_signature::<(#(#by_name_types,)*), #ret>()
            }

            fn __procpool_call(
                __procpool_bytes: &[u8],
            ) -> ::core::result::Result<::std::vec::Vec<u8>, #krate::__private::CallError> {
                let mut __procpool_args = #krate::__private::ArgsDecoder::new(__procpool_bytes);
                #(#decodes)*
                __procpool_args.finish()?;
                let __procpool_out: #ret = #fn_ident(#(#passes),*);
                #krate::__private::#encode_output::<#marker>(&__procpool_out)
            }

            #krate::__private::inventory::submit! {
                #krate::__private::Registration {
                    name: #name,
                    signature: #signature,
                    fingerprint: #fingerprint,
                    call: __procpool_call,
                    call_batch: __procpool_call_batch,
                    by_name_signature: __procpool_by_name_signature,
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        };
    }
}

/// `Vec<u8>` as written (any path ending in `Vec`): such values travel as one
/// block of bytes. The generated code only compiles if the type really is
/// `Vec<u8>` (the runtime's fast path requires it), so a look-alike cannot
/// slip through.
fn is_byte_vec(ty: &Type) -> bool {
    let Type::Path(path) = ty else {
        return false;
    };
    let Some(last) = path.path.segments.last() else {
        return false;
    };
    if last.ident != "Vec" || path.qself.is_some() {
        return false;
    }
    match &last.arguments {
        syn::PathArguments::AngleBracketed(args) if args.args.len() == 1 => {
            matches!(&args.args[0], syn::GenericArgument::Type(t) if is_u8(t, false))
        }
        _ => false,
    }
}

/// `u8`, or with `slice`, `[u8]`.
fn is_u8(ty: &Type, slice: bool) -> bool {
    match ty {
        Type::Slice(s) if slice => is_u8(&s.elem, false),
        Type::Path(p) if !slice => p.qself.is_none() && p.path.is_ident("u8"),
        _ => false,
    }
}

/// What a `map_<fn>` item holds for a `&T` argument: `String` for `str`,
/// `Vec<U>` for `[U]`, `PathBuf` for `Path`, `T` itself otherwise (the
/// owned value the worker decodes, see `__private::RefArg`).
fn owned_referent(referent: &Type) -> TokenStream {
    match referent {
        Type::Slice(slice) => {
            let elem = &slice.elem;
            quote!(::std::vec::Vec<#elem>)
        }
        Type::Path(p) if p.qself.is_none() => {
            let path = tidy(&p.path);
            match path.as_str() {
                "str"
                | "core::primitive::str"
                | "::core::primitive::str"
                | "std::primitive::str"
                | "::std::primitive::str" => quote!(::std::string::String),
                "Path" | "std::path::Path" | "::std::path::Path" => quote!(::std::path::PathBuf),
                _ => quote!(#referent),
            }
        }
        _ => quote!(#referent),
    }
}

/// The item type of `map_<fn>` as text, for its documentation.
fn item_text(task: &TaskFn<'_>) -> String {
    let types: Vec<String> = task
        .args
        .iter()
        .map(|a| match a.referent {
            Some(referent) => tidy(owned_referent(referent))
                .replace("::std::string::", "")
                .replace("::std::vec::", "")
                .replace("::std::path::", ""),
            None => tidy(a.ty),
        })
        .collect();
    match types.len() {
        1 => types[0].clone(),
        _ => format!("({})", types.join(", ")),
    }
}

/// The doc comments of the map family.
struct FamilyDocs {
    map: String,
    map_with: String,
    map_async: String,
    map_async_with: String,
    imap: String,
    imap_with: String,
    imap_unordered: String,
    imap_unordered_with: String,
}

impl FamilyDocs {
    fn new(fn_name: &str, pool: &str, item: &str, has_refs: bool) -> Self {
        let refs = if has_refs {
            " (a reference argument is passed as the owned value it points to)"
        } else {
            ""
        };
        let items = format!("Each item of `items` is one call's arguments: `{item}`{refs}.");
        let chunks = "Items travel to the workers in chunks (see `procpool::MapOptions` for the \
                      default chunk size).";
        let with = |what: &str| {
            format!(
                "Like [`{what}_{fn_name}`], with explicit `procpool::MapOptions` (e.g. the chunk \
                 size)."
            )
        };
        FamilyDocs {
            map: format!(
                "Runs [`{fn_name}`] on every item in the worker processes of `{pool}` and returns \
                 the results in input order (Python's `pool.map` / `pool.starmap`).\n\n{items} \
                 {chunks} Fails with the first error in input order (a panic, a dead worker, ...).\n\n\
                 Generated by `#[pool_task]`."
            ),
            map_with: with("map"),
            map_async: format!(
                "Queues [`{fn_name}`] on every item in the worker processes of `{pool}` and \
                 returns at once (Python's `pool.map_async`): the `AsyncResult` yields all \
                 results in input order, or the first error.\n\n{items} {chunks}\n\n\
                 Generated by `#[pool_task]`."
            ),
            map_async_with: with("map_async"),
            imap: format!(
                "Runs [`{fn_name}`] on every item in the worker processes of `{pool}`, lazily: \
                 the iterator yields each item's result in input order as soon as it is ready \
                 (Python's `pool.imap`).\n\n{items} {chunks} The input is pulled a chunk at a \
                 time with at most two chunks per worker in flight, so it may be endless; a \
                 panicking item yields its own error.\n\nGenerated by `#[pool_task]`."
            ),
            imap_with: with("imap"),
            imap_unordered: format!(
                "Like [`imap_{fn_name}`], but yields results in completion order (Python's \
                 `pool.imap_unordered`).\n\n{items} {chunks}\n\nGenerated by `#[pool_task]`."
            ),
            imap_unordered_with: with("imap_unordered"),
        }
    }
}

/// The type with every elided lifetime made `'static`, as an associated type
/// in an impl must be: `Vec<&str>` becomes `Vec<&'static str>`.
fn static_lifetimes(ty: &Type) -> Type {
    struct Fill;
    impl VisitMut for Fill {
        fn visit_type_reference_mut(&mut self, r: &mut syn::TypeReference) {
            if r.lifetime.is_none() {
                r.lifetime = Some(Lifetime::new("'static", r.and_token.span));
            }
            visit_mut::visit_type_reference_mut(self, r);
        }
        fn visit_lifetime_mut(&mut self, l: &mut Lifetime) {
            if l.ident == "_" {
                *l = Lifetime::new("'static", l.span());
            }
        }
    }
    let mut ty = ty.clone();
    Fill.visit_type_mut(&mut ty);
    ty
}

fn static_lifetimes_or_unit(ty: Option<&Type>) -> TokenStream {
    match ty {
        Some(ty) => static_lifetimes(ty).into_token_stream(),
        None => quote!(()),
    }
}

/// `fn(&[String], &str) -> usize`: the types as written, for messages and
/// the fingerprint that catches caller/worker mismatches.
fn signature_text(task: &TaskFn<'_>) -> String {
    let args: Vec<String> = task.args.iter().map(|a| tidy(a.ty)).collect();
    let mut text = format!("fn({})", args.join(", "));
    if let Some(ty) = task.output {
        text.push_str(" -> ");
        text.push_str(&tidy(ty));
    }
    text
}

/// Token text with the spaces `to_string` puts between tokens removed where
/// Rust code has none.
fn tidy(tokens: impl ToTokens) -> String {
    let raw = tokens.to_token_stream().to_string();
    let mut out = raw;
    for (from, to) in [
        (" ,", ","),
        ("& ", "&"),
        (" <", "<"),
        ("< ", "<"),
        (" >", ">"),
        ("[ ", "["),
        (" ]", "]"),
        ("( ", "("),
        (" )", ")"),
        (" ::", "::"),
        (":: ", "::"),
        (" ;", ";"),
    ] {
        out = out.replace(from, to);
    }
    out
}

/// FNV-1a of the signature; never 0, which means "unchecked" on the wire.
fn fingerprint(signature: &str) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in signature.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash.max(1)
}
