//! A real program serving as a node of a distributed pool, for the tests in
//! `tests/redis_*.rs` (nodes must be separate processes of a real binary).
//!
//! - With `PROCPOOL_NODE=redis://… [PROCPOOL_QUEUE=q] [PROCPOOL_PROCESSES=n]`
//!   in its environment, `procpool::init()` serves as a node and never
//!   returns (the environment contract of the README); with
//!   `PROCPOOL_HELPER_LOG=FILE`, procpool's log records go to FILE, as with
//!   `log` below.
//! - `node URL [processes P] [prefetch N] [max-frame B] [queue Q] [log FILE]
//!   [init-unless FILE] [task-timeout-ms MS] [max-tasks N] [quick 1]
//!   [keep-outcomes-ms MS]`: the
//!   same through `procpool::Node` in code (with `init-unless`, its
//!   workers' initializer is `t/init_unless FILE`; `task-timeout-ms` and
//!   `max-tasks` are its local pool's `task_timeout` and
//!   `max_tasks_per_child`; with `quick`, it counts every call that
//!   completes as quick, however slow the machine, and so claims ahead
//!   once calls completed; `keep-outcomes-ms`: how long it keeps the
//!   outcomes it settled, within their byte bound); prints `ready <name>`,
//!   serves until its standard input closes, then stops gracefully and
//!   prints `stopped`. With `log`, procpool's log records (debug and up)
//!   are appended to FILE, one a line: `LEVEL message`.
//! - `caller URL TASK-FILE MS`: a caller (for the partition test, where it
//!   runs inside a network namespace): submits one `t/mark` call of `MS`
//!   milliseconds, prints `submitted`, then the outcome (`ok <pid>` or
//!   `err <Error:?>`), then serves `square` calls: each line `N` read from
//!   its standard input is answered `square <N*N>` (or `err …`).

use std::io::{BufRead, Write};

use procpool::{Node, Pool};

#[path = "redis_tasks.rs"]
mod tasks;

fn main() {
    // A node from the environment has no `log` option: its log records go
    // to the file this names, as with `log`.
    if let Some(path) = std::env::var_os("PROCPOOL_HELPER_LOG") {
        log_to(&path.to_string_lossy());
    }
    procpool::init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("node") => node(&args[1], &args[2..]),
        Some("caller") => caller(&args[1], &args[2], args[3].parse().expect("ms")),
        _ => {
            eprintln!(
                "usage: procpool-redis-helper node URL [OPTION VALUE]... | caller URL FILE MS"
            );
            std::process::exit(2);
        }
    }
}

fn node(url: &str, options: &[String]) {
    let mut builder = Node::builder().redis(url);
    let mut pool = Pool::builder();
    for pair in options.chunks(2) {
        let value = &pair[1];
        let n = || value.parse::<usize>().expect("a number");
        match pair[0].as_str() {
            "processes" => builder = builder.processes(n()),
            "prefetch" => builder = builder.prefetch(n()),
            "queue" => builder = builder.queue(value),
            "max-frame" => pool = pool.max_frame_bytes(n()),
            "log" => log_to(value),
            "init-unless" => pool = pool.initializer("t/init_unless", &(value.clone(),)),
            "task-timeout-ms" => {
                pool = pool.task_timeout(std::time::Duration::from_millis(n() as u64))
            }
            "max-tasks" => pool = pool.max_tasks_per_child(n()),
            // (Any value: every call that completes counts as quick.)
            "quick" => procpool::__private::treat_node_calls_as_quick(),
            "keep-outcomes-ms" => procpool::__private::keep_node_outcomes_for(
                std::time::Duration::from_millis(n() as u64),
            ),
            other => panic!("unknown option {other}"),
        }
    }
    let node = match builder.pool(pool).start() {
        Ok(node) => node,
        Err(e) => {
            println!("error {e}");
            std::process::exit(1);
        }
    };
    println!("ready {}", node.name());
    std::io::stdout().flush().expect("stdout");
    let mut line = String::new();
    while std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
        line.clear();
    }
    node.stop();
    node.wait();
    println!("stopped");
}

/// Appends procpool's log records to a file (see `log_to`).
struct FileLogger(std::sync::Mutex<std::fs::File>);

impl log::Log for FileLogger {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("procpool")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            let mut file = self.0.lock().unwrap_or_else(|e| e.into_inner());
            let _ = writeln!(file, "{} {}", record.level(), record.args());
        }
    }

    fn flush(&self) {}
}

/// Logs procpool's records, debug and up, to the file at `path`.
fn log_to(path: &str) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the log file");
    let logger = Box::leak(Box::new(FileLogger(std::sync::Mutex::new(file))));
    log::set_logger(logger).expect("no other logger");
    log::set_max_level(log::LevelFilter::Debug);
}

fn caller(url: &str, file: &str, ms: u64) {
    let pool = Pool::builder().redis(url).build().expect("build");
    let call = tasks::apply_async_mark(&pool, file.to_string(), "partitioned".into(), ms);
    println!("submitted");
    std::io::stdout().flush().expect("stdout");
    match call.get() {
        Ok(pid) => println!("ok {pid}"),
        Err(e) => println!("err {e:?}"),
    }
    std::io::stdout().flush().expect("stdout");
    for line in std::io::stdin().lock().lines() {
        let Ok(x) = line.unwrap_or_default().trim().parse::<u64>() else {
            break;
        };
        match tasks::apply_square(&pool, x) {
            Ok(y) => println!("square {y}"),
            Err(e) => println!("err {e:?}"),
        }
        std::io::stdout().flush().expect("stdout");
    }
}
