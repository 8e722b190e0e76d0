//! `#[pool_task]` expands correctly where prelude names are shadowed, under
//! `deny(unused_qualifications)`, and from inside a `macro_rules!` macro, and
//! the tasks it registers really run in worker processes.

procpool::enable_test_support!();

#[deny(unused_qualifications)]
#[allow(dead_code, non_camel_case_types)]
mod shadowed {
    use ::serde::{Deserialize, Serialize};

    // Every prelude name generated code might lean on, shadowed.
    pub struct Result;
    pub struct Ok;
    pub struct Err;
    pub struct Option;
    pub struct Some;
    pub struct None;
    pub type Vec = ();
    pub type String = ();
    pub type Box = ();
    pub struct Default;
    pub struct Send;
    pub struct Sized;
    pub struct From;
    pub struct Into;
    pub mod core {}
    pub mod std {}
    pub mod procpool {}
    pub mod serde {}

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Total {
        pub sum: i64,
        pub pid: u32,
    }

    #[::procpool::pool_task]
    pub fn total(values: &[i64], offset: i64) -> Total {
        Total {
            sum: values.iter().sum::<i64>() + offset,
            pid: ::std::process::id(),
        }
    }
}

/// Defines a task; its `apply_` fns are named after the ident passed in.
macro_rules! define_task {
    ($name:ident, $factor:expr) => {
        #[procpool::pool_task]
        fn $name(x: u64) -> (u64, u32) {
            (x * $factor, std::process::id())
        }
    };
}

define_task!(triple, 3);

/// Generated code makes no lint fire at the task: an argument named
/// `_unused` (as the error for `_` says to name one) is used by the
/// generated `apply_` functions, which clippy's pedantic
/// `used_underscore_binding` reported at the argument; a task named
/// `_helper` makes `apply__helper`, which rustc's `non_snake_case` reported
/// at the task's name. (Checked by `cargo clippy --all-targets -- -D
/// warnings`, as `.ci/run` runs it, and by the build.)
#[deny(clippy::pedantic, non_snake_case)]
mod lints {
    #[procpool::pool_task]
    pub fn second(_unused: u64, x: u64) -> u64 {
        x
    }

    #[procpool::pool_task]
    pub fn second_of_ref(_unused: &str, x: u64) -> u64 {
        x
    }

    #[procpool::pool_task]
    pub fn _helper(x: u64) -> u64 {
        x + 1
    }
}

/// Defines a task whose argument type is a `$t:ty`, which the attribute
/// sees in an invisible group: `&str` and `&[u64]` there are reference
/// arguments as when written out.
macro_rules! define_len_task {
    ($name:ident, $arg:ty, $ret:ty) => {
        #[procpool::pool_task]
        fn $name(x: $arg) -> $ret {
            (x.len(), std::process::id())
        }
    };
}

define_len_task!(str_len, &str, (usize, u32));
define_len_task!(slice_len, &[u64], (usize, u32));
define_len_task!(bytes_len, &[u8], (usize, u32));

#[test]
fn runs_with_shadowed_prelude_names() {
    let pool = procpool::Pool::new(1).unwrap();
    let total = shadowed::apply_total(&pool, &[1, 2, 3], 10).unwrap();
    assert_eq!(total.sum, 16);
    assert_ne!(total.pid, std::process::id());
}

#[test]
fn runs_when_defined_by_macro_rules() {
    let pool = procpool::Pool::new(1).unwrap();
    let (value, pid) = apply_triple(&pool, 14).unwrap();
    assert_eq!(value, 42);
    assert_ne!(pid, std::process::id());
    let (value, pid) = apply_async_triple(&pool, 2).get().unwrap();
    assert_eq!(value, 6);
    assert_ne!(pid, std::process::id());
}

#[test]
fn tasks_of_underscore_names_run() {
    let pool = procpool::Pool::new(1).unwrap();
    assert_eq!(lints::apply_second(&pool, 1, 2).unwrap(), 2);
    assert_eq!(lints::apply_second_of_ref(&pool, "a", 3).unwrap(), 3);
    assert_eq!(lints::apply__helper(&pool, 4).unwrap(), 5);
    assert_eq!(lints::map__helper(&pool, [1, 2]).unwrap(), [2, 3]);
}

#[test]
fn reference_arguments_typed_by_macro_rules_run() {
    let pool = procpool::Pool::new(1).unwrap();
    let (len, pid) = apply_str_len(&pool, "abc").unwrap();
    assert_eq!(len, 3);
    assert_ne!(pid, std::process::id());
    assert_eq!(apply_slice_len(&pool, &[1, 2, 3, 4]).unwrap().0, 4);
    assert_eq!(apply_async_bytes_len(&pool, b"xy").get().unwrap().0, 2);
    let words = ["a".to_string(), "bcd".to_string()];
    let lens: Vec<usize> = map_str_len(&pool, words.iter())
        .unwrap()
        .into_iter()
        .map(|(len, _)| len)
        .collect();
    assert_eq!(lens, [1, 3]);
    let lists = [vec![1u64], vec![]];
    let lens: Vec<usize> = imap_slice_len(&pool, lists.iter())
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(lens, [1, 0]);
}

#[test]
fn the_map_family_runs_with_shadowed_prelude_names() {
    let pool = procpool::Pool::new(2).unwrap();
    let items = vec![(vec![1i64, 2], 0i64), (vec![5], 1)];
    let totals = shadowed::map_total(&pool, items.clone()).unwrap();
    assert_eq!(totals.iter().map(|t| t.sum).collect::<Vec<_>>(), [3, 6]);
    assert!(totals.iter().all(|t| t.pid != std::process::id()));
    let sums: Vec<i64> = shadowed::imap_total(&pool, items)
        .map(|t| t.unwrap().sum)
        .collect();
    assert_eq!(sums, [3, 6]);
    let tripled: Vec<u64> = imap_unordered_triple(&pool, 0..3)
        .map(|r| r.unwrap().0)
        .collect();
    assert_eq!(tripled.len(), 3);
    assert_eq!(map_async_triple(&pool, 0..3).get().unwrap()[2].0, 6);
}
