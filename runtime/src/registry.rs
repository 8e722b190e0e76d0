//! The registry of `#[pool_task]` functions, keyed by their stable names.
//!
//! Each `#[pool_task]` submits a [`Registration`] with `inventory`; the table
//! is built on first use. Only registered functions can ever be called from
//! the task channel, and only by name.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::error::Error;

/// What the worker does with a call: decode the arguments, run the function,
/// encode its result.
pub type CallFn = fn(&[u8]) -> Result<Vec<u8>, CallError>;

/// What the worker does with a chunk of a map: decode each item's
/// arguments, run the function on each (catching each panic), and append one
/// record per item to the reply (see [`crate::batch`]).
pub type BatchFn = fn(&[u8], &mut Vec<u8>) -> Result<(), CallError>;

/// Why a registered call could not produce result bytes.
#[derive(Debug)]
pub enum CallError {
    /// The argument bytes did not decode as the function's argument types.
    DecodeArgs(String),
    /// The function's result could not be encoded.
    EncodeResult(String),
}

/// One registered task. Built by `#[pool_task]`; not public API.
#[derive(Debug)]
pub struct Registration {
    /// The stable name calls are dispatched by.
    pub name: &'static str,
    /// The argument and return types as written, e.g. `fn(u64) -> u64`.
    pub signature: &'static str,
    /// A hash of `signature`, sent with every call.
    pub fingerprint: u64,
    /// Runs the function on encoded arguments.
    pub call: CallFn,
    /// Runs the function on each item of a chunk.
    pub call_batch: BatchFn,
    /// The signature as calls by name spell it, from the types themselves
    /// (`std::any::type_name`): `fn(u64, alloc::string::String) -> u64`.
    pub by_name_signature: fn() -> String,
    /// Where the function is defined, for error messages.
    pub file: &'static str,
    /// Line of the function.
    pub line: u32,
}

impl Registration {
    pub(crate) fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// Whether a call carrying `fingerprint` agrees with this task's types:
    /// 0 (unchecked), the compiled signature's, or the by-name signature's.
    pub(crate) fn accepts(&self, fingerprint: u64) -> bool {
        fingerprint == 0
            || fingerprint == self.fingerprint
            || fingerprint == crate::by_name::fingerprint(&(self.by_name_signature)())
    }
}

inventory::collect!(Registration);

type Table = HashMap<&'static str, &'static Registration>;

fn table() -> &'static Result<Table, Error> {
    static TABLE: OnceLock<Result<Table, Error>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Table::new();
        for reg in inventory::iter::<Registration> {
            if let Some(prev) = table.insert(reg.name, reg) {
                let (mut first, mut second) = (prev.location(), reg.location());
                if first > second {
                    std::mem::swap(&mut first, &mut second);
                }
                return Err(Error::DuplicateTask {
                    task: reg.name.to_string(),
                    first,
                    second,
                });
            }
        }
        Ok(table)
    })
}

/// Checks that no two tasks share a name.
pub(crate) fn validate() -> Result<(), Error> {
    table().as_ref().map(|_| ()).map_err(Clone::clone)
}

/// Finds the task registered as `name`.
pub(crate) fn lookup(name: &str) -> Result<&'static Registration, Error> {
    let table = table().as_ref().map_err(Clone::clone)?;
    table.get(name).copied().ok_or_else(|| Error::UnknownTask {
        task: name.to_string(),
        suggestions: suggestions(table, name),
    })
}

/// Up to three registered names close to `name`: same function name first,
/// then by edit distance.
fn suggestions(table: &Table, name: &str) -> Vec<String> {
    let leaf = |s: &str| s.rsplit("::").next().unwrap_or(s).to_string();
    let wanted_leaf = leaf(name);
    let mut scored: Vec<(usize, &str)> = table
        .keys()
        .map(|known| {
            let score = if leaf(known) == wanted_leaf {
                0
            } else {
                1 + edit_distance(known, name)
            };
            (score, *known)
        })
        .filter(|(score, known)| *score <= 1 + known.len().max(name.len()) / 3)
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, n)| n.to_string())
        .collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Every registered task as `name: signature`, sorted by name, the
/// signature as written in the source (`fn(&[String], &str) -> usize`).
///
/// Handy for a command line that lets its user pick a task to run with
/// [`Pool::apply_by_name`](crate::Pool::apply_by_name), whose arguments are
/// a tuple of the owned argument types (`(Vec<String>, String)` here).
///
/// ```
/// #[procpool::pool_task]
/// fn triple(x: u32) -> u32 { x * 3 }
///
/// let listing = procpool::registry();
/// assert!(listing.iter().any(|line| line.ends_with("::triple: fn(u32) -> u32")));
/// ```
pub fn registry() -> Vec<String> {
    let mut all: Vec<String> = inventory::iter::<Registration>
        .into_iter()
        .map(|r| format!("{}: {}", r.name, r.signature))
        .collect();
    all.sort();
    all
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distance_counts_edits() {
        assert_eq!(edit_distance("square", "sqaure"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
