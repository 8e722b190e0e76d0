//! The stream floors: a child that answers length-prefixed frames on its
//! stdin / stdout, connected to the parent by a socket pair or by two pipes.
//!
//! They use the transport the way procpool does, so they stay floors: 4 MiB
//! socket buffers (1 MiB pipes, the most a pipe gets by default), buffered
//! reads (a reply's header and body in one read), the child's replies
//! flushed once its input is drained, and pipelined requests written up to
//! 64 per system call.
//!
//! A frame is a `u32` little-endian length and that many bytes; the first
//! byte of a request says what to do with the rest:
//!
//! ```text
//! INC   0 | x u64          -> x + 1 as u64
//! ECHO  1 | bytes          -> bytes
//! MAP   2 | n × u64        -> each + 1
//! ```

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};

use super::{RoundTrip, CHILD_ARG};

const INC: u8 = 0;
const ECHO: u8 = 1;
const MAP: u8 = 2;

/// Socket buffer size, as procpool's channel.
const SOCKET_BUFFER: libc::c_int = 4 << 20;
/// Pipe buffer size: the most an unprivileged process may set by default.
const PIPE_BUFFER: libc::c_int = 1 << 20;
/// Pipelined requests per write, as procpool's batches.
const WINDOW: usize = 64;

/// Which channel the frames travel over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Socket,
    Pipe,
}

impl Kind {
    fn arg(self) -> &'static str {
        match self {
            Kind::Socket => "socket",
            Kind::Pipe => "pipe",
        }
    }
}

/// Sets both socket buffers of `fd` to [`SOCKET_BUFFER`] (best effort).
fn size_socket(fd: &impl AsRawFd) {
    for option in [libc::SO_SNDBUF, libc::SO_RCVBUF] {
        // SAFETY: a valid socket fd and a pointer to a c_int of the size given.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&SOCKET_BUFFER as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
}

/// Sets the buffer of the pipe `fd` belongs to to [`PIPE_BUFFER`] (best effort).
fn size_pipe(fd: &impl AsRawFd) {
    // SAFETY: fcntl on a valid fd with an integer argument.
    unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, PIPE_BUFFER) };
}

/// A new pipe: (read end, write end), both close-on-exec.
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two fds into the array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two fresh fds that nothing else owns.
    Ok(unsafe {
        use std::os::fd::FromRawFd;
        (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    })
}

/// A stream floor child's loop: requests on stdin, replies on stdout.
pub fn serve(kind: Kind) -> io::Result<()> {
    let input = File::from(io::stdin().as_fd().try_clone_to_owned()?);
    let output = File::from(io::stdout().as_fd().try_clone_to_owned()?);
    if kind == Kind::Socket {
        size_socket(&input);
    }
    let mut reader = BufReader::with_capacity(64 << 10, input);
    let mut writer = BufWriter::with_capacity(64 << 10, output);
    let mut request = Vec::new();
    let mut reply = Vec::new();
    while read_frame(&mut reader, &mut request)? {
        let (tag, body) = request.split_first().ok_or_else(|| bad("empty frame"))?;
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

/// The parent's handle on one stream floor child.
pub struct StreamChild {
    child: Child,
    writer: File,
    reader: BufReader<File>,
    buf: Vec<u8>,
    scratch: Vec<u8>,
}

impl StreamChild {
    /// Re-executes this binary as a stream floor child of `kind`.
    pub fn start(kind: Kind) -> io::Result<StreamChild> {
        // (ours to write, ours to read, its stdin, its stdout)
        let (write, read, stdin, stdout): (OwnedFd, OwnedFd, OwnedFd, OwnedFd) = match kind {
            Kind::Socket => {
                let (ours, theirs) = UnixStream::pair()?;
                size_socket(&ours);
                let (ours, theirs) = (OwnedFd::from(ours), OwnedFd::from(theirs));
                (ours.try_clone()?, ours, theirs.try_clone()?, theirs)
            }
            Kind::Pipe => {
                let (request_read, request_write) = pipe()?;
                let (reply_read, reply_write) = pipe()?;
                size_pipe(&request_write);
                size_pipe(&reply_read);
                (request_write, reply_read, request_read, reply_write)
            }
        };
        let child = Command::new("/proc/self/exe")
            .args([CHILD_ARG, kind.arg()])
            .stdin(Stdio::from(stdin))
            .stdout(Stdio::from(stdout))
            .spawn()?;
        Ok(StreamChild {
            child,
            writer: File::from(write),
            reader: BufReader::with_capacity(64 << 10, File::from(read)),
            buf: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// One ECHO round trip; returns the reply's length.
    pub fn echo(&mut self, data: &[u8]) -> io::Result<usize> {
        write_frame(&mut self.writer, &[ECHO], data, &mut self.scratch)?;
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
        let mut writer = self.writer.try_clone()?;
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

impl RoundTrip for StreamChild {
    fn inc(&mut self, x: u64) -> io::Result<u64> {
        write_frame(
            &mut self.writer,
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

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for StreamChild {
    fn drop(&mut self) {
        // The child holds nothing worth a clean exit.
        let _ = self.child.kill();
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
