//! A redis-server of the benchmark's own (random loopback port, temporary
//! directory, no persistence: the rows measure procpool and the floor, not
//! the disk), and a look inside it.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub url: String,
    child: Child,
    dir: PathBuf,
}

impl Server {
    pub fn start() -> Result<Server, String> {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let dir = std::env::temp_dir().join(format!(
            "procpool-bench-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .args(["--appendonly", "no", "--latency-tracking", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start redis-server (install redis-server): {e}"))?;
        let server = Server {
            url: format!("redis://127.0.0.1:{port}/0"),
            child,
            dir,
        };
        let started = Instant::now();
        while server.connection().is_err() {
            if started.elapsed() > Duration::from_secs(10) {
                return Err("redis-server did not answer within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub fn connection(&self) -> redis::RedisResult<redis::Connection> {
        redis::Client::open(self.url.as_str())?.get_connection()
    }

    /// `INFO memory`'s used_memory.
    pub fn used_memory(&self) -> Result<u64, String> {
        let info: String = redis::cmd("INFO")
            .arg("memory")
            .query(&mut self.connection().map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| "no used_memory in INFO".to_string())
    }

    /// Every key matching `pattern` with its `MEMORY USAGE` (exact), sorted
    /// by name.
    pub fn keys(&self, pattern: &str) -> Result<Vec<(String, u64)>, String> {
        let mut con = self.connection().map_err(|e| e.to_string())?;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg(pattern)
            .query(&mut con)
            .map_err(|e| e.to_string())?;
        keys.sort();
        keys.into_iter()
            .map(|k| {
                let bytes: Option<u64> = redis::cmd("MEMORY")
                    .arg("USAGE")
                    .arg(&k)
                    .arg("SAMPLES")
                    .arg(0)
                    .query(&mut con)
                    .map_err(|e| e.to_string())?;
                Ok((k, bytes.unwrap_or(0)))
            })
            .collect()
    }

    /// Whether a node of process `pid` is registered (any build).
    pub fn has_node(&self, pid: u32) -> bool {
        let Ok(mut con) = self.connection() else {
            return false;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("pp:*:members")
            .query(&mut con)
            .unwrap_or_default();
        keys.iter()
            .flat_map(|k| {
                redis::cmd("HGETALL")
                    .arg(k)
                    .query::<Vec<(String, String)>>(&mut con)
                    .unwrap_or_default()
            })
            .any(|(k, v)| v == "node" && k.ends_with(&format!(":{pid}")))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A node: this benchmark's binary started with `PROCPOOL_NODE` (so
/// `procpool::init()` serves), killed when dropped.
pub struct NodeProc(Child);

impl NodeProc {
    pub fn start(server: &Server, processes: usize, queue: &str) -> Result<NodeProc, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .env("PROCPOOL_NODE", &server.url)
            .env("PROCPOOL_QUEUE", queue)
            .env("PROCPOOL_PROCESSES", processes.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        let node = NodeProc(child);
        let started = Instant::now();
        while !server.has_node(node.0.id()) {
            if started.elapsed() > Duration::from_secs(20) {
                return Err("a node did not register within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(node)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
