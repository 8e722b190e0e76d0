//! The tasks of the distributed tests, shared by the node helper
//! (`redis_helper.rs`) and the test binaries: a caller and a node meet only
//! if they register the same tasks (names and signatures), so each test
//! binary includes exactly this module and registers nothing else.

use std::io::Write;
use std::time::Duration;

use procpool::pool_task;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[pool_task(name = "t/square")]
pub fn square(x: u64) -> u64 {
    x * x
}

#[pool_task(name = "t/echo")]
pub fn echo(bytes: Vec<u8>) -> Vec<u8> {
    bytes
}

#[pool_task(name = "t/boom")]
pub fn boom(message: String) -> u64 {
    panic!("{message}")
}

/// Appends `start <tag> <pid>` to `path`, sleeps `ms`, appends `end <tag>
/// <pid>`, returns the worker's pid: tests count starts and ends per call.
#[pool_task(name = "t/mark")]
pub fn mark(path: String, tag: String, ms: u64) -> u32 {
    let pid = std::process::id();
    append(&path, &format!("start {tag} {pid}\n"));
    std::thread::sleep(Duration::from_millis(ms));
    append(&path, &format!("end {tag} {pid}\n"));
    pid
}

/// As `t/mark`, but holds its worker until the file `gate` exists (a
/// minute at most) instead of sleeping: as long as a test needs, however
/// slow the machine.
#[pool_task(name = "t/hold")]
pub fn hold(path: String, tag: String, gate: String) -> u32 {
    let pid = std::process::id();
    append(&path, &format!("start {tag} {pid}\n"));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !std::path::Path::new(&gate).exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    append(&path, &format!("end {tag} {pid}\n"));
    pid
}

/// `units` × 10,000 dependent multiply-adds: a fixed amount of CPU work.
#[pool_task(name = "t/spin")]
pub fn spin(units: u64) -> u64 {
    let mut x = 0u64;
    for _ in 0..units {
        for i in 0..10_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
    }
    x
}

/// `len` bytes of 7: a result far larger than its arguments.
#[pool_task(name = "t/fill")]
pub fn fill(len: u64) -> Vec<u8> {
    vec![7; len as usize]
}

/// The worker's pid and the node's (its parent's) pid.
#[pool_task(name = "t/pids")]
pub fn pids() -> (u32, u32) {
    (std::process::id(), std::os::unix::process::parent_id())
}

/// Half of an even `x`; an odd one is an error, returned as a value.
#[pool_task(name = "t/halve")]
pub fn halve(x: u64) -> Result<u64, String> {
    if x.is_multiple_of(2) {
        Ok(x / 2)
    } else {
        Err(format!("{x} is odd"))
    }
}

/// `x + 1`, but panics at 13: one failing item among good ones.
#[pool_task(name = "t/fragile")]
pub fn fragile(x: u64) -> u64 {
    if x == 13 {
        panic!("item {x} fails");
    }
    x + 1
}

/// `x`, but at 13 its worker exits with code 3 (as a task may).
#[pool_task(name = "t/exit13")]
pub fn exit13(x: u64) -> u64 {
    if x == 13 {
        std::process::exit(3);
    }
    x
}

/// Panics with a message of `len` bytes.
#[pool_task(name = "t/shout")]
pub fn shout(len: u64) -> u64 {
    panic!("{}", "x".repeat(len as usize))
}

/// An initializer that fails once the file `path` exists.
#[pool_task(name = "t/init_unless")]
pub fn init_unless(path: String) -> Result<(), String> {
    if std::path::Path::new(&path).exists() {
        return Err(format!("{path} exists"));
    }
    Ok(())
}

/// The worker's slot and whether it knows it is a worker.
#[pool_task(name = "t/whereami")]
pub fn whereami() -> (Option<usize>, bool) {
    (procpool::worker_index(), procpool::is_worker())
}

/// A number whose `Deserialize` refuses 13.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Picky(pub u64);

impl<'de> Deserialize<'de> for Picky {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Picky, D::Error> {
        let v = u64::deserialize(d)?;
        if v == 13 {
            return Err(serde::de::Error::custom("13 is refused"));
        }
        Ok(Picky(v))
    }
}

/// Takes a `Picky`: the worker cannot decode 13.
#[pool_task(name = "t/picky")]
pub fn picky(x: Picky) -> u64 {
    x.0
}

/// Returns a `Picky`: the caller cannot decode 13.
#[pool_task(name = "t/picky_back")]
pub fn picky_back(x: u64) -> Picky {
    Picky(x)
}

/// A number whose `Serialize` refuses 13.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Unlucky(pub u64);

impl Serialize for Unlucky {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.0 == 13 {
            return Err(serde::ser::Error::custom("13 is unlucky"));
        }
        s.serialize_u64(self.0)
    }
}

/// Returns an `Unlucky`: the worker cannot encode 13.
#[pool_task(name = "t/unlucky")]
pub fn unlucky(x: u64) -> Unlucky {
    Unlucky(x)
}

/// A linked list: two nesting levels a node (the newtype, the `Option`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Nest(pub Option<Box<Nest>>);

impl Nest {
    pub fn of(nodes: u64) -> Nest {
        let mut n = Nest(None);
        for _ in 1..nodes {
            n = Nest(Some(Box::new(n)));
        }
        n
    }

    pub fn nodes(&self) -> u64 {
        let (mut n, mut at) = (1, self);
        while let Some(next) = &at.0 {
            n += 1;
            at = next;
        }
        n
    }
}

/// A list of `nodes` nodes.
#[pool_task(name = "t/nest")]
pub fn nest(nodes: u64) -> Nest {
    Nest::of(nodes)
}

/// How many nodes a list has.
#[pool_task(name = "t/nest_len")]
pub fn nest_len(n: Nest) -> u64 {
    n.nodes()
}

fn append(path: &str, line: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open the mark file");
    f.write_all(line.as_bytes()).expect("write the mark file");
}
