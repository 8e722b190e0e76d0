//! A worker process as the parent holds it: spawned by this process (its
//! child, reaped here) or forked by the fork server (which reaps it and
//! relays its exit status). Either way it is signalled and watched through
//! its pidfd.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::sync::Arc;

use super::forkserver::{self, Forked};
use crate::error::ExitInfo;
use crate::sys;

pub(super) enum Child {
    /// Started with `posix_spawn`; `status` once reaped.
    Spawned {
        process: sys::WorkerProcess,
        status: Option<ExitInfo>,
    },
    /// Forked by the fork server; `status` once taken.
    Forked {
        pid: u32,
        pidfd: Arc<OwnedFd>,
        token: u64,
        status: Option<ExitInfo>,
    },
}

impl From<sys::WorkerProcess> for Child {
    fn from(process: sys::WorkerProcess) -> Child {
        Child::Spawned {
            process,
            status: None,
        }
    }
}

impl From<Forked> for Child {
    fn from(forked: Forked) -> Child {
        Child::Forked {
            pid: forked.pid,
            pidfd: Arc::new(forked.pidfd),
            token: forked.token,
            status: None,
        }
    }
}

impl Child {
    pub(super) fn id(&self) -> u32 {
        match self {
            Child::Spawned { process, .. } => process.id(),
            Child::Forked { pid, .. } => *pid,
        }
    }

    /// Whether the fork server forked it.
    pub(super) fn forked(&self) -> bool {
        matches!(self, Child::Forked { .. })
    }

    pub(super) fn pidfd(&self) -> &Arc<OwnedFd> {
        match self {
            Child::Spawned { process, .. } => process.pidfd(),
            Child::Forked { pidfd, .. } => pidfd,
        }
    }

    /// How it ended, if it has (reaping a spawned worker); else `None`.
    pub(super) fn try_wait(&mut self) -> Option<ExitInfo> {
        match self {
            Child::Spawned {
                status: Some(status),
                ..
            } => Some(*status),
            Child::Spawned { process, status } => {
                let ended = match process.try_wait() {
                    Ok(None) => return None,
                    Ok(Some(ended)) => ExitInfo::from(ended),
                    Err(_) => ExitInfo::Unknown,
                };
                Some(*status.insert(ended))
            }
            Child::Forked { .. } => {
                if !sys::pidfd_wait(self.pidfd().as_fd(), Some(std::time::Duration::ZERO)) {
                    return None;
                }
                Some(self.relayed())
            }
        }
    }

    /// Waits for it to end; how it did.
    pub(super) fn wait(&mut self) -> ExitInfo {
        match self {
            Child::Spawned {
                status: Some(status),
                ..
            } => *status,
            Child::Spawned { process, status } => {
                *status.insert(process.wait().map_or(ExitInfo::Unknown, ExitInfo::from))
            }
            Child::Forked { .. } => {
                sys::pidfd_wait(self.pidfd().as_fd(), None);
                self.relayed()
            }
        }
    }

    /// A forked worker's status, relayed by the server (it has ended).
    fn relayed(&mut self) -> ExitInfo {
        let Child::Forked { token, status, .. } = self else {
            return ExitInfo::Unknown;
        };
        *status.get_or_insert_with(|| {
            forkserver::exit_status(*token).map_or(ExitInfo::Unknown, |raw| {
                ExitInfo::from(ExitStatus::from_raw(raw))
            })
        })
    }

    /// SIGKILL, through the pidfd.
    pub(super) fn kill(&mut self) {
        sys::pidfd_kill(self.pidfd().as_fd());
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let Child::Forked {
            token,
            status: None,
            ..
        } = self
        {
            forkserver::forget(*token);
        }
    }
}
