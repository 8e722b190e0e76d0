//! The pieces of [`Error`](super::Error)'s messages that depend on its
//! fields: a location, a task's name, hints for a mistyped name or
//! signature.

pub(super) fn location_suffix(location: &Option<String>) -> String {
    match location {
        Some(location) => format!(" at {location}"),
        None => String::new(),
    }
}

/// A hint for arguments given by name as a bare value (`&3u64`, spelled
/// `fn u64`) rather than as a tuple (`&(3u64,)`, `fn(u64,)`).
fn untupled_hint(args: &str) -> &'static str {
    if args.starts_with("fn ") {
        "; arguments by name go in a tuple: `&(x,)` for one argument, `&()` for none"
    } else {
        ""
    }
}

/// [`untupled_hint`], or for arguments by name given borrowed (`("bob", 2)`,
/// spelled `fn(&str, ..)`), which a task's signature by name spells owned
/// (a worker's signature with no reference: not that of a generated call).
pub(crate) fn by_name_hint(caller: &str, worker: &str) -> &'static str {
    let untupled = untupled_hint(caller);
    let borrows = |signature: &str| -> bool {
        let args = signature
            .split_once(" -> ")
            .map_or(signature, |(args, _)| args);
        args.contains('&')
    };
    let (borrowed, owned) = (borrows(caller), !borrows(worker));
    if untupled.is_empty() && borrowed && owned {
        "; arguments by name are owned values: `String` for `&str`, `Vec<T>` for `&[T]`, \
         `PathBuf` for `&Path`, `T` for `&T`"
    } else {
        untupled
    }
}

pub(super) fn suggestion_suffix(task: &str, suggestions: &[String]) -> String {
    if !suggestions.is_empty() {
        return format!("; did you mean {}?", suggestions.join(", "));
    }
    // Nothing alike: perhaps a library's task, which the linker leaves out
    // of a program that never uses the library (calls it only by name).
    // (A task named by its path has `module_path!()`'s name, which never
    // begins with `crate` and spells a package's `-` as `_`.)
    match task.split_once("::") {
        Some(("crate" | "self" | "super", _)) => {
            "; a task named by its path begins with its crate's name (`module_path!()`), \
             not `crate`, `self` or `super`"
                .to_string()
        }
        Some((krate, rest)) if krate.contains('-') => format!(
            "; a task named by its path spells its crate's name with `_` for `-`: `{}::{rest}`",
            krate.replace('-', "_")
        ),
        Some((krate, _)) if !krate.is_empty() => format!(
            "; a library's tasks are registered only in a program that uses the library: \
             if `{krate}` is one, add `use {krate} as _;`"
        ),
        _ => String::new(),
    }
}

pub(super) fn task_prefix(task: &str) -> String {
    if task.is_empty() {
        String::new()
    } else {
        format!("task `{task}`: ")
    }
}

pub(super) fn for_task(task: &str) -> String {
    if task.is_empty() {
        String::new()
    } else {
        format!(" for task `{task}`")
    }
}
