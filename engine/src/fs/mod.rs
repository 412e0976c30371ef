//! The one door through which the engine touches the disk.
//!
//! Every file operation of the engine goes through [`FileSystem`], so that
//! tests can put a fault-injecting or crash-simulating implementation under
//! it. [`StdFs`] is the default: `std::fs` plus `memmap2`, and positioned
//! reads (`pread`) for SSTs read without a mapping.
//!
//! With the cargo feature `testing` (off by default, for tests only) this
//! module also has two test doubles: `SimFs`, an in-memory file system that
//! knows what is durable and can produce the image a power loss would
//! leave, and `FaultFs`, which wraps any file system and makes chosen calls
//! fail (with `FaultPlan`, `FaultTarget`, `FaultKind` and `CrashMode`);
//! and `TmpfsMount`, a small real file system to fill up.

#[cfg(feature = "testing")]
mod fault;
mod real;
#[cfg(feature = "testing")]
mod sim;
#[cfg(feature = "testing")]
mod tmpfs;

#[cfg(feature = "testing")]
pub use fault::{FaultFs, FaultKind, FaultPlan, FaultTarget};
pub use real::StdFs;
#[cfg(feature = "testing")]
pub use sim::{CrashMode, SimFs};
#[cfg(feature = "testing")]
pub use tmpfs::TmpfsMount;

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
    /// Starts writing the bytes `[offset, offset + len)` back to the disk
    /// without waiting for them, so a later sync finds little left to
    /// write. A hint: a no-op where it is not supported.
    fn start_writeback(&mut self, _offset: u64, _len: u64) {}
    /// Cuts the file to `len` bytes (the end of what was appended), giving
    /// back preallocated space; durable at the next sync.
    fn truncate(&mut self, _len: u64) -> io::Result<()> {
        Ok(())
    }
}

/// An immutable file opened for reads at any offset, without a mapping
/// (`pread`): what the engine reads SSTs through when
/// `Options::sst_reads` is `SstReads::Pread`.
pub trait RandomAccessFile: Send + Sync + Debug {
    /// Reads up to `buf.len()` bytes at `offset` into `buf` and returns how
    /// many it read: fewer only at the end of the file (or, as `pread` may,
    /// for no reason; the caller reads the rest), 0 at or past the end.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// The file's size when it was opened.
    fn size(&self) -> u64;
}

/// Bytes a WAL or blob file is appended between two starts of background
/// writeback ([`WritableFile::start_writeback`]): the sync at a memtable
/// switch then has at most about this much left to write, instead of the
/// whole file, and the writer waiting on it stalls that much less.
pub(crate) const WRITEBACK_BYTES: u64 = 1 << 20;

/// Fills `buf` from `offset` of `file`, retrying short and interrupted
/// reads; returns how many bytes it read, fewer than `buf.len()` only when
/// the file ends sooner.
pub(crate) fn read_full_at(
    file: &dyn RandomAccessFile,
    buf: &mut [u8],
    offset: u64,
) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        let at = offset.checked_add(done as u64).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "read past the largest offset")
        })?;
        match file.read_at(&mut buf[done..], at) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
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
    /// Opens an immutable file for positioned reads.
    fn open_random_access(&self, path: &Path) -> io::Result<Box<dyn RandomAccessFile>>;
    /// Renames a file, replacing any file at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list(&self, dir: &Path) -> io::Result<Vec<String>>;
    /// Makes a directory's entries (creates, renames, removes) durable.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;
    /// Makes the contents of an existing file durable (fdatasync), for a
    /// file the engine wrote through a handle it no longer holds.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Size of a file in bytes.
    fn file_size(&self, path: &Path) -> io::Result<u64>;
    /// Makes `to` a second name of the file at `from` (a hard link); fails
    /// when the file system cannot (another device, no support), and the
    /// caller copies instead.
    fn hard_link(&self, _from: &Path, _to: &Path) -> io::Result<()> {
        Err(io::ErrorKind::Unsupported.into())
    }
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
///
/// The engine writes file names in exactly one form: `{n:06}.log`,
/// `{n:06}.sst` and `MANIFEST-{n:06}` for file numbers `n >= 1`, and
/// `CURRENT.tmp` while it replaces `CURRENT`. [`parse`](names::parse)
/// recognises those forms and nothing else, so a file named in any other
/// way (`1.log`, `0007.sst`, `backup.tmp`) is never taken for one of the
/// engine's own.
pub(crate) mod names {
    use super::*;

    /// The lock file.
    pub const LOCK: &str = "LOCK";
    /// The file naming the current manifest.
    pub const CURRENT: &str = "CURRENT";
    /// The temporary file `CURRENT` is written to before it is renamed over
    /// `CURRENT`: the only temporary file the engine writes.
    pub const CURRENT_TMP: &str = "CURRENT.tmp";

    /// What a file in the database directory is.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum FileKind {
        /// A write-ahead log.
        Wal(u64),
        /// A manifest.
        Manifest(u64),
        /// An SSTable.
        Table(u64),
        /// A blob file (values stored apart from the tree).
        Blob(u64),
        /// The engine's temporary file ([`CURRENT_TMP`]).
        Temp,
    }

    /// The path of WAL `n`.
    pub fn wal(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("{n:06}.log"))
    }

    /// The path of SST `n`.
    pub fn table(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("{n:06}.sst"))
    }

    /// The path of blob file `n`.
    pub fn blob(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("{n:06}.blob"))
    }

    /// The path of manifest `n`.
    pub fn manifest(dir: &Path, n: u64) -> PathBuf {
        dir.join(format!("MANIFEST-{n:06}"))
    }

    /// What the file named `name` is, if the engine writes files of that
    /// name; `None` for every other name (`LOCK` and `CURRENT` included).
    pub fn parse(name: &str) -> Option<FileKind> {
        if name == CURRENT_TMP {
            return Some(FileKind::Temp);
        }
        if let Some(n) = name.strip_prefix("MANIFEST-") {
            return number(n).map(FileKind::Manifest);
        }
        if let Some(n) = name.strip_suffix(".log") {
            return number(n).map(FileKind::Wal);
        }
        if let Some(n) = name.strip_suffix(".sst") {
            return number(n).map(FileKind::Table);
        }
        if let Some(n) = name.strip_suffix(".blob") {
            return number(n).map(FileKind::Blob);
        }
        None
    }

    /// The file number `digits` spells, only if `{n:06}` prints it back
    /// exactly (no sign, no padding beyond six digits, no other character)
    /// and it is one the engine hands out (numbers start at 1).
    fn number(digits: &str) -> Option<u64> {
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        (n >= 1 && format!("{n:06}") == digits).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::names::{parse, FileKind};

    #[test]
    fn names_the_engine_writes_are_recognised() {
        assert_eq!(parse("000001.log"), Some(FileKind::Wal(1)));
        assert_eq!(parse("000042.sst"), Some(FileKind::Table(42)));
        assert_eq!(parse("000043.blob"), Some(FileKind::Blob(43)));
        assert_eq!(parse("43.blob"), None);
        assert_eq!(parse("MANIFEST-000007"), Some(FileKind::Manifest(7)));
        assert_eq!(parse("999999.log"), Some(FileKind::Wal(999_999)));
        // Past six digits `{n:06}` prints the number as is.
        assert_eq!(parse("1234567.sst"), Some(FileKind::Table(1_234_567)));
        assert_eq!(
            parse("MANIFEST-1234567"),
            Some(FileKind::Manifest(1_234_567))
        );
        assert_eq!(parse("CURRENT.tmp"), Some(FileKind::Temp));
    }

    #[test]
    fn names_the_engine_never_writes_are_not_its_own() {
        for name in [
            "1.log",
            "0007.sst",
            "00000001.log",
            "0001234567.sst",
            "+00001.log",
            "+000001.log",
            "-00001.log",
            " 000001.log",
            "000001.log ",
            "00001a.log",
            "MANIFEST-1",
            "MANIFEST-0000001",
            "MANIFEST-+00001",
            "MANIFEST-",
            ".log",
            ".sst",
            "000001.LOG",
            "000001.sst.tmp",
            "backup.tmp",
            "MANIFEST-000001.tmp",
            ".tmp",
            "CURRENT",
            "LOCK",
            "99999999999999999999.log",
            // Numbers start at 1: the engine never writes file 0.
            "000000.log",
            "000000.sst",
            "MANIFEST-000000",
        ] {
            assert_eq!(parse(name), None, "{name:?}");
        }
    }

    #[test]
    fn every_number_round_trips_through_its_names() {
        for n in [1, 9, 10, 99_999, 999_999, 1_000_000, u64::MAX] {
            let dir = std::path::Path::new("d");
            let name = |p: std::path::PathBuf| p.file_name().unwrap().to_str().unwrap().to_owned();
            assert_eq!(
                parse(&name(super::names::wal(dir, n))),
                Some(FileKind::Wal(n))
            );
            assert_eq!(
                parse(&name(super::names::table(dir, n))),
                Some(FileKind::Table(n))
            );
            assert_eq!(
                parse(&name(super::names::manifest(dir, n))),
                Some(FileKind::Manifest(n))
            );
        }
    }
}
