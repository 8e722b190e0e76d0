//! A minimal executor for one future.

use std::sync::Arc;
use std::task::{Context, Poll, Wake};

/// Polls `future` to its end on this thread, parking between polls.
/// Unlike `futures`' `block_on`, it may run inside itself (a callback's
/// `.await` nested in another's).
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark()
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(out) => return out,
            Poll::Pending => std::thread::park(),
        }
    }
}
