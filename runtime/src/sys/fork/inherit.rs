//! What a forked worker takes on from its caller, read in the caller and
//! set in the worker: CPU affinity, resource limits and the file mode
//! creation mask.

use std::io;

/// This thread's CPU affinity as bytes (a `cpu_set_t`).
pub(crate) fn affinity() -> Vec<u8> {
    // SAFETY: `cpu_set_t` is plain bits; sched_getaffinity fills it.
    let set = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set);
        set
    };
    // SAFETY: any `cpu_set_t` is `size_of` initialised bytes.
    let bytes = unsafe {
        std::slice::from_raw_parts(
            (&set as *const libc::cpu_set_t).cast::<u8>(),
            std::mem::size_of::<libc::cpu_set_t>(),
        )
    };
    bytes.to_vec()
}

/// Sets this thread's CPU affinity from [`affinity`]'s bytes (ignored if
/// they are not a whole `cpu_set_t`, or name no CPU this process may use).
pub(crate) fn set_affinity(bytes: &[u8]) {
    if bytes.len() != std::mem::size_of::<libc::cpu_set_t>() {
        return;
    }
    // SAFETY: `cpu_set_t` is plain bits: any bytes of its size are one.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(
            bytes.as_ptr(),
            (&mut set as *mut libc::cpu_set_t).cast::<u8>(),
            bytes.len(),
        );
        libc::sched_setaffinity(0, bytes.len(), &set);
    }
}

/// The resource limits a forked worker takes from its caller, in the order
/// of [`resource_limits`]' list.
const RESOURCES: [rustix::process::Resource; 16] = {
    use rustix::process::Resource as R;
    [
        R::Cpu,
        R::Fsize,
        R::Data,
        R::Stack,
        R::Core,
        R::Rss,
        R::Nproc,
        R::Nofile,
        R::Memlock,
        R::As,
        R::Locks,
        R::Sigpending,
        R::Msgqueue,
        R::Nice,
        R::Rtprio,
        R::Rttime,
    ]
};

/// This process's resource limits, `[soft, hard]` for each of a fixed
/// list of resources (`u64::MAX`: unlimited).
pub(crate) fn resource_limits() -> Vec<[u64; 2]> {
    RESOURCES
        .iter()
        .map(|&resource| {
            let limit = rustix::process::getrlimit(resource);
            [
                limit.current.unwrap_or(u64::MAX),
                limit.maximum.unwrap_or(u64::MAX),
            ]
        })
        .collect()
}

/// Whether a copy of this process made by `fork` that takes `limits` (as
/// [`resource_limits`] gives them) keeps room to allocate: where the soft
/// data or address-space limit (`RLIMIT_DATA`, `RLIMIT_AS`) is below
/// `current`'s (this process's own, which it lives within), what this
/// process already maps must be under it. `setrlimit` takes a limit below
/// the current use, and every later `brk` or `mmap` then fails: a fork
/// server that serves from a thread with a task's stack (256 MiB of data)
/// would hand such a worker no room at all, where a spawned one starts
/// small. Reads `/proc/self/statm` only for such a lowered limit; `false`
/// if it cannot.
pub(crate) fn room_under(limits: &[[u64; 2]], current: &[[u64; 2]]) -> bool {
    use rustix::process::Resource as R;
    // Read once, at the first lowered limit.
    let mut statm = None;
    RESOURCES
        .iter()
        .zip(limits)
        .zip(current)
        .all(|((&resource, &[soft, _]), &[now, _])| {
            // The statm field each limit bounds: the whole address space,
            // or data and stack.
            let field = match resource {
                R::As => 0,
                R::Data => 5,
                _ => return true,
            };
            if soft >= now {
                return true;
            }
            statm
                .get_or_insert_with(|| super::super::statm("self").ok())
                .is_some_and(|used| used[field] < soft)
        })
}

/// Sets this process's resource limits to `limits` where they differ from
/// `current` (both as [`resource_limits`] gives them; `current`: what this
/// process has); the error number of the first that cannot be set (raising
/// a hard limit takes privilege).
pub(crate) fn set_resource_limits(limits: &[[u64; 2]], current: &[[u64; 2]]) -> Result<(), i32> {
    let finite = |v: u64| (v != u64::MAX).then_some(v);
    for ((&resource, &[soft, hard]), now) in RESOURCES.iter().zip(limits).zip(current) {
        if [soft, hard] != *now {
            let new = rustix::process::Rlimit {
                current: finite(soft),
                maximum: finite(hard),
            };
            rustix::process::setrlimit(resource, new).map_err(|e| e.raw_os_error())?;
        }
    }
    Ok(())
}

/// This process's file mode creation mask, read without changing it (the
/// `Umask` line of `/proc/self/status`, Linux 4.7 on; `umask(2)` can only
/// read it by setting it, which races with other threads creating files).
pub(crate) fn umask() -> Option<u32> {
    use std::io::Read;
    // The line follows the `Name` one, at the start: the first bytes are
    // enough, and reading only them costs less than the whole file.
    let mut head = [0u8; 256];
    let mut file = std::fs::File::open("/proc/self/status").ok()?;
    let mut got = 0;
    while got < head.len() {
        match file.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = String::from_utf8_lossy(&head[..got]);
    let line = text.lines().find_map(|l| l.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8)
        .ok()
        .filter(|&m| m <= 0o777)
}

/// Sets this process's file mode creation mask.
pub(crate) fn set_umask(mask: u32) {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(mask & 0o777));
}
