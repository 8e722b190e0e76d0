//! A node from the environment: `PROCPOOL_NODE=redis://…
//! PROCPOOL_QUEUE=q PROCPOOL_PROCESSES=8 ./prog` makes `procpool::init()`
//! serve as a node and never return (it exits on SIGTERM or SIGINT, see
//! `node::on_signal`).

use super::node::Node;
use crate::process::NodeEnv;

/// Serves as the node `env` describes; exits the process if it cannot.
pub(crate) fn serve_from_env(env: NodeEnv) -> ! {
    let mut builder = Node::builder().redis(&env.url);
    if let Some(queue) = &env.queue {
        builder = builder.queue(queue);
    }
    match env.processes {
        Some(Ok(n)) => builder = builder.processes(n),
        Some(Err(why)) => fail(&why),
        None => {}
    }
    match super::node::serve_stopping_on_signals(builder) {
        Ok(never) => match never {},
        Err(e) => fail(&e.to_string()),
    }
}

/// A node that cannot start has nobody to report to but its operator: one
/// line on stderr, and exit code 1.
fn fail(why: &str) -> ! {
    log::error!(target: "procpool", "cannot serve as a node: {why}");
    eprintln!("procpool: cannot serve as a node: {why}");
    std::process::exit(1)
}
