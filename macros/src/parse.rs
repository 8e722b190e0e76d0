//! The arguments of `#[pool_task(...)]`.

use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::{LitStr, Path, Token};

/// The longest task name a call can carry (procpool's `wire::MAX_NAME_LEN`,
/// a 16-bit length): a longer one would fail every call at run time.
const MAX_NAME_LEN: usize = u16::MAX as usize;

mod kw {
    syn::custom_keyword!(name);
}

/// `#[pool_task(name = "...", crate = path)]`, both optional.
#[derive(Default)]
pub(crate) struct TaskArgs {
    pub(crate) name: Option<LitStr>,
    pub(crate) krate: Option<Path>,
}

enum TaskArg {
    Name(LitStr),
    Crate(Path),
}

impl Parse for TaskArg {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let lookahead = input.lookahead1();
        if lookahead.peek(kw::name) {
            let keyword = input.parse::<kw::name>()?;
            if !input.peek(Token![=]) {
                return Err(syn::Error::new(
                    keyword.span,
                    "`name` needs a value: `name = \"my_task\"`",
                ));
            }
            let eq = input.parse::<Token![=]>()?;
            if !input.peek(LitStr) {
                return Err(not_a_string(input, eq));
            }
            let lit: LitStr = input.parse()?;
            if lit.value().trim().is_empty() {
                return Err(syn::Error::new(lit.span(), "a task name cannot be empty"));
            }
            let len = lit.value().len();
            if len > MAX_NAME_LEN {
                return Err(syn::Error::new(
                    lit.span(),
                    format!(
                        "a task name is at most {MAX_NAME_LEN} bytes (it travels with every \
                         call); this one is {len}"
                    ),
                ));
            }
            Ok(TaskArg::Name(lit))
        } else if lookahead.peek(Token![crate]) {
            Ok(TaskArg::Crate(crate_path(input)?))
        } else {
            let unknown: proc_macro2::TokenTree = input.parse()?;
            Err(syn::Error::new(
                unknown.span(),
                format!(
                    "unknown `#[pool_task]` argument `{unknown}`; \
                     the accepted arguments are `name = \"...\"` and `crate = path`"
                ),
            ))
        }
    }
}

/// The error for `name = <not a string literal>`, at what was written
/// there, suggesting the string it most likely meant.
fn not_a_string(input: ParseStream, eq: Token![=]) -> syn::Error {
    if input.is_empty() || input.peek(Token![,]) {
        return syn::Error::new(
            eq.span,
            "`name =` needs a string literal: `name = \"my_task\"`",
        );
    }
    let value = match input.parse::<syn::Expr>() {
        Ok(value) => value,
        Err(error) => return error,
    };
    let suggestion = match &value {
        // `name = double`, `name = 'x'`, `name = b"x"`, `name = 7`.
        syn::Expr::Path(p) if p.qself.is_none() && p.path.get_ident().is_some() => {
            p.path.get_ident().map(|ident| ident.unraw().to_string())
        }
        syn::Expr::Lit(lit) => match &lit.lit {
            syn::Lit::ByteStr(b) => String::from_utf8(b.value()).ok(),
            syn::Lit::CStr(c) => c.value().into_string().ok(),
            syn::Lit::Char(c) => Some(c.value().to_string()),
            syn::Lit::Int(i) => Some(i.to_string()),
            syn::Lit::Float(f) => Some(f.to_string()),
            syn::Lit::Bool(b) => Some(b.value.to_string()),
            _ => None,
        },
        _ => None,
    };
    let message = match suggestion {
        Some(text) => format!(
            "the task name must be a string literal: `name = {:?}`",
            text
        ),
        // A macro call or any other expression: an attribute's arguments
        // are not evaluated.
        None => "the task name must be a string literal, written out: \
                 `name = \"my_task\"` (an attribute's arguments are not evaluated, so \
                 neither a macro such as `concat!` nor a `const` can give it)"
            .to_string(),
    };
    syn::Error::new_spanned(value, message)
}

impl Parse for TaskArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let mut out = TaskArgs::default();
        for arg in Punctuated::<TaskArg, Token![,]>::parse_terminated(input)? {
            match arg {
                TaskArg::Name(lit) if out.name.is_some() => {
                    return Err(syn::Error::new(lit.span(), "`name` is given twice"))
                }
                TaskArg::Name(lit) => out.name = Some(lit),
                TaskArg::Crate(path) if out.krate.is_some() => {
                    return Err(syn::Error::new_spanned(path, "`crate` is given twice"))
                }
                TaskArg::Crate(path) => out.krate = Some(path),
            }
        }
        Ok(out)
    }
}

/// `crate = path`, the argument both attributes take: the path procpool is
/// reached by when it is renamed in `Cargo.toml`.
fn crate_path(input: ParseStream) -> syn::Result<Path> {
    let keyword = input.parse::<Token![crate]>()?;
    if !input.peek(Token![=]) {
        return Err(syn::Error::new(
            keyword.span,
            "`crate` needs a value: `crate = pp`, the name procpool is renamed to in Cargo.toml",
        ));
    }
    input.parse::<Token![=]>()?;
    if input.peek(LitStr) {
        let lit: LitStr = input.parse()?;
        return Err(syn::Error::new(
            lit.span(),
            format!(
                "`crate` takes a path, not a string: `crate = {}`",
                lit.value()
            ),
        ));
    }
    Path::parse_mod_style(input)
}

/// `#[procpool::main(crate = path)]`: the one optional argument, for a
/// procpool renamed in `Cargo.toml` (the default is `::procpool`).
#[derive(Default)]
pub(crate) struct MainArgs {
    pub(crate) krate: Option<Path>,
}

impl Parse for MainArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Ok(MainArgs::default());
        }
        if !input.peek(Token![crate]) {
            let unknown: proc_macro2::TokenTree = input.parse()?;
            return Err(syn::Error::new(
                unknown.span(),
                format!(
                    "unknown `#[procpool::main]` argument `{unknown}`; the only one is \
                     `crate = path`, for procpool renamed in Cargo.toml"
                ),
            ));
        }
        let krate = crate_path(input)?;
        let _ = input.parse::<Option<Token![,]>>()?;
        if !input.is_empty() {
            return Err(input.error("`#[procpool::main]` takes one argument, `crate = path`"));
        }
        Ok(MainArgs { krate: Some(krate) })
    }
}
