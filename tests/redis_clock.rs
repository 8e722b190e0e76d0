//! The reaper's clock (`pp:{Q:B}:reaper`, `clock.lua`), against a real
//! redis-server and real node processes: a Redis that stands still for a
//! few seconds (or longer than the connections' timeout, or than a
//! caller's time to live) is not read as the death of the members that
//! waited for it, while a node that really died (or was stopped itself) is
//! still `NodeLost` in time, whatever Redis does meanwhile and whatever the
//! clock key holds.
#![cfg(feature = "redis")]

mod redis_support;
mod support;
#[path = "helpers/redis_tasks.rs"]
mod tasks;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use procpool::{AsyncResult, Error, Pool};
use redis_support::*;
use tasks::*;

procpool::enable_test_support!();

/// One node, one worker, nothing claimed ahead: what it holds is what runs.
fn single(server: &RedisServer) -> NodeProc {
    NodeProc::code(&server.url(), &[("processes", "1"), ("prefetch", "0")], &[])
}

/// Redis's time now, in ms (as the clock holds it).
fn redis_millis(server: &RedisServer) -> u64 {
    let time: Vec<u64> = server
        .cli(&["TIME"])
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    time[0] * 1000 + time[1] / 1000
}

/// A caller past its first time to live (its keeper judges at every tick)
/// with a call of `t/mark` of `ms` running on a node: the pool, the marks
/// file (in the directory returned) and the call.
fn running_call(server: &RedisServer, ms: u64) -> (Pool, TempDir, String, AsyncResult<u32>) {
    let pool = Pool::builder()
        .redis(&server.url())
        .broker_retry(Duration::from_secs(120))
        .build()
        .unwrap();
    let dir = TempDir::new();
    let file = dir.file("marks");
    std::thread::sleep(Duration::from_secs(4));
    let call = apply_async_mark(&pool, file.clone(), "call".into(), ms);
    wait_for(Duration::from_secs(20), "the call to start", || {
        marks(&file, "start").len() == 1
    });
    (pool, dir, file, call)
}

/// Redis stands still for `still` while a call of `ms` runs on a healthy
/// node: the call goes through, once, and the pool carries on.
fn a_call_rides_out_a_redis_standing_still(still: Duration, ms: u64) {
    let server = RedisServer::start();
    let _node = single(&server);
    let (pool, _dir, file, call) = running_call(&server, ms);
    server.signal(libc::SIGSTOP);
    std::thread::sleep(still);
    server.signal(libc::SIGCONT);
    let got = call.get();
    assert!(got.is_ok(), "{got:?}");
    assert_eq!(marks(&file, "start").len(), 1);
    assert_eq!(apply_square(&pool, 5).unwrap(), 25, "the pool carries on");
}

/// The call of a node SIGKILLed after `meanwhile` was done is `NodeLost`
/// within `limit` (the pool is terminated, not left hanging, if not).
fn a_killed_nodes_call_is_node_lost(limit: Duration, meanwhile: impl FnOnce(&RedisServer)) {
    let server = RedisServer::start();
    let mut victim = single(&server);
    let (pool, _dir, _file, call) = running_call(&server, 120_000);
    meanwhile(&server);
    victim.kill9();
    if !call.wait_timeout(limit) {
        pool.terminate();
        panic!("no NodeLost {limit:?} after the node's SIGKILL");
    }
    let got = call.get();
    assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
    // And a healthy node serves.
    let _healthy = single(&server);
    let sq = apply_async_square(&pool, 7);
    assert!(
        sq.wait_timeout(Duration::from_secs(15)),
        "a healthy node serves nothing"
    );
    assert_eq!(sq.get().unwrap(), 49);
}

/// Redis standing still for longer than a node's time to live (3 s), but
/// not long enough for the connections to time out (5 s): every heartbeat
/// expired meanwhile, and the first reaper round after it must not declare
/// the nodes dead before they could beat again.
#[test]
fn a_redis_that_stood_still_for_a_few_seconds_is_not_read_as_a_node_death() {
    a_call_rides_out_a_redis_standing_still(Duration::from_secs(4), 8_000);
}

/// Redis stopped past the connections' timeout (5 s): every member
/// reconnects; the running call goes through, once.
#[test]
fn a_redis_stopped_for_eight_seconds_is_not_read_as_a_node_death() {
    a_call_rides_out_a_redis_standing_still(Duration::from_secs(8), 12_000);
}

/// Redis stopped longer than a caller's heartbeat lives (30 s): the caller
/// must not be forgotten, and its running call goes through, once.
#[test]
fn a_redis_stopped_past_the_callers_ttl_forgets_nobody() {
    a_call_rides_out_a_redis_standing_still(Duration::from_secs(36), 20_000);
}

/// The reaper's clock is data anyone with access to Redis can write (and a
/// Redis clock set back leaves it ahead): a `judge from` time far ahead
/// holds the reaper for a moment at most, not until that time.
#[test]
fn a_reaper_clock_far_ahead_does_not_stop_the_reaper() {
    a_killed_nodes_call_is_node_lost(Duration::from_secs(15), |server| {
        // (Redis's time now, as the clock holds it: no gap to see.)
        let now = redis_millis(server);
        let clock = server.key(":reaper").expect("the reaper's clock");
        let (last, from) = (now.to_string(), (now + 3_600_000).to_string());
        server.cli(&["HSET", &clock, "last", &last, "from", &from]);
    });
}

/// The reaper's clock of the wrong type (anyone with access can write it,
/// as the far-ahead test supposes; or an operator's mistake): heartbeats
/// and reaper rounds must not all fail for good.
#[test]
fn a_reaper_clock_of_the_wrong_type_stops_neither_heartbeats_nor_the_reaper() {
    a_killed_nodes_call_is_node_lost(Duration::from_secs(15), |server| {
        let clock = server.key(":reaper").expect("the reaper's clock");
        server.cli(&["SET", &clock, "garbage"]);
    });
}

/// Redis that stutters: stands still `STILL_MS`, runs `RUNS_MS`, over and
/// over (a slow disk under `appendfsync always`, a VM with heavy steal
/// time, repeated slow forks). Each stillness is long enough to hold the
/// reaper, and the next comes before the hold is over: a node SIGKILLed
/// meanwhile must still be `NodeLost` in time.
const STILL_MS: u64 = 2200;
const RUNS_MS: u64 = 1000;

#[test]
fn a_stuttering_redis_never_holds_a_dead_nodes_call_forever() {
    let server = Arc::new(RedisServer::start());
    let mut victim = single(&server);
    let (pool, _dir, _file, call) = running_call(&server, 120_000);
    victim.kill9();
    let killed = Instant::now();
    let done = Arc::new(AtomicBool::new(false));
    let stutter = {
        let (server, done) = (server.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                server.signal(libc::SIGSTOP);
                std::thread::sleep(Duration::from_millis(STILL_MS));
                server.signal(libc::SIGCONT);
                std::thread::sleep(Duration::from_millis(RUNS_MS));
            }
        })
    };
    let in_time = call.wait_timeout(Duration::from_secs(30));
    done.store(true, Ordering::SeqCst);
    stutter.join().unwrap();
    server.signal(libc::SIGCONT);
    eprintln!("answered: {in_time} after {:?}", killed.elapsed());
    if !in_time {
        pool.terminate();
        panic!("no NodeLost 30 s after the node's SIGKILL, with Redis stuttering ({STILL_MS} ms still, {RUNS_MS} ms running)");
    }
    let got = call.get();
    assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
}

/// The only other member is a caller a moment old: NodeLost comes about 3 s
/// after the SIGKILL (README: "about 3 s later"), not 3 s later still.
#[test]
fn a_node_killed_beside_a_young_caller_is_node_lost_without_an_extra_hold() {
    let server = RedisServer::start();
    let mut victim = single(&server);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    let built = Instant::now();
    let dir = TempDir::new();
    let file = dir.file("marks");
    let r = apply_async_mark(&pool, file.clone(), "young".into(), 60_000);
    wait_for(Duration::from_secs(20), "the call to start", || {
        marks(&file, "start").len() == 1
    });
    let clock = server.key(":reaper").expect("the reaper's clock");
    let from = || -> u64 { server.cli(&["HGET", &clock, "from"]).parse().unwrap() };
    let kill_ms = redis_millis(&server);
    victim.kill9();
    let killed = Instant::now();
    assert!(r.wait_timeout(Duration::from_secs(30)), "no NodeLost");
    let took = killed.elapsed();
    eprintln!(
        "NodeLost {took:?} after the SIGKILL ({:?} after the pool was built)",
        built.elapsed()
    );
    assert!(matches!(r.get(), Err(Error::NodeLost { .. })));
    // No hold began after the kill: the young caller's rounds kept the
    // clock although they judged nobody.
    let from = from();
    assert!(
        from <= kill_ms,
        "a hold until {from}, after the kill at {kill_ms}"
    );
    assert!(
        took < Duration::from_secs(8),
        "NodeLost only {took:?} after the kill"
    );
}

/// A node (not Redis) stopped for 5 s, beside an old caller: declared lost.
#[test]
fn a_node_stopped_for_five_seconds_is_still_node_lost() {
    let server = RedisServer::start();
    let victim = single(&server);
    let (_pool, _dir, _file, call) = running_call(&server, 3_000);
    victim.signal(libc::SIGSTOP);
    std::thread::sleep(Duration::from_secs(5));
    victim.signal(libc::SIGCONT);
    let got = call.get();
    assert!(matches!(got, Err(Error::NodeLost { .. })), "{got:?}");
}

/// The same wrong-type clock key, healthy cluster: calls must still run
/// (heartbeats must not fail for good because of the clock).
#[test]
fn a_reaper_clock_of_the_wrong_type_does_not_stop_a_healthy_cluster() {
    let server = RedisServer::start();
    let _node = single(&server);
    let pool = Pool::builder().redis(&server.url()).build().unwrap();
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
    let clock = server.key(":reaper").expect("the reaper's clock");
    server.cli(&["SET", &clock, "garbage"]);
    std::thread::sleep(Duration::from_secs(2));
    let sq = apply_async_square(&pool, 7);
    if !sq.wait_timeout(Duration::from_secs(15)) {
        pool.terminate();
        panic!("a healthy node ran nothing for 15 s once the clock key was a string");
    }
    assert_eq!(sq.get().unwrap(), 49);
}
