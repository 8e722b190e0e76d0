//! The map family's generated functions: `map_<fn>`, `map_async_<fn>`,
//! `starmap_<fn>`, `starmap_async_<fn>`, `imap_<fn>`, `imap_unordered_<fn>`
//! and their `_with` forms.

use proc_macro2::TokenStream;
use quote::quote;
use syn::{Lifetime, Path};

use super::{deprecations, name_doc};
use crate::docs::FamilyDocs;
use crate::model::{item_text, star_item_text, Model};

/// The map family: `map_<fn>`, `map_async_<fn>`, `imap_<fn>`,
/// `imap_unordered_<fn>`, `starmap_<fn>`, `starmap_async_<fn>` and their
/// `_with` forms.
pub(super) fn map_fns(m: &Model<'_>) -> TokenStream {
    let Model {
        krate,
        marker,
        pool,
        item_ty,
        ..
    } = m;
    let vis = &m.task.item.vis;
    let has_refs = m.task.args.iter().any(|a| a.referent.is_some());
    let docs = FamilyDocs::new(
        &m.fn_name,
        &pool.to_string(),
        &item_text(m.task),
        &star_item_text(m.task),
        has_refs,
    );
    let name_doc = name_doc(&m.name);
    let deprecated = deprecations(m);
    let lt = Model::items_lifetime();
    // Python's `starmap` takes each call's arguments as a tuple: a task of
    // one argument takes `(a,)`, unpacked here; the others take what `map`
    // takes (a tuple of several, or `()`).
    let (star_item_ty, unpack) = match m.task.args.len() {
        1 => (
            quote!((#item_ty,)),
            quote!(.map(|(__procpool_item,)| __procpool_item)),
        ),
        _ => (quote!(#item_ty), TokenStream::new()),
    };
    let family = map_forms(m, &docs, &lt);
    let mut out = TokenStream::new();
    for (prefix, entry, returns, lazy, star, (doc, with_doc)) in family {
        let (plain, with) = (m.family(prefix, ""), m.family(prefix, "_with"));
        let (item_ty, unpack) = match star {
            true => (&star_item_ty, &unpack),
            false => (item_ty, &TokenStream::new()),
        };
        let (generics, pool_ty, items) = signature(krate, &lt, item_ty, lazy);
        out.extend(quote! {
            #[doc = #doc]
            #[doc = #name_doc]
            #deprecated
            #[allow(dead_code, non_snake_case)]
            #vis fn #plain #generics(#pool: #pool_ty, items: #items) -> #returns {
                #krate::__private::#entry::<#marker, _>(
                    #pool,
                    ::core::iter::IntoIterator::into_iter(items) #unpack,
                    #krate::MapOptions::new(),
                )
            }

            #[doc = #with_doc]
            #[doc = #name_doc]
            #deprecated
            #[allow(dead_code, non_snake_case)]
            #vis fn #with #generics(
                #pool: #pool_ty,
                items: #items,
                options: #krate::MapOptions,
            ) -> #returns {
                #krate::__private::#entry::<#marker, _>(
                    #pool,
                    ::core::iter::IntoIterator::into_iter(items) #unpack,
                    options,
                )
            }
        });
    }
    out
}

/// One form of the map family, as [`map_forms`] lists them: (prefix, entry
/// point, return type, lifetime of the borrows, starmap, docs).
type Form<'d> = (
    &'static str,
    TokenStream,
    TokenStream,
    bool,
    bool,
    (&'d String, &'d String),
);

/// The map family's forms, in the order [`map_fns`] generates them.
fn map_forms<'d>(m: &Model<'_>, docs: &'d FamilyDocs, lt: &Lifetime) -> [Form<'d>; 6] {
    let Model { krate, ret, .. } = m;
    let vec_ret = quote!(::std::vec::Vec<#ret>);
    let result_vec = quote!(::core::result::Result<#vec_ret, #krate::Error>);
    // (prefix, entry point, return type, lifetime of the borrows, starmap, docs)
    [
        (
            "map",
            quote!(map),
            result_vec.clone(),
            false,
            false,
            (&docs.map, &docs.map_with),
        ),
        (
            "map_async",
            quote!(map_async),
            quote!(#krate::AsyncResult<#vec_ret>),
            false,
            false,
            (&docs.map_async, &docs.map_async_with),
        ),
        (
            "starmap",
            quote!(map),
            result_vec,
            false,
            true,
            (&docs.starmap, &docs.starmap_with),
        ),
        (
            "starmap_async",
            quote!(map_async),
            quote!(#krate::AsyncResult<#vec_ret>),
            false,
            true,
            (&docs.starmap_async, &docs.starmap_async_with),
        ),
        (
            "imap",
            quote!(imap),
            quote!(#krate::Imap<#lt, #ret, impl ::core::iter::Iterator + #lt>),
            true,
            false,
            (&docs.imap, &docs.imap_with),
        ),
        (
            "imap_unordered",
            quote!(imap_unordered),
            quote!(#krate::ImapUnordered<#lt, #ret, impl ::core::iter::Iterator + #lt>),
            true,
            false,
            (&docs.imap_unordered, &docs.imap_unordered_with),
        ),
    ]
}

/// A form's generics, pool type and items type (`lazy`: an `imap`'s).
fn signature(
    krate: &Path,
    lt: &Lifetime,
    item_ty: &TokenStream,
    lazy: bool,
) -> (TokenStream, TokenStream, TokenStream) {
    // An `imap` borrows its input (for `'__procpool`), not the pool: it
    // holds a handle of its own, so it may be moved to a thread or
    // returned while the caller's handle stays behind.
    if lazy {
        (
            quote!(<#lt>),
            quote!(&#krate::Pool),
            quote!(impl ::core::iter::IntoIterator<Item = #item_ty, IntoIter: #lt>),
        )
    } else {
        (
            TokenStream::new(),
            quote!(&#krate::Pool),
            quote!(impl ::core::iter::IntoIterator<Item = #item_ty>),
        )
    }
}
