//! Buffers kept for reuse by the thread that freed them: a fresh large
//! buffer costs a page fault per 4 KiB, so a thread that moves large frames
//! (a worker, a caller of `apply`) keeps up to two of them; and a thread
//! that reads many small frames (a slot thread, a worker) keeps the last
//! small one, rather than making a buffer per frame.

use std::cell::RefCell;

/// Buffers at least this large are worth keeping for reuse (see [`recycle`]).
const SPARE_MIN: usize = 1 << 20;

/// How many large buffers a thread keeps for reuse.
const SPARES: usize = 2;

/// The largest small buffer a thread keeps (see [`small_buffer`]).
const SMALL_MAX: usize = 64 << 10;

thread_local! {
    /// Large buffers this thread no longer needs, kept for the next large
    /// frames it reads or results it encodes (a fresh buffer costs a page
    /// fault per 4 KiB).
    static SPARE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    /// The last small buffer this thread no longer needed.
    static SMALL: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Keeps `buf` for reuse by this thread: if large, at most two, the
/// largest offered; if small, the last one offered.
pub(crate) fn recycle(mut buf: Vec<u8>) {
    if buf.capacity() < SPARE_MIN {
        if buf.capacity() > 0 && buf.capacity() <= SMALL_MAX {
            buf.clear();
            SMALL.set(buf);
        }
        return;
    }
    buf.clear();
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        spare.push(buf);
        spare.sort_by_key(|b| std::cmp::Reverse(b.capacity()));
        spare.truncate(SPARES);
    });
}

/// A spare buffer of at least `min` bytes' capacity (the smallest that
/// fits), if this thread has one; any spare if `min` is zero.
pub(crate) fn spare_buffer(min: usize) -> Option<Vec<u8>> {
    SPARE.with(|spare| {
        let mut spare = spare.borrow_mut();
        let at = spare.iter().rposition(|b| b.capacity() >= min)?;
        Some(spare.remove(at))
    })
}

/// An empty buffer to read a small frame into: the last small one this
/// thread recycled, if any (it grows as needed).
pub(crate) fn small_buffer() -> Vec<u8> {
    SMALL.take()
}

/// Drops this thread's spare buffers (an idle worker gives its memory back).
pub(crate) fn release() {
    SPARE.with(|spare| spare.borrow_mut().clear());
    SMALL.take();
}
