//! The worker's side of the channel, driven byte by byte: a worker started
//! by hand (this test binary, re-executed in worker mode) answers corrupt,
//! oversized and truncated requests with a FATAL message and exit code 70,
//! and unknown names with a FAILED reply while it serves on. The wire layout
//! is the one documented in `runtime/src/wire/`.

mod support;

use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use procpool::__private::HandChannel;
use support::{assert_no_children, serial};

procpool::enable_test_support!();

#[procpool::pool_task(name = "protocol/echo")]
fn echo(x: u32) -> u32 {
    x
}

/// A list whose every level is a newtype and an `Option` (in JSON, every
/// honest one is the text `null`).
#[derive(serde::Serialize, serde::Deserialize)]
struct Nest(Option<Box<Nest>>);

#[procpool::pool_task(name = "protocol/json_nest")]
fn json_nest(nest: procpool::Json<Nest>) -> bool {
    nest.0 .0.is_none()
}

const TAG_CALL: u8 = 1;
const TAG_SHUTDOWN: u8 = 2;
const TAG_HELLO: u8 = 10;
const TAG_VALUE: u8 = 11;
const TAG_FAILED: u8 = 13;
const TAG_FATAL: u8 = 14;
const TAG_CALL_BATCH: u8 = 3;
const TAG_RESULTS: u8 = 15;
const EXIT_PROTOCOL: i32 = 70;
const WAIT: Duration = Duration::from_secs(30);

/// Starts this binary as a worker whose channel is `channel`.
fn start_worker(max_frame: usize) -> (Child, HandChannel) {
    let mut channel = HandChannel::new(max_frame).unwrap();
    let fd: RawFd = channel.fd().as_raw_fd();
    let mut cmd = Command::new("/proc/self/exe");
    // (The arguments a pool starts a test binary's worker with: its
    // harness runs the entry test `enable_test_support!` adds, alone.)
    cmd.args(procpool::__private::WORKER_HARNESS_ARGS)
        .env("PROCPOOL_WORKER_FD", "3")
        .env("PROCPOOL_PARENT_PID", std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    // SAFETY: dup2 and fcntl are async-signal-safe; they only move the
    // channel's memfd to fd 3 without close-on-exec.
    unsafe {
        cmd.pre_exec(move || {
            if fd == 3 {
                libc::fcntl(3, libc::F_SETFD, 0);
            } else {
                libc::dup2(fd, 3);
            }
            Ok(())
        });
    }
    let child = cmd.spawn().unwrap();
    let hello = channel.read_frame(WAIT).expect("a hello");
    assert_eq!(hello[0], TAG_HELLO);
    assert_eq!(&hello[1..], &child.id().to_le_bytes());
    (child, channel)
}

fn call(id: u64, name: &str, args: &[u8]) -> Vec<u8> {
    let mut body = vec![TAG_CALL];
    body.extend_from_slice(&id.to_le_bytes());
    body.extend_from_slice(&0u64.to_le_bytes()); // unchecked fingerprint
    body.extend_from_slice(&(name.len() as u16).to_le_bytes());
    body.extend_from_slice(name.as_bytes());
    body.extend_from_slice(args);
    body
}

/// The worker answers FATAL and exits with the protocol-error code.
fn expect_fatal(mut child: Child, mut channel: HandChannel) {
    let reply = channel.read_frame(WAIT).expect("a FATAL reply");
    assert_eq!(reply[0], TAG_FATAL, "{reply:?}");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(EXIT_PROTOCOL));
}

#[test]
fn an_unknown_request_tag_is_fatal() {
    let _serial = serial();
    let (child, mut channel) = start_worker(1024);
    channel.send(&[0x77, 1, 2, 3]).unwrap();
    expect_fatal(child, channel);
    assert_no_children();
}

#[test]
fn an_oversized_request_is_fatal_without_reading_it() {
    let _serial = serial();
    let (child, mut channel) = start_worker(1024);
    channel.write_raw(&2000u32.to_le_bytes()).unwrap();
    expect_fatal(child, channel);
    // A split frame (length word u32::MAX) whose sizes add up past the limit.
    let (child, mut channel) = start_worker(1024);
    let mut split = u32::MAX.to_le_bytes().to_vec();
    split.extend_from_slice(&8u64.to_le_bytes());
    split.extend_from_slice(&u64::MAX.to_le_bytes());
    channel.write_raw(&split).unwrap();
    expect_fatal(child, channel);
    assert_no_children();
}

#[test]
fn a_truncated_request_is_fatal() {
    let _serial = serial();
    let (child, mut channel) = start_worker(1024);
    channel.write_raw(&50u32.to_le_bytes()).unwrap();
    channel.write_raw(&[TAG_CALL; 10]).unwrap();
    channel.close();
    expect_fatal(child, channel);
    // A call header cut short inside its frame.
    let (child, mut channel) = start_worker(1024);
    channel.send(&call(1, "protocol/echo", &[])[..12]).unwrap();
    expect_fatal(child, channel);
    assert_no_children();
}

#[test]
fn unknown_names_fail_the_call_and_the_worker_serves_on() {
    let _serial = serial();
    let (mut child, mut channel) = start_worker(1024);
    channel.send(&call(7, "protocol/nope", &[5])).unwrap();
    let reply = channel.read_frame(WAIT).unwrap();
    assert_eq!(reply[0], TAG_FAILED);
    assert_eq!(&reply[1..9], &7u64.to_le_bytes());
    channel.send(&call(8, "protocol/echo", &[5])).unwrap();
    let reply = channel.read_frame(WAIT).unwrap();
    assert_eq!(reply[0], TAG_VALUE);
    assert_eq!(&reply[1..9], &8u64.to_le_bytes());
    assert_eq!(&reply[9..], &[5]);
    channel.send(&[TAG_SHUTDOWN]).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // Let go between frames (the parent's end closed): a clean exit too.
    let (mut child, channel) = start_worker(1024);
    channel.close();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_no_children();
}

/// A chunk of `protocol/echo` (a `u32` task) in the dense form: the count
/// with its top bit, the kind byte, the numbers.
fn dense_chunk(id: u64, count: u32, kind: u8, numbers: &[u8]) -> Vec<u8> {
    let mut body = call(id, "protocol/echo", &[]);
    body[0] = TAG_CALL_BATCH;
    body.extend_from_slice(&(count | 1 << 31).to_le_bytes());
    body.push(kind);
    body.extend_from_slice(numbers);
    body
}

/// The worker's reply to `request`: its tag, and what follows the id.
fn exchange(channel: &mut HandChannel, id: u64, request: &[u8]) -> (u8, Vec<u8>) {
    channel.send(request).unwrap();
    let reply = channel.read_frame(WAIT).unwrap();
    assert_eq!(&reply[1..9], &id.to_le_bytes(), "{reply:?}");
    (reply[0], reply[9..].to_vec())
}

/// Chunks in the dense form, sent by hand: the worker reads the numbers as
/// its task's type and answers them dense; a chunk whose numbers are not
/// its count, or of no kind, fails as a whole; numbers of another type
/// than the task's fail each item; the worker serves on after each.
#[test]
fn dense_chunks_are_read_as_the_tasks_type_or_refused() {
    const U32: u8 = 5;
    const U64: u8 = 7;
    let _serial = serial();
    let (mut child, mut channel) = start_worker(1 << 16);
    let numbers: Vec<u8> = [1u32, 70_000, u32::MAX]
        .iter()
        .flat_map(|n| n.to_le_bytes())
        .collect();
    // count 3 | dense values (2) | kind u32 | the same numbers.
    let (tag, body) = exchange(&mut channel, 1, &dense_chunk(1, 3, U32, &numbers));
    assert_eq!(tag, TAG_RESULTS);
    let mut expected = 3u32.to_le_bytes().to_vec();
    expected.extend_from_slice(&[2, U32]);
    expected.extend_from_slice(&numbers);
    assert_eq!(body, expected);
    // Cut short, one byte too many, a kind that does not exist.
    for (id, chunk) in [
        (2, dense_chunk(2, 3, U32, &numbers[..11])),
        (3, dense_chunk(3, 3, U32, &[&numbers[..], &[0]].concat())),
        (4, dense_chunk(4, 3, 99, &numbers)),
        (5, dense_chunk(5, 0x7fff_ffff, U32, &numbers)),
    ] {
        let (tag, _) = exchange(&mut channel, id, &chunk);
        assert_eq!(tag, TAG_FAILED, "chunk {id}");
    }
    // u64 numbers for a u32 task: each item fails as arguments that do not
    // decode (record tag 3), in records (flag 0).
    let wide: Vec<u8> = [5u64, 6].iter().flat_map(|n| n.to_le_bytes()).collect();
    let (tag, body) = exchange(&mut channel, 6, &dense_chunk(6, 2, U64, &wide));
    assert_eq!(tag, TAG_RESULTS);
    assert_eq!(&body[..5], &[2, 0, 0, 0, 0]);
    assert_eq!(body[5], 3, "{body:?}");
    // And it serves on.
    let (tag, body) = exchange(&mut channel, 7, &call(7, "protocol/echo", &[5]));
    assert_eq!((tag, body), (TAG_VALUE, vec![5]));
    channel.send(&[TAG_SHUTDOWN]).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_no_children();
}

/// Arguments whose JSON text recurses without brackets (`5` for a
/// `Json<Nest>`: a `Some` per level, nothing consumed) killed the worker
/// with a stack overflow, in a call and in a chunk; the call fails as
/// arguments that do not decode, the chunk's item alone, and the worker
/// serves on.
#[test]
fn json_arguments_that_recurse_without_brackets_fail_the_call_alone() {
    let _serial = serial();
    let (mut child, mut channel) = start_worker(1 << 16);
    let text = b"5";
    let args = [&[text.len() as u8][..], text].concat();
    let (tag, body) = exchange(&mut channel, 1, &call(1, "protocol/json_nest", &args));
    assert_eq!(tag, TAG_FAILED, "{body:?}");
    assert!(String::from_utf8_lossy(&body).contains("nests"), "{body:?}");
    // A chunk of the same item, then an honest one (`null`).
    let mut chunk = call(2, "protocol/json_nest", &[]);
    chunk[0] = TAG_CALL_BATCH;
    chunk.extend_from_slice(&2u32.to_le_bytes());
    chunk.push(args.len() as u8);
    chunk.extend_from_slice(&args);
    chunk.extend_from_slice(&[5, 4, b'n', b'u', b'l', b'l']);
    let (tag, body) = exchange(&mut channel, 2, &chunk);
    assert_eq!(tag, TAG_RESULTS);
    // count 2, flag 0 (not all values), record 3 (undecodable), ..., then
    // the last record: a value of one byte, `true`.
    assert_eq!(&body[..5], &[2, 0, 0, 0, 0]);
    assert_eq!(body[5], 3, "{body:?}");
    assert_eq!(&body[body.len() - 2..], &[17, 1]);
    let (tag, body) = exchange(&mut channel, 3, &call(3, "protocol/echo", &[5]));
    assert_eq!((tag, body), (TAG_VALUE, vec![5]));
    channel.send(&[TAG_SHUTDOWN]).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_no_children();
}
