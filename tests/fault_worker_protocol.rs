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

const TAG_CALL: u8 = 1;
const TAG_SHUTDOWN: u8 = 2;
const TAG_HELLO: u8 = 10;
const TAG_VALUE: u8 = 11;
const TAG_FAILED: u8 = 13;
const TAG_FATAL: u8 = 14;
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
