//! An environment entry whose name starts with `=` (`=x=y`: the C library
//! allows it, and `unsetenv` refuses its name) does not kill the fork
//! server when the caller's environment changes: it used to panic in its
//! update of the environment, and the pool spawned its workers from then
//! on. Alone in its binary: the test runs itself again with that entry.

mod support;

use procpool::{pool_task, Pool};

procpool::enable_test_support!();

#[pool_task]
fn parent_and_var(var: String) -> (u32, Option<String>) {
    (
        std::os::unix::process::parent_id(),
        std::env::var(&var).ok(),
    )
}

const CHILD: &str = "PROCPOOL_TEST_ODD_ENV_CHILD";

#[test]
fn an_environment_entry_named_with_an_equals_sign_leaves_the_fork_server_up() {
    if std::env::var_os(CHILD).is_none() {
        support::rerun_alone(
            "an_environment_entry_named_with_an_equals_sign_leaves_the_fork_server_up",
            &[(CHILD, "1"), ("=odd", "entry")],
        );
        return;
    }
    let odd = std::env::vars_os().any(|(k, _)| k == "=odd");
    assert!(odd, "the entry reached the test process");
    assert_eq!(
        support::await_fork_server(),
        Some(true),
        "workers are forked"
    );
    let server = support::fork_server().expect("init() started the fork server");
    // A change the fork server must take before it forks.
    std::env::set_var("PROCPOOL_TEST_CHANGED", "after init");
    let pool = Pool::new(1).unwrap();
    let (parent, var) = apply_parent_and_var(&pool, "PROCPOOL_TEST_CHANGED".into()).unwrap();
    assert_eq!(var.as_deref(), Some("after init"));
    assert_eq!(
        parent, server,
        "forked by the fork server, which is still up"
    );
    assert!(support::alive(server));
}
