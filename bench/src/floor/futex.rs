//! The futex floor: parent and child share one page (a memfd both map);
//! a round trip stores the request in it, flips a state word and wakes the
//! peer with `FUTEX_WAKE`, and the peer sleeps in `FUTEX_WAIT` until the
//! word changes. No bytes cross a kernel buffer: the cheapest wake-up two
//! processes can exchange. It answers INC only (round trips, start-up).

use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use super::{RoundTrip, CHILD_ARG};

/// States of [`Page::state`].
const IDLE: u32 = 0;
const REQUEST: u32 = 1;
const REPLY: u32 = 2;

const PAGE_BYTES: usize = 4096;

/// How long either side sleeps before checking that its peer still lives.
const CHECK_PEER: Duration = Duration::from_secs(1);

/// The shared page.
#[repr(C)]
struct Page {
    state: AtomicU32,
    _pad: u32,
    value: AtomicU64,
}

/// Sleeps while `*word == expected`, at most `timeout` (or until woken);
/// `true` if the time ran out. Shared, not private: the word lives in
/// memory two processes map.
fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> bool {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: FUTEX_WAIT reads the aligned u32 `word` points at; `ts` is a
    // live timespec. A spurious return only makes the caller look again.
    let r = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        )
    };
    r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT)
}

/// Wakes one sleeper on `word`.
fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE, 1) };
}

/// A shared mapping of the page in `fd`, unmapped on drop.
struct Mapping(*mut Page);

impl Mapping {
    fn new(fd: &impl AsRawFd) -> io::Result<Mapping> {
        // SAFETY: a fresh shared mapping of PAGE_BYTES of a memfd at least
        // that long, at an address the kernel chooses.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Mapping(p.cast()))
    }

    fn page(&self) -> &Page {
        // SAFETY: the mapping is page-aligned, zero-initialised (a valid
        // Page: atomics of zero) and lives as long as `self`.
        unsafe { &*self.0 }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: our own mapping of PAGE_BYTES, no longer borrowed.
        unsafe { libc::munmap(self.0.cast(), PAGE_BYTES) };
    }
}

/// The parent's handle on one futex floor child.
pub struct FutexChild {
    child: Child,
    mapping: Mapping,
}

impl FutexChild {
    /// Re-executes this binary as a futex floor child sharing a new page.
    pub fn start() -> io::Result<FutexChild> {
        // SAFETY: memfd_create with a valid C string; returns a new fd or -1.
        let fd = unsafe { libc::memfd_create(c"procpool-bench-futex".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nothing else owns.
        let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: ftruncate on our memfd.
        if unsafe { libc::ftruncate(memfd.as_raw_fd(), PAGE_BYTES as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let mapping = Mapping::new(&memfd)?;
        let child = Command::new("/proc/self/exe")
            .args([CHILD_ARG, "futex"])
            .stdin(Stdio::from(memfd))
            .stdout(Stdio::null())
            .spawn()?;
        // No hello: the page exists before the child does, so a request
        // posted now is answered as soon as it runs (as the stream floors'
        // first request waits in their channel).
        Ok(FutexChild { child, mapping })
    }
}

impl RoundTrip for FutexChild {
    fn inc(&mut self, x: u64) -> io::Result<u64> {
        let page = self.mapping.page();
        page.value.store(x, Ordering::Relaxed);
        page.state.store(REQUEST, Ordering::Release);
        futex_wake(&page.state);
        loop {
            let state = page.state.load(Ordering::Acquire);
            if state == REPLY {
                break;
            }
            if futex_wait(&page.state, state, CHECK_PEER) && self.child.try_wait()?.is_some() {
                return Err(io::Error::other("futex floor child exited"));
            }
        }
        page.state.store(IDLE, Ordering::Relaxed);
        Ok(page.value.load(Ordering::Relaxed))
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for FutexChild {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The futex floor child's loop: the page is the memfd on stdin. Exits once
/// its parent is gone (checked whenever it slept [`CHECK_PEER`] in vain).
pub fn serve() -> io::Result<()> {
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    let mapping = Mapping::new(&io::stdin().as_fd())?;
    let page = mapping.page();
    loop {
        let state = page.state.load(Ordering::Acquire);
        if state != REQUEST {
            // SAFETY (getppid): as above.
            if futex_wait(&page.state, state, CHECK_PEER) && unsafe { libc::getppid() } != parent {
                return Ok(());
            }
            continue;
        }
        let x = page.value.load(Ordering::Relaxed);
        page.value.store(x + 1, Ordering::Relaxed);
        page.state.store(REPLY, Ordering::Release);
        futex_wake(&page.state);
    }
}
