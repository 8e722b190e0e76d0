//! The errors for `#[pool_task]` where it cannot go: given twice, on an
//! item that is not a function (a declaration, a closure), or on an
//! associated function.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::ItemFn;

use crate::context::Enclosing;

/// A second `#[pool_task]` on the same function, taken off it: the error
/// at it, and the task generated once, instead of rustc's "defined
/// multiple times" for every generated item.
pub(super) fn take_repeated(func: &mut ItemFn) -> Option<syn::Error> {
    let is_task = |attr: &syn::Attribute| {
        let segments = &attr.path().segments;
        segments.last().is_some_and(|s| s.ident == "pool_task")
    };
    let at = func.attrs.iter().position(is_task)?;
    let repeated = func.attrs.remove(at);
    func.attrs.retain(|attr| !is_task(attr));
    Some(syn::Error::new_spanned(
        repeated,
        "`#[pool_task]` is given twice on this function: one registers the task and \
         generates its functions; remove this one",
    ))
}

/// The error for `#[pool_task]` on something other than a function, at the
/// item's keyword and name (`struct Job`).
pub(super) fn not_a_function(item: TokenStream) -> syn::Error {
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
        _ if declaration(&item).is_some() => {
            let tokens = declaration(&item).expect("a declaration");
            let message = "`#[pool_task]` goes on a free function with a body, not on a \
                           function's declaration (in a `trait` or an `extern` block): a worker \
                           runs the body; write `#[pool_task] fn name(arg: Type) -> Type { .. }` \
                           at module level";
            return syn::Error::new_spanned(tokens, message);
        }
        _ => match closure(&item) {
            Some(tokens) => {
                let message = "`#[pool_task]` goes on a free function, not on a closure: a \
                               worker runs a task found by its registered name, which a \
                               closure has none of; write it as a `fn` at module level, \
                               taking what the closure captured as arguments";
                return syn::Error::new_spanned(tokens, message);
            }
            None => ("this item", item),
        },
    };
    let message = format!(
        "`#[pool_task]` goes on a free function, not on {what}: \
         `#[pool_task] fn name(arg: Type) -> Type {{ .. }}`"
    );
    syn::Error::new_spanned(tokens, message)
}

/// A function declared without a body (`fn run(x: u8) -> u8;`, in a
/// `trait` or an `extern` block), if `item` is one: its `fn` and name.
fn declaration(item: &TokenStream) -> Option<TokenStream> {
    let sig = match syn::parse2::<syn::TraitItemFn>(item.clone()) {
        Ok(decl) if decl.default.is_none() => decl.sig,
        Ok(_) => return None,
        // (`pub fn f();` in an `extern` block.)
        Err(_) => syn::parse2::<syn::ForeignItemFn>(item.clone()).ok()?.sig,
    };
    let mut tokens = sig.fn_token.to_token_stream();
    sig.ident.to_tokens(&mut tokens);
    Some(tokens)
}

/// The closure `item` is or binds (`let f = |x| ..;`), if it is one: its
/// parameters, where the error goes.
fn closure(item: &TokenStream) -> Option<TokenStream> {
    let expr = match syn::parse2::<syn::Stmt>(item.clone()) {
        Ok(syn::Stmt::Local(local)) => *local.init?.expr,
        _ => syn::parse2::<syn::Expr>(item.clone()).ok()?,
    };
    match expr {
        syn::Expr::Closure(c) => {
            let mut tokens = c.inputs_begin.to_token_stream();
            c.inputs.to_tokens(&mut tokens);
            c.inputs_end.to_tokens(&mut tokens);
            Some(tokens)
        }
        _ => None,
    }
}

/// The error for `#[pool_task]` on an associated function, at its name:
/// the one error instead of rustc's about the generated items, which an
/// `impl` or `trait` block cannot hold (see `crate::context`).
pub(super) fn in_block(func: &ItemFn, block: Enclosing) -> syn::Error {
    let name = func.sig.ident.unraw();
    let (what, block) = match block {
        Enclosing::Impl => ("an associated function", "`impl` block"),
        Enclosing::Trait => ("a trait's function", "`trait`"),
    };
    let message = format!(
        "`#[pool_task]` cannot be used on {what}: a task is registered, and its `apply_{name}`, \
         `map_{name}`, ... are generated, at module level; move `{name}` out of the {block} \
         to module level (a method can call it as `{name}(..)`)"
    );
    syn::Error::new_spanned(&func.sig.ident, message)
}
