//! A name the worker does not know is a typed error, with suggestions, and
//! the pool carries on.

use procpool::__private::{submit, ArgsEncoder, TaskInfo};
use procpool::{pool_task, Error, Pool};

procpool::enable_test_support!();

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[test]
fn an_unregistered_name_is_refused_with_suggestions() {
    let pool = Pool::new(1).unwrap();
    // What a caller built from other sources looks like on the wire.
    let stale = TaskInfo {
        name: "unknown_task::sqaure",
        signature: "fn(u64) -> u64",
        fingerprint: 0,
    };
    let args = ArgsEncoder::new().push(&3u64).finish();
    match submit::<u64>(&pool, &stale, args).get() {
        Err(Error::UnknownTask { task, suggestions }) => {
            assert_eq!(task, "unknown_task::sqaure");
            assert_eq!(suggestions, ["unknown_task::square"]);
        }
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
}
