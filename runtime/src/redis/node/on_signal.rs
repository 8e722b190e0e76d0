//! A node from the environment (`PROCPOOL_NODE`) and its stop signals,
//! as Celery's workers take them: the first SIGTERM or SIGINT is a warm
//! shutdown ([`Node::stop`]: it claims nothing more, finishes and reports
//! what it holds, then leaves, and the process exits 0, or 1 if it gave up
//! on an unreachable Redis meanwhile and left its calls to the cluster); a second one
//! during that is a cold shutdown: the process ends at once by that
//! signal, its workers with it, and what it still held is settled as for
//! a killed node (`NodeLost`, or run again with `redeliver`).
//!
//! A `Node` started in code does nothing on these signals: the program
//! owns its signals (it can call `stop` from its own handler).

use std::convert::Infallible;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{mpsc, Arc};

use super::{Node, NodeBuilder};
use crate::error::Error;
use crate::sys;

/// Phases of the node, as the signal thread sees them.
const STARTING: u8 = 0;
const SERVING: u8 = 1;
const STOPPING: u8 = 2;

/// [`NodeBuilder::serve`], stopping gracefully on the first SIGTERM or
/// SIGINT and at once on a second (see the module's documentation).
/// Returns only if the node could not start.
pub(crate) fn serve(builder: NodeBuilder) -> Result<Infallible, Error> {
    let signals = match sys::catch_stop_signals() {
        Ok(signals) if !signals.caught().is_empty() => signals,
        Ok(_) => return builder.serve(),
        Err(e) => {
            log::warn!(
                target: "procpool",
                "the node cannot catch SIGTERM and SIGINT ({e}): they will end it at once"
            );
            return builder.serve();
        }
    };
    let caught = signals.caught().to_vec();
    let phase = Arc::new(AtomicU8::new(STARTING));
    let (tx, rx) = mpsc::channel::<i32>();
    let seen = phase.clone();
    let uncatch = caught.clone();
    let watcher = std::thread::Builder::new()
        .name("procpool-node-signals".into())
        .spawn(move || loop {
            let sig = match signals.wait() {
                Ok(sig) => sig,
                Err(e) => {
                    log::warn!(
                        target: "procpool",
                        "the node stops watching SIGTERM and SIGINT ({e}): they will end it at once"
                    );
                    sys::uncatch_stop_signals(&uncatch);
                    return;
                }
            };
            let name = name_of(sig);
            match seen.compare_exchange(SERVING, STOPPING, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    let _ = tx.send(sig);
                }
                Err(STARTING) => {
                    log::info!(target: "procpool", "{name} while the node was starting: it exits");
                    sys::die_of(sig)
                }
                Err(_) => {
                    log::warn!(
                        target: "procpool",
                        "{name} again while the node was stopping: it stops at once; the calls \
                         it still held are left to the cluster, as a killed node's are \
                         (NodeLost, or run again with redeliver)"
                    );
                    sys::die_of(sig)
                }
            }
        });
    if let Err(e) = watcher {
        log::warn!(
            target: "procpool",
            "the node cannot watch SIGTERM and SIGINT ({e}): they will end it at once"
        );
        // Unread, a caught signal would do nothing: the signals take their
        // default action again (they end the node at once).
        sys::uncatch_stop_signals(&caught);
        return builder.serve();
    }
    let node = builder.start()?;
    phase.store(SERVING, Ordering::SeqCst);
    match rx.recv() {
        Ok(sig) => stop_on(node, sig),
        // The watcher ended without a signal (its pipe failed): serve on,
        // as `serve` does.
        Err(_) => loop {
            std::thread::park();
        },
    }
}

/// The warm shutdown on signal `sig`: stops the node, waits for it, exits 0.
fn stop_on(node: Node, sig: i32) -> ! {
    let signal = name_of(sig);
    let shared = node.shared.clone();
    let name = node.name();
    let held = shared.lock().claimed.len();
    log::info!(
        target: "procpool",
        "node {name} got {signal}: it claims no more calls, finishes those it holds ({held}) \
         and reports them, then leaves (a second SIGTERM or SIGINT stops it at once)"
    );
    node.stop();
    node.wait();
    if shared.lock().abandoned {
        log::warn!(
            target: "procpool",
            "node {name} stopped on {signal} without reaching Redis: the calls it still held \
             are left to the cluster (NodeLost, or run again with redeliver)"
        );
        std::process::exit(1)
    } else {
        log::info!(
            target: "procpool",
            "node {name} stopped on {signal}: it finished and reported every call it held, \
             and left; exiting"
        );
    }
    std::process::exit(0)
}

fn name_of(sig: i32) -> String {
    sys::signal_name(sig).map_or_else(|| format!("signal {sig}"), String::from)
}
