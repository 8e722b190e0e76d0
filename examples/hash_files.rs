//! A realistic job: the SHA-256 of every file under a directory, computed in
//! parallel worker processes, printed like `sha256sum`.
//!
//! `cargo run --release --example hash_files -- [DIR]` (default: `.`)

use std::path::{Path, PathBuf};
use std::time::Instant;

use procpool::{pool_task, Pool};
use sha2::{Digest, Sha256};

/// Hashes one file; an unreadable file is a value, not a crash.
#[pool_task]
fn sha256_file(path: &Path) -> Result<(String, u64), String> {
    let mut file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes =
        std::io::copy(&mut file, &mut hasher).map_err(|e| format!("{}: {e}", path.display()))?;
    let digest = hasher.finalize();
    let hex = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok((hex, bytes))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() && entry.file_name() != "target" && entry.file_name() != ".git" {
            files_under(&entry.path(), out)?;
        } else if kind.is_file() {
            out.push(entry.path());
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    procpool::init();
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let mut files = Vec::new();
    files_under(Path::new(&dir), &mut files)?;
    files.sort();

    let pool = Pool::builder().build()?;
    let started = Instant::now();
    let mut total = 0;
    // Borrowed items: `&PathBuf` for the task's `&Path`, in input order.
    let hashes = imap_sha256_file(&pool, files.iter());
    for (file, result) in files.iter().zip(hashes) {
        match result {
            Ok(Ok((hex, bytes))) => {
                total += bytes;
                println!("{hex}  {}", file.display());
            }
            Ok(Err(message)) => eprintln!("skipped: {message}"),
            // A name that is not UTF-8 cannot travel as a `Path` (see the
            // README): that file alone is skipped.
            Err(e @ procpool::Error::Encode { .. }) => {
                eprintln!("skipped: {}: {e}", file.display())
            }
            Err(e) => return Err(e.into()),
        }
    }
    let elapsed = started.elapsed();
    eprintln!(
        "hashed {} files, {:.1} MB, in {:.2} s on {} worker processes",
        files.len(),
        total as f64 / 1e6,
        elapsed.as_secs_f64(),
        pool.processes()
    );
    Ok(())
}
