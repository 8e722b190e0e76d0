//! What the generated code is made of, worked out once from the validated
//! function: names, the wire identity, and per argument how it is encoded,
//! decoded, passed and named in the map family's items.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned, ToTokens};
use syn::ext::IdentExt;
use syn::spanned::Spanned;
use syn::visit_mut::{self, VisitMut};
use syn::{parse_quote, Ident, Lifetime, Path, Type};

use crate::parse::TaskArgs;
use crate::validate::{Arg, TaskFn};

/// The parts of the generated code, as tokens.
pub(crate) struct Model<'a> {
    pub(crate) task: &'a TaskFn<'a>,
    /// The procpool crate: `::procpool` unless `crate = path`.
    pub(crate) krate: Path,
    /// The function's name without `r#`.
    pub(crate) fn_name: String,
    /// The hidden marker type the task's traits are implemented on.
    pub(crate) marker: Ident,
    /// The generated functions' pool parameter (`pool`, unless an argument
    /// has that name: then `procpool_pool`, or the first of
    /// `procpool_pool_1`, ... no argument has).
    pub(crate) pool: Ident,
    /// The registered name: a literal, or `module_path!()::fn_name`.
    pub(crate) name: TokenStream,
    /// `fn(u64) -> u64`: the types as written.
    pub(crate) signature: String,
    /// The return type (`()` for none) and where errors about it point.
    pub(crate) ret: TokenStream,
    pub(crate) ret_span: Span,
    /// `a: A, b: &B`: the generated functions' parameters after the pool.
    pub(crate) params: Vec<TokenStream>,
    /// `__procpool_arg0, ...`: one variable per argument.
    pub(crate) vars: Vec<Ident>,
    pub(crate) args: Vec<ArgParts>,
    /// The type of one item of the map family as the generated functions
    /// take it (`impl AsRef<str>` for a `&str` argument), and its pattern.
    pub(crate) item_ty: TokenStream,
    pub(crate) item_pat: TokenStream,
    /// The same type in the marker's `EncodeItem` impl, with the impl's
    /// generic parameters (one per reference argument, with its bound).
    pub(crate) item_impl_ty: TokenStream,
    pub(crate) item_params: Vec<TokenStream>,
}

/// One argument's share of the generated code.
pub(crate) struct ArgParts {
    /// `impl ValueArg<I>` / `impl RefArgAt<I>` for the marker, at the user's type.
    pub(crate) marker_impl: TokenStream,
    /// The `ArgsEncoder` step that appends it.
    pub(crate) push: TokenStream,
    /// The statement that decodes it in the worker.
    pub(crate) decode: TokenStream,
    /// How the decoded value is passed to the function.
    pub(crate) pass: TokenStream,
    /// Its type in a map item as the generated functions take it: the type
    /// itself, or for a reference argument anything that lends the
    /// referent (`impl AsRef<str>`, `impl procpool::Lends<T>`).
    pub(crate) item_ty: TokenStream,
    /// Its type in the `EncodeItem` impl, and the impl's generic parameter
    /// for it (reference arguments only).
    pub(crate) item_impl_ty: TokenStream,
    pub(crate) item_param: Option<TokenStream>,
    /// The statement that appends it, from a map item, to a chunk.
    pub(crate) item_push: TokenStream,
    /// Its type as calls by name spell it.
    pub(crate) by_name_ty: TokenStream,
}

impl<'a> Model<'a> {
    pub(crate) fn new(args: &TaskArgs, task: &'a TaskFn<'a>) -> Model<'a> {
        let krate: Path = args
            .krate
            .clone()
            .unwrap_or_else(|| parse_quote!(::procpool));
        let fn_ident = &task.item.sig.ident;
        let fn_name = fn_ident.unraw().to_string();
        let marker = format_ident!("__procpool_task_{}", fn_name, span = fn_ident.span());
        // `pool`, or the first of `procpool_pool`, `procpool_pool_1`, ...
        // that no argument is named.
        let taken = |name: &Ident| task.args.iter().any(|a| a.ident.unraw() == *name);
        let pool = std::iter::once(format_ident!("pool"))
            .chain(std::iter::once(format_ident!("procpool_pool")))
            .chain((1usize..).map(|i| format_ident!("procpool_pool_{}", i)))
            .find(|name| !taken(name))
            .expect("an unused name");
        let name = match &args.name {
            Some(lit) => quote!(#lit),
            None => quote!(::core::concat!(::core::module_path!(), "::", #fn_name)),
        };
        let vars: Vec<Ident> = (0..task.args.len())
            .map(|i| format_ident!("__procpool_arg{}", i))
            .collect();
        let mut model = Model {
            task,
            krate,
            fn_name,
            marker,
            pool,
            name,
            signature: signature_text(task),
            ret: match task.output {
                Some(ty) => quote!(#ty),
                None => quote!(()),
            },
            ret_span: task.output.map_or_else(|| fn_ident.span(), |ty| ty.span()),
            params: task
                .args
                .iter()
                .map(|a| {
                    let (ident, ty) = (a.ident, a.ty);
                    quote!(#ident: #ty)
                })
                .collect(),
            vars,
            args: Vec::new(),
            item_ty: TokenStream::new(),
            item_pat: TokenStream::new(),
            item_impl_ty: TokenStream::new(),
            item_params: Vec::new(),
        };
        model.args = task
            .args
            .iter()
            .enumerate()
            .map(|(i, a)| model.arg_parts(i, a))
            .collect();
        // One argument: items are that argument; otherwise a tuple (starmap).
        let item_types: Vec<_> = model.args.iter().map(|a| &a.item_ty).collect();
        let impl_types: Vec<_> = model.args.iter().map(|a| &a.item_impl_ty).collect();
        let vars = &model.vars;
        (model.item_ty, model.item_impl_ty, model.item_pat) = if item_types.len() == 1 {
            let (ty, impl_ty, var) = (item_types[0], impl_types[0], &vars[0]);
            (quote!(#ty), quote!(#impl_ty), quote!(#var))
        } else {
            (
                quote!((#(#item_types,)*)),
                quote!((#(#impl_types,)*)),
                quote!((#(#vars,)*)),
            )
        };
        model.item_params = model
            .args
            .iter()
            .filter_map(|a| a.item_param.clone())
            .collect();
        model
    }

    /// The `I`-th argument's share of the generated code.
    fn arg_parts(&self, i: usize, a: &Arg<'_>) -> ArgParts {
        let (krate, marker) = (&self.krate, &self.marker);
        let ident = a.ident;
        let var = &self.vars[i];
        let index = syn::Index::from(i);
        match a.referent {
            None => {
                let ty = static_lifetimes(a.ty);
                // (A `Vec<u8>` or `serde_bytes::ByteBuf` is sent as one
                // block of bytes: the runtime tells them by type.)
                let (push, decode) = (quote!(.value::<#marker, #index>(#ident)), quote!(value));
                ArgParts {
                    marker_impl: quote_spanned! {a.ty.span()=>
                        impl #krate::__private::ValueArg<#index> for #marker {
                            type Type = #ty;
                        }
                    },
                    push,
                    decode: quote!(let #var = __procpool_args.#decode::<#marker, #index>()?;),
                    pass: quote!(#var),
                    item_ty: a.ty.to_token_stream(),
                    item_impl_ty: ty.to_token_stream(),
                    item_param: None,
                    item_push: quote!(
                        #krate::__private::encode_value::<#marker, #index>(#var, __procpool_chunk)?;
                    ),
                    by_name_ty: quote!(<#marker as #krate::__private::ValueArg<#index>>::Type),
                }
            }
            Some(referent) => {
                let ty = static_lifetimes(referent);
                let (lends, method) = lend_bound(krate, referent);
                let param = format_ident!("__ProcpoolItem{}", i);
                let (push, decode) = if is_u8(referent, true) {
                    (
                        quote!(.byte_slice::<#marker, #index>(#ident)),
                        quote!(byte_slice),
                    )
                } else {
                    (quote!(.by_ref::<#marker, #index>(#ident)), quote!(by_ref))
                };
                ArgParts {
                    marker_impl: quote_spanned! {referent.span()=>
                        impl #krate::__private::RefArgAt<#index> for #marker {
                            type Referent = #ty;
                        }
                    },
                    push,
                    decode: quote!(let #var = __procpool_args.#decode::<#marker, #index>()?;),
                    pass: quote!(#krate::__private::Lend::lend(&#var)),
                    item_ty: quote!(impl #lends<#referent>),
                    item_impl_ty: quote!(#param),
                    item_param: Some(quote!(#param: #lends<#ty>)),
                    item_push: quote!(
                        #krate::__private::encode_ref::<#marker, #index>(
                            <#param as #lends<#ty>>::#method(#var),
                            __procpool_chunk,
                        )?;
                    ),
                    // Spelled out, not projected through `RefArg`: a referent
                    // that is not decodable is reported once, at the impl.
                    // But a bare `Path` may be the user's own type, not
                    // `std::path::Path` (the text cannot tell): what the
                    // worker decodes for it is asked of the type itself.
                    by_name_ty: if tidy(referent) == "Path" {
                        quote!(
                            <<#marker as #krate::__private::RefArgAt<#index>>::Referent
                                as #krate::__private::RefArg>::Owned
                        )
                    } else {
                        owned_referent(referent)
                    },
                }
            }
        }
    }

    /// The type of the function's result, with `'static` for elided lifetimes.
    pub(crate) fn static_ret(&self) -> TokenStream {
        match self.task.output {
            Some(ty) => static_lifetimes(ty).into_token_stream(),
            None => quote!(()),
        }
    }

    /// A name of the generated family, `{prefix}_{fn}{suffix}`, at the
    /// function's name.
    pub(crate) fn family(&self, prefix: &str, suffix: &str) -> Ident {
        let span = self.task.item.sig.ident.span();
        format_ident!("{}_{}{}", prefix, self.fn_name, suffix, span = span)
    }

    /// The lifetime of `imap`'s borrows.
    pub(crate) fn items_lifetime() -> Lifetime {
        Lifetime::new("'__procpool", Span::call_site())
    }
}

/// `u8`, or with `slice`, `[u8]`.
fn is_u8(ty: &Type, slice: bool) -> bool {
    match crate::validate::peel(ty) {
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

/// What a map item may hold for a `&T` argument: anything that lends a `T`.
/// `AsRef` for `str`, `[U]` and `Path`, so that `String`, `&String`, `&str`,
/// `Vec<U>`, `&Vec<U>`, `PathBuf` and `&PathBuf` all work, at any depth of
/// references (`&PathBuf: Borrow<Path>` does not hold); procpool's `Lends`
/// for any other `T`, so that `T`, `&T` and `&&T` work (the items of
/// `Vec<&T>::iter()`; `&&T: Borrow<T>` does not hold). Returns the trait
/// and its method.
fn lend_bound(krate: &Path, referent: &Type) -> (TokenStream, Ident) {
    if lends_as_ref(referent) {
        (quote!(::core::convert::AsRef), format_ident!("as_ref"))
    } else {
        (quote!(#krate::Lends), format_ident!("lent"))
    }
}

/// Whether items lend a `referent` through `AsRef` (see [`lend_bound`]).
fn lends_as_ref(referent: &Type) -> bool {
    owned_referent(referent).to_string() != quote!(#referent).to_string()
}

/// The item type of `map_<fn>` as text, for its documentation: for a
/// reference argument, what may be passed, e.g.
/// `impl AsRef<str> (String, &String, &str)`.
pub(crate) fn item_text(task: &TaskFn<'_>) -> String {
    let types: Vec<String> = task
        .args
        .iter()
        .map(|a| match a.referent {
            Some(referent) => {
                let owned = tidy(owned_referent(referent))
                    .replace("::std::string::", "")
                    .replace("::std::vec::", "")
                    .replace("::std::path::", "");
                let as_ref = lends_as_ref(referent);
                let referent = tidy(referent);
                if as_ref {
                    format!("impl AsRef<{referent}> ({owned} or &{owned})")
                } else {
                    format!("impl Lends<{referent}> ({owned}, &{owned} or &&{owned})")
                }
            }
            None => tidy(a.ty),
        })
        .collect();
    match types.len() {
        1 => types[0].clone(),
        _ => format!("({})", types.join(", ")),
    }
}

/// [`item_text`] for `starmap_<fn>`: always a tuple (`(T,)` for one
/// argument).
pub(crate) fn star_item_text(task: &TaskFn<'_>) -> String {
    match task.args.len() {
        1 => format!("({},)", item_text(task)),
        _ => item_text(task),
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
pub(crate) fn tidy(tokens: impl ToTokens) -> String {
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
