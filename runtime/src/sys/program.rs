//! Which program a worker or the fork server runs: this very binary, and
//! the arguments (the dynamic loader's, when it started this program) that
//! go before procpool's own.

use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// The program a worker re-executes: this very binary, even if the file was
/// replaced or deleted since it started (Linux keeps `/proc/self/exe` pointing
/// at the running image), so workers always run the caller's code.
fn worker_executable() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        proc_exe
    } else {
        std::env::current_exe().unwrap_or(proc_exe)
    }
}

/// How this program is started again (a worker, the fork server).
pub(crate) struct Program {
    /// The file to execute: see [`worker_executable`].
    pub(crate) exe: PathBuf,
    /// The arguments before procpool's own: `argv[0]`, or, when this
    /// program was started through the dynamic loader
    /// (`/lib64/ld-linux-x86-64.so.2 ./prog`, where `/proc/self/exe` is the
    /// loader), the loader's `argv[0]` and options, then the program's path,
    /// which the loader takes as its first argument (without it the loader
    /// reads procpool's arguments as its own options and the worker never
    /// starts).
    pub(crate) lead: Vec<std::ffi::OsString>,
}

/// This program, to be started again; `name` stands for a missing `argv[0]`.
pub(crate) fn this_program(name: &str) -> Program {
    let argv0 = std::env::args_os().next().unwrap_or_else(|| name.into());
    let exe = worker_executable();
    let mut lead = vec![argv0];
    let image = std::fs::read_link("/proc/self/exe").ok();
    // The main program's file as the kernel mapped it (absolute, whatever
    // the working directory is now and whatever `argv[0]` says): it differs
    // from the image only when the image is the loader that mapped it.
    let program = image
        .filter(|image| is_dynamic_loader(image))
        .and_then(|image| main_program_file().filter(|program| *program != image));
    if let Some(program) = program {
        // The loader's own options too (`--library-path`, `--preload`, ...),
        // so that the copies load what this program loaded.
        if let Some(loader) = loader_args() {
            lead = loader;
        }
        lead.push(program.into_os_string());
    }
    Program { exe, lead }
}

/// The loader's `argv[0]` and options this program was started with
/// (`ld.so --library-path DIR ./prog ARGS`: `ld.so --library-path DIR`),
/// read from `/proc/self/cmdline`, which still holds the command line the
/// kernel started: what comes before the program's path and its own
/// arguments. `None` if it does not end with those (a program that
/// rewrote its command line).
fn loader_args() -> Option<Vec<std::ffi::OsString>> {
    let cmdline = std::fs::read("/proc/self/cmdline").ok()?;
    let all: Vec<&[u8]> = cmdline.strip_suffix(b"\0")?.split(|&b| b == 0).collect();
    let own: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // The program's path is just before its own arguments, the loader's
    // arguments (at least its name) before it.
    let at = all.len().checked_sub(own.len() + 1).filter(|&at| at > 0)?;
    let same = all[at + 1..]
        .iter()
        .zip(&own)
        .all(|(arg, own)| *arg == own.as_bytes());
    same.then(|| {
        all[..at]
            .iter()
            .map(|arg| std::ffi::OsString::from_vec(arg.to_vec()))
            .collect()
    })
}

/// The file the main program (the first object the dynamic loader lists)
/// was mapped from, read from `/proc/self/maps` at the address of its
/// program headers; `None` if it cannot be told.
fn main_program_file() -> Option<PathBuf> {
    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `info` for the duration
        // of this call, and `data` is the `usize` `main_program_file` lent.
        unsafe { *data.cast::<usize>() = (*info).dlpi_phdr as usize };
        1 // The first object is the main program: stop there.
    }
    let mut phdr: usize = 0;
    // SAFETY: `first` only writes the address into `phdr`, which outlives
    // the call; `dl_iterate_phdr` holds its own lock meanwhile.
    unsafe { libc::dl_iterate_phdr(Some(first), (&raw mut phdr).cast()) };
    if phdr == 0 {
        return None;
    }
    let maps = std::fs::read("/proc/self/maps").ok()?;
    maps.split(|&b| b == b'\n').find_map(|line| {
        // `start-end perms offset dev inode   path`
        let mut fields = line.splitn(6, |&b| b == b' ');
        let (start, end) = std::str::from_utf8(fields.next()?).ok()?.split_once('-')?;
        let start = usize::from_str_radix(start, 16).ok()?;
        let end = usize::from_str_radix(end, 16).ok()?;
        if !(start..end).contains(&phdr) {
            return None;
        }
        let path = fields.nth(4)?.trim_ascii_start();
        let path = PathBuf::from(std::ffi::OsString::from_vec(path.to_vec()));
        // (A file deleted since, or a name the kernel escaped, is not there.)
        (path.is_absolute() && path.exists()).then_some(path)
    })
}

/// Whether `path` names glibc's (or musl's) dynamic loader, e.g.
/// `/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2`.
fn is_dynamic_loader(path: &Path) -> bool {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    ["ld-linux", "ld.so", "ld64.so", "ld-musl"]
        .iter()
        .any(|p| name.starts_with(p))
        && name.contains(".so")
}
