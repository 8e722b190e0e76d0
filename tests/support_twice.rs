//! `enable_test_support!()` given twice in one test crate, in two modules
//! (as a crate whose unit tests live in several files' `mod tests` may
//! have it): the second does nothing. Its constructor ran `init()` again,
//! and in the fork server, whose first constructor had taken the server's
//! socket, it launched a fork server of its own, which did the same: a
//! chain of fork servers, one more every few milliseconds, as long as the
//! test binary ran.

mod support;

use procpool::{pool_task, Error, ExitInfo, Pool};

mod first {
    procpool::enable_test_support!();
}

mod second {
    procpool::enable_test_support!();
}

#[pool_task]
fn exit_with(code: i32) -> i32 {
    std::process::exit(code)
}

/// The fork server's children are the pool's workers (each ready, so named
/// as one), and no other fork server; workers serve from the entry test.
#[test]
fn the_fork_server_launches_no_fork_server_of_its_own() {
    let server = support::fork_server().expect("a test binary runs a fork server");
    // (Spawned workers would not be the server's children: nothing checked.)
    assert_eq!(
        support::await_fork_server(),
        Some(true),
        "workers are forked"
    );
    let pool = Pool::new(2).unwrap();
    let servers: Vec<u32> = support::children_of(server)
        .into_iter()
        .filter(|&pid| support::is_fork_server(pid))
        .collect();
    assert!(
        servers.is_empty(),
        "fork servers launched by the fork server: {servers:?}"
    );
    match apply_exit_with(&pool, 3) {
        Err(Error::WorkerDied { status, .. }) => assert_eq!(status, ExitInfo::Code(3)),
        other => panic!("expected WorkerDied with exit code 3, got {other:?}"),
    }
}
