//! Shared memory between the parent and one worker: a sealed memfd mapped
//! in both, futexes in it, and the CPU facts the ring's spin heuristic reads.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::mm::{Advice, MapFlags, ProtFlags};
use rustix::thread::futex;

/// A `MAP_SHARED` mapping of a whole memfd, unmapped on drop.
pub(crate) struct SharedMap {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain memory owned by this value; every access to
// it goes through raw pointers whose users synchronise with atomics (the
// ring protocol), never through references that assume exclusivity.
unsafe impl Send for SharedMap {}
// SAFETY: as above: sharing the handle shares only the base pointer.
unsafe impl Sync for SharedMap {}

impl SharedMap {
    /// A new memfd of `len` bytes (zeroed), sealed so that neither side can
    /// shrink or grow it (a shrunk file would make the other side's accesses
    /// fault), and mapped here read-write. The fd is close-on-exec.
    pub(crate) fn create(name: &CStr, len: usize) -> io::Result<(OwnedFd, SharedMap)> {
        let fd = rustix::fs::memfd_create(name, MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)?;
        let fd = super::above_stdio(fd)?;
        rustix::fs::ftruncate(&fd, len as u64)?;
        rustix::fs::fcntl_add_seals(&fd, SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL)?;
        let map = SharedMap::map(fd.as_fd(), len)?;
        Ok((fd, map))
    }

    /// In a worker: maps the memfd the parent left at `fd`, then closes the
    /// fd and keeps the mapping out of any process this one forks, so that
    /// nothing a task starts can reach the channel. Fails unless `fd` is a
    /// memfd sealed against shrinking.
    pub(crate) fn adopt(fd: RawFd) -> io::Result<SharedMap> {
        let bad = |what: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("fd {fd} is not the task channel ({what})"),
            )
        };
        // An fd that is not open would make owning it unsound: check first
        // (F_GETFD only reads the fd's flags; EBADF if it is not open).
        // SAFETY: fcntl(F_GETFD) takes integers and has no memory effects.
        if unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is open (checked above), and nothing else in this
        // process owns it: the parent left it for us, and only this call
        // adopts it. It is closed when `owned` drops, below.
        let owned = unsafe { OwnedFd::from_raw_fd(fd) };
        let sealed = rustix::fs::fcntl_get_seals(&owned).map_err(|_| bad("not a memfd"))?;
        if !sealed.contains(SealFlags::SHRINK) {
            return Err(bad("not sealed against shrinking"));
        }
        let len = usize::try_from(rustix::fs::fstat(&owned)?.st_size)
            .map_err(|_| bad("negative size"))?;
        let map = SharedMap::map(owned.as_fd(), len)?;
        // SAFETY: the range is our own mapping; MADV_DONTFORK only keeps it
        // out of children, it changes nothing here.
        unsafe { rustix::mm::madvise(map.base.as_ptr().cast(), len, Advice::LinuxDontFork)? };
        Ok(map)
    }

    fn map(fd: BorrowedFd<'_>, len: usize) -> io::Result<SharedMap> {
        if len == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // SAFETY: a new shared mapping at an address the kernel chooses;
        // nothing else in this process refers to that range yet.
        let base = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                ProtFlags::READ | ProtFlags::WRITE,
                MapFlags::SHARED,
                fd,
                0,
            )?
        };
        let base = NonNull::new(base.cast::<u8>()).ok_or(io::ErrorKind::InvalidData)?;
        Ok(SharedMap { base, len })
    }

    /// The first byte of the mapping (page-aligned).
    pub(crate) fn base(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for SharedMap {
    fn drop(&mut self) {
        // SAFETY: our own mapping; its users hold the `SharedMap` (through
        // an `Arc`) for as long as they use the memory, so none is left.
        let _ = unsafe { rustix::mm::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout` (`None`: no
/// limit). Returns early on a wake, a signal, or if the value differs; the
/// caller re-checks its condition either way. A shared futex (no
/// `FUTEX_PRIVATE_FLAG`): the word lives in memory mapped by two processes.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let timeout = timeout.map(|t| futex::Timespec {
        tv_sec: i64::try_from(t.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: t.subsec_nanos().into(),
    });
    let _ = futex::wait(word, futex::Flags::empty(), expected, timeout.as_ref());
}

/// Wakes at most `count` sleepers on `word` (in either process).
pub(crate) fn futex_wake(word: &AtomicU32, count: u32) {
    let _ = futex::wake(word, futex::Flags::empty(), count);
}

/// The CPU this thread runs on right now (a hint: it may move at once).
pub(crate) fn current_cpu() -> u32 {
    u32::try_from(rustix::thread::sched_getcpu()).unwrap_or(u32::MAX)
}

/// How many CPUs this thread may run on (1 when it cannot tell).
pub(crate) fn allowed_cpus() -> usize {
    rustix::thread::sched_getaffinity(None).map_or(1, |set| set.count() as usize)
}

/// How many threads in the whole system are runnable right now (the fourth
/// field of `/proc/loadavg`, `running/total`); `None` if unreadable.
pub(crate) fn runnable_threads() -> Option<usize> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace()
        .nth(3)?
        .split('/')
        .next()?
        .parse()
        .ok()
}

/// Makes a worker's allocator keep freed blocks for reuse while it works:
/// blocks under 32 MiB (glibc's largest threshold) come from the heap and
/// stay there when freed, so the next call of the same size costs no page
/// faults (glibc would otherwise map them afresh, a fault per 4 KiB each
/// time). The worker gives the memory back once idle, with
/// [`release_free_memory`].
pub(crate) fn tune_worker_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes glibc's allocation thresholds; it is
    // called before the worker serves, and both values are valid.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, libc::c_int::MAX);
    }
}

/// Gives the heap's free memory back to the kernel (glibc keeps it
/// otherwise). Costs a walk of the heap: for an idle worker, not per call.
pub(crate) fn release_free_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim only returns memory that is already free.
    unsafe {
        libc::malloc_trim(0);
    }
}
