//! Snapshots sent in bounded chunks (SPEC §18.3), so a network can move a
//! state of any size without holding it in memory, and the receiver can
//! check every byte before the state machine installs it.
//!
//! A snapshot is a checkpoint directory, which is flat: regular files
//! only. The sender describes it with a [`SnapshotManifest`] (each file's
//! name, length and xxh3-64 checksum), then sends [`Chunk`]s of at most a
//! chosen size, file after file in manifest order, each file from offset 0
//! to its end. The receiver ([`SnapshotReceiver`]) refuses a manifest that
//! names anything but plain names, names a file twice or exceeds the
//! caller's bounds; takes chunks only in that exact order; checks each
//! file's checksum as it completes; and on
//! [`finish`](SnapshotReceiver::finish) syncs the files and the directory
//! and hands back the [`SnapshotFiles`](crate::SnapshotFiles) to install.
//! A failed or abandoned receive removes its staging directory.
//!
//! The manifest and the chunks derive serde's traits, so a network can put
//! them on the wire in any format.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use strata_format::backup::is_plain_name;
use xxhash_rust::xxh3::Xxh3Default;

mod receive;

pub use receive::SnapshotReceiver;

/// The chunk size senders use unless told otherwise: large enough that
/// per-message costs vanish, small enough to hold a few in memory.
pub const DEFAULT_CHUNK_BYTES: usize = 1 << 20;

/// The engine's lock file: never part of a snapshot (an open of the copy
/// makes its own).
const LOCK: &str = "LOCK";

/// The read buffer of checksumming.
const HASH_BUFFER: usize = 256 << 10;

/// One file of a snapshot, as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// The file's name in the snapshot directory (a plain name).
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
    /// The xxh3-64 checksum of its bytes, which the receiver checks.
    pub checksum: u64,
}

/// What a snapshot holds, sent before its chunks: the receiver creates
/// exactly these files and checks each one against its entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// The files, in the order their chunks are sent.
    pub files: Vec<FileEntry>,
}

/// A piece of one file of a snapshot: bytes `offset..offset + data.len()`
/// of file number `file` in the manifest.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// The file's index in the manifest.
    pub file: u32,
    /// Where in the file `data` starts.
    pub offset: u64,
    /// The bytes (never empty).
    pub data: Vec<u8>,
}

impl std::fmt::Debug for Chunk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chunk")
            .field("file", &self.file)
            .field("offset", &self.offset)
            .field("len", &self.data.len())
            .finish()
    }
}

/// Bounds a receiver puts on what a sender may make it write, so a
/// manifest from the network cannot fill the disk or exhaust memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// The most files a manifest may list.
    pub max_files: usize,
    /// The most bytes the files may hold together.
    pub max_total_bytes: u64,
    /// The largest chunk accepted.
    pub max_chunk_bytes: usize,
}

/// Why a snapshot could not be sent or received. Each names the file (and
/// the offset) it concerns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// The snapshot directory holds something other than regular files
    /// (checkpoints are flat; nothing else is sent).
    #[error("{}: {name:?} is not a regular file (a snapshot directory is flat)", dir.display())]
    NotFlat {
        /// The snapshot directory.
        dir: PathBuf,
        /// The entry's name.
        name: String,
    },
    /// A file name that is not a plain name (a path, `..`, not ASCII).
    #[error("file {index}: {name:?} is not a plain file name")]
    BadName {
        /// The file's index in the manifest (or the directory listing).
        index: usize,
        /// The name.
        name: String,
    },
    /// The manifest lists a name twice.
    #[error("file {index}: {name:?} is listed twice")]
    DuplicateName {
        /// The index of the second listing.
        index: usize,
        /// The name.
        name: String,
    },
    /// The manifest lists no file: no snapshot is empty.
    #[error("the manifest lists no files")]
    EmptyManifest,
    /// The manifest lists more files than the receiver accepts.
    #[error("the manifest lists {files} files, more than the limit of {limit}")]
    TooManyFiles {
        /// How many it lists.
        files: usize,
        /// The receiver's limit.
        limit: usize,
    },
    /// The manifest's files hold more bytes than the receiver accepts.
    #[error("the manifest's files hold {total} bytes, more than the limit of {limit}")]
    TooManyBytes {
        /// Their total.
        total: u128,
        /// The receiver's limit.
        limit: u64,
    },
    /// A chunk size of zero.
    #[error("a chunk size of 0 bytes")]
    ZeroChunkSize,
    /// A chunk other than the next one: a gap, a repeat or a reordering.
    #[error(
        "a chunk of file {file} at offset {offset}; expected file {expected_file} \
         ({expected_name}) at offset {expected_offset}"
    )]
    OutOfOrder {
        /// The chunk's file index.
        file: u32,
        /// The chunk's offset.
        offset: u64,
        /// The file expected.
        expected_file: u32,
        /// Its name.
        expected_name: String,
        /// The offset expected.
        expected_offset: u64,
    },
    /// A chunk after every file is complete.
    #[error("a chunk of file {file} at offset {offset} after every file is complete")]
    AfterEnd {
        /// The chunk's file index.
        file: u32,
        /// The chunk's offset.
        offset: u64,
    },
    /// A chunk with no bytes.
    #[error("{name} at offset {offset}: an empty chunk")]
    EmptyChunk {
        /// The file.
        name: String,
        /// The offset.
        offset: u64,
    },
    /// A chunk larger than the receiver accepts.
    #[error("{name} at offset {offset}: a chunk of {len} bytes, more than the limit of {limit}")]
    ChunkTooLarge {
        /// The file.
        name: String,
        /// The offset.
        offset: u64,
        /// The chunk's length.
        len: usize,
        /// The receiver's limit.
        limit: usize,
    },
    /// A chunk that runs past the file's length in the manifest.
    #[error(
        "{name} at offset {offset}: a chunk of {len} bytes runs past the file's {file_len} bytes"
    )]
    PastEnd {
        /// The file.
        name: String,
        /// The offset.
        offset: u64,
        /// The chunk's length.
        len: usize,
        /// The file's length in the manifest.
        file_len: u64,
    },
    /// A received file's bytes do not match the manifest's checksum.
    #[error("{name}: checksum {actual:016x}, the manifest says {expected:016x}")]
    Checksum {
        /// The file.
        name: String,
        /// The manifest's checksum.
        expected: u64,
        /// The received bytes' checksum.
        actual: u64,
    },
    /// The transfer ended before a file was complete.
    #[error("{name}: {received} of its {len} bytes received")]
    Incomplete {
        /// The file.
        name: String,
        /// The bytes received.
        received: u64,
        /// The file's length in the manifest.
        len: u64,
    },
    /// A file of the snapshot ends before the length its manifest gives
    /// (it changed while being sent).
    #[error("{name}: ends at offset {offset}, the manifest says {len} bytes")]
    Truncated {
        /// The file.
        name: String,
        /// Where it ended.
        offset: u64,
        /// The length in the manifest.
        len: u64,
    },
    /// The receiver failed earlier (its staging directory is gone) or was
    /// finished: a new transfer starts over.
    #[error("the transfer already failed or finished")]
    Closed,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Reads until `buf` is full or the file ends; returns the bytes read.
fn read_full(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

impl SnapshotManifest {
    /// The manifest of the snapshot directory `dir`: every regular file but
    /// the lock file, sorted by name, each read once to checksum it (a
    /// buffer at a time). A subdirectory, a link or a name that is not
    /// plain is refused: the receiver could not recreate it.
    pub fn of_dir(dir: &Path) -> Result<SnapshotManifest, TransferError> {
        let mut names = Vec::new();
        for (index, entry) in std::fs::read_dir(dir).map_err(io_err(dir))?.enumerate() {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == LOCK {
                continue;
            }
            let path = entry.path();
            let kind = entry.file_type().map_err(io_err(&path))?;
            if !kind.is_file() {
                return Err(TransferError::NotFlat {
                    dir: dir.to_path_buf(),
                    name,
                });
            }
            if entry.file_name().to_str().is_none() || !is_plain_name(&name) {
                return Err(TransferError::BadName { index, name });
            }
            names.push(name);
        }
        names.sort();
        let mut buf = vec![0; HASH_BUFFER];
        let mut files = Vec::with_capacity(names.len());
        for name in names {
            let path = dir.join(&name);
            let mut f = File::open(&path).map_err(io_err(&path))?;
            let (mut hash, mut len) = (Xxh3Default::new(), 0u64);
            loop {
                let n = read_full(&mut f, &mut buf).map_err(io_err(&path))?;
                hash.update(&buf[..n]);
                len += n as u64;
                if n < buf.len() {
                    break;
                }
            }
            files.push(FileEntry {
                name,
                len,
                checksum: hash.digest(),
            });
        }
        Ok(SnapshotManifest { files })
    }

    /// The bytes of all files together (saturating).
    pub fn total_bytes(&self) -> u64 {
        self.files
            .iter()
            .fold(0u64, |sum, f| sum.saturating_add(f.len))
    }

    /// Checks the manifest against `limits` before anything is written:
    /// at least one file, plain and distinct names, at most `max_files`
    /// files (and a count that chunk indexes can name) and
    /// `max_total_bytes` bytes.
    pub fn validate(&self, limits: &ReceiveLimits) -> Result<(), TransferError> {
        let count = self.files.len();
        if count == 0 {
            return Err(TransferError::EmptyManifest);
        }
        let limit = limits.max_files.min(u32::MAX as usize);
        if count > limit {
            return Err(TransferError::TooManyFiles {
                files: count,
                limit,
            });
        }
        let total: u128 = self.files.iter().map(|f| u128::from(f.len)).sum();
        if total > u128::from(limits.max_total_bytes) {
            return Err(TransferError::TooManyBytes {
                total,
                limit: limits.max_total_bytes,
            });
        }
        let mut seen = HashSet::with_capacity(count);
        for (index, f) in self.files.iter().enumerate() {
            if !is_plain_name(&f.name) {
                return Err(TransferError::BadName {
                    index,
                    name: f.name.clone(),
                });
            }
            if !seen.insert(f.name.as_str()) {
                return Err(TransferError::DuplicateName {
                    index,
                    name: f.name.clone(),
                });
            }
        }
        Ok(())
    }
}

/// The sending side: a snapshot directory's manifest, then its chunks in
/// order, each read from disk when asked for (one chunk in memory at a
/// time). Also an iterator of the chunks, which ends after an error.
#[derive(Debug)]
pub struct SnapshotSender {
    dir: PathBuf,
    manifest: SnapshotManifest,
    chunk_bytes: usize,
    /// The next chunk's file and offset.
    file: usize,
    offset: u64,
    /// The file being read, open from its first chunk on.
    open: Option<File>,
    failed: bool,
}

impl SnapshotSender {
    /// A sender of the snapshot in `dir` (its manifest is made now, which
    /// reads every file once), in chunks of at most `chunk_bytes`.
    pub fn new(
        dir: impl Into<PathBuf>,
        chunk_bytes: usize,
    ) -> Result<SnapshotSender, TransferError> {
        if chunk_bytes == 0 {
            return Err(TransferError::ZeroChunkSize);
        }
        let dir = dir.into();
        let manifest = SnapshotManifest::of_dir(&dir)?;
        // Chunks name files by a u32 index.
        if manifest.files.len() > u32::MAX as usize {
            return Err(TransferError::TooManyFiles {
                files: manifest.files.len(),
                limit: u32::MAX as usize,
            });
        }
        Ok(SnapshotSender {
            dir,
            manifest,
            chunk_bytes,
            file: 0,
            offset: 0,
            open: None,
            failed: false,
        })
    }

    /// The manifest, to send before the chunks.
    pub fn manifest(&self) -> &SnapshotManifest {
        &self.manifest
    }

    /// The next chunk, read from disk; `None` once every file is sent. A
    /// file shorter than its manifest entry (changed meanwhile) is an
    /// error; a longer one is caught by the receiver's checksum. After an
    /// error the sender is done: [`TransferError::Closed`].
    pub fn next_chunk(&mut self) -> Result<Option<Chunk>, TransferError> {
        if self.failed {
            return Err(TransferError::Closed);
        }
        let r = self.read_next();
        self.failed = r.is_err();
        r
    }

    fn read_next(&mut self) -> Result<Option<Chunk>, TransferError> {
        loop {
            let Some(entry) = self.manifest.files.get(self.file) else {
                return Ok(None);
            };
            if self.offset >= entry.len {
                self.file += 1;
                self.offset = 0;
                self.open = None;
                continue;
            }
            let path = self.dir.join(&entry.name);
            let f = match &mut self.open {
                Some(f) => f,
                None => self.open.insert(File::open(&path).map_err(io_err(&path))?),
            };
            let want = (entry.len - self.offset).min(self.chunk_bytes as u64) as usize;
            let mut data = vec![0; want];
            let n = read_full(f, &mut data).map_err(io_err(&path))?;
            if n < want {
                return Err(TransferError::Truncated {
                    name: entry.name.clone(),
                    offset: self.offset + n as u64,
                    len: entry.len,
                });
            }
            let chunk = Chunk {
                // `new` refused more files than a u32 names.
                file: u32::try_from(self.file).unwrap_or(u32::MAX),
                offset: self.offset,
                data,
            };
            self.offset += want as u64;
            return Ok(Some(chunk));
        }
    }
}

impl Iterator for SnapshotSender {
    type Item = Result<Chunk, TransferError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        self.next_chunk().transpose()
    }
}
