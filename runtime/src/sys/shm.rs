//! Shared memory between the parent and one worker: a sealed memfd mapped
//! in both, futexes in it, and the CPU facts the ring's spin heuristic reads.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::AtomicU32;
use std::time::Duration;

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
        // SAFETY: memfd_create reads a valid C string and returns a new fd or -1.
        let fd = unsafe {
            libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING)
        };
        if fd == -1 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let size = libc::off_t::try_from(len).map_err(|_| io::ErrorKind::InvalidInput)?;
        // SAFETY: ftruncate and fcntl take integers on an fd we own.
        unsafe {
            if libc::ftruncate(fd.as_raw_fd(), size) == -1 {
                return Err(io::Error::last_os_error());
            }
            let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_SEAL;
            if libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) == -1 {
                return Err(io::Error::last_os_error());
            }
        }
        let map = SharedMap::map(fd.as_raw_fd(), len)?;
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
        // SAFETY: F_GET_SEALS takes an integer; on anything but a memfd
        // (or a closed fd) it fails with EINVAL (EBADF).
        let seals = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
        if seals == -1 || seals & libc::F_SEAL_SHRINK == 0 {
            return Err(bad("not a sealed memfd"));
        }
        // SAFETY: `libc::stat` is plain integers, for which all-zero bytes are valid.
        let mut stat: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat writes only into `stat`, exclusively borrowed.
        if unsafe { libc::fstat(fd, &mut stat) } == -1 {
            return Err(io::Error::last_os_error());
        }
        let len = usize::try_from(stat.st_size).map_err(|_| bad("negative size"))?;
        let map = SharedMap::map(fd, len)?;
        // SAFETY: the mapping is ours and stays valid without the fd; the fd
        // was left for this process alone, and only this call adopts it.
        unsafe {
            libc::madvise(map.base.as_ptr().cast(), len, libc::MADV_DONTFORK);
            libc::close(fd);
        }
        Ok(map)
    }

    fn map(fd: RawFd, len: usize) -> io::Result<SharedMap> {
        if len == 0 {
            return Err(io::ErrorKind::InvalidInput.into());
        }
        // SAFETY: a new shared mapping at an address the kernel chooses;
        // nothing else in this process refers to that range yet.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
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
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// Sleeps while `word` holds `expected`, at most `timeout` (`None`: no
/// limit). Returns early on a wake, a signal, or if the value differs; the
/// caller re-checks its condition either way. A shared futex (no
/// `FUTEX_PRIVATE_FLAG`): the word lives in memory mapped by two processes.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let ts = timeout.map(|t| libc::timespec {
        tv_sec: libc::time_t::try_from(t.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: t.subsec_nanos() as libc::c_long,
    });
    let tsp = ts
        .as_ref()
        .map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: FUTEX_WAIT reads the aligned u32 behind `word`, which lives as
    // long as the borrow; `tsp` is null or points at a live timespec.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            tsp,
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// Wakes at most `count` sleepers on `word` (in either process).
pub(crate) fn futex_wake(word: &AtomicU32, count: i32) {
    // SAFETY: FUTEX_WAKE uses the address only as a key; nothing is read
    // or written through it.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            count,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

/// The CPU this thread runs on right now (a hint: it may move at once).
pub(crate) fn current_cpu() -> u32 {
    // SAFETY: no arguments; glibc answers from the vDSO or rseq area.
    let cpu = unsafe { libc::sched_getcpu() };
    u32::try_from(cpu).unwrap_or(u32::MAX)
}

/// How many CPUs this thread may run on (1 when it cannot tell).
pub(crate) fn allowed_cpus() -> usize {
    // SAFETY: `cpu_set_t` is plain bits; sched_getaffinity fills it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return 1;
        }
        usize::try_from(libc::CPU_COUNT(&set)).unwrap_or(1)
    }
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
