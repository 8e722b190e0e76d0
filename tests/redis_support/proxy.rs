//! A TCP proxy between members and a redis-server, which can lose one reply:
//! once armed with a marker, the first request containing it that is sent
//! on to Redis is forwarded, Redis's reply is read and thrown away, `then`
//! runs (the test stops Redis, say) and the connection is closed. What a
//! member sees when Redis ran a command and the reply never came back. It
//! can also hold requests (`holds`): those containing a marker wait at the
//! proxy, not yet sent to Redis, until the test lets them through (a
//! request held is armed when it is let through, by what is armed then).
//! And it counts the requests sent on that contain a marker (`seen`).

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

type Hook = Box<dyn FnOnce() + Send>;
/// The marker of the request whose reply is lost, and what to do then.
type Armed = Arc<Mutex<Option<(Vec<u8>, Hook)>>>;

pub struct Proxy {
    pub port: u16,
    armed: Armed,
    /// Set once a reply was lost.
    pub fired: Arc<AtomicBool>,
    /// While set, connections are closed as soon as they are made.
    cut: Arc<AtomicBool>,
    /// How many of the next connections to close as soon as they are made.
    drop_next: Arc<AtomicUsize>,
    /// Both ends of every connection made, to close them when cut.
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// Requests held at the proxy.
    pub holds: Holds,
    /// Requests sent on to Redis, counted by marker.
    pub seen: Seen,
}

/// Markers counted in the requests a proxy sends on to Redis, each with how
/// many such requests it sent since [`count`](Self::count).
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<Counted>>>);

/// A marker, and how many requests containing it were sent on.
type Counted = (Vec<u8>, usize);

impl Seen {
    /// From now on, counts the requests containing `marker`.
    pub fn count(&self, marker: &[u8]) {
        let mut counts = self.0.lock().unwrap();
        if !counts.iter().any(|(m, _)| m == marker) {
            counts.push((marker.to_vec(), 0));
        }
    }

    /// How many requests containing `marker` were sent on since
    /// [`count`](Self::count) (0 if it was never called).
    pub fn times(&self, marker: &[u8]) -> usize {
        let counts = self.0.lock().unwrap();
        counts
            .iter()
            .find(|(m, _)| m == marker)
            .map_or(0, |(_, n)| *n)
    }

    fn note(&self, request: &[u8]) {
        for (m, n) in self.0.lock().unwrap().iter_mut() {
            if request.windows(m.len()).any(|w| w == &m[..]) {
                *n += 1;
            }
        }
    }
}

/// The markers of requests held at a proxy, each with how many such
/// requests wait there now. A clone is the same set (for a hook of
/// [`Proxy::lose_reply_to`], say).
#[derive(Clone, Default)]
pub struct Holds(Arc<(Mutex<HoldSet>, Condvar)>);

#[derive(Default)]
struct HoldSet {
    held: Vec<Hold>,
    /// The id of the next hold.
    next: u64,
}

struct Hold {
    marker: Vec<u8>,
    /// Which hold this is: a request waits for its own, not for a hold of
    /// the same marker made again after it was let through.
    id: u64,
    waiting: usize,
}

impl Holds {
    /// From now on, a request containing `marker` waits at the proxy (is
    /// not sent to Redis) until [`let_through`](Self::let_through).
    pub fn hold(&self, marker: &[u8]) {
        let mut set = self.0 .0.lock().unwrap();
        if !set.held.iter().any(|h| h.marker == marker) {
            let id = set.next;
            set.next += 1;
            set.held.push(Hold {
                marker: marker.to_vec(),
                id,
                waiting: 0,
            });
        }
    }

    /// Sends on the requests held for `marker`, and holds no more.
    pub fn let_through(&self, marker: &[u8]) {
        self.0
             .0
            .lock()
            .unwrap()
            .held
            .retain(|h| h.marker != marker);
        self.0 .1.notify_all();
    }

    /// Whether a request containing `marker` waits at the proxy within
    /// `limit`.
    pub fn waits_within(&self, marker: &[u8], limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut set = self.0 .0.lock().unwrap();
        loop {
            if set.held.iter().any(|h| h.marker == marker && h.waiting > 0) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            set = self.0 .1.wait_timeout(set, left).unwrap().0;
        }
    }

    /// Returns once `request` may be sent on: at once if it contains no
    /// marker held.
    fn pass(&self, request: &[u8]) {
        let contains = |m: &[u8]| request.windows(m.len()).any(|w| w == m);
        let mut set = self.0 .0.lock().unwrap();
        let Some(hold) = set.held.iter_mut().find(|h| contains(&h.marker)) else {
            return;
        };
        hold.waiting += 1;
        let id = hold.id;
        self.0 .1.notify_all();
        while set.held.iter().any(|h| h.id == id) {
            set = self.0 .1.wait(set).unwrap();
        }
    }
}

impl Proxy {
    /// Forwards connections made to `127.0.0.1:<port>` to `target`.
    pub fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let armed: Armed = Arc::default();
        let fired = Arc::new(AtomicBool::new(false));
        let cut = Arc::new(AtomicBool::new(false));
        let drop_next = Arc::new(AtomicUsize::new(0));
        let open: Arc<Mutex<Vec<TcpStream>>> = Arc::default();
        let holds = Holds::default();
        let seen = Seen::default();
        let (a, f, c, o) = (armed.clone(), fired.clone(), cut.clone(), open.clone());
        let (h, n, d) = (holds.clone(), seen.clone(), drop_next.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let dropped = d
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if dropped || c.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect(&target) else {
                    continue;
                };
                let mut ends = o.lock().unwrap();
                ends.retain(|s| s.peer_addr().is_ok());
                ends.extend([client.try_clone().unwrap(), server.try_clone().unwrap()]);
                drop(ends);
                pump_pair(client, server, a.clone(), f.clone(), h.clone(), n.clone());
            }
        });
        Proxy {
            port,
            armed,
            fired,
            cut,
            drop_next,
            open,
            holds,
            seen,
        }
    }

    /// Closes every connection through the proxy, and every new one at
    /// once, until [`mend`](Self::mend).
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for end in self.open.lock().unwrap().drain(..) {
            let _ = end.shutdown(Shutdown::Both);
        }
    }

    /// Closes the next `n` connections as soon as they are made (a
    /// connection reset as it opens); lets the later ones through.
    pub fn drop_next(&self, n: usize) {
        self.drop_next.store(n, Ordering::SeqCst);
    }

    /// Lets connections through again.
    pub fn mend(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }

    /// Loses the reply to the next request containing `marker` sent on to
    /// Redis (one held now included, once let through), then runs `then`.
    pub fn lose_reply_to(&self, marker: &[u8], then: impl FnOnce() + Send + 'static) {
        *self.armed.lock().unwrap() = Some((marker.to_vec(), Box::new(then)));
    }

    /// Loses no reply after all (if none was lost yet).
    pub fn disarm(&self) {
        self.armed.lock().unwrap().take();
    }
}

fn pump_pair(
    client: TcpStream,
    server: TcpStream,
    armed: Armed,
    fired: Arc<AtomicBool>,
    holds: Holds,
    seen: Seen,
) {
    // The hook of a request forwarded on this connection, run once its
    // reply has been swallowed.
    let hook: Arc<Mutex<Option<Hook>>> = Arc::default();
    let (mut c_in, mut s_out) = (client.try_clone().unwrap(), server.try_clone().unwrap());
    let h = hook.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match c_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            holds.pass(&buf[..n]);
            seen.note(&buf[..n]);
            {
                let mut a = armed.lock().unwrap();
                let hit = a
                    .as_ref()
                    .is_some_and(|(m, _)| buf[..n].windows(m.len()).any(|w| w == &m[..]));
                if hit {
                    *h.lock().unwrap() = a.take().map(|(_, hook)| hook);
                }
            }
            if s_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = s_out.shutdown(Shutdown::Both);
    });
    let (mut s_in, mut c_out) = (server, client);
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = match s_in.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if let Some(then) = hook.lock().unwrap().take() {
                // The reply to the marked request: lost.
                then();
                fired.store(true, Ordering::SeqCst);
                break;
            }
            if c_out.write_all(&buf[..n]).is_err() {
                break;
            }
        }
        let _ = c_out.shutdown(Shutdown::Both);
        let _ = s_in.shutdown(Shutdown::Both);
    });
}
