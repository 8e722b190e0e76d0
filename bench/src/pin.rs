//! Pinning the calling thread (and the processes and threads it starts from
//! then on, which inherit its CPU set) to one CPU: the first it may run on
//! (CPU 0 on most machines; not always in a container given a CPU set).

use std::io;

/// Pins the calling thread to one CPU until dropped, then restores its
/// previous CPU set.
pub struct Pin {
    previous: libc::cpu_set_t,
}

impl Pin {
    /// Pins to the first CPU of the thread's current set.
    pub fn to_first_cpu() -> io::Result<Pin> {
        // SAFETY: cpu_set_t is a plain bit array: all-zero is the empty set.
        let mut previous: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: pid 0 is the calling thread; `previous` is a valid,
        // exclusively borrowed cpu_set_t of `size` bytes for the kernel to fill.
        if unsafe { libc::sched_getaffinity(0, size, &mut previous) } != 0 {
            return Err(io::Error::last_os_error());
        }
        let cpu = (0..libc::CPU_SETSIZE as usize)
            // SAFETY: CPU_ISSET reads bit `cpu` (< CPU_SETSIZE) of a valid set.
            .find(|&cpu| unsafe { libc::CPU_ISSET(cpu, &previous) })
            .ok_or_else(|| io::Error::other("this thread may run on no CPU"))?;
        // SAFETY: as above, all-zero is the empty set.
        let mut one: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: CPU_SET writes bit `cpu` (< CPU_SETSIZE) of a valid set.
        unsafe { libc::CPU_SET(cpu, &mut one) };
        // SAFETY: pid 0 is the calling thread; `one` is a valid cpu_set_t.
        if unsafe { libc::sched_setaffinity(0, size, &one) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Pin { previous })
    }
}

impl Drop for Pin {
    fn drop(&mut self) {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        // SAFETY: pid 0 is the calling thread; `previous` is the valid set
        // the kernel gave us in `to_cpu`.
        unsafe { libc::sched_setaffinity(0, size, &self.previous) };
    }
}
