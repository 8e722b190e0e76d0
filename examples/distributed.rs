//! More than one machine: the same `#[pool_task]` functions, run by nodes
//! that serve a Redis queue (feature `redis`).
//!
//! ```text
//! cargo run --release --features redis --example distributed
//! ```
//! runs the whole demo on this machine: it starts a redis-server of its
//! own (from PATH), two nodes (this program, re-executed with
//! `PROCPOOL_NODE` set), maps over both, then SIGKILLs one node while it
//! runs slow calls and prints the `NodeLost` its calls fail with.
//!
//! ```text
//! cargo run --release --features redis --example distributed -- redis://host:6379/0
//! ```
//! is the caller alone, against your Redis and the nodes you started
//! (`PROCPOOL_NODE=redis://host:6379/0 PROCPOOL_PROCESSES=2
//! target/release/examples/distributed`, on any machine): kill one while
//! the slow calls run to see the same.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use procpool::{pool_task, Error, Pool};

/// Where a call ran: the node (the worker's parent) and the worker.
#[pool_task]
fn where_am_i(x: u64) -> (u32, u64) {
    (std::os::unix::process::parent_id(), x * x)
}

/// Sleeps `ms`, then says which node ran it.
#[pool_task]
fn slow(ms: u64) -> u32 {
    std::thread::sleep(Duration::from_millis(ms));
    std::os::unix::process::parent_id()
}

fn main() -> Result<(), Error> {
    procpool::init(); // with PROCPOOL_NODE set, this process is a node: never returns
    let given = std::env::args().nth(1);
    let own = match &given {
        Some(_) => None,
        None => Some(Local::start()),
    };
    let url = given.unwrap_or_else(|| own.as_ref().unwrap().url.clone());

    let pool = Pool::builder().redis(&url).build()?;
    let started = Instant::now();
    while pool.processes() < 2 && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("{} node processes serve {url}", pool.processes());

    // The call sites are those of a local pool.
    assert_eq!(apply_where_am_i(&pool, 7)?.1, 49);
    let mut per_node: BTreeMap<u32, usize> = BTreeMap::new();
    for (node, _) in map_where_am_i(&pool, 0..1000)? {
        *per_node.entry(node).or_default() += 1;
    }
    println!("map of 1000 items, by node pid: {per_node:?}");

    // Slow calls; one node dies under them.
    let calls: Vec<_> = (0..4).map(|_| apply_async_slow(&pool, 4000)).collect();
    std::thread::sleep(Duration::from_millis(1000));
    match &own {
        Some(local) => local.kill_first_node(),
        None => println!("four calls of 4 s run: kill -9 a node now to see NodeLost"),
    }
    let killed = Instant::now();
    for call in calls {
        match call.get() {
            Ok(node) => println!("ok: ran on node {node}"),
            Err(e @ Error::NodeLost { .. }) => {
                println!("{:.1?} after the kill: {e}", killed.elapsed())
            }
            Err(e) => return Err(e),
        }
    }
    println!("and the pool carries on: {:?}", apply_where_am_i(&pool, 3)?);
    Ok(())
}

/// A redis-server and two nodes of our own, stopped when dropped.
struct Local {
    url: String,
    redis: Child,
    nodes: Vec<Child>,
    dir: std::path::PathBuf,
}

impl Local {
    fn start() -> Local {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("procpool-distributed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let redis = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server on PATH (apt-get install redis-server)");
        let url = format!("redis://127.0.0.1:{port}/0");
        let up = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                up.elapsed() < Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let exe = std::env::current_exe().expect("this program");
        let nodes = (0..2)
            .map(|_| {
                Command::new(&exe)
                    .env("PROCPOOL_NODE", &url)
                    .env("PROCPOOL_PROCESSES", "2")
                    .spawn()
                    .expect("start a node")
            })
            .collect();
        println!("started redis-server at {url} and two nodes of 2 processes");
        Local {
            url,
            redis,
            nodes,
            dir,
        }
    }

    fn kill_first_node(&self) {
        let pid = self.nodes[0].id();
        println!("SIGKILL to node {pid}");
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
}

impl Drop for Local {
    fn drop(&mut self) {
        for child in self.nodes.iter_mut().chain([&mut self.redis]) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
