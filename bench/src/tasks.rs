//! The tasks every system runs: procpool's `#[pool_task]` functions and the
//! plain functions procspawn ships by pointer.

use procpool::pool_task;
use serde_bytes::ByteBuf;

/// The trivial task.
#[pool_task]
pub fn inc(x: u64) -> u64 {
    x + 1
}

/// Which process ran the task.
#[pool_task]
pub fn worker_pid() -> u32 {
    std::process::id()
}

/// Sleeps `ms` milliseconds: keeps a worker busy.
#[pool_task]
pub fn nap(ms: u64) -> u64 {
    std::thread::sleep(std::time::Duration::from_millis(ms));
    ms
}

/// About 50 ms of CPU for the calibrated `iters`.
#[pool_task]
pub fn spin(iters: u64) -> u64 {
    procpool_bench::spin(iters)
}

/// Identity on bytes encoded as a sequence (serde's default for `Vec<u8>`).
#[pool_task]
pub fn echo_vec(data: Vec<u8>) -> Vec<u8> {
    data
}

/// Identity on bytes encoded as one byte string.
#[pool_task]
pub fn echo_buf(data: ByteBuf) -> ByteBuf {
    data
}

pub fn plain_inc(x: u64) -> u64 {
    x + 1
}

pub fn plain_pid(_: ()) -> u32 {
    std::process::id()
}

pub fn plain_spin(iters: u64) -> u64 {
    procpool_bench::spin(iters)
}

pub fn plain_echo_vec(data: Vec<u8>) -> Vec<u8> {
    data
}

pub fn plain_echo_buf(data: ByteBuf) -> ByteBuf {
    data
}
