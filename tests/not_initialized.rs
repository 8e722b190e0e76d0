//! Creating a pool in a process that never called `procpool::init()` is a
//! clear error, not a worker that runs the caller's `main` again.
//! (No `enable_test_support!()` in this binary, on purpose.)

use procpool::{Error, Pool};

#[test]
fn a_pool_needs_init_first() {
    let err = Pool::new(1).unwrap_err();
    assert!(matches!(err, Error::NotInitialized));
    assert!(err.to_string().contains("procpool::init()"), "{err}");
}
