//! The raw floor: this same binary re-executed as a child that answers
//! length-prefixed frames on a socket pair, with no pool, no queue, no
//! threads and no serialization framework. Whatever procpool costs above
//! this is procpool's own overhead.
//!
//! It uses the transport the way procpool does, so it stays a floor: 4 MiB
//! socket buffers, buffered reads (a reply's header and body in one read),
//! the child's replies flushed once its input is drained, and pipelined
//! requests written up to 64 per system call.
//!
//! A frame is a `u32` little-endian length and that many bytes; the first
//! byte of a request says what to do with the rest:
//!
//! ```text
//! INC   0 | x u64          -> x + 1 as u64
//! ECHO  1 | bytes          -> bytes
//! MAP   2 | n × u64        -> each + 1
//! ```

use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::measure::{self, timed};

/// argv\[1\] of a floor child.
pub const CHILD_ARG: &str = "--procpool-bench-floor-child";

const INC: u8 = 0;
const ECHO: u8 = 1;
const MAP: u8 = 2;

/// Socket buffer size, as procpool's channel.
const SOCKET_BUFFER: libc::c_int = 4 << 20;
/// Pipelined requests per write, as procpool's batches.
const WINDOW: usize = 64;

/// Sets both socket buffers of `stream` to [`SOCKET_BUFFER`] (best effort).
fn size_buffers(stream: &UnixStream) {
    use std::os::fd::AsRawFd;
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: a valid socket fd and a pointer to a c_int of the size given.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&SOCKET_BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

/// Turns this process into a floor child if it was started as one (then
/// never returns). Must run before anything else in `main`.
pub fn maybe_run_child() {
    if std::env::args_os().nth(1).as_deref() != Some(CHILD_ARG.as_ref()) {
        return;
    }
    let code = match serve() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("floor child: {e}");
            1
        }
    };
    std::process::exit(code);
}

fn serve() -> io::Result<()> {
    // The parent hands us our end of the socket pair as stdin.
    let stream = UnixStream::from(io::stdin().as_fd().try_clone_to_owned()?);
    size_buffers(&stream);
    let mut reader = BufReader::with_capacity(64 << 10, stream.try_clone()?);
    let mut writer = BufWriter::with_capacity(64 << 10, stream);
    let mut request = Vec::new();
    let mut reply = Vec::new();
    while read_frame(&mut reader, &mut request)? {
        let (tag, body) = request.split_first().ok_or_else(|| bad("empty frame"))?;
        reply.clear();
        match *tag {
            INC => {
                let x = u64::from_le_bytes(body.try_into().map_err(|_| bad("INC wants 8 bytes"))?);
                write_frame(&mut writer, &[], &(x + 1).to_le_bytes(), &mut reply)?;
            }
            ECHO => write_frame(&mut writer, &[], body, &mut reply)?,
            MAP => {
                let mut out = Vec::with_capacity(body.len());
                for item in body.chunks_exact(8) {
                    let x = u64::from_le_bytes(item.try_into().expect("8-byte chunk"));
                    out.extend_from_slice(&(x + 1).to_le_bytes());
                }
                write_frame(&mut writer, &[], &out, &mut reply)?;
            }
            other => return Err(bad(&format!("unknown tag {other}"))),
        }
        // Replies go out once the requests already received are answered.
        if reader.buffer().is_empty() {
            writer.flush()?;
        }
    }
    writer.flush()
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Reads one frame into `buf`; `false` at a clean end of stream.
fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut header = [0u8; 4];
    match r.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(false),
        Err(e) => return Err(e),
    }
    buf.resize(u32::from_le_bytes(header) as usize, 0);
    r.read_exact(buf)?;
    Ok(true)
}

/// Writes a frame whose body is `tag` then `body`: one write for small
/// frames (through `scratch`), header and body separately for large ones.
fn write_frame(
    w: &mut impl Write,
    tag: &[u8],
    body: &[u8],
    scratch: &mut Vec<u8>,
) -> io::Result<()> {
    let len = (tag.len() + body.len()) as u32;
    scratch.clear();
    scratch.extend_from_slice(&len.to_le_bytes());
    scratch.extend_from_slice(tag);
    if body.len() <= 64 << 10 {
        scratch.extend_from_slice(body);
        w.write_all(scratch)
    } else {
        w.write_all(scratch)?;
        w.write_all(body)
    }
}

/// The parent's handle on one floor child.
pub struct FloorChild {
    child: Child,
    stream: UnixStream,
    reader: BufReader<UnixStream>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl FloorChild {
    /// Re-executes this binary as a floor child.
    pub fn start() -> io::Result<FloorChild> {
        let (ours, theirs) = UnixStream::pair()?;
        size_buffers(&ours);
        let child = Command::new("/proc/self/exe")
            .arg(CHILD_ARG)
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::null())
            .spawn()?;
        Ok(FloorChild {
            child,
            reader: BufReader::with_capacity(64 << 10, ours.try_clone()?),
            stream: ours,
            buf: Vec::new(),
            scratch: Vec::new(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// One INC round trip.
    pub fn inc(&mut self, x: u64) -> io::Result<u64> {
        write_frame(
            &mut self.stream,
            &[INC],
            &x.to_le_bytes(),
            &mut self.scratch,
        )?;
        self.recv()?;
        let bytes = self
            .buf
            .as_slice()
            .try_into()
            .map_err(|_| bad("INC reply is not 8 bytes"))?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// One ECHO round trip; returns the reply's length.
    pub fn echo(&mut self, data: &[u8]) -> io::Result<usize> {
        write_frame(&mut self.stream, &[ECHO], data, &mut self.scratch)?;
        self.recv()?;
        Ok(self.buf.len())
    }

    fn recv(&mut self) -> io::Result<()> {
        if read_frame(&mut self.reader, &mut self.buf)? {
            Ok(())
        } else {
            Err(bad("floor child closed its end"))
        }
    }

    /// Sends every request in `frames` (tag first) from a writer thread while
    /// this thread reads the replies: the pipelined best case. Returns the
    /// sum of the first 8 bytes of every reply, so nothing is skipped.
    pub fn pipeline(&mut self, frames: Vec<Vec<u8>>) -> io::Result<u64> {
        let count = frames.len();
        let mut writer = self.stream.try_clone()?;
        let sender = std::thread::spawn(move || -> io::Result<()> {
            let mut window = Vec::new();
            for group in frames.chunks(WINDOW) {
                window.clear();
                for frame in group {
                    window.extend_from_slice(&(frame.len() as u32).to_le_bytes());
                    window.extend_from_slice(frame);
                }
                writer.write_all(&window)?;
            }
            Ok(())
        });
        let mut sum = 0u64;
        for _ in 0..count {
            self.recv()?;
            let head: [u8; 8] = self
                .buf
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .unwrap_or_default();
            sum = sum.wrapping_add(u64::from_le_bytes(head));
        }
        sender.join().map_err(|_| bad("writer thread panicked"))??;
        Ok(sum)
    }
}

impl Drop for FloorChild {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        let _ = self.child.wait();
    }
}

/// An INC request frame body.
pub fn inc_frame(x: u64) -> Vec<u8> {
    let mut f = vec![INC];
    f.extend_from_slice(&x.to_le_bytes());
    f
}

/// A MAP request frame body for `items`.
pub fn map_frame(items: impl Iterator<Item = u64>) -> Vec<u8> {
    let mut f = vec![MAP];
    for x in items {
        f.extend_from_slice(&x.to_le_bytes());
    }
    f
}

/// Starts `n` children and does one round trip with each: the floor of
/// "create a pool and run one task on each worker".
pub fn startup(n: usize) -> io::Result<(Duration, Vec<FloorChild>)> {
    let (took, children) = timed(|| -> io::Result<Vec<FloorChild>> {
        let mut children = (0..n)
            .map(|_| FloorChild::start())
            .collect::<io::Result<Vec<_>>>()?;
        for c in &mut children {
            c.inc(1)?;
        }
        Ok(children)
    });
    Ok((took, children?))
}

/// Peak RSS of an idle floor child that has answered a few frames, in MiB.
pub fn idle_rss_mib() -> io::Result<Option<f64>> {
    let mut child = FloorChild::start()?;
    for i in 0..10 {
        child.inc(i)?;
    }
    Ok(measure::peak_rss_mib(child.pid()))
}
