//! The one door through which the engine touches the disk.
//!
//! Every file operation of the engine goes through [`FileSystem`], so that
//! tests can put a fault-injecting or crash-simulating implementation under
//! it. [`StdFs`] is the default: `std::fs` plus `memmap2`. [`SimFs`] is an
//! in-memory file system that knows what is durable and can produce the
//! image a power loss would leave; [`FaultFs`] wraps any file system and
//! makes chosen calls fail.

mod fault;
mod real;
mod sim;

pub use fault::{FaultFs, FaultKind, FaultPlan, FaultTarget};
pub use real::StdFs;
pub use sim::{CrashMode, SimFs};

use std::fmt::Debug;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// A file being written: appended to, then synced.
pub trait WritableFile: Send + Sync {
    /// Appends all of `data`.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// Makes everything appended so far durable (fdatasync).
    fn sync(&mut self) -> io::Result<()>;
    /// Allocates the file's space up to `len` bytes, zero-filled, ahead of
    /// the appends (appends still go to the end of what was appended): a
    /// sync then has no size to commit. Returns whether it did; where the
    /// file system cannot, it does nothing and says so.
    fn preallocate(&mut self, _len: u64) -> io::Result<bool> {
        Ok(false)
    }
    /// Lets appends go through a memory mapping of preallocated space,
    /// where the file system keeps that space for such writes (see
    /// `Options::wal_mmap`). Off until asked for; a no-op where files are
    /// not real.
    fn map_appends(&mut self, _on: bool) {}
    /// Cuts the file to `len` bytes (the end of what was appended), giving
    /// back preallocated space; durable at the next sync.
    fn truncate(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

/// A held lock on a file, released on drop.
pub trait FileLock: Send + Sync + Debug {}

/// The file operations the engine uses. Paths are absolute or relative to
/// the process's working directory.
pub trait FileSystem: Send + Sync + Debug {
    /// Creates a directory and its parents.
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates (or truncates) a file for writing.
    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>>;
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Maps a whole immutable file into memory.
    fn map(&self, path: &Path) -> io::Result<Bytes>;
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes a directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Size of a file in bytes.
    fn file_size(&self, path: &Path) -> io::Result<u64>;
    /// Takes an exclusive lock on `path` (creating it), or fails with
    /// `WouldBlock` when another holder has it.
    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>>;
    /// Bytes free for unprivileged writers on the file system holding
    /// `path`, where it can tell (the engine retries a job that failed for
    /// lack of space early once this grows).
    fn free_space(&self, _path: &Path) -> io::Result<Option<u64>> {
        Ok(None)
    }
}

/// The names of the engine's files.
pub(crate) mod names {
    use super::*;

    /// The lock file.
    pub const LOCK: &str = "LOCK";
    /// The file naming the current manifest.
    pub const CURRENT: &str = "CURRENT";

    /// What a file in the database directory is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FileKind {
        /// A write-ahead log.
        Wal(u64),
        /// A manifest.
        Manifest(u64),
        /// An SSTable.
        Table(u64),
        /// A temporary file (a table or CURRENT being written).
        Temp,
    }

    pub fn wal(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("{n:06}.log"))
    }

    pub fn table(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("{n:06}.sst"))
    }

    pub fn manifest(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("MANIFEST-{n:06}"))
    }

    pub fn parse(name: &str) -> Option<FileKind> {
        if name.ends_with(".tmp") {
            return Some(FileKind::Temp);
        }
        if let Some(n) = name.strip_prefix("MANIFEST-") {
            return n.parse().ok().map(FileKind::Manifest);
        }
        if let Some(n) = name.strip_suffix(".log") {
            return n.parse().ok().map(FileKind::Wal);
        }
        if let Some(n) = name.strip_suffix(".sst") {
            return n.parse().ok().map(FileKind::Table);
        }
        None
    }
}
