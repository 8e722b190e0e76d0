//! Bad bytes on the task channel: oversized frames, corrupt and truncated
//! frames, unknown names and signature mismatches all give the task a typed
//! error; the parent never panics, hangs or allocates what a bogus length
//! announces, and the pool carries on.

mod support;

use procpool::__private::{submit, ArgsEncoder, TaskInfo};
use procpool::{pool_task, Error, ExitInfo, Pool};
use support::{assert_no_children, children, serial, wait_for};

procpool::enable_test_support!();

#[pool_task]
fn worker_pid() -> u32 {
    std::process::id()
}

#[pool_task]
fn byte_count(bytes: Vec<u8>) -> usize {
    bytes.len()
}

#[pool_task]
fn make_bytes(n: usize) -> Vec<u8> {
    vec![7; n]
}

#[pool_task]
fn panic_with(len: usize) -> u32 {
    panic!("{}", "é".repeat(len / 2))
}

/// Panics with a message of about `len` bytes, or returns 0 for 0.
#[pool_task]
fn panic_or_len(len: usize) -> usize {
    if len > 0 {
        panic!("{}", "é".repeat(len / 2))
    }
    0
}

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

/// Writes `bytes` raw onto this worker's task channel, ahead of the reply
/// the worker itself sends, then optionally exits.
#[pool_task]
fn write_raw(bytes: Vec<u8>, then_exit: bool) -> u32 {
    support::write_to_channel(&bytes);
    if then_exit {
        // SAFETY: ends this worker process at once.
        unsafe { libc::_exit(0) }
    }
    std::process::id()
}

#[test]
fn arguments_over_the_frame_limit_are_refused_before_sending() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(4096)
        .build()
        .unwrap();
    let before = apply_worker_pid(&pool).unwrap();
    match apply_byte_count(&pool, vec![0; 10_000]) {
        Err(Error::FrameTooLarge { task, len, max }) => {
            assert_eq!(task, "fault_frames::byte_count");
            assert!(len > 10_000, "{len}");
            assert_eq!(max, 4096);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(apply_byte_count(&pool, vec![0; 1000]).unwrap(), 1000);
    assert_eq!(apply_worker_pid(&pool).unwrap(), before, "no worker died");
    drop(pool);
    assert_no_children();
}

#[test]
fn a_result_over_the_frame_limit_is_refused_by_the_worker() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(4096)
        .build()
        .unwrap();
    let before = apply_worker_pid(&pool).unwrap();
    match apply_make_bytes(&pool, 10_000) {
        Err(Error::FrameTooLarge { task, len, max }) => {
            assert_eq!(task, "fault_frames::make_bytes");
            assert!(len > 10_000, "{len}");
            assert_eq!(max, 4096);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_eq!(apply_make_bytes(&pool, 100).unwrap(), vec![7; 100]);
    assert_eq!(apply_worker_pid(&pool).unwrap(), before, "no worker died");
    drop(pool);
    assert_no_children();
}

#[test]
fn a_panic_report_over_the_frame_limit_is_cut_to_fit() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(4096)
        .build()
        .unwrap();
    let before = apply_worker_pid(&pool).unwrap();
    match apply_panic_with(&pool, 10_000) {
        Err(Error::Panic {
            task,
            message,
            location,
            ..
        }) => {
            assert_eq!(task, "fault_frames::panic_with");
            assert!(message.starts_with("éé"), "{message}");
            assert!(message.contains("cut to fit a frame"), "{message}");
            assert!(message.len() < 4096, "{}", message.len());
            assert!(location.contains("fault_frames.rs"), "{location}");
        }
        other => panic!("expected Panic, got {other:?}"),
    }
    assert_eq!(apply_worker_pid(&pool).unwrap(), before, "no worker died");
    drop(pool);
    assert_no_children();
}

/// The bytes a cut text says were cut, and the bytes it kept before that
/// note: `"abc… (12 bytes cut to fit a frame)"` gives (12, 3).
fn cut_and_kept(text: &str) -> (usize, usize) {
    let at = text.rfind("… (").expect("a cut text");
    let cut = text[at + "… (".len()..]
        .strip_suffix(" bytes cut to fit a frame)")
        .expect("the note ends the text");
    (cut.parse().unwrap(), at)
}

/// A report cut over several rounds says how many bytes were cut from the
/// message as the task panicked with it: each round cut the text the last
/// one left (its note too), and the note said only what the last round cut
/// (200000 bytes kept as 3158, said to be 3159 cut).
#[test]
fn a_panic_report_cut_in_several_rounds_says_all_that_was_cut() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(4096)
        .build()
        .unwrap();
    match apply_panic_with(&pool, 200_000) {
        Err(Error::Panic { message, .. }) => {
            let (cut, kept) = cut_and_kept(&message);
            assert!(message.len() < 4096, "{}", message.len());
            assert_eq!(cut + kept, 200_000, "{cut} cut, {kept} kept");
        }
        other => panic!("expected Panic, got {other:?}"),
    }
    drop(pool);
    assert_no_children();
}

/// The same in a map: each panic's report is cut so that the chunk's reply
/// fits, and every item keeps its own outcome (the whole chunk failed with
/// `FrameTooLarge` before). Values are never cut.
#[test]
fn panic_reports_over_the_frame_limit_in_a_map_are_cut_to_fit() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(64 << 10)
        .build()
        .unwrap();
    let before = apply_worker_pid(&pool).unwrap();
    let lens = [100_000usize, 0, 40_000, 40_000, 20_000, 20_000];
    let options = procpool::MapOptions::new().chunksize(6);
    for chunk in [options, procpool::MapOptions::new().chunksize(1)] {
        let out: Vec<_> = imap_panic_or_len_with(&pool, lens, chunk).collect();
        assert_eq!(out.len(), lens.len());
        for (len, r) in lens.iter().zip(&out) {
            match r {
                Ok(n) => assert_eq!((*len, *n), (0, 0)),
                Err(Error::Panic {
                    message, location, ..
                }) => {
                    assert!(message.starts_with("éé"), "{len}: {message}");
                    assert!(message.len() <= *len, "{len}: {}", message.len());
                    assert!(location.contains("fault_frames.rs"), "{location}");
                }
                other => panic!("{len}: expected Panic, got {other:?}"),
            }
        }
    }
    assert_eq!(apply_worker_pid(&pool).unwrap(), before, "no worker died");
    drop(pool);
    assert_no_children();
}

/// The pool serves on from a new worker after `dead` was dropped.
fn assert_replaced(pool: &Pool, dead: u32) {
    let now = apply_worker_pid(pool).unwrap();
    assert_ne!(now, dead);
    assert_ne!(now, std::process::id());
    // It is reaped a moment after the error is reported, maybe after the
    // replacement answered.
    wait_for(
        std::time::Duration::from_secs(10),
        "the bad worker to be reaped",
        || !children().contains(&dead),
    );
}

#[test]
fn a_corrupt_reply_is_a_protocol_error_and_the_worker_is_replaced() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    // A frame with an unknown tag.
    match apply_write_raw(&pool, vec![1, 0, 0, 0, 0x77], false) {
        Err(Error::Protocol { task, message }) => {
            assert_eq!(task, "fault_frames::write_raw");
            assert!(message.contains("tag 119"), "{message}");
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert_replaced(&pool, pid);
    // A panic report whose message announces u64::MAX bytes.
    let pid = apply_worker_pid(&pool).unwrap();
    let mut frame = vec![18, 0, 0, 0, 12];
    frame.extend_from_slice(&1u64.to_le_bytes());
    frame.push(253);
    frame.extend_from_slice(&u64::MAX.to_le_bytes());
    match apply_write_raw(&pool, frame, false) {
        Err(Error::Protocol { task, .. }) => assert_eq!(task, "fault_frames::write_raw"),
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert_replaced(&pool, pid);
    drop(pool);
    assert_no_children();
}

/// The parent's peak resident memory so far (VmHWM), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        / 1024
}

#[test]
fn a_bogus_huge_length_is_refused_without_allocating_it() {
    let _serial = serial();
    let pool = Pool::builder()
        .processes(1)
        .max_frame_bytes(256 << 20)
        .build()
        .unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    match apply_write_raw(&pool, vec![0xf0, 0xff, 0xff, 0xff, 1, 2, 3], false) {
        Err(Error::FrameTooLarge { task, len, max }) => {
            assert_eq!(task, "fault_frames::write_raw");
            assert_eq!(len, 0xffff_fff0);
            assert_eq!(max, 256 << 20);
        }
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert_replaced(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn a_bogus_length_under_the_limit_is_never_allocated_and_its_stall_is_a_protocol_error() {
    let _serial = serial();
    // The default limit (4 GiB) admits the length; the bytes never come.
    let pool = Pool::builder()
        .processes(1)
        // (Also how long a new worker may take to start a call: room for a
        // loaded machine.)
        .frame_stall_timeout(std::time::Duration::from_secs(1))
        .build()
        .unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let peak_before = peak_rss_mib();
    let begun = std::time::Instant::now();
    match apply_write_raw(&pool, vec![0xf0, 0xff, 0xff, 0xff, 1, 2, 3], false) {
        Err(Error::Protocol { task, message }) => {
            assert_eq!(task, "fault_frames::write_raw");
            assert!(message.contains("stopped sending"), "{message}");
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert!(begun.elapsed() < std::time::Duration::from_secs(10));
    let grew = peak_rss_mib() - peak_before;
    assert!(grew < 16, "the parent's peak grew by {grew} MiB");
    assert_replaced(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn a_frame_cut_short_by_the_workers_death_is_worker_died() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    // Announces 100 bytes, sends 10, exits.
    let mut frame = vec![100, 0, 0, 0];
    frame.extend_from_slice(&[11; 10]);
    match apply_write_raw(&pool, frame, true) {
        Err(Error::WorkerDied {
            task,
            pid: p,
            status,
        }) => {
            assert_eq!(task, "fault_frames::write_raw");
            assert_eq!(p, pid);
            assert_eq!(status, ExitInfo::Code(0));
        }
        other => panic!("expected WorkerDied, got {other:?}"),
    }
    assert_replaced(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[test]
fn unknown_names_and_signature_mismatches_are_refused_by_the_worker() {
    let _serial = serial();
    let pool = Pool::new(1).unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let args = || ArgsEncoder::new().push(&3u64).finish();
    let unknown = TaskInfo {
        name: "fault_frames::no_such_task",
        signature: "fn(u64) -> u64",
        fingerprint: 0,
    };
    match submit::<u64>(&pool, &unknown, args()).get() {
        Err(Error::UnknownTask { task, .. }) => assert_eq!(task, "fault_frames::no_such_task"),
        other => panic!("expected UnknownTask, got {other:?}"),
    }
    // What a caller built from other sources sends: the right name, another
    // signature's fingerprint.
    let stale = TaskInfo {
        name: "fault_frames::square",
        signature: "fn(u32) -> u64",
        fingerprint: 0x1234_5678,
    };
    match submit::<u64>(&pool, &stale, args()).get() {
        Err(Error::SignatureMismatch {
            task,
            caller,
            worker,
        }) => {
            assert_eq!(task, "fault_frames::square");
            assert_eq!(caller, "fn(u32) -> u64");
            assert_eq!(worker, "fn(u64) -> u64");
        }
        other => panic!("expected SignatureMismatch, got {other:?}"),
    }
    // Unchecked (fingerprint 0) but undecodable arguments.
    let garbage = TaskInfo {
        name: "fault_frames::square",
        signature: "",
        fingerprint: 0,
    };
    let bad_args = ArgsEncoder::new().push("not a number").finish();
    match submit::<u64>(&pool, &garbage, bad_args).get() {
        Err(Error::Decode { task, what, .. }) => {
            assert_eq!(task, "fault_frames::square");
            assert_eq!(what, "arguments");
        }
        other => panic!("expected Decode, got {other:?}"),
    }
    assert_eq!(apply_square(&pool, 3).unwrap(), 9);
    assert_eq!(apply_worker_pid(&pool).unwrap(), pid, "no worker died");
    drop(pool);
    assert_no_children();
}

/// A task writes a frame header announcing 200 MiB and returns: only the
/// worker's own reply follows, then nothing. The read of that frame ends
/// after the stall limit with a protocol error instead of waiting for ever;
/// the worker is replaced and the calls queued behind it run.
#[test]
fn a_frame_whose_body_stops_flowing_is_a_protocol_error() {
    let _serial = serial();
    // (Also how long a new worker may take to start a call: room for a
    // loaded machine.)
    let stall = std::time::Duration::from_secs(1);
    let pool = Pool::builder()
        .processes(1)
        .frame_stall_timeout(stall)
        .build()
        .unwrap();
    let pid = apply_worker_pid(&pool).unwrap();
    let header = (200u32 << 20).to_le_bytes().to_vec();
    let stuck = apply_async_write_raw(&pool, header.clone(), false);
    let behind: Vec<_> = (0..3).map(|x| apply_async_square(&pool, x)).collect();
    let begun = std::time::Instant::now();
    match stuck.get() {
        Err(Error::Protocol { task, message }) => {
            assert_eq!(task, "fault_frames::write_raw");
            assert!(message.contains("stopped sending"), "{message}");
        }
        other => panic!("expected Protocol, got {other:?}"),
    }
    assert!(begun.elapsed() < std::time::Duration::from_secs(20));
    for (x, r) in behind.into_iter().enumerate() {
        assert_eq!(r.get().unwrap(), (x * x) as u64);
    }
    assert_replaced(&pool, pid);
    // The same through `apply`, on the calling thread.
    let pid = apply_worker_pid(&pool).unwrap();
    assert!(matches!(
        apply_write_raw(&pool, header, false),
        Err(Error::Protocol { .. })
    ));
    assert_replaced(&pool, pid);
    drop(pool);
    assert_no_children();
}

#[pool_task]
fn text_len(text: String) -> usize {
    text.len()
}

#[pool_task]
fn make_text(n: usize) -> String {
    "t".repeat(n)
}

/// The largest `n` in `range` for which `fits(n)`, which holds for a
/// prefix of it.
fn largest(range: std::ops::Range<usize>, fits: impl Fn(usize) -> bool) -> usize {
    let (mut ok, mut over) = (range.start, range.end);
    assert!(fits(ok), "nothing in {range:?} fits");
    while over - ok > 1 {
        let mid = (ok + over) / 2;
        if fits(mid) {
            ok = mid;
        } else {
            over = mid;
        }
    }
    ok
}

/// A map of one item runs wherever `apply` of it does: an argument or a
/// result that just fits the frame limit through `apply` fits through
/// `map`, `map_async` and `imap` too (a chunk's few bytes of framing, its
/// count and the item's length, used to push it over and fail it with
/// `FrameTooLarge`). Under several limits, for a block of bytes and a
/// string, both ways.
#[test]
fn an_item_that_just_fits_through_apply_fits_through_map() {
    let _serial = serial();
    for max in [4096usize, 200 << 10] {
        let pool = Pool::builder()
            .processes(1)
            .max_frame_bytes(max)
            .build()
            .unwrap();
        let arg = largest(0..max, |n| apply_byte_count(&pool, vec![1; n]).is_ok());
        assert!(arg > max - 64, "max {max}: {arg}");
        let items = vec![vec![1u8; arg]];
        assert_eq!(
            map_byte_count(&pool, items.clone()).unwrap(),
            [arg],
            "max {max}"
        );
        assert_eq!(
            map_async_byte_count(&pool, items.clone()).get().unwrap(),
            [arg]
        );
        let out: Vec<usize> = imap_byte_count(&pool, items).map(Result::unwrap).collect();
        assert_eq!(out, [arg]);
        let text = largest(0..max, |n| apply_text_len(&pool, "a".repeat(n)).is_ok());
        assert_eq!(map_text_len(&pool, vec!["a".repeat(text)]).unwrap(), [text]);

        let result = largest(0..max, |n| apply_make_bytes(&pool, n).is_ok());
        assert!(result > max - 64, "max {max}: {result}");
        assert_eq!(map_make_bytes(&pool, [result]).unwrap(), [vec![7; result]]);
        let out: Vec<_> = imap_make_bytes(&pool, [result])
            .map(Result::unwrap)
            .collect();
        assert_eq!(out, [vec![7; result]]);
        let result = largest(0..max, |n| apply_make_text(&pool, n).is_ok());
        assert_eq!(
            map_make_text(&pool, [result]).unwrap(),
            ["t".repeat(result)]
        );
        // Past the limit (and the chunk's few bytes of framing), the typed
        // error both ways.
        assert!(matches!(
            apply_make_text(&pool, result + 1),
            Err(Error::FrameTooLarge { .. })
        ));
        assert!(matches!(
            map_make_text(&pool, [result + 100]),
            Err(Error::FrameTooLarge { .. })
        ));
        assert!(matches!(
            map_text_len(&pool, vec!["a".repeat(text + 100)]),
            Err(Error::FrameTooLarge { .. })
        ));
        drop(pool);
    }
    assert_no_children();
}
