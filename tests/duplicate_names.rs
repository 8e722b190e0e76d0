//! Two tasks registered under one name are detected at run time, with an
//! error naming both. (A binary of its own: the clash poisons its registry.)

use procpool::{pool_task, Error, Pool};

procpool::enable_test_support!();

#[pool_task(name = "shared-name")]
fn first() -> u8 {
    1
}

mod elsewhere {
    #[procpool::pool_task(name = "shared-name")]
    pub fn second() -> u8 {
        2
    }
}

#[test]
fn duplicate_names_are_refused_naming_both() {
    match Pool::new(1) {
        Err(Error::DuplicateTask {
            task,
            first,
            second,
        }) => {
            assert_eq!(task, "shared-name");
            assert!(first.starts_with("tests/duplicate_names.rs:"), "{first}");
            assert!(second.starts_with("tests/duplicate_names.rs:"), "{second}");
            assert_ne!(first, second);
        }
        other => panic!("expected DuplicateTask, got {other:?}"),
    }
    assert_eq!(first() + elsewhere::second(), 3);
}
