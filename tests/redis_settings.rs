//! The Redis settings of `PoolBuilder` exist in every build: without the
//! `redis` feature a pool that uses them fails to build with a typed error
//! saying which feature it needs, and a Redis setting without `redis()` is
//! refused rather than ignored, whatever the order of the setters.

use procpool::{Error, Pool};

procpool::enable_test_support!();

#[test]
fn a_redis_setting_without_redis_is_refused_not_ignored() {
    for builder in [
        Pool::builder().queue("thumbnails"),
        Pool::builder().redeliver(2),
        Pool::builder().max_in_flight(10),
    ] {
        match builder.build() {
            Err(Error::Config { message }) => assert!(
                message.contains("redis"),
                "the message does not say what is missing: {message}"
            ),
            other => panic!("expected a configuration error, got {other:?}"),
        }
    }
}

#[cfg(not(feature = "redis"))]
#[test]
fn without_the_feature_a_redis_pool_says_which_feature_it_needs() {
    // The queue before redis(): the order of the setters does not matter.
    let built = Pool::builder()
        .queue("thumbnails")
        .redis("redis://127.0.0.1:1/0")
        .build();
    match built {
        Err(Error::Config { message }) => {
            assert!(message.contains("`redis` feature"), "{message}")
        }
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

#[cfg(feature = "redis")]
#[test]
fn redis_settings_the_broker_cannot_carry_are_refused_at_build() {
    // Checked before any connection: no server is needed.
    let url = "redis://127.0.0.1:1/0";
    let refused = |builder: procpool::PoolBuilder| match builder.build() {
        Err(Error::Config { message }) => message,
        Ok(_) => panic!("built"),
        Err(other) => panic!("{other:?}"),
    };
    let message = refused(Pool::builder().redis(url).max_frame_bytes(1 << 30));
    assert!(message.contains("512 MiB"), "{message}");
    let message = refused(Pool::builder().redis(url).queue(""));
    assert!(message.contains("empty"), "{message}");
    let message = refused(Pool::builder().redis(url).queue("a}b"));
    assert!(message.contains("brace"), "{message}");
    let node_refused = |node: procpool::NodeBuilder| match node.start() {
        Err(Error::Config { message }) => message,
        Ok(_) => panic!("started"),
        Err(other) => panic!("{other:?}"),
    };
    let small = || Pool::builder().max_frame_bytes(1 << 20);
    let message = node_refused(
        procpool::Node::builder()
            .redis(url)
            .queue("{x}")
            .pool(small()),
    );
    assert!(message.contains("brace"), "{message}");
    let large = Pool::builder().max_frame_bytes(600 << 20);
    let message = node_refused(procpool::Node::builder().redis(url).pool(large));
    assert!(message.contains("512 MiB"), "{message}");
}
