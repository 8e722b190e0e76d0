//! The floor of the distributed rows: a bare Streams round trip with no
//! procpool logic. The caller `XADD`s a call and blocks in `XREAD` on its
//! reply stream (one write, as procpool's `apply` does); a consumer process
//! (this binary, `--redis-floor`) `XREADGROUP`s it, `XADD`s the reply,
//! `XACK`s and `XDEL`s. No scripts, no fencing, no threads.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The argument that makes this binary a floor consumer.
pub const ARG: &str = "--redis-floor";
const STREAM: &str = "floor:calls";
const GROUP: &str = "floor";

/// In the consumer process: serves until killed.
pub fn serve(url: &str) -> ! {
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .expect("the floor consumer connects");
    let _: redis::RedisResult<()> = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(STREAM)
        .arg(GROUP)
        .arg("0")
        .arg("MKSTREAM")
        .query(&mut con);
    let me = format!("floor{}", std::process::id());
    loop {
        let v: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(GROUP)
            .arg(&me)
            .arg("COUNT")
            .arg(100)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(STREAM)
            .arg(">")
            .query(&mut con)
            .unwrap_or_default();
        for key in v.keys {
            let mut p = redis::pipe();
            for e in &key.ids {
                let reply_to: String = e.get("r").unwrap_or_default();
                let body: Vec<u8> = e.get("a").unwrap_or_default();
                p.cmd("XADD")
                    .arg(&reply_to)
                    .arg("*")
                    .arg("b")
                    .arg(body)
                    .ignore();
                p.cmd("XACK").arg(STREAM).arg(GROUP).arg(&e.id).ignore();
                p.cmd("XDEL").arg(STREAM).arg(&e.id).ignore();
            }
            let _: redis::RedisResult<()> = p.query(&mut con);
        }
    }
}

/// A floor consumer process, killed when dropped.
pub struct Consumer(Child);

impl Consumer {
    pub fn start(url: &str) -> Result<Consumer, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let child = Command::new(exe)
            .args([ARG, url])
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| e.to_string())?;
        Ok(Consumer(child))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `calls` round trips (after `warmup`), each timed: XADD + XREAD BLOCK in
/// one write, then the reply's XDEL in the next.
pub fn round_trips(url: &str, warmup: usize, calls: usize) -> Result<Vec<Duration>, String> {
    let mut con = redis::Client::open(url)
        .and_then(|c| c.get_connection())
        .map_err(|e| e.to_string())?;
    let reply = format!("floor:reply:{}", std::process::id());
    let mut times = Vec::with_capacity(calls);
    let mut last: Option<String> = None;
    for i in 0..warmup + calls {
        let started = Instant::now();
        let mut p = redis::pipe();
        if let Some(id) = &last {
            p.cmd("XDEL").arg(&reply).arg(id).ignore();
        }
        p.cmd("XADD")
            .arg(STREAM)
            .arg("*")
            .arg("r")
            .arg(&reply)
            .arg("a")
            .arg(i.to_le_bytes().as_slice())
            .ignore();
        p.cmd("XREAD")
            .arg("COUNT")
            .arg(1)
            .arg("BLOCK")
            .arg(5000)
            .arg("STREAMS")
            .arg(&reply)
            .arg("$");
        let (got,): (redis::streams::StreamReadReply,) =
            p.query(&mut con).map_err(|e| e.to_string())?;
        let id = got
            .keys
            .first()
            .and_then(|k| k.ids.first())
            .map(|e| e.id.clone())
            .ok_or("no reply within 5 s")?;
        if i >= warmup {
            times.push(started.elapsed());
        }
        last = Some(id);
    }
    Ok(times)
}
