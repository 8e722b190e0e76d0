//! Calls by name: `Pool::apply_by_name` / `apply_async_by_name`, their type
//! checks, and `procpool::registry()`.

use std::path::{Path, PathBuf};

use procpool::{pool_task, Error, Pool};

procpool::enable_test_support!();

#[pool_task(name = "math/add")]
fn add(a: i64, b: i64) -> i64 {
    a + b
}

#[pool_task(name = "pid")]
fn pid() -> u32 {
    std::process::id()
}

#[pool_task(name = "text/count")]
fn count(words: &[String], needle: &str) -> usize {
    words.iter().filter(|w| *w == needle).count()
}

#[pool_task(name = "path/name")]
fn file_name(path: &Path) -> Option<String> {
    path.file_name().map(|n| n.to_string_lossy().into_owned())
}

#[pool_task(name = "fails")]
fn fails(x: u8) -> u8 {
    panic!("no {x}")
}

#[test]
fn a_task_chosen_at_run_time_runs_in_a_worker() {
    let pool = Pool::new(1).unwrap();
    let task = String::from("math/add"); // e.g. read from a config file
    assert_eq!(
        pool.apply_by_name::<i64>(&task, &(40i64, 2i64)).unwrap(),
        42
    );
    let worker: u32 = pool.apply_by_name("pid", &()).unwrap();
    assert_ne!(worker, std::process::id());
    let r = pool.apply_async_by_name::<i64>("math/add", &(1i64, 1i64));
    assert_eq!(r.get().unwrap(), 2);
}

#[test]
fn reference_arguments_are_passed_owned() {
    let pool = Pool::new(1).unwrap();
    let words: Vec<String> = ["a", "b", "a"].map(String::from).to_vec();
    let n: usize = pool
        .apply_by_name("text/count", &(words, "a".to_string()))
        .unwrap();
    assert_eq!(n, 2);
    let name: Option<String> = pool
        .apply_by_name("path/name", &(PathBuf::from("/tmp/x.txt"),))
        .unwrap();
    assert_eq!(name.as_deref(), Some("x.txt"));
}

#[test]
fn an_unknown_name_is_a_typed_error_with_suggestions() {
    let pool = Pool::new(1).unwrap();
    match pool.apply_by_name::<i64>("math/ad", &(1i64, 2i64)) {
        Err(Error::UnknownTask { task, suggestions }) => {
            assert_eq!(task, "math/ad");
            assert_eq!(suggestions.first().map(String::as_str), Some("math/add"));
        }
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    let refused = pool.apply_async_by_name::<i64>("nope", &());
    assert_eq!(refused.task(), "nope");
    assert!(refused.ready());
    assert!(matches!(refused.get(), Err(Error::UnknownTask { .. })));
}

#[test]
fn wrong_argument_or_return_types_are_refused_before_sending() {
    let pool = Pool::new(1).unwrap();
    let mismatch = |r: Result<i64, Error>| match r {
        Err(Error::SignatureMismatch {
            task,
            caller,
            worker,
        }) => {
            assert_eq!(task, "math/add");
            let i64_name = name::<i64>();
            assert_eq!(worker, format!("fn({i64_name}, {i64_name}) -> {i64_name}"));
            caller
        }
        other => panic!("expected SignatureMismatch, got {other:?}"),
    };
    // Other argument types (same encoded size would decode as garbage).
    assert_eq!(
        mismatch(pool.apply_by_name("math/add", &(1u64, 2u64))),
        format!(
            "fn({}, {}) -> {}",
            name::<u64>(),
            name::<u64>(),
            name::<i64>()
        )
    );
    // Too few arguments, and not a tuple.
    assert_eq!(
        mismatch(pool.apply_by_name("math/add", &(1i64,))),
        format!("fn({},) -> {}", name::<i64>(), name::<i64>())
    );
    assert_eq!(
        mismatch(pool.apply_by_name("math/add", &1i64)),
        format!("fn {} -> {}", name::<i64>(), name::<i64>())
    );
    // Another return type.
    match pool.apply_by_name::<String>("math/add", &(1i64, 2i64)) {
        Err(Error::SignatureMismatch { caller, .. }) => {
            // Built with `std::any::type_name`, whose text is not fixed.
            let expected = format!(
                "fn({}, {}) -> {}",
                name::<i64>(),
                name::<i64>(),
                name::<String>()
            );
            assert_eq!(caller, expected)
        }
        other => panic!("expected SignatureMismatch, got {other:?}"),
    }
    // The pool is still fine.
    assert_eq!(
        pool.apply_by_name::<i64>("math/add", &(1i64, 2i64))
            .unwrap(),
        3
    );
}

/// The type's name as signatures spell it.
fn name<T: ?Sized>() -> &'static str {
    std::any::type_name::<T>()
}

#[test]
fn a_panic_arrives_as_usual() {
    let pool = Pool::new(1).unwrap();
    match pool.apply_by_name::<u8>("fails", &(7u8,)) {
        Err(Error::Panic { task, message, .. }) => {
            assert_eq!(task, "fails");
            assert_eq!(message, "no 7");
        }
        other => panic!("expected Panic, got {other:?}"),
    }
}

#[test]
fn the_registry_lists_names_with_signatures() {
    let listing = procpool::registry();
    for line in [
        "math/add: fn(i64, i64) -> i64",
        "pid: fn() -> u32",
        "text/count: fn(&[String], &str) -> usize",
        "path/name: fn(&Path) -> Option<String>",
    ] {
        assert!(
            listing.iter().any(|t| t.to_string() == line),
            "{line} not in {listing:#?}"
        );
    }
    let mut sorted = listing.clone();
    sorted.sort();
    assert_eq!(listing, sorted);
}

/// A type of the user's own named `Path`.
mod geo {
    #[derive(serde::Serialize, serde::Deserialize, Clone, Debug, PartialEq)]
    pub struct Path {
        pub points: Vec<u32>,
    }
}

mod uses_path {
    use super::geo::Path;

    #[procpool::pool_task]
    pub fn route_points(p: &Path) -> Vec<u32> {
        p.points.clone()
    }
}

/// A `&Path` argument whose `Path` is the user's own type is called by name
/// with that type, and a `std::path::PathBuf` is refused: the macro used to
/// take any `Path` for `std::path::Path` (by name, it wanted a `PathBuf`,
/// and decoded one into garbage).
#[test]
fn a_users_own_path_type_is_called_by_name_as_itself() {
    let pool = Pool::new(1).unwrap();
    let route = geo::Path {
        points: vec![1, 2, 3],
    };
    assert_eq!(
        uses_path::apply_route_points(&pool, &route).unwrap(),
        vec![1, 2, 3]
    );
    let name = "by_name::uses_path::route_points";
    let by_name: Result<Vec<u32>, Error> = pool.apply_by_name(name, &(route.clone(),));
    assert_eq!(by_name.unwrap(), vec![1, 2, 3]);
    let std_path: Result<Vec<u32>, Error> = pool.apply_by_name(name, &(PathBuf::from("abc"),));
    assert!(
        matches!(std_path, Err(Error::SignatureMismatch { .. })),
        "a std PathBuf accepted for the user's Path: {std_path:?}"
    );
}

/// serde encodes `&T` as `T`, so arguments behind one reference too many
/// (`&&(x,)`, easy to write when the tuple is already a reference) are the
/// same bytes: they run, for calls and for an initializer alike.
#[test]
fn arguments_behind_a_reference_too_many_are_the_same_arguments() {
    let pool = Pool::builder()
        .processes(1)
        .initializer("math/add", &&(1i64, 2i64))
        .build()
        .unwrap();
    let args = &(40i64, 2i64);
    assert_eq!(pool.apply_by_name::<i64>("math/add", &args).unwrap(), 42);
    let args = &mut (1i64, 1i64);
    assert_eq!(
        pool.apply_async_by_name::<i64>("math/add", &args)
            .get()
            .unwrap(),
        2
    );
}
