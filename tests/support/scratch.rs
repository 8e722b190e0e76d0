//! Scratch files and directories of the tests, removed when a test ends,
//! passed or failed, and those of earlier runs killed by a signal.

use std::path::{Path, PathBuf};

/// A path of one test (a file or a directory, made or not), removed when
/// dropped: when the test passes and when it fails, since a failed
/// assertion unwinds through it. Reads as the path itself.
pub struct Scratch(PathBuf);

impl Scratch {
    /// `path`, with whatever a killed earlier run left there removed: at
    /// `path`, and, when `path` ends in `-<this process's id>`, at the same
    /// path of each process that is gone (a run killed by a signal, say
    /// by `timeout`, drops no guard).
    pub fn new(path: PathBuf) -> Scratch {
        remove_path(&path);
        sweep_dead_runs(&path);
        Scratch(path)
    }

    /// A path in the temporary directory named after `name` and this
    /// process (nothing made there yet).
    pub fn temp(name: &str) -> Scratch {
        Scratch::new(std::env::temp_dir().join(format!("procpool-{name}-{}", std::process::id())))
    }

    /// As [`temp`](Self::temp), made as an empty directory.
    pub fn temp_dir(name: &str) -> Scratch {
        let dir = Scratch::temp(name);
        std::fs::create_dir_all(&dir.0).unwrap();
        dir
    }
}

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_path(&self.0);
    }
}

/// Removes the paths `<stem>-<pid>` beside `path` (`<stem>-<this pid>`)
/// whose process is gone.
fn sweep_dead_runs(path: &Path) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let name = name.to_string_lossy();
    let Some(stem) = name.strip_suffix(&format!("-{}", std::process::id())) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(parent) else {
        return;
    };
    for entry in entries.flatten() {
        let other = entry.file_name().to_string_lossy().into_owned();
        let dead = other
            .strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix('-'))
            .and_then(|pid| pid.parse::<u32>().ok())
            .is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if dead {
            remove_path(&entry.path());
        }
    }
}

/// Removes `path`, a file or a whole directory, if it is there.
fn remove_path(path: &Path) {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            let _ = std::fs::remove_dir_all(path);
        }
        Ok(_) => {
            let _ = std::fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// The directory of memory-backed files (`/dev/shm`) where there is one,
/// else the temporary directory: a file made on a disk can take a
/// millisecond and more, and tests need their marking tasks quick enough
/// to be pipelined.
pub fn quick_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

/// A fresh, empty directory for one test's marker files, named after the
/// test binary's `prefix`, `name` and this process, in [`quick_dir`];
/// removed with everything in it when the returned guard drops.
pub fn marker_dir(prefix: &str, name: &str) -> Scratch {
    let dir =
        Scratch::new(quick_dir().join(format!("procpool-{prefix}-{name}-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    dir
}
