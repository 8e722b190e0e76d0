//! # procpool
//!
//! Python's `multiprocessing.Pool` for Rust: put `#[pool_task]` on a function
//! and run it in worker processes, with `apply_<fn>` (blocking),
//! `apply_async_<fn>` (returns an [`AsyncResult`], which you may also
//! `.await`), and the map family `map_<fn>`, `map_async_<fn>`, `imap_<fn>`,
//! `imap_unordered_<fn>` (see [`pool_task`]). Tasks can also be called by a
//! name chosen at run time ([`Pool::apply_by_name`]).
//!
//! ```
//! use procpool::{pool_task, Pool};
//!
//! #[pool_task]
//! fn square(x: u64) -> u64 { x * x }
//!
//! fn main() -> Result<(), procpool::Error> {
//!     procpool::init();                          // first line of main
//!     let pool = Pool::new(2)?;
//!     assert_eq!(apply_square(&pool, 4)?, 16);   // blocks
//!     let r = apply_async_square(&pool, 5);      // returns at once
//!     println!("Doing other work while process runs...");
//!     assert_eq!(r.get()?, 25);                  // waits
//!     assert_eq!(map_square(&pool, 0..4)?, [0, 1, 4, 9]); // pool.map
//!     pool.close();
//!     pool.join();
//!     Ok(())
//! }
//! ```
//!
//! ## Platform
//!
//! Linux only: kernel 5.3 or later (workers are watched through pidfds, and
//! talk to the pool through shared memory and futexes) and glibc 2.34 or
//! later (`posix_spawn_file_actions_addclosefrom_np`);
//! `x86_64-unknown-linux-gnu` is the target tested. On other targets the
//! crate stops at one `compile_error!` saying so.
//!
//! ## How it works
//!
//! Workers are this very program, stopped at [`init`], which is what turns
//! such a process into a worker: in the parent it returns at once (after
//! launching a fork server, see below); in a worker it serves tasks and never
//! returns. The parent sends each call as the task's registered name plus
//! its arguments encoded with `bincode`, through a channel of shared memory
//! the worker inherits (a memfd with a ring each way; never stdin or stdout,
//! so tasks may print). The worker looks the name up in the registry that
//! `#[pool_task]` fills, runs the function, and sends back its result, its
//! panic (message, location and, with `RUST_BACKTRACE`, backtrace) or an
//! error.
//!
//! Workers are forked by a fork server: this program re-executed once by
//! [`init`] and stopped there, which forks each worker from a thread with a
//! task's stack (like Python 3.14's default start method), so a worker is
//! ready in a fraction of a millisecond. A
//! forked worker takes the parent's environment, working directory, umask,
//! resource limits, stdout and stderr as they are when it starts, and the
//! CPU affinity of the thread that made the pool. If the program runs a
//! thread before `init()`, a hard limit was raised since, a data or
//! address-space limit lowered below what the server maps, or the server
//! is gone, or `PROCPOOL_FORK_SERVER=0`, workers are re-executed
//! copies started with `posix_spawn` (like Python's "spawn").
//!
//! Only registered functions can ever be called, and only by name, so a
//! worker never jumps to an address it was sent.
//!
//! ## What `#[pool_task]` generates
//!
//! In spirit, for `fn square(x: u64) -> u64`:
//!
//! ```ignore
//! fn square(x: u64) -> u64 { x * x }            // unchanged
//!
//! fn apply_square(pool: &Pool, x: u64) -> Result<u64, procpool::Error> {
//!     call(pool, "my_crate::square", &(x,))     // runs it, waits for the result
//! }
//!
//! fn apply_async_square(pool: &Pool, x: u64) -> AsyncResult<u64> {
//!     submit(pool, "my_crate::square", &(x,))   // queue name + encoded args
//! }
//!
//! fn map_square(pool: &Pool, items: impl IntoIterator<Item = u64>) -> Result<Vec<u64>, Error> {
//!     // cut into chunks; each is one frame of encoded items, answered by one
//!     // frame of per-item outcomes (value or panic)
//!     map(pool, "my_crate::square", items, MapOptions::new())
//! }
//! // ... map_async_square, starmap_square, starmap_async_square, imap_square,
//! // imap_unordered_square and the _with forms
//!
//! inventory::submit!(Registration {
//!     name: "my_crate::square",
//!     call: |bytes| { let (x,) = decode(bytes)?; encode(&square(x)) },
//!     call_batch: |items, out| for each item { catch_unwind(decode, square, encode); append },
//!     ..
//! });
//! ```
//!
//! ## Where things are
//!
//! One line per module, in the order a call travels:
//!
//! | module | holds |
//! |---|---|
//! | `procpool-macros` | `#[pool_task]`: parse the attribute, validate the function, work out a model, expand it into `apply_<fn>`, `apply_async_<fn>`, the map family and a registration |
//! | `__private` | the only door generated code uses: re-exports and one-line entry points |
//! | `task` | a task's wire identity (`TaskInfo`, the signature fingerprint shared with the macro), its marker traits, argument encoding and decoding |
//! | `pool`, `pool::submit` | the `Pool` handle (`Clone`); it turns a call into a `call::Call` (its id, time limit and checks) and hands it to its dispatcher |
//! | `call` | one `Call` from the generated code to the wire; a queued `Job` is a call and its promise |
//! | `result`, `callbacks`, `cancel` | `AsyncResult` (and its `CancelHandle`) and the promise the dispatcher keeps, sharing a cell that reports a result complete only once its callbacks returned (`result::cell`); the thread that runs callbacks; what a cancel did (`CancelOutcome`) |
//! | `pool::dispatcher` | the seam: "accept calls and settle their promises"; local workers are one implementation |
//! | `pool::local`, `pool::queue`, `pool::slot`, `pool::in_flight` | the local dispatcher: the FIFO queue and slot states, one thread per worker slot, `apply`'s direct path; the calls each slot holds and the cancels asked of them |
//! | `pool::pipeline`, `pool::exchange` | how many quick calls go in one write; one call on one worker, and what a lost worker means for the calls it held |
//! | `pool::retire` | when a worker is retired (`max_tasks_per_child`, `max_memory_per_child`), and how it is asked to exit, reaped and counted |
//! | `pool::config`, `pool::builder`, `pool::initializer` | settings as given and as checked; the initializer run in each new worker |
//! | `link`, `process` | the `Link` a slot talks through (and a fake for unit tests); starting workers (the fork server, both its sides, or `posix_spawn`), the parent↔worker start-up contract (who is a worker, or the fork server); the parent's end of a worker, every wait bounded by the worker's life and the stall limit (`process::link`); the death-watch thread |
//! | `shm` | the channel's shared memory: its layout, the ring endpoints that move frames through it, the spin heuristic |
//! | `wire`, `codec`, `buffers` | frames and messages on the channel; bincode, behind a nesting limit on both sides (`codec::depth`); buffers kept for reuse (large ones, and each thread's last small frame buffer) |
//! | `sys` | every OS call (memfd, mappings and futexes, pidfds and epoll, the fork server's; `sys::channel`: what a worker checks of the descriptor it inherits), each `unsafe` with its `SAFETY` comment |
//! | `worker` | in the worker: `init()` enters the serve loop, which finds each task in the `registry` and runs it under one panic guard; a map's chunk item by item (`worker::chunk`) |
//! | `registry` | the `inventory` table of tasks by name; `find(name, fingerprint)` |
//! | `chunk` | a map's chunk as it travels, both sides: items cut into one frame (caller), items read and records written (worker), records read back (caller) |
//! | `map` | the map family: options, `map`/`map_async`, the `imap` iterators |
//! | `error` | `Error`, `ErrorKind`, `ExitInfo` |
//! | `unwind` | panics caught from user code: their message, and dropping their payload without a second panic |
//! | `json` | `Json<T>` (feature `json`): a value that travels as JSON, for serde attributes bincode cannot carry |
//! | `redis` | the Redis Streams backend (feature `redis`): keys and build id, entries, a node's errors, the Lua scripts, connections, members and the reaper; the caller's dispatcher (`redis::caller`) and the node (`redis::node`, `Node`) |
//! | `pool::remote` | the builder's Redis settings and `build` for them |
//!
//! Each layer uses only the ones below it: `sys`, `unwind`, then `error`, `buffers`,
//! `codec`, `json`, `wire`, `shm`, `task`, `registry`, `callbacks`, `cancel`, `result`, `chunk`, `call`, `link`,
//! `process`, `worker`, `pool`, `redis`, `map`, `__private`. Within `pool` and `redis`:
//! the Redis dispatcher uses only `pool`'s seam and config; `pool::builder`
//! and `pool::remote`, which choose the dispatcher, sit above it; the node
//! uses the `Pool` itself.
//!
//!
//! ## When things go wrong
//!
//! A failure reaches only the task it concerns, as an [`Error`] naming the
//! task, and the pool carries on: a worker that dies running a task (killed,
//! segfault, `abort`, `exit`) gives [`Error::WorkerDied`] with its signal or
//! exit code and is replaced (a worker that dies at the very instant a task
//! is handed to it fails that task the same way if it had read it, whether
//! or not it started, and runs it on a new worker if it had not; one that
//! dies idle is replaced unnoticed); a task past its time limit
//! ([`PoolBuilder::task_timeout`], [`Pool::with_task_timeout`]) gives
//! [`Error::Timeout`] and its worker is killed and replaced; oversized or
//! corrupt frames, unknown names, signature mismatches and encoding failures
//! each have their own variant. (The signature fingerprint covers the types
//! as written in the task's signature, not changes inside a struct's
//! definition.) A worker that writes impossible positions into the
//! channel's shared memory, or stalls half-way through a frame, is a
//! protocol error. Workers inherit no file descriptor but their channel and
//! stdio. Workers exit with their parent, even when it is killed with
//! SIGKILL (a forked worker with its fork server, which exits with the
//! parent), and every worker is reaped on every path. Each worker leads a
//! process group of its own: a terminal's Ctrl-C reaches the program, not
//! its workers, and when procpool kills a worker (timeout, `terminate`, a
//! protocol error) the processes its tasks started die too.
//! [`PoolBuilder::initializer`] runs a task once in each new worker
//! (Python's `initializer`); if it fails, [`Error::InitializerFailed`].
//! [`AsyncResult::cancel`] stops one task (a queued one never runs, a
//! running one has its worker replaced: [`Error::Cancelled`]) and
//! [`Pool::close_and_cancel`] drops the whole queue;
//! [`PoolBuilder::max_tasks_per_child`] and
//! [`PoolBuilder::max_memory_per_child`] recycle workers between tasks.
//!
//! ## Tests and doc tests
//!
//! A test binary's `main` belongs to the test harness, so it cannot call
//! [`init`] first. Put [`enable_test_support!`] once in each integration test
//! crate (for unit tests, once in the crate, at its root or in its
//! `#[cfg(test)] mod tests`): it runs `init()` before the
//! harness starts. Doc tests have their own `main`; call [`init`] in it.
//! In a test binary a task cannot end its worker with
//! `std::process::exit`: the harness's `main` has already begun to exit, so
//! Rust aborts the second exit (the task fails with `WorkerDied` and
//! SIGABRT instead of the exit code).
//!
//! ## Tasks
//!
//! A task is a free, synchronous, non-generic function whose argument and
//! return types implement `serde::Serialize` and `serde::Deserialize`.
//! Arguments may be references (`&str`, `&[T]`, `&Path`, `&T`): the referent
//! is sent and the worker lends the function its decoded copy. A task may
//! return `Result<T, E>`; that arrives as a value (so `E` must be
//! serializable too: not `std::io::Error` or `Box<dyn Error>`, which can
//! become a `String`), while a panic arrives as [`Error::Panic`].
//!
//! ## Speed
//!
//! - `apply_<fn>` on a pool with an idle worker and nothing queued talks to
//!   that worker from the calling thread: one frame each way through the
//!   shared-memory ring, a futex wake only if the other side sleeps, and a
//!   short spin first when that pays. Otherwise it queues like
//!   `apply_async_<fn>`.
//! - Many small `apply_async_<fn>` calls (and small map chunks, such as
//!   those of `chunksize(1)`) are pipelined: while every worker is
//!   busy, a worker is sent a batch of queued calls of tasks seen to take
//!   under 1 ms (at most about 2 ms of work and 64 KiB of arguments), in one
//!   write. Slower or never-seen tasks always go one at a time, and nothing is
//!   batched while another worker waits for work. If a worker dies during a
//!   batch, only the call it was running fails; the calls behind it had not
//!   started and run on its replacement. If it times out (or sends a bad
//!   reply), the calls answered meanwhile keep their results, the next one
//!   fails with [`Error::WorkerDied`] if it may have started (if the worker
//!   says it had not, it runs again too), and only the ones behind it run
//!   again: a task never runs twice.
//! - Large byte buffers: a top-level `Vec<u8>` or `serde_bytes::ByteBuf`
//!   argument or result travels as one block of bytes, and from 64 KiB on
//!   without any copy but into the ring and out of it (the buffer it is
//!   read into becomes the argument or the result, that of an
//!   `apply_async_<fn>` too when `get` is its last reader). A
//!   map item or result that is a `Vec<u8>` or `ByteBuf` goes as
//!   one block inside its chunk. A `Vec<u8>` nested in other types goes
//!   through serde element by element: use
//!   [`serde_bytes::ByteBuf`](https://docs.rs/serde_bytes) (or
//!   `#[serde(with = "serde_bytes")]`) there to send it as one block. A
//!   thread that made a large `apply_<fn>` call keeps up to two buffers of
//!   that size for the next one; a worker keeps the memory a large call
//!   freed while calls keep coming and gives it back after half a second
//!   idle.

#![warn(missing_docs)]
// Examples show `fn main` on purpose: `procpool::init()` must come first in it.
#![allow(clippy::needless_doctest_main)]

// Linux only: elsewhere, this one error instead of hundreds from inside the
// crate (every item that needs Linux is left out). Everything OS-specific
// lives in `sys`, so a port is that one module's work.
#[cfg(not(target_os = "linux"))]
compile_error!(
    "procpool supports Linux only: kernel 5.3 or later (pidfd_open) and glibc 2.34 or later \
     (posix_spawn_file_actions_addclosefrom_np); x86_64-unknown-linux-gnu is the tested target. \
     Its workers are watched through pidfds and die with their parent through \
     PR_SET_PDEATHSIG, which this target does not have."
);

// Every item below carries `#[cfg(target_os = "linux")]` (see the
// `compile_error!`). (Not through a macro: rustfmt formats only the
// modules it sees declared.)
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod __private;
#[cfg(all(target_os = "linux", test))]
mod alloc_probe;
#[cfg(target_os = "linux")]
mod buffers;
#[cfg(target_os = "linux")]
mod call;
#[cfg(target_os = "linux")]
mod callbacks;
#[cfg(target_os = "linux")]
mod cancel;
#[cfg(target_os = "linux")]
mod chunk;
#[cfg(target_os = "linux")]
mod codec;
#[cfg(target_os = "linux")]
mod error;
#[cfg(all(target_os = "linux", test))]
mod fuzz;
#[cfg(all(target_os = "linux", feature = "json"))]
mod json;
#[cfg(target_os = "linux")]
mod link;
#[cfg(target_os = "linux")]
mod map;
#[cfg(target_os = "linux")]
mod pool;
#[cfg(target_os = "linux")]
mod process;
#[cfg(all(target_os = "linux", feature = "redis"))]
mod redis;
#[cfg(target_os = "linux")]
mod registry;
#[cfg(target_os = "linux")]
mod result;
#[cfg(target_os = "linux")]
mod shm;
#[cfg(target_os = "linux")]
mod sys;
#[cfg(target_os = "linux")]
mod task;
#[cfg(target_os = "linux")]
mod unwind;
#[cfg(target_os = "linux")]
mod wire;
#[cfg(target_os = "linux")]
mod worker;

#[cfg(target_os = "linux")]
pub use cancel::CancelOutcome;
#[cfg(target_os = "linux")]
pub use error::{BrokerReason, Error, ErrorKind, ExitInfo};
#[cfg(all(target_os = "linux", feature = "json"))]
pub use json::Json;
#[cfg(target_os = "linux")]
pub use map::imap::{Imap, ImapUnordered};
#[cfg(target_os = "linux")]
pub use map::{Lends, MapOptions};
#[cfg(target_os = "linux")]
pub use pool::{Pool, PoolBuilder};
#[cfg(all(target_os = "linux", feature = "redis"))]
pub use redis::{Node, NodeBuilder};
#[cfg(target_os = "linux")]
pub use registry::{registry, TaskEntry};
#[cfg(target_os = "linux")]
pub use result::{AsyncResult, CancelHandle};

/// Registers a function as a task and generates, next to it, the functions
/// that run it in a pool's worker processes.
///
/// For `fn f(a: A, b: &B) -> R` (same visibility as `f`):
///
/// | generated | Python | returns |
/// |---|---|---|
/// | `apply_f(&pool, a, &b)` | `pool.apply(f, (a, b))` | `Result<R, Error>` |
/// | `apply_async_f(&pool, a, &b)` | `pool.apply_async(f, (a, b))` | [`AsyncResult<R>`] |
/// | `map_f(&pool, items)` | `pool.map(f, items)` / `pool.starmap(f, items)` | `Result<Vec<R>, Error>` |
/// | `map_async_f(&pool, items)` | `pool.map_async(f, items)` | `AsyncResult<Vec<R>>` |
/// | `starmap_f(&pool, items)`, `starmap_async_f(&pool, items)` | `pool.starmap(f, items)`, `pool.starmap_async(f, items)` | as `map_f`, `map_async_f`; each item a tuple of arguments, `(a,)` for one |
/// | `imap_f(&pool, items)` | `pool.imap(f, items)` | [`Imap`]: `Result<R, Error>` per item, in input order |
/// | `imap_unordered_f(&pool, items)` | `pool.imap_unordered(f, items)` | [`ImapUnordered`]: in completion order |
/// | `map_f_with(&pool, items, options)`, `map_async_f_with`, `starmap_f_with`, `starmap_async_f_with`, `imap_f_with`, `imap_unordered_f_with` | `chunksize=` | the same, with [`MapOptions`] |
///
/// - **Items.** `items` is any `IntoIterator`. For a one-argument task each
///   item is that argument; for several, a tuple of them (Python's
///   `starmap`); for none, `()`. A reference argument takes the value it
///   points to, owned or borrowed: `String`, `&String` or `&str` for `&str`
///   (any `impl AsRef<str>`), `Vec<T>` or `&Vec<T>` for `&[T]`, `PathBuf` or
///   `&PathBuf` for `&Path`, `T` or `&T` for `&T` (any `impl Borrow<T>`).
///   So `map_f` above takes items `(A, B)` or `(A, &B)`, and a task taking
///   `&Path` maps over `files.iter()` of a `Vec<PathBuf>`.
/// - **Chunks.** Items travel in chunks, one frame each, and the worker runs
///   a whole chunk in one go; see [`MapOptions`] for the default chunk size
///   (Python's rule) and how to set it.
/// - **Errors.** A failing item fails alone (a panic in the function or in
///   its argument's `Deserialize` or result's `Serialize`, an argument that
///   does not decode): `imap_f` yields its [`Error::Panic`] (or
///   [`Error::Decode`], [`Error::Encode`]) in its place and the other
///   items' results around it,
///   while `map_f` / `map_async_f` return the first error in input order. A
///   worker that dies running a chunk fails that chunk's items with
///   [`Error::WorkerDied`].
/// - **Laziness.** `imap_f` and `imap_unordered_f` pull their input a chunk
///   at a time, with at most two chunks per worker in flight, so the input
///   may be endless. `map_f` and `map_async_f` take the whole input at once,
///   like Python.
/// - **async.** Every [`AsyncResult`] is a `Future`: `.await` it on any
///   executor (see [`AsyncResult`]'s `Future` implementation for what
///   blocks and what to use instead).
/// - **By name.** The task is registered under a stable name, so it can also
///   be chosen at run time: [`Pool::apply_by_name`].
///
/// ```
/// use procpool::{pool_task, MapOptions, Pool};
///
/// /// Counts the words equal to `needle`.
/// #[pool_task]
/// pub fn count(words: &[String], needle: &str) -> usize {
///     words.iter().filter(|w| *w == needle).count()
/// }
///
/// #[pool_task(name = "parse-port")]
/// fn parse_port(text: String) -> Result<u16, String> {
///     text.parse().map_err(|e| format!("{text:?}: {e}"))
/// }
///
/// #[pool_task]
/// fn square(x: u64) -> u64 { x * x }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(2)?;
///     let words = vec!["a".to_string(), "b".to_string(), "a".to_string()];
///     assert_eq!(apply_count(&pool, &words, "a")?, 2);
///     assert_eq!(apply_parse_port(&pool, "80".into())?, Ok(80));
///     assert!(apply_parse_port(&pool, "x".into())?.is_err());
///     assert_eq!(count(&words, "b"), 1); // still an ordinary function
///
///     assert_eq!(map_square(&pool, 0..5)?, [0, 1, 4, 9, 16]);
///     let pairs = vec![(words.clone(), "a".to_string()), (words, "c".to_string())];
///     assert_eq!(map_count(&pool, pairs)?, [2, 0]); // starmap
///     let r = map_async_square_with(&pool, 0..100, MapOptions::new().chunksize(10));
///     assert_eq!(r.get()?.len(), 100);
///     for (x, sq) in imap_square(&pool, 0..).take(3).enumerate() {
///         assert_eq!(sq?, (x * x) as u64);
///     }
///     let total: u64 = imap_unordered_square(&pool, 1..=3).map(|r| r.unwrap()).sum();
///     assert_eq!(total, 14);
///     Ok(())
/// }
/// ```
///
/// The task's registered name is `module_path!()::fn_name` unless
/// `name = "..."` chooses one. `crate = path` names the procpool crate when
/// it is renamed in `Cargo.toml`.
///
/// **Generated names can clash.** The functions above are named by
/// putting `apply_`, `apply_async_`, `map_`, `map_async_`, `starmap_`,
/// `starmap_async_`, `imap_` or `imap_unordered_` before the task's name
/// (and `_with` after it), in the task's module. So two tasks of one module
/// whose names differ by such a piece make the same name: `f` and `async_f`
/// both make `apply_async_f` (and `map_async_f`, `starmap_async_f`, their
/// `_with` forms), `f` and `unordered_f` both
/// make `imap_unordered_f`, `f` and `f_with` both make `map_f_with`. rustc
/// then reports "the name `apply_async_f` is defined multiple times" at the
/// two tasks' `#[pool_task]`. Rename one of them, or move it to another
/// module (`name = "..."` keeps its registered name if calls by name use it).
pub use procpool_macros::pool_task;

/// Marks `fn main` so that it starts with [`init()`].
///
/// With procpool renamed in `Cargo.toml` (`pp = { package = "procpool", .. }`),
/// name it as for [`pool_task`]: `#[pp::main(crate = pp)]`.
///
/// With an async runtime's attribute it may go above or below that one:
/// either way `init()` runs before the runtime starts its threads (a
/// worker serves without starting a runtime, and the fork server can fork).
/// Above it, `main` becomes a plain `fn` that calls `init()` and then the
/// `async fn main`, declared inside it under the runtime's attribute:
///
/// ```ignore
/// #[procpool::main]
/// #[tokio::main]
/// async fn main() { /* ... */ }
/// ```
///
/// ```
/// #[procpool::pool_task]
/// fn one() -> u8 { 1 }
///
/// #[procpool::main]
/// fn main() {
///     let pool = procpool::Pool::new(1).unwrap();
///     assert_eq!(apply_one(&pool).unwrap(), 1);
/// }
/// ```
pub use procpool_macros::main;

/// Makes this process able to use pools, and turns it into a worker if it
/// was started as one. Call it first in `main`.
///
/// In the program the user started, it launches the fork server (see the
/// crate docs; it does not wait for it) and returns. In a worker it serves
/// tasks and exits the process when the pool lets it go, never returning:
/// whatever `main` does after `init()` is the parent's work alone.
///
/// Started with `PROCPOOL_NODE=redis://…` in its environment (feature
/// `redis`), the program serves as a node of a distributed pool instead:
/// `init()` starts a local pool of `PROCPOOL_PROCESSES` workers (default:
/// the available parallelism), serves the queue `PROCPOOL_QUEUE` (default
/// `procpool`) and never returns; if it cannot start (Redis unreachable),
/// it prints why on stderr and exits with code 1. On SIGTERM or SIGINT it
/// stops gracefully (it claims no more calls, finishes and reports those
/// it holds, leaves, and exits 0); a second one meanwhile ends it at once,
/// as a kill does. See `procpool::Node` for the same in code. A program built without the feature exits with code 2 and a
/// message instead of ignoring `PROCPOOL_NODE`.
///
/// ```
/// fn main() {
///     procpool::init();
///     // ... create pools and run tasks ...
/// }
/// ```
#[cfg(target_os = "linux")]
pub fn init() {
    process::mark_initialized(false);
    match process::take_fork_server() {
        // Returns only in a worker it forked.
        Ok(Some(server)) => worker::serve_forks(server, worker::Exit::Process),
        Ok(None) => {}
        Err(why) => process::refuse_start(&why),
    }
    match process::take_worker_channel() {
        Ok(Some(channel)) => worker::run(channel, worker::Exit::Process),
        Ok(None) => {}
        Err(why) => process::refuse_start(&why),
    }
    #[cfg(not(feature = "redis"))]
    if process::is_node_env() {
        eprintln!(
            "procpool: PROCPOOL_NODE is set, but this program was built without procpool's \
             `redis` feature, so it cannot serve as a node"
        );
        std::process::exit(2);
    }
    // The count of forks that tells a pool used in a copy made by `fork`
    // (see `sys::fork_generation`) starts here, while the program has one
    // thread: registered later, on a pool's first use, a `fork` by another
    // thread at that moment could leave the copy's registration half done.
    sys::fork_generation();
    // Before a node starts its threads: the fork server is launched only
    // from the main thread (it dies with the thread that started it).
    process::launch_fork_server();
    #[cfg(feature = "redis")]
    if let Some(env) = process::take_node_env() {
        redis::serve_from_env(env)
    }
}

/// Which slot of its pool runs the current task: `Some(0)` to
/// `Some(processes - 1)` in a worker, `None` in the program that made the
/// pool (like rayon's `current_thread_index()`). A worker that replaces
/// another (after a crash, a timeout, a cancel or `max_tasks_per_child`)
/// keeps its slot's number, so at any time the running workers have
/// distinct numbers: handy to pick a per-worker resource (a GPU, a port, a
/// scratch directory). The pool's initializer sees it too.
///
/// ```
/// use procpool::{pool_task, Pool};
///
/// #[pool_task]
/// fn which() -> Option<usize> { procpool::worker_index() }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = Pool::new(2)?;
///     assert!(matches!(apply_which(&pool)?, Some(0 | 1)));
///     assert_eq!(procpool::worker_index(), None); // the caller is no worker
///     Ok(())
/// }
/// ```
#[cfg(target_os = "linux")]
pub fn worker_index() -> Option<usize> {
    process::worker_index()
}

/// Whether this process is a pool's worker (its code runs tasks), as
/// opposed to the program that made the pool.
///
/// ```
/// #[procpool::pool_task]
/// fn in_worker() -> bool { procpool::is_worker() }
///
/// fn main() -> Result<(), procpool::Error> {
///     procpool::init();
///     let pool = procpool::Pool::new(1)?;
///     assert!(apply_in_worker(&pool)?);
///     assert!(!procpool::is_worker());
///     Ok(())
/// }
/// ```
#[cfg(target_os = "linux")]
pub fn is_worker() -> bool {
    process::worker_index().is_some()
}

/// `init()` for test binaries, run by [`enable_test_support!`] before the
/// harness starts.
///
/// A worker cannot serve from here: constructors run in no guaranteed order,
/// and the `inventory` registrations of tasks may not have run yet. So a
/// worker (or the fork server) is started with arguments that make the
/// harness run the entry test [`enable_test_support!`] adds, alone, and
/// serves from there ([`__serve_test_worker`]); should the harness not run
/// it, from an exit hook once the harness has returned (where a task's
/// `std::process::exit` aborts the worker instead of exiting with its code).
#[doc(hidden)]
#[cfg(target_os = "linux")]
pub fn __init_test_harness() {
    // Once per process: a crate with the macro in two modules has two of
    // these constructors. A second one found the variables the first had
    // taken gone and launched a fork server, from the fork server too
    // (which launched the next, and so on).
    if process::is_initialized() {
        return;
    }
    process::mark_initialized(true);
    match process::take_fork_server() {
        Ok(Some(server)) => return worker::serve_at_exit(worker::Deferred::Forks(server)),
        Ok(None) => {}
        Err(why) => process::refuse_start(&why),
    }
    match process::take_worker_channel() {
        Ok(Some(channel)) => worker::serve_at_exit(worker::Deferred::Channel(channel)),
        Ok(None) => process::launch_fork_server(),
        Err(why) => process::refuse_start(&why),
    }
}

/// The entry test [`enable_test_support!`] adds: in a worker process (or
/// the fork server) of a test binary, the harness runs it alone and the
/// worker serves from it; anywhere else it returns at once.
#[doc(hidden)]
#[cfg(target_os = "linux")]
pub fn __serve_test_worker() {
    worker::serve_from_test();
}

/// Lets a test binary's worker processes enter worker mode.
///
/// The test harness owns a test binary's `main`, so this runs [`init()`]
/// before it starts instead. Use it once per test crate (at the top of each
/// file in `tests/`; for unit tests at the crate root or in the
/// `#[cfg(test)] mod tests`, any module will do; a second use in another
/// module does nothing). It also adds an
/// ignored test, `__procpool_worker_entry`: the binary's worker processes
/// run the harness with arguments that select it alone, and serve from it
/// (so a task runs as in a program with its own `main`: its
/// `std::process::exit(n)` ends its worker with code `n`).
///
/// ```ignore
/// procpool::enable_test_support!();
///
/// #[procpool::pool_task]
/// fn double(x: i32) -> i32 { x * 2 }
///
/// #[test]
/// fn doubles_in_a_worker() {
///     let pool = procpool::Pool::new(1).unwrap();
///     assert_eq!(apply_double(&pool, 21).unwrap(), 42);
/// }
/// ```
#[macro_export]
macro_rules! enable_test_support {
    () => {
        // SAFETY: this runs before `main`, in no guaranteed order with other
        // constructors. It is sound because `__init_test_harness` only stores
        // atomics, reads the program's arguments (std captures them in an
        // init_array entry of higher priority, which runs first), reads and
        // removes a few environment variables (libc's environ is ready before
        // constructors run, and no other thread exists yet to race the
        // removal), and inspects one descriptor (fstat, fcntl, getsockopt).
        // In a worker it maps its channel and, like the fork server, stores
        // what it will serve in a static behind its own uncontended mutex,
        // points stdout at /dev/null (dup, open, dup2) until it serves, and
        // registers an atexit hook; a process started as a worker (or the
        // fork server) whose descriptor is wrong writes one line to stderr
        // and `_exit`s; in the test binary itself it starts the fork server
        // with posix_spawn (a process, not a thread). It
        // spawns no thread, panics on no path, and reads no other crate's
        // statics (the task registry is read later, when it serves), so the
        // constructor order cannot matter.
        $crate::__private::ctor::declarative::ctor! {
            #[ctor(unsafe, anonymous)]
            fn __procpool_enter_worker_mode() {
                $crate::__init_test_harness();
            }
        }

        // Where a worker process of this test binary serves: its harness
        // runs this test alone, on a test thread (see `__init_test_harness`).
        #[test]
        #[ignore = "procpool's worker processes enter here; nothing to test"]
        fn __procpool_worker_entry() {
            $crate::__serve_test_worker();
        }
    };
}

/// The README's examples, compiled and run as doc tests (its distributed
/// example compiles in every build: `PoolBuilder::redis` exists without the
/// `redis` feature, whose absence `build` reports).
#[cfg(all(doctest, target_os = "linux"))]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;
