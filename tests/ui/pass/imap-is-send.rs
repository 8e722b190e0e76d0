//! `Imap` and `ImapUnordered` are `Send` whenever their input iterator (and
//! the task's result) is: they can be moved to another thread.

use std::path::PathBuf;

use procpool::{pool_task, Pool};

#[pool_task]
fn square(x: u64) -> u64 {
    x * x
}

#[pool_task]
fn size(path: &std::path::Path) -> usize {
    path.as_os_str().len()
}

fn assert_send<T: Send>(value: T) -> T {
    value
}

#[allow(dead_code)]
fn callers(pool: &Pool) {
    let files: Vec<PathBuf> = vec!["/a".into()];
    let ordered = assert_send(imap_square(pool, 0..10));
    let unordered = assert_send(imap_unordered_size(pool, files.iter()));
    std::thread::scope(|s| {
        s.spawn(move || ordered.count());
        s.spawn(move || unordered.count());
    });
}

fn main() {}
