//! A map's input that says when the map has read it to its end.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// `items`, with a flag set once the map reading them asked for the item
/// after the last. A `map` of chunksize 1 asks for it only once it has
/// queued the chunk of the last item, so every chunk is queued then. (A
/// `map` on another thread queues its chunks one by one: its first may
/// already run while that thread, preempted, has not queued the others.)
pub struct ReadToEnd<I> {
    items: I,
    read: Arc<AtomicBool>,
}

impl<I: Iterator> ReadToEnd<I> {
    /// `items`, and the flag set once they are read to the end.
    pub fn new(items: impl IntoIterator<IntoIter = I>) -> (Self, Arc<AtomicBool>) {
        let read = Arc::new(AtomicBool::new(false));
        let input = ReadToEnd {
            items: items.into_iter(),
            read: read.clone(),
        };
        (input, read)
    }
}

impl<I: Iterator> Iterator for ReadToEnd<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        let next = self.items.next();
        if next.is_none() {
            self.read.store(true, Ordering::SeqCst);
        }
        next
    }

    // Exact, as the items' own: the map cuts its chunks as it goes, rather
    // than collecting an input of unknown length first.
    fn size_hint(&self) -> (usize, Option<usize>) {
        self.items.size_hint()
    }
}

/// Waits (30 s at most) until the map reading the input of `read` has
/// read it to its end: with chunksize 1, every chunk is queued.
pub fn all_queued(read: &AtomicBool) {
    super::wait_for(Duration::from_secs(30), "every chunk to be queued", || {
        read.load(Ordering::SeqCst)
    });
}
