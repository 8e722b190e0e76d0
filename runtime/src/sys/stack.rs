//! How much of the calling thread's stack is left: decoding and encoding
//! recurse once per level of a value, and a level can take kilobytes of
//! stack (serde builds each level's value in place, with whatever it holds
//! inline), so a depth limit alone cannot keep them within any thread's
//! stack; they also stop when it runs low (see `codec::depth`).

use std::cell::Cell;
use std::mem::MaybeUninit;

thread_local! {
    /// This thread's stack: its lowest address and its end; (0, 0) before
    /// it is looked up, (1, 1) if it cannot be.
    static STACK: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// The bytes of stack left below the caller's frame on this thread, or
/// `None` if the thread's stack cannot be found, or the caller runs on
/// another stack (a coroutine's, say).
#[inline]
pub(crate) fn stack_left() -> Option<usize> {
    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    let (lowest, end) = STACK.with(|s| {
        if s.get().0 == 0 {
            s.set(bounds().unwrap_or((1, 1)));
        }
        s.get()
    });
    (lowest < here && here < end).then(|| here - lowest)
}

/// The calling thread's stack: its lowest address and its end (glibc reads
/// the main thread's from its mapping and its size limit).
#[cold]
fn bounds() -> Option<(usize, usize)> {
    let mut attr = MaybeUninit::<libc::pthread_attr_t>::uninit();
    // SAFETY: pthread_getattr_np fills `attr` for the calling thread; it is
    // read only if that succeeded, and destroyed once read.
    unsafe {
        if libc::pthread_getattr_np(libc::pthread_self(), attr.as_mut_ptr()) != 0 {
            return None;
        }
        let mut addr: *mut libc::c_void = std::ptr::null_mut();
        let mut size: libc::size_t = 0;
        let got = libc::pthread_attr_getstack(attr.as_ptr(), &mut addr, &mut size);
        libc::pthread_attr_destroy(attr.as_mut_ptr());
        let lowest = addr as usize;
        (got == 0 && lowest > 1).then(|| (lowest, lowest.saturating_add(size)))
    }
}

#[cfg(test)]
mod tests {
    use super::stack_left;

    #[test]
    fn a_thread_of_2_mib_has_under_2_mib_left_and_more_than_1() {
        let left = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(stack_left)
            .unwrap()
            .join()
            .unwrap()
            .expect("the stack is known");
        assert!(left < 2 << 20 && left > 1 << 20, "{left}");
    }

    #[test]
    fn a_deeper_frame_has_less_left() {
        #[inline(never)]
        fn inner() -> usize {
            stack_left().unwrap()
        }
        #[inline(never)]
        fn below_16_kib() -> usize {
            let buf = [1u8; 16384];
            std::hint::black_box(&buf);
            inner()
        }
        let top = inner();
        assert!(below_16_kib() + 16384 <= top, "{top}");
    }
}
