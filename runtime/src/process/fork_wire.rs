//! The fork server's messages, one per `SOCK_SEQPACKET` message, fds
//! attached as `SCM_RIGHTS` (integers little-endian; `bytes` is a `u32`
//! length, then that many bytes):
//!
//! ```text
//! parent → server  FORK    'F' | token u64 | index u64 | cwd bytes | env count u32
//!                          | env entries ("KEY=VALUE" bytes each) | affinity bytes
//!                          | umask u32 | limit count u32 | limits (soft u64,
//!                          hard u64 each)
//!                          fds: channel, stdout, stderr
//! server → parent  HELLO   'H' | pid u32 | ready u8 | why bytes
//!                  FORKED  'W' | token u64 | pid u32      fds: the worker's pidfd
//!                  FAILED  'E' | token u64 | errno i32
//!                  EXITED  'X' | token u64 | wait status i32
//! ```
//!
//! A request carries the parent's environment, working directory, file mode
//! creation mask and resource limits, and the requesting thread's CPU
//! affinity, as they are at that moment, so that a forked worker starts
//! like one the parent would have spawned itself.

/// The largest request the server reads (the environment must fit).
pub(super) const MAX_REQUEST: usize = 1 << 20;

/// A request for one worker.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Request {
    pub(super) token: u64,
    pub(super) index: u64,
    pub(super) cwd: Vec<u8>,
    pub(super) env: Vec<Vec<u8>>,
    pub(super) affinity: Vec<u8>,
    pub(super) umask: u32,
    /// `[soft, hard]` per resource (see `sys::resource_limits`).
    pub(super) limits: Vec<[u64; 2]>,
}

/// What the server says.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Answer {
    /// It is up (`ready`), or cannot fork (`why`).
    Hello { pid: u32, ready: bool, why: String },
    /// Worker `token` was forked as `pid` (its pidfd comes along).
    Forked { token: u64, pid: u32 },
    /// Worker `token` could not be forked.
    Failed { token: u64, errno: i32 },
    /// Worker `token` ended with this raw wait status.
    Exited { token: u64, status: i32 },
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

impl Request {
    pub(super) fn encode(&self) -> Vec<u8> {
        let size: usize = self.env.iter().map(|e| e.len() + 4).sum();
        let mut out = Vec::with_capacity(64 + self.cwd.len() + size + self.affinity.len());
        out.push(b'F');
        out.extend_from_slice(&self.token.to_le_bytes());
        out.extend_from_slice(&self.index.to_le_bytes());
        bytes(&mut out, &self.cwd);
        out.extend_from_slice(&(self.env.len() as u32).to_le_bytes());
        for entry in &self.env {
            bytes(&mut out, entry);
        }
        bytes(&mut out, &self.affinity);
        out.extend_from_slice(&self.umask.to_le_bytes());
        out.extend_from_slice(&(self.limits.len() as u32).to_le_bytes());
        for [soft, hard] in &self.limits {
            out.extend_from_slice(&soft.to_le_bytes());
            out.extend_from_slice(&hard.to_le_bytes());
        }
        out
    }

    /// Never panics, whatever the bytes.
    pub(super) fn decode(message: &[u8]) -> Option<Request> {
        let mut cur = Cursor(message);
        if cur.u8()? != b'F' {
            return None;
        }
        let token = cur.u64()?;
        let index = cur.u64()?;
        let cwd = cur.bytes()?.to_vec();
        let count = cur.u32()? as usize;
        let mut env = Vec::with_capacity(count.min(cur.0.len() / 4));
        for _ in 0..count {
            env.push(cur.bytes()?.to_vec());
        }
        let affinity = cur.bytes()?.to_vec();
        let umask = cur.u32()?;
        let count = cur.u32()? as usize;
        let mut limits = Vec::with_capacity(count.min(cur.0.len() / 16));
        for _ in 0..count {
            limits.push([cur.u64()?, cur.u64()?]);
        }
        cur.0.is_empty().then_some(Request {
            token,
            index,
            cwd,
            env,
            affinity,
            umask,
            limits,
        })
    }
}

impl Answer {
    pub(super) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        match self {
            Answer::Hello { pid, ready, why } => {
                out.push(b'H');
                out.extend_from_slice(&pid.to_le_bytes());
                out.push(u8::from(*ready));
                bytes(&mut out, why.as_bytes());
            }
            Answer::Forked { token, pid } => {
                out.push(b'W');
                out.extend_from_slice(&token.to_le_bytes());
                out.extend_from_slice(&pid.to_le_bytes());
            }
            Answer::Failed { token, errno } => {
                out.push(b'E');
                out.extend_from_slice(&token.to_le_bytes());
                out.extend_from_slice(&errno.to_le_bytes());
            }
            Answer::Exited { token, status } => {
                out.push(b'X');
                out.extend_from_slice(&token.to_le_bytes());
                out.extend_from_slice(&status.to_le_bytes());
            }
        }
        out
    }

    /// Never panics, whatever the bytes.
    pub(super) fn decode(message: &[u8]) -> Option<Answer> {
        let mut cur = Cursor(message);
        let answer = match cur.u8()? {
            b'H' => Answer::Hello {
                pid: cur.u32()?,
                ready: cur.u8()? != 0,
                why: String::from_utf8_lossy(cur.bytes()?).into_owned(),
            },
            b'W' => Answer::Forked {
                token: cur.u64()?,
                pid: cur.u32()?,
            },
            b'E' => Answer::Failed {
                token: cur.u64()?,
                errno: cur.u32()? as i32,
            },
            b'X' => Answer::Exited {
                token: cur.u64()?,
                status: cur.u32()? as i32,
            },
            _ => return None,
        };
        cur.0.is_empty().then_some(answer)
    }
}

struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        let request = Request {
            token: 7,
            index: 3,
            cwd: b"/tmp".to_vec(),
            env: vec![b"A=1".to_vec(), b"PATH=/bin".to_vec()],
            affinity: vec![1, 0, 0, 0],
            umask: 0o027,
            limits: vec![[1024, 4096], [u64::MAX, u64::MAX], [0, 0]],
        };
        let bytes = request.encode();
        assert_eq!(Request::decode(&bytes), Some(request));
        for cut in 0..bytes.len() {
            assert_eq!(Request::decode(&bytes[..cut]), None);
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(Request::decode(&long), None);
        let answers = [
            Answer::Hello {
                pid: 9,
                ready: false,
                why: "2 threads".into(),
            },
            Answer::Forked { token: 1, pid: 2 },
            Answer::Failed {
                token: 1,
                errno: 12,
            },
            Answer::Exited {
                token: 1,
                status: -1,
            },
        ];
        for answer in answers {
            let bytes = answer.encode();
            assert_eq!(Answer::decode(&bytes), Some(answer));
            assert_eq!(Answer::decode(&bytes[..bytes.len() - 1]), None);
        }
        // A huge announced count or length with no bytes behind it.
        let mut bogus = vec![b'F'];
        bogus.extend_from_slice(&[0; 16]);
        bogus.extend_from_slice(&0u32.to_le_bytes());
        bogus.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(Request::decode(&bogus), None);
    }
}
