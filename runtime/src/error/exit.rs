//! How a worker process ended, as an [`Error::WorkerDied`](super::Error::WorkerDied)
//! reports it.

use std::fmt;

/// How a worker process ended.
///
/// ```
/// use procpool::ExitInfo;
/// assert_eq!(ExitInfo::Signal(9).to_string(), "killed by signal 9 (SIGKILL)");
/// assert_eq!(ExitInfo::Code(3).to_string(), "exit code 3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitInfo {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal number.
    Signal(i32),
    /// Its status could not be read.
    Unknown,
}

impl fmt::Display for ExitInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitInfo::Code(code) => write!(f, "exit code {code}"),
            ExitInfo::Signal(sig) => match crate::sys::signal_name(*sig) {
                Some(name) => write!(f, "killed by signal {sig} ({name})"),
                None => write!(f, "killed by signal {sig}"),
            },
            ExitInfo::Unknown => f.write_str("exit status unknown"),
        }
    }
}

impl From<std::process::ExitStatus> for ExitInfo {
    fn from(status: std::process::ExitStatus) -> ExitInfo {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => ExitInfo::Code(code),
            (None, Some(sig)) => ExitInfo::Signal(sig),
            _ => ExitInfo::Unknown,
        }
    }
}
