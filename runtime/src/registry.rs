//! The registry of `#[pool_task]` functions, keyed by their stable names.
//!
//! Each `#[pool_task]` submits a [`Registration`] with `inventory`; the table
//! is built on first use. Only registered functions can ever be called from
//! the task channel, and only by name.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use crate::error::Error;
use crate::task::{self, CallError, TaskInfo};
use crate::wire::RemoteError;

/// What the worker does with a call: decode the arguments, run the function,
/// encode its result.
pub type CallFn = fn(task::ArgsDecoder<'_>) -> Result<task::Encoded, CallError>;

/// What the worker does with a chunk of a map: decode each item's
/// arguments, run the function on each (catching each panic), and append one
/// record per item to the reply (see [`crate::batch`]).
pub type BatchFn = fn(&[u8], &mut Vec<u8>) -> Result<(), CallError>;

/// One registered task. Built by `#[pool_task]`; not public API.
#[derive(Debug)]
pub struct Registration {
    /// The task's name, signature and fingerprint.
    pub info: TaskInfo,
    /// Runs the function on encoded arguments.
    pub call: CallFn,
    /// Runs the function on each item of a chunk.
    pub call_batch: BatchFn,
    /// The signature as calls by name spell it, from the types themselves
    /// (`std::any::type_name`): `fn(u64, alloc::string::String) -> u64`.
    pub by_name_signature: fn() -> String,
    /// What the encoded value the function returned says of a failure:
    /// `Some` for an `Err` (`None` for any other value, or bytes that do
    /// not decode). Asked of the pool's initializer only.
    pub returned_err: fn(&[u8]) -> Option<String>,
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
            || fingerprint == self.info.fingerprint
            || fingerprint == task::fingerprint(&(self.by_name_signature)())
    }
}

inventory::collect!(Registration);

type Table = HashMap<&'static str, &'static Registration>;

fn table() -> &'static Result<Table, Error> {
    static TABLE: OnceLock<Result<Table, Error>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = Table::new();
        for reg in inventory::iter::<Registration> {
            if let Some(prev) = table.insert(reg.info.name, reg) {
                let (mut first, mut second) = (prev.location(), reg.location());
                if first > second {
                    std::mem::swap(&mut first, &mut second);
                }
                return Err(Error::DuplicateTask {
                    task: reg.info.name.to_string(),
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
    thread_local! {
        /// The task this thread found last: a worker mostly runs one task
        /// many times, and comparing a name is cheaper than hashing it.
        static LAST: std::cell::Cell<Option<&'static Registration>> =
            const { std::cell::Cell::new(None) };
    }
    if let Some(last) = LAST.with(|l| l.get()).filter(|r| r.info.name == name) {
        return Ok(last);
    }
    let table = table().as_ref().map_err(Clone::clone)?;
    let found = table.get(name).copied().ok_or_else(|| Error::UnknownTask {
        task: name.to_string(),
        suggestions: suggestions(table, name),
    })?;
    LAST.with(|l| l.set(Some(found)));
    Ok(found)
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

/// Finds the task a call names and checks that the call's `fingerprint`
/// agrees with its types: the one lookup every worker path uses.
pub(crate) fn find(name: &str, fingerprint: u64) -> Result<&'static Registration, RemoteError> {
    let registration = match lookup(name) {
        Ok(r) => r,
        Err(Error::UnknownTask { suggestions, .. }) => {
            return Err(RemoteError::UnknownTask { suggestions })
        }
        Err(Error::DuplicateTask { first, second, .. }) => {
            return Err(RemoteError::DuplicateTask { first, second })
        }
        Err(other) => return Err(RemoteError::DecodeArgs(other.to_string())),
    };
    if !registration.accepts(fingerprint) {
        return Err(RemoteError::SignatureMismatch {
            worker_signature: registration.info.signature.to_string(),
        });
    }
    Ok(registration)
}

/// The name and signature fingerprint of every registered task (what a
/// distributed pool's build id is made of).
#[cfg(feature = "redis")]
pub(crate) fn identities() -> Vec<(&'static str, u64)> {
    inventory::iter::<Registration>
        .into_iter()
        .map(|r| (r.info.name, r.info.fingerprint))
        .collect()
}

/// One registered task, as [`registry()`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskEntry {
    name: &'static str,
    signature: &'static str,
}

impl TaskEntry {
    /// The name calls are dispatched by: `module_path!()::fn_name`, or the
    /// one chosen with `#[pool_task(name = "...")]`.
    ///
    /// ```
    /// #[procpool::pool_task(name = "jobs.triple")]
    /// fn triple(x: u32) -> u32 { x * 3 }
    ///
    /// let entry = procpool::registry().into_iter().find(|t| t.name() == "jobs.triple");
    /// assert!(entry.is_some());
    /// ```
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The signature as written in the source, e.g.
    /// `fn(&[String], &str) -> usize`.
    ///
    /// ```
    /// #[procpool::pool_task]
    /// fn count(words: &[String], needle: &str) -> usize {
    ///     words.iter().filter(|w| *w == needle).count()
    /// }
    ///
    /// let entry = procpool::registry().into_iter().find(|t| t.name().ends_with("::count")).unwrap();
    /// assert_eq!(entry.signature(), "fn(&[String], &str) -> usize");
    /// ```
    pub fn signature(&self) -> &'static str {
        self.signature
    }
}

/// `name: signature`.
impl fmt::Display for TaskEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.signature)
    }
}

/// Every registered task, sorted by name.
///
/// Handy for a command line that lets its user pick a task to run with
/// [`Pool::apply_by_name`](crate::Pool::apply_by_name), whose arguments are
/// a tuple of the owned argument types (`(Vec<String>, String)` for
/// `fn(&[String], &str)`).
///
/// ```
/// #[procpool::pool_task]
/// fn triple(x: u32) -> u32 { x * 3 }
///
/// let listing = procpool::registry();
/// let triple = listing.iter().find(|t| t.name().ends_with("::triple")).unwrap();
/// assert_eq!(triple.signature(), "fn(u32) -> u32");
/// assert!(triple.to_string().ends_with("::triple: fn(u32) -> u32"));
/// ```
pub fn registry() -> Vec<TaskEntry> {
    let mut all: Vec<TaskEntry> = inventory::iter::<Registration>
        .into_iter()
        .map(|r| TaskEntry {
            name: r.info.name,
            signature: r.info.signature,
        })
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
