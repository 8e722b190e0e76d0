//! The shared-memory channel's own failure modes, with real workers: a task
//! that writes impossible ring indices or garbage over the control page, a
//! frame the worker's death cuts in the middle of its stream, a frame whose
//! body stalls, and frames of every size around the ring's. The parent gets
//! a typed error promptly (never a hang, a panic or garbage) and the pool
//! goes on.

mod support;

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::SeqCst};
use std::time::{Duration, Instant};

use procpool::__private::{channel_layout, channel_ring_bytes, write_raw_reply};
use procpool::{pool_task, Error, ExitInfo, Pool};
use support::{alive, assert_no_children, serial, state, wait_for};

procpool::enable_test_support!();

/// The start of this worker's channel mapping, and the offset of `part`.
fn channel(part: &str) -> (*mut u8, usize) {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let line = maps
        .lines()
        .find(|l| l.contains("/memfd:procpool-channel"))
        .expect("the worker maps its channel");
    let start = usize::from_str_radix(line.split('-').next().unwrap(), 16).unwrap();
    let offset = channel_layout()
        .into_iter()
        .find(|(name, _)| *name == part)
        .unwrap()
        .1;
    (start as *mut u8, offset)
}

/// Stores `value` at `part` of this worker's control page.
fn poke(part: &str, value: u64) {
    let (base, at) = channel(part);
    // SAFETY: an aligned u64 index inside this worker's live channel mapping.
    unsafe { (*base.add(at).cast::<AtomicU64>()).store(value, SeqCst) };
}

/// Wakes the parent's futex, as a producer would.
fn wake_parent() {
    let (base, at) = channel("parent_seq");
    // SAFETY: the parent's futex word inside the live mapping; FUTEX_WAKE
    // only uses its address.
    unsafe {
        let seq = &*base.add(at).cast::<AtomicU32>();
        seq.fetch_add(1, SeqCst);
        libc::syscall(
            libc::SYS_futex,
            seq.as_ptr(),
            libc::FUTEX_WAKE,
            i32::MAX,
            0,
            0,
            0,
        );
    }
}

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

/// Writes an impossible reply index (two rings ahead) and waits.
#[pool_task]
fn lie_about_the_reply_head() -> u32 {
    poke("rep_head", 2 * channel_ring_bytes() as u64 + 7);
    wake_parent();
    std::thread::sleep(Duration::from_secs(30));
    0
}

/// Fills the whole control page with noise and waits.
#[pool_task]
fn scribble_over_the_control_page(seed: u64) -> u32 {
    let (base, _) = channel("req_head");
    let mut x = seed | 1;
    for i in 0..4096 / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // SAFETY: an aligned u64 inside the control page of the mapping.
        unsafe { (*base.add(i * 8).cast::<AtomicU64>()).store(x, SeqCst) };
    }
    wake_parent();
    std::thread::sleep(Duration::from_secs(30));
    0
}

/// Answers, then (once the answer is published, from another thread)
/// claims to have read further than the parent ever wrote, and stops the
/// whole worker: nothing in it will read or set the index right again. (A
/// thread that waited 50 ms instead could stop the worker before it
/// answered, on a busy machine: the call, without a time limit, then
/// waited for ever.)
#[pool_task]
fn lie_about_the_request_tail_then_freeze() -> u32 {
    let before = reply_head();
    std::thread::spawn(move || {
        while reply_head() == before {
            std::thread::sleep(Duration::from_millis(1));
        }
        poke("req_tail", 1 << 40);
        // SAFETY: raise(2) takes a signal number.
        unsafe { libc::raise(libc::SIGSTOP) };
    });
    std::process::id()
}

#[pool_task]
fn byte_count(bytes: Vec<u8>) -> (u32, usize) {
    (std::process::id(), bytes.len())
}

/// This worker's reply ring head (the count of bytes it has published).
fn reply_head() -> u64 {
    let (base, at) = channel("rep_head");
    // SAFETY: an aligned u64 index inside this worker's live channel mapping.
    unsafe { (*base.add(at).cast::<AtomicU64>()).load(SeqCst) }
}

/// Returns `len` bytes, and SIGKILLs its own process once about a MiB of
/// them is in the reply ring: the frame is cut in the middle of its stream.
#[pool_task]
fn die_while_replying(len: usize) -> Vec<u8> {
    let start = reply_head();
    std::thread::spawn(move || loop {
        if reply_head() >= start + (1 << 20) {
            // SAFETY: raise(2) takes a signal number.
            unsafe { libc::raise(libc::SIGKILL) };
        }
        std::hint::spin_loop();
    });
    vec![3u8; len]
}

/// Writes the start of a split frame announcing an 8 MiB tail, 100 bytes
/// of it, and waits.
#[pool_task]
fn stall_in_a_large_frame() -> u32 {
    let mut raw = u32::MAX.to_le_bytes().to_vec();
    raw.extend_from_slice(&10u64.to_le_bytes());
    raw.extend_from_slice(&(8u64 << 20).to_le_bytes());
    raw.extend_from_slice(&[11; 100]);
    write_raw_reply(&raw).unwrap();
    std::thread::sleep(Duration::from_secs(30));
    0
}

#[pool_task]
fn echo_text(text: String) -> String {
    text
}

#[pool_task]
fn echo_bytes(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

/// The pool serves on from a worker other than `bad`, which is gone.
fn assert_replaced(pool: &Pool, bad: u32) {
    let now = apply_worker_pid(pool).unwrap();
    assert_ne!(now, bad);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(bad) {
        assert!(Instant::now() < deadline, "the bad worker {bad} lives on");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn impossible_or_garbage_indices_are_a_protocol_error_promptly() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let begun = Instant::now();
    match apply_lie_about_the_reply_head(&pool) {
        Err(Error::Protocol { task, message }) => {
            assert_eq!(task, "fault_ring::lie_about_the_reply_head");
            assert!(message.contains("impossible producer index"), "{message}");
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert!(begun.elapsed() < Duration::from_secs(10));
    assert_replaced(&pool, pid);
    for seed in 1..4 {
        let pid = apply_worker_pid(&pool).unwrap();
        let begun = Instant::now();
        match apply_scribble_over_the_control_page(&pool, seed) {
            Err(Error::Protocol { .. }) => {}
            other => panic!("seed {seed}: expected Protocol, got {other:?}"),
        }
        assert!(begun.elapsed() < Duration::from_secs(10));
        assert_replaced(&pool, pid);
    }
    drop(pool);
    assert_no_children();
}

#[test]
fn a_lying_consumer_index_is_caught_and_the_call_runs_elsewhere() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let liar = apply_lie_about_the_request_tail_then_freeze(&pool).unwrap();
    // The worker stops itself right after the lie: once it is stopped, the
    // lie is in place.
    wait_for(Duration::from_secs(30), "the lying worker to stop", || {
        state(liar) == Some('T')
    });
    // Larger than the ring: the parent must read the worker's tail to find
    // room, sees the lie at once (not after the 10 s stall limit), and never
    // finishes the frame: the call had not started, so it runs on a
    // replacement.
    let begun = Instant::now();
    let (pid, len) = apply_byte_count(&pool, vec![1; 3 * channel_ring_bytes()]).unwrap();
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(len, 3 * channel_ring_bytes());
    assert_ne!(pid, liar);
    assert_replaced(&pool, liar);
    drop(pool);
    assert_no_children();
}

#[test]
fn a_reply_cut_by_the_workers_death_mid_stream_is_worker_died() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let begun = Instant::now();
    match apply_die_while_replying(&pool, 256 << 20) {
        Err(Error::WorkerDied {
            task,
            pid: p,
            status,
        }) => {
            assert_eq!(task, "fault_ring::die_while_replying");
            assert_eq!(p, pid);
            assert_eq!(status, ExitInfo::Signal(libc::SIGKILL));
        }
        other => panic!("expected WorkerDied, got {:?}", other.map(|v| v.len())),
    }
    assert!(begun.elapsed() < Duration::from_secs(10));
    assert_replaced(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn a_large_frame_that_stalls_is_a_protocol_error_after_the_limit() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        // (Also how long a new worker may take to start a call: room
        // for a loaded machine.)
        .frame_stall_timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let begun = Instant::now();
    match apply_stall_in_a_large_frame(&pool) {
        Err(Error::Protocol { message, .. }) => {
            assert!(message.contains("stopped sending"), "{message}")
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    let took = begun.elapsed();
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_replaced(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn frames_of_every_size_around_the_rings_cross_intact() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let ring = channel_ring_bytes();
    for len in [
        ring - 64,
        ring - 13,
        ring - 4,
        ring,
        ring + 1,
        2 * ring - 17,
        2 * ring + 3,
        3 * ring,
    ] {
        let text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
        assert!(
            apply_echo_text(&pool, text.clone()).unwrap() == text,
            "text of {len}"
        );
        let bytes: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        assert!(
            apply_echo_bytes(&pool, bytes.clone()).unwrap() == bytes,
            "bytes of {len}"
        );
        let queued = apply_async_echo_bytes(&pool, bytes.clone());
        assert!(queued.get().unwrap() == bytes, "queued bytes of {len}");
    }
    drop(pool);
    assert_no_children();
}
