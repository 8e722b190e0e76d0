//! The ring between two threads of this process, each with one end of a
//! real shared mapping: frames of every size across the ring's boundary,
//! batches, split frames, and every way a wait ends. (Real processes:
//! `tests/fault_ring.rs`.)

use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;
use crate::shm::{total_bytes, Settings};
use crate::wire::{append_frame, message, Frame, FrameError, DEFAULT_MAX_FRAME};

/// Both ends of a fresh channel with rings of `ring_bytes`.
fn pair(ring_bytes: usize, max_frame: usize) -> (Endpoint, Endpoint, Arc<AtomicBool>) {
    let (_fd, map) = SharedMap::create(c"procpool-test-ring", total_bytes(ring_bytes)).unwrap();
    let map = Arc::new(map);
    let settings = Settings {
        ring_bytes,
        max_frame,
        maker: std::process::id(),
    };
    let stall = Duration::from_secs(10);
    let parent = Endpoint::parent(map.clone(), settings, stall);
    let worker = Endpoint::worker(map).unwrap();
    let (dead, _) = parent.death_watch();
    (parent, worker, dead)
}

/// Deterministic bytes for frame `i` of length `len`.
fn bytes(i: u64, len: usize) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn frames_of_every_size_cross_the_boundary_intact_both_ways() {
    // A 4 KiB ring: nearly every frame wraps, and large ones stream.
    let (mut parent, mut worker, _dead) = pair(4096, DEFAULT_MAX_FRAME);
    let sizes: Vec<usize> = vec![
        0,
        1,
        3,
        4,
        5,
        4091,
        4092,
        4096,
        4097,
        8191,
        70_000,
        300_000,
        3 << 20,
    ];
    let echo = std::thread::spawn(move || {
        // Echoes each frame, head as head and tail as tail.
        loop {
            match worker.recv(None) {
                Ok(frame) => worker.send(&[&frame.head], &frame.tail).unwrap(),
                Err(FrameError::Closed) => return,
                Err(e) => panic!("worker: {e}"),
            }
        }
    });
    for (i, &len) in sizes.iter().enumerate() {
        let i = i as u64;
        let head = bytes(i, len);
        parent
            .send(&[&head[..len / 2], &head[len / 2..]], &[])
            .unwrap();
        let back = parent.recv(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(back.head, head, "plain frame of {len} bytes");
        assert!(back.tail.is_empty());
        let tail = bytes(i + 100, len);
        parent.send(&[b"split"], &tail).unwrap();
        let back = parent.recv(Some(Duration::from_secs(30))).unwrap();
        assert_eq!(back.head, b"split");
        assert_eq!(back.tail, tail, "tail of {len} bytes");
    }
    // Batches: many frames, one publication (within one ring: the echo
    // cannot reply while the parent is still writing).
    let frames: Vec<Vec<u8>> = (0..30).map(|i| bytes(i, (i * 7) as usize)).collect();
    let parts: Vec<[&[u8]; 2]> = frames.iter().map(|f| [&f[..], &b"!"[..]]).collect();
    parent.send_batch(&parts).unwrap();
    for f in &frames {
        let back = parent.recv(None).unwrap();
        assert_eq!(&back.head[..f.len()], &f[..]);
        assert_eq!(back.head[f.len()], b'!');
    }
    assert!(parent.all_consumed());
    parent.close();
    echo.join().unwrap();
}

#[test]
fn a_wait_ends_at_its_timeout_at_death_and_at_close() {
    let (mut parent, mut worker, dead) = pair(4096, 1 << 20);
    let begun = Instant::now();
    assert!(matches!(
        parent.recv(Some(Duration::from_millis(50))),
        Err(FrameError::TimedOut)
    ));
    assert!(begun.elapsed() >= Duration::from_millis(50));
    // A frame is read; the next wait ends at the death, with Closed.
    worker.send(&[b"last words"], &[]).unwrap();
    let map = parent.map.clone();
    let watch = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        dead.store(true, SeqCst);
        wake_parent(&map);
    });
    assert_eq!(parent.recv(None).unwrap().head, b"last words");
    let begun = Instant::now();
    assert!(matches!(parent.recv(None), Err(FrameError::Closed)));
    assert!(begun.elapsed() < Duration::from_secs(5));
    watch.join().unwrap();
    assert!(matches!(parent.send(&[b"x"], &[]), Err(FrameError::Closed)));
    // The worker: a request sent before close is read, then Closed.
    let (mut parent, mut worker, _dead) = pair(4096, 1 << 20);
    parent.send(&[b"shutdown"], &[]).unwrap();
    parent.close();
    assert_eq!(worker.recv(None).unwrap().head, b"shutdown");
    assert!(matches!(worker.recv(None), Err(FrameError::Closed)));
}

#[test]
fn a_death_in_the_middle_of_a_frame_is_a_truncated_frame() {
    let (mut parent, mut worker, dead) = pair(4096, 1 << 20);
    let mut raw = Vec::new();
    append_frame(&mut raw, &[&[5; 100]], &[]);
    worker.put(&raw[..40]).unwrap();
    worker.publish();
    dead.store(true, SeqCst);
    match parent.recv(None) {
        Err(FrameError::Truncated { expected, got }) => {
            assert_eq!((expected, got), (100, 36));
        }
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn a_death_in_the_middle_of_a_length_word_is_a_truncated_frame() {
    let (mut parent, mut worker, dead) = pair(4096, 1 << 20);
    let mut raw = Vec::new();
    append_frame(&mut raw, &[&[5; 100]], &[]);
    worker.put(&raw[..2]).unwrap();
    worker.publish();
    dead.store(true, SeqCst);
    match parent.recv(None) {
        Err(FrameError::Truncated { expected, got }) => assert_eq!((expected, got), (4, 2)),
        other => panic!("expected Truncated, got {other:?}"),
    }
}

#[test]
fn a_frame_that_stalls_half_way_breaks_the_channel() {
    let (mut parent, mut worker, _dead) = pair(4096, 1 << 20);
    parent.stall = Some(Duration::from_millis(100));
    let mut raw = Vec::new();
    append_frame(&mut raw, &[&[5; 100]], &[]);
    worker.put(&raw[..10]).unwrap();
    worker.publish();
    let begun = Instant::now();
    match parent.recv(None) {
        Err(FrameError::Stalled(after)) => assert_eq!(after, Duration::from_millis(100)),
        other => panic!("expected Stalled, got {other:?}"),
    }
    assert!(begun.elapsed() >= Duration::from_millis(100));
    assert!(matches!(parent.recv(None), Err(FrameError::Broken(_))));
    // Sending: a worker that reads none of a frame larger than the ring.
    let (mut parent, _worker, _dead) = pair(4096, 1 << 20);
    parent.stall = Some(Duration::from_millis(100));
    match parent.send(&[&[0; 10_000]], &[]) {
        Err(FrameError::Stalled(after)) => assert_eq!(after, Duration::from_millis(100)),
        other => panic!("expected Stalled, got {other:?}"),
    }
    assert!(!parent.all_consumed());
}

#[test]
fn impossible_indices_break_the_channel() {
    // SAFETY: each endpoint's mapping is live while the endpoint is.
    let ctl = |e: &Endpoint| unsafe { Control::at(e.map.base()) };
    // A head beyond one ring's worth of bytes.
    let (mut parent, _worker, _dead) = pair(4096, 1 << 20);
    ctl(&parent).rep_head.0.store(4097, SeqCst);
    match parent.recv(None) {
        Err(FrameError::Broken(why)) => assert!(why.contains("producer index 4097"), "{why}"),
        other => panic!("expected Broken, got {other:?}"),
    }
    assert!(matches!(
        parent.send(&[b"x"], &[]),
        Err(FrameError::Broken(_))
    ));
    // A head that goes backwards, while the parent sleeps (woken by it).
    let (mut parent, mut worker, _dead) = pair(4096, 1 << 20);
    worker.send(&[b"ok"], &[]).unwrap();
    assert_eq!(parent.recv(None).unwrap().head, b"ok");
    let map = parent.map.clone();
    let liar = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: a live channel mapping.
        unsafe { Control::at(map.base()) }
            .rep_head
            .0
            .store(1, SeqCst);
        wake_parent(&map);
    });
    assert!(matches!(parent.recv(None), Err(FrameError::Broken(_))));
    liar.join().unwrap();
    // A tail beyond what was published, seen when the ring is full.
    let (mut parent, _worker, _dead) = pair(4096, 1 << 20);
    ctl(&parent).req_tail.0.store(1 << 40, SeqCst);
    match parent.send(&[&[0; 5000]], &[]) {
        Err(FrameError::Broken(why)) => assert!(why.contains("consumer index"), "{why}"),
        other => panic!("expected Broken, got {other:?}"),
    }
}

#[test]
fn an_oversized_length_is_refused_before_reading_and_breaks_the_channel() {
    let (mut parent, mut worker, _dead) = pair(4096, 1000);
    worker.put(&2000u32.to_le_bytes()).unwrap();
    worker.publish();
    assert!(matches!(
        parent.recv(None),
        Err(FrameError::TooLarge {
            len: 2000,
            max: 1000
        })
    ));
    assert!(matches!(parent.recv(None), Err(FrameError::Broken(_))));
    // A split frame whose sizes overflow.
    let (mut parent, mut worker, _dead) = pair(4096, 1000);
    let mut raw = u32::MAX.to_le_bytes().to_vec();
    raw.extend_from_slice(&u64::MAX.to_le_bytes());
    raw.extend_from_slice(&10u64.to_le_bytes());
    worker.put(&raw).unwrap();
    worker.publish();
    assert!(matches!(
        parent.recv(None),
        Err(FrameError::TooLarge {
            len: usize::MAX,
            ..
        })
    ));
    // And the sender refuses what the receiver would.
    assert!(matches!(
        parent.send(&[&[0; 600]], &[0; 600]),
        Err(FrameError::TooLarge {
            len: 1200,
            max: 1000
        })
    ));
}

/// Feeds `bytes` to the parent's end through the ring as a dead worker's
/// last words, reads one frame, and checks what it reserved.
fn decode_checked(bytes: &[u8], max: usize) -> Result<Frame, FrameError> {
    let (mut parent, mut worker, dead) = pair(1 << 16, max);
    worker.put(bytes).unwrap();
    worker.publish();
    dead.store(true, SeqCst);
    let result = parent.recv(None);
    if let Ok(frame) = &result {
        let received = bytes.len().saturating_sub(4);
        for part in [&frame.head, &frame.tail] {
            assert!(part.capacity() <= max.max(part.len()), "over the limit");
            assert!(
                part.capacity() <= received + crate::wire::READ_CHUNK,
                "reserved {} with {received} bytes received",
                part.capacity()
            );
        }
        let _ = message::parse_request(&frame.head);
        let _ = message::parse_reply(Frame {
            head: frame.head.clone(),
            tail: frame.tail.clone(),
        });
    }
    result
}

proptest! {
    #[test]
    fn random_bytes_never_panic_or_overallocate(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        max in prop_oneof![Just(0usize), 1usize..1024, Just(DEFAULT_MAX_FRAME), Just(usize::MAX)],
    ) {
        let _ = decode_checked(&bytes, max);
    }

    #[test]
    fn valid_frames_round_trip_and_mutated_ones_fail_cleanly(
        head in proptest::collection::vec(any::<u8>(), 0..300),
        tail in proptest::collection::vec(any::<u8>(), 0..300),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut raw = Vec::new();
        append_frame(&mut raw, &[&head], &tail);
        let frame = decode_checked(&raw, DEFAULT_MAX_FRAME).unwrap();
        prop_assert_eq!(&frame.head, &head);
        prop_assert_eq!(&frame.tail, &tail);
        for (at, byte) in flips {
            let i = at.index(raw.len());
            raw[i] ^= byte;
        }
        if truncate {
            raw.truncate(cut.index(raw.len() + 1));
        }
        let _ = decode_checked(&raw, DEFAULT_MAX_FRAME);
    }

    #[test]
    fn bogus_lengths_fail_without_reserving_them(
        len in any::<u32>(),
        rest in proptest::collection::vec(any::<u8>(), 0..300),
        max in prop_oneof![Just(256usize << 20), Just(DEFAULT_MAX_FRAME), Just(usize::MAX)],
    ) {
        let mut raw = len.to_le_bytes().to_vec();
        raw.extend_from_slice(&rest);
        match decode_checked(&raw, max) {
            Ok(frame) => prop_assert!(frame.head.len() + frame.tail.len() <= rest.len()),
            Err(FrameError::TooLarge { .. }) => prop_assert!(len as usize > max || len == u32::MAX),
            Err(FrameError::Truncated { expected, got }) => prop_assert!(got < expected),
            Err(other) => prop_assert!(false, "unexpected {other}"),
        }
    }
}

#[test]
fn a_wait_that_sees_the_worker_dead_looks_once_more_for_its_last_words() {
    // The worker published a reply and died between the parent's look for
    // data and its look at the death flag: the reply is read, not lost.
    let (mut parent, mut worker, dead) = pair(4096, 1 << 20);
    let data = |s: &mut Endpoint| s.rx_avail() > 0;
    assert!(!data(&mut parent));
    worker.send(&[b"last words"], &[]).unwrap();
    dead.store(true, SeqCst);
    assert!(matches!(parent.check_end(data), Some(Ok(()))));
    assert!(matches!(parent.check_end(|_| false), Some(Err(End::Dead))));
    assert_eq!(parent.recv(None).unwrap().head, b"last words");
    assert!(matches!(parent.recv(None), Err(FrameError::Closed)));
    // A wait whose first look finds nothing and whose next look (made
    // after it saw the death) finds the data ends with the data.
    static LOOKS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    fn second_look(_: &mut Endpoint) -> bool {
        LOOKS.fetch_add(1, SeqCst) >= 1
    }
    assert!(matches!(
        parent.wait(WANT_DATA, None, false, second_look),
        Ok(())
    ));
    assert_eq!(LOOKS.load(SeqCst), 2);
}
