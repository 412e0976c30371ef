//! The one door through which the engine touches the disk.
//!
//! Every file operation of the engine goes through [`FileSystem`], so that
//! tests can put a fault-injecting or crash-simulating implementation under
//! it. [`StdFs`] is the default: `std::fs` plus `memmap2`. [`SimFs`] is an
//! in-memory file system that knows what is durable and can produce the
//! image a power loss would leave; [`FaultFs`] wraps any file system and
//! makes chosen calls fail.

mod fault;
mod sim;

pub use fault::{FaultFs, FaultKind, FaultPlan, FaultTarget};
pub use sim::{CrashMode, SimFs};

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
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
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

struct StdFile {
    file: File,
}

impl WritableFile for StdFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.write_all(data)
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }

    #[cfg(target_os = "linux")]
    fn preallocate(&mut self, len: u64) -> io::Result<bool> {
        // Mode 0: the file's size grows to `len`, its new blocks read as
        // zeros; the write position stays where the appends left it.
        rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len)
            .map_err(io::Error::from)?;
        Ok(true)
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }
}

#[derive(Debug)]
struct StdLock {
    _file: File,
}

impl FileLock for StdLock {}

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile { file }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn map(&self, path: &Path) -> io::Result<Bytes> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: the engine maps only SSTs, which are written once, synced
        // and renamed into place before they are mapped, and are never
        // modified afterwards (they are only unlinked, which leaves the
        // mapping valid). Another process truncating the file would break
        // this; the directory lock keeps other Strata instances out, and
        // SPEC.md states that the files must not be modified externally.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::from_owner(map))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn file_size(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
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
