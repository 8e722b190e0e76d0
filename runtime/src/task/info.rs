//! A task's wire identity: its `TaskInfo` (name, signature and the
//! signature's fingerprint), and the table of those procpool makes up at
//! run time (calls by name, names refused).

/// The caller's view of one task: how to name it on the wire.
#[derive(Debug, Clone, Copy)]
pub struct TaskInfo {
    /// The registered name calls are dispatched by.
    pub name: &'static str,
    /// The argument and return types as written, e.g. `fn(u64) -> u64`.
    pub signature: &'static str,
    /// [`fingerprint`] of `signature`, sent with every call and checked by
    /// the worker.
    pub fingerprint: u64,
}

/// FNV-1a of a signature; never 0, which means "unchecked" on the wire. A
/// `const fn`, so the code `#[pool_task]` generates computes it at compile
/// time with the same function the runtime uses for calls by name.
pub const fn fingerprint(signature: &str) -> u64 {
    let bytes = signature.as_bytes();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    if hash == 0 {
        1
    } else {
        hash
    }
}

/// The one `TaskInfo` of the calls procpool makes up at run time (calls by
/// name, the initializer, tests' raw calls), by name, signature and
/// fingerprint: made once, kept for the life of the process, so a call
/// carries a `&'static TaskInfo` whatever made it. The table only grows
/// with distinct tasks and signatures actually called, a handful per
/// registered task (unknown names are refused before a call is made).
pub(crate) fn intern(name: &str, signature: &'static str, fingerprint: u64) -> &'static TaskInfo {
    interned(name, signature, fingerprint, true).unwrap_or(&REFUSED_OTHERS)
}

/// What a result refused before any call was made (a name nobody
/// registered, called by name) shows as its task: interned like
/// [`intern`]'s, for the first [`MAX_REFUSED`] distinct names; later ones
/// share one entry (their errors still name them), so that a program that
/// keeps calling names it made up does not grow the table for ever.
pub(crate) fn refused(name: &str) -> &'static TaskInfo {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static LEFT: AtomicUsize = AtomicUsize::new(MAX_REFUSED);
    if let Some(info) = interned(name, REFUSED, 0, false) {
        return info;
    }
    let admit = LEFT
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok();
    interned(name, REFUSED, 0, admit).unwrap_or(&REFUSED_OTHERS)
}

/// How many refused names [`refused`] keeps apart.
const MAX_REFUSED: usize = 1024;
/// The signature of a refused name's entry.
const REFUSED: &str = "<refused before a call was made>";
/// The entry refused names share past [`MAX_REFUSED`].
static REFUSED_OTHERS: TaskInfo = TaskInfo {
    name: "<an unregistered task>",
    signature: REFUSED,
    fingerprint: 0,
};

/// The table behind [`intern`] and [`refused`]: the entry for the key, made
/// if absent and `insert`.
fn interned(
    name: &str,
    signature: &'static str,
    fingerprint: u64,
    insert: bool,
) -> Option<&'static TaskInfo> {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    type Table = HashMap<(String, &'static str, u64), &'static TaskInfo>;
    static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
    let mut table = TABLE
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let key = (name.to_string(), signature, fingerprint);
    if !insert {
        return table.get(&key).copied();
    }
    Some(table.entry(key).or_insert_with(|| {
        Box::leak(Box::new(TaskInfo {
            name: Box::leak(name.into()),
            signature,
            fingerprint,
        }))
    }))
}

/// The signature of a call by name with arguments `A` (a tuple) returning
/// `R`, spelled from the types themselves: `fn(u64, alloc::string::String) -> u64`.
/// A reference to the arguments (`&&(x,)` given where `&(x,)` is meant) is
/// spelled as what it refers to: serde encodes `&T` exactly as `T`.
pub fn by_name_signature<A: ?Sized, R: ?Sized>() -> String {
    let mut args = std::any::type_name::<A>();
    while let Some(rest) = args
        .strip_prefix("&mut ")
        .or_else(|| args.strip_prefix('&'))
    {
        args = rest;
    }
    if args.starts_with('(') {
        format!("fn{args} -> {}", std::any::type_name::<R>())
    } else {
        format!("fn {args} -> {}", std::any::type_name::<R>())
    }
}

#[cfg(test)]
mod tests {
    use super::{intern, refused};

    #[test]
    fn a_refused_name_is_kept_once_apart_from_calls_of_that_name() {
        let first = refused("no/such/task");
        assert_eq!(first.name, "no/such/task");
        assert!(std::ptr::eq(first, refused("no/such/task")));
        assert!(!std::ptr::eq(first, intern("no/such/task", "fn()", 0)));
    }
}
