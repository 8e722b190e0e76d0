//! What a task function may be. Every problem found is reported, each at the
//! user's own offending tokens, with the fix in the message.

use quote::ToTokens;
use syn::visit::Visit;
use syn::{FnArg, GenericParam, Ident, ItemFn, Pat, ReturnType, Type};

/// A function that passed validation, borrowing its syntax.
pub(crate) struct TaskFn<'a> {
    pub(crate) item: &'a ItemFn,
    pub(crate) args: Vec<Arg<'a>>,
    /// `None` for `()`.
    pub(crate) output: Option<&'a Type>,
}

pub(crate) struct Arg<'a> {
    pub(crate) ident: &'a Ident,
    /// The type as written, e.g. `&[String]`.
    pub(crate) ty: &'a Type,
    /// For `&T`, `T`: the worker decodes an owned value and lends it.
    pub(crate) referent: Option<&'a Type>,
}

struct Errors(Option<syn::Error>);

impl Errors {
    /// Reports `message` at `tokens`, underlining all of them.
    fn push(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        let error = syn::Error::new_spanned(tokens, message);
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }
}

pub(crate) fn task_fn(item: &ItemFn) -> Result<TaskFn<'_>, syn::Error> {
    let mut errors = Errors(None);
    let sig = &item.sig;
    check_qualifiers_and_generics(&mut errors, sig);
    let args = task_args(&mut errors, sig);
    let output = task_output(&mut errors, sig);
    match errors.0 {
        Some(e) => Err(e),
        None => Ok(TaskFn { item, args, output }),
    }
}

/// `const`, `async`, `unsafe`, C-variadic, generics, `where`: none may be.
fn check_qualifiers_and_generics(errors: &mut Errors, sig: &syn::Signature) {
    if let Some(token) = &sig.constness {
        errors.push(
            token,
            "`#[pool_task]` cannot be used on a `const fn`; remove `const`",
        );
    }
    // (A C-variadic fn must be `extern "C"`: its variadic is reported below.)
    if let (Some(abi), None) = (&sig.abi, &sig.variadic) {
        errors.push(
            abi,
            "`#[pool_task]` cannot be used on an `extern` function: a panic cannot unwind out \
             of it, so it would abort the worker instead of arriving as `Error::Panic`; \
             remove the `extern` ABI",
        );
    }
    if let Some(token) = &sig.asyncness {
        errors.push(
            token,
            "`#[pool_task]` cannot be used on an `async fn`: workers run tasks synchronously; \
             make it a plain `fn` (the caller can still `.await` its AsyncResult)",
        );
    }
    // A C-variadic fn must be `unsafe`: only the variadic is the user's mistake.
    if let (syn::Safety::Unsafe(token), None) = (&sig.safety, &sig.variadic) {
        errors.push(
            token,
            "`#[pool_task]` cannot be used on an `unsafe fn`: a worker could not uphold its \
             contract; make it a safe `fn` that checks its inputs",
        );
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(
            variadic,
            "`#[pool_task]` cannot be used on a C-variadic function: a worker must know every \
             argument's type; take the extra values as one argument, e.g. `rest: Vec<i32>`, \
             and make it a safe `fn`",
        );
    }
    for param in &sig.generics.params {
        let what = match param {
            GenericParam::Type(_) => "generic type parameters",
            GenericParam::Const(_) => "const generic parameters",
            GenericParam::Lifetime(lifetime) => {
                // Nothing to wrap: the lifetime can simply go.
                let name = &lifetime.lifetime;
                errors.push(
                    param,
                    format!(
                        "`#[pool_task]` functions cannot have lifetime parameters: the worker \
                         lends each reference argument its decoded copy for the call only; \
                         remove `<{name}>` and write the references without it (`&str`, `&T`)"
                    ),
                );
                continue;
            }
        };
        errors.push(
            param,
            format!(
                "`#[pool_task]` functions cannot have {what}: a worker must know the concrete \
                 types to decode; write a non-generic wrapper for each type you need"
            ),
        );
    }
    if let Some(clause) = &sig.generics.where_clause {
        errors.push(
            clause,
            "`#[pool_task]` functions cannot have a `where` clause",
        );
    }
}

/// The arguments: plain identifiers, no `&mut`, no `impl Trait`.
fn task_args<'a>(errors: &mut Errors, sig: &'a syn::Signature) -> Vec<Arg<'a>> {
    let mut args = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(receiver) => errors.push(
                receiver.self_token,
                "`#[pool_task]` cannot be used on methods; move the body into a free function \
                 that takes the value as an argument",
            ),
            FnArg::Typed(typed) => {
                for attr in &typed.attrs {
                    if attr.path().is_ident("cfg") || attr.path().is_ident("cfg_attr") {
                        errors.push(
                            attr,
                            "`#[pool_task]` arguments cannot be conditional: the caller and the \
                             worker must agree on every argument; remove the `cfg`",
                        );
                    }
                }
                let ident = match &*typed.pat {
                    Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(&p.ident),
                    Pat::Ident(p) if p.by_ref.is_some() => {
                        errors.push(
                            p.by_ref,
                            "`#[pool_task]` arguments must be plain identifiers; remove `ref` \
                             and borrow in the body: `let x = &x;`",
                        );
                        None
                    }
                    Pat::Wild(wild) => {
                        errors.push(
                            wild,
                            "`#[pool_task]` arguments must be plain identifiers; \
                             name the argument, e.g. `_unused`",
                        );
                        None
                    }
                    other => {
                        errors.push(
                            other,
                            "`#[pool_task]` arguments must be plain identifiers; \
                             bind the argument to a name and destructure it in the body",
                        );
                        None
                    }
                };
                // (A `$t:ty` of a `macro_rules!` macro is a group: seen
                // through, `&str` is a reference argument there too.)
                let ty = peel(&typed.ty);
                check_no_impl_trait(errors, ty);
                check_sized_arg(errors, ty);
                // The outer `&` is lent by the worker; any other reference
                // in the type cannot be decoded (it would have to borrow
                // from the call's bytes).
                match ty {
                    Type::Reference(r) => check_no_inner_reference(errors, &r.elem),
                    ty => check_no_inner_reference(errors, ty),
                }
                let referent = match ty {
                    Type::Reference(r) if r.mutability.is_some() => {
                        errors.push(
                            r,
                            "`#[pool_task]` arguments cannot be `&mut`: the worker cannot write \
                             to the caller's memory; take the value and return the new one",
                        );
                        None
                    }
                    Type::Reference(r) => {
                        check_not_static(errors, r);
                        Some(peel(&r.elem))
                    }
                    _ => None,
                };
                if let Some(ident) = ident {
                    args.push(Arg {
                        ident,
                        ty,
                        referent,
                    });
                }
            }
        }
    }
    args
}

/// A reference argument lives for the call only: the worker lends the
/// function the copy it decoded, and drops it after the call. `&'static T`
/// would promise more (rustc's own error, a borrow that does not live long
/// enough, points at `#[pool_task]` and says nothing of why).
fn check_not_static(errors: &mut Errors, r: &syn::TypeReference) {
    if let Some(lifetime) = r.lifetime.as_ref().filter(|l| l.ident == "static") {
        errors.push(
            lifetime,
            format!(
                "`#[pool_task]` reference arguments cannot be `&'static`: the worker lends the \
                 function its decoded copy for the call only; write `&{}` (a borrow for the \
                 call), or take an owned type",
                crate::model::tidy(&r.elem)
            ),
        );
    }
}

/// The return type (`None` for `()`): owned, no `impl Trait`.
fn task_output<'a>(errors: &mut Errors, sig: &'a syn::Signature) -> Option<&'a Type> {
    match &sig.output {
        ReturnType::Default => None,
        ReturnType::Type(_, ty) => {
            let ty = peel(ty);
            check_no_impl_trait(errors, ty);
            if let Some(kind) = unsized_kind(ty) {
                let message = match kind {
                    Unsized::Str => "`#[pool_task]` functions cannot return `str`, whose size \
                                     is not known: return a `String`"
                        .to_string(),
                    Unsized::Slice(elem) => format!(
                        "`#[pool_task]` functions cannot return a slice, whose size is not \
                         known: return a `Vec<{}>`",
                        crate::model::tidy(elem)
                    ),
                    Unsized::Dyn => TRAIT_OBJECT.to_string(),
                };
                errors.push(ty, message);
            } else if let Type::Never(never) = ty {
                errors.push(
                    never,
                    "`#[pool_task]` functions cannot return `!`: the caller waits for a \
                     result to decode; return `()` (a task that panics or exits still \
                     reports `Error::Panic` or `Error::WorkerDied`)",
                );
            } else if let Type::Reference(r) = ty {
                errors.push(
                    r,
                    "`#[pool_task]` functions cannot return references: the result is sent \
                     back by value; return an owned type",
                );
            } else {
                check_no_inner_reference(errors, ty);
            }
            match ty {
                Type::Tuple(t) if t.elems.is_empty() => None,
                ty => Some(ty),
            }
        }
    }
}

const TRAIT_OBJECT: &str = "`#[pool_task]` cannot use a trait object (`dyn Trait`): a worker \
                            must know the concrete type to decode; name the type";

/// A type whose size is not known, as a whole: what no argument or result
/// can be (rustc's own errors about it come from every generated item).
enum Unsized<'a> {
    Str,
    /// `[T]`, with `T`.
    Slice(&'a Type),
    Dyn,
}

/// `ty` without the parentheses and the invisible groups (a `$t:ty` of a
/// `macro_rules!` macro) around it.
pub(crate) fn peel(mut ty: &Type) -> &Type {
    loop {
        match ty {
            Type::Paren(p) => ty = &p.elem,
            Type::Group(g) => ty = &g.elem,
            _ => return ty,
        }
    }
}

fn unsized_kind(ty: &Type) -> Option<Unsized<'_>> {
    match peel(ty) {
        Type::Slice(slice) => Some(Unsized::Slice(&slice.elem)),
        Type::TraitObject(_) => Some(Unsized::Dyn),
        Type::Path(p) if p.qself.is_none() => {
            let path = crate::model::tidy(&p.path);
            let path = path.trim_start_matches("::");
            let str_paths = ["str", "core::primitive::str", "std::primitive::str"];
            str_paths.contains(&path).then_some(Unsized::Str)
        }
        _ => None,
    }
}

/// An argument taken by value whose size is not known (`text: str`,
/// `values: [u8]`, `value: dyn Debug`), or a reference argument to a trait
/// object (`&dyn Debug`), which the worker cannot decode.
fn check_sized_arg(errors: &mut Errors, ty: &Type) {
    match peel(ty) {
        Type::Reference(r) => {
            if let Some(Unsized::Dyn) = unsized_kind(&r.elem) {
                errors.push(&r.elem, TRAIT_OBJECT);
            }
        }
        _ => match unsized_kind(ty) {
            Some(Unsized::Str) => errors.push(
                ty,
                "`#[pool_task]` arguments cannot be `str` by value, whose size is not known: \
                 take `&str` (the worker lends the function its decoded copy) or `String`",
            ),
            Some(Unsized::Slice(elem)) => {
                let elem = crate::model::tidy(elem);
                errors.push(
                    ty,
                    format!(
                        "`#[pool_task]` arguments cannot be a slice by value, whose size is not \
                         known: take `&[{elem}]` (the worker lends the function its decoded \
                         copy) or `Vec<{elem}>`"
                    ),
                )
            }
            Some(Unsized::Dyn) => errors.push(ty, TRAIT_OBJECT),
            None => {}
        },
    }
}

/// Whether the signature names `Self`, which a free function cannot: rustc
/// reports it, once, at the user's `Self`, when the function is emitted
/// alone (the generated items would add errors about procpool's hidden
/// type, which `Self` would stand for in their impls).
pub(crate) fn mentions_self(sig: &syn::Signature) -> bool {
    struct Finder(bool);
    impl<'ast> Visit<'ast> for Finder {
        fn visit_path(&mut self, path: &'ast syn::Path) {
            if path.segments.first().is_some_and(|s| s.ident == "Self") {
                self.0 = true;
            }
            syn::visit::visit_path(self, path);
        }
    }
    let mut finder = Finder(false);
    for input in &sig.inputs {
        if let FnArg::Typed(typed) = input {
            finder.visit_type(&typed.ty);
        }
    }
    if let ReturnType::Type(_, ty) = &sig.output {
        finder.visit_type(ty);
    }
    finder.0
}

fn check_no_impl_trait(errors: &mut Errors, ty: &Type) {
    struct Finder<'e>(&'e mut Errors);
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_impl_trait(&mut self, node: &'ast syn::TypeImplTrait) {
            self.0.push(
                node,
                "`#[pool_task]` cannot use `impl Trait`: a worker must know the concrete type \
                 to encode and decode; name the type",
            );
        }
    }
    Finder(errors).visit_type(ty);
}

/// A reference inside an argument's type (past the outer `&` the worker
/// lends) or inside the return type: the worker decodes and the caller
/// receives owned values only.
fn check_no_inner_reference(errors: &mut Errors, ty: &Type) {
    struct Finder<'e>(&'e mut Errors);
    impl<'ast> Visit<'ast> for Finder<'_> {
        fn visit_type_reference(&mut self, node: &'ast syn::TypeReference) {
            self.0.push(
                node,
                "`#[pool_task]` argument and return types cannot hold references (only an \
                 argument itself may be one, `&T`): values travel between processes and are \
                 decoded as owned values; use an owned type here, e.g. `String` for `&str`, \
                 `Vec<T>` for `&[T]`",
            );
        }
        // `impl Trait` is reported by `check_no_impl_trait`.
        fn visit_type_impl_trait(&mut self, _: &'ast syn::TypeImplTrait) {}
    }
    Finder(errors).visit_type(ty);
}
