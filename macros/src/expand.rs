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

        const _: () = {
            #(#arg_impls)*
            #output_impl

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
