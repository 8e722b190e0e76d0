//! Two network namespaces joined by a veth pair, made (and removed) by a
//! test: traffic between them never leaves them, and cutting the link
//! partitions whatever runs in `b` from whatever runs in `a`. Needs root
//! (the tests fail, in one line, without it).

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Namespaces `a` and `b`, with `addr_a` and `addr_b` on the two ends of a
/// veth pair (a /30 of 10.0.0.0/8 chosen per test; only these namespaces
/// ever see it).
pub struct Partition {
    pub a: String,
    pub b: String,
    pub addr_a: String,
    pub addr_b: String,
    veth_b: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run ip (install iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

impl Partition {
    pub fn new() -> Partition {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "the partition test makes network namespaces: run it as root"
        );
        static N: AtomicU32 = AtomicU32::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag = format!("pp{}x{n}", pid % 100_000);
        let (a, b) = (format!("{tag}a"), format!("{tag}b"));
        let (veth_a, veth_b) = (format!("{tag}va"), format!("{tag}vb"));
        // 10.X.Y.0/30: X from the counter, Y from the pid.
        let net = format!("10.{}.{}", 200 + n % 50, pid % 250);
        let (addr_a, addr_b) = (format!("{net}.1"), format!("{net}.2"));
        let p = Partition {
            a,
            b,
            addr_a,
            addr_b,
            veth_b,
        };
        ip(&["netns", "add", &p.a]);
        ip(&["netns", "add", &p.b]);
        ip(&[
            "-n", &p.a, "link", "add", &veth_a, "type", "veth", "peer", "name", &p.veth_b, "netns",
            &p.b,
        ]);
        ip(&[
            "-n",
            &p.a,
            "addr",
            "add",
            &format!("{}/30", p.addr_a),
            "dev",
            &veth_a,
        ]);
        ip(&[
            "-n",
            &p.b,
            "addr",
            "add",
            &format!("{}/30", p.addr_b),
            "dev",
            &p.veth_b,
        ]);
        for (ns, dev) in [(&p.a, veth_a.as_str()), (&p.b, p.veth_b.as_str())] {
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        p
    }

    /// The command prefix that runs a program in namespace `ns`.
    pub fn exec(ns: &str) -> Vec<String> {
        ["ip", "netns", "exec", ns].map(String::from).to_vec()
    }

    /// Cuts `b` off (its end of the link goes down: no route to `a`).
    pub fn cut(&self) {
        ip(&["-n", &self.b, "link", "set", &self.veth_b, "down"]);
    }

    /// Joins `b` to `a` again.
    pub fn heal(&self) {
        ip(&["-n", &self.b, "link", "set", &self.veth_b, "up"]);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        // Deleting a namespace deletes its end of the pair, and so the pair.
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}
