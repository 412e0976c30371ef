//! Checkpoints: a consistent, openable copy of the whole database at one
//! commit timestamp, made while writes go on.
//!
//! [`LiveFiles`] is what a copy is made from: the files of the database as
//! of one commit, pinned while it lives (see `Db::live_files`). A
//! checkpoint writes them into a new directory, hard-linking the SSTs (and
//! the blob files they point into) when
//! the file system allows (their cost does not grow with the data) and
//! copying otherwise; the WALs are copied up to the end of their
//! acknowledged records, and the manifest and `CURRENT` are written for the
//! copy. Nothing is decrypted or re-encoded: an encrypted database's
//! checkpoint stays encrypted under the same keys. Backups (`backup`) copy
//! from the same source.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::blob::BlobFile;
use crate::error::{Error, Result};
use crate::fs::{names, read_full_at, FileSystem, RandomAccessFile};
use crate::levels::FileMeta;
use crate::timestamp::Timestamp;

/// The bytes moved per read while copying a file.
const COPY_CHUNK: usize = 1 << 20;

/// A WAL as captured: its number, the length its acknowledged records end
/// at, and an open handle that keeps its bytes; and the same of the blob
/// file beside it, if values were separated into one.
pub(crate) struct CapturedWal {
    number: u64,
    len: u64,
    file: Box<dyn RandomAccessFile>,
    blob: Option<(u64, Box<dyn RandomAccessFile>)>,
}

impl CapturedWal {
    pub(crate) fn new(
        number: u64,
        len: u64,
        file: Box<dyn RandomAccessFile>,
        blob: Option<(u64, Box<dyn RandomAccessFile>)>,
    ) -> Self {
        CapturedWal {
            number,
            len,
            file,
            blob,
        }
    }
}

/// What one of the [`LiveFiles`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveFileKind {
    /// An SST, immutable; its uid tells it apart from any other SST of the
    /// same number (another database's), so copies can be shared.
    Table {
        /// The SST's random uid (also in its footer).
        uid: [u8; 16],
    },
    /// A WAL, or the blob file written beside it, copied up to its
    /// acknowledged end.
    Wal,
    /// A blob file SSTs point into, immutable; its uid tells it apart
    /// from any other blob file of the same number, so copies can be
    /// shared.
    Blob {
        /// The blob file's random uid (also in its header).
        uid: [u8; 16],
    },
    /// The manifest written for the copy.
    Manifest,
    /// `CURRENT`, naming that manifest.
    Current,
}

/// One file of a copy: its name in the database directory and its size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// The file's name, as in the database directory.
    pub name: String,
    /// Its size in bytes (for a WAL, the acknowledged prefix).
    pub size: u64,
    /// What it is.
    pub kind: LiveFileKind,
}

enum Source {
    Table(Arc<FileMeta>),
    Blob(Arc<BlobFile>),
    /// A prefix of an open file (a WAL, or the blob file beside it).
    Prefix(Box<dyn RandomAccessFile>),
    Bytes(Vec<u8>),
}

/// The files that make up a database at one commit timestamp, pinned
/// while this lives: compactions and flushes go on, but nothing listed
/// here is deleted until it is dropped. Hold it briefly.
pub struct LiveFiles {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    ts: Timestamp,
    files: Vec<(LiveFile, Source)>,
}

impl std::fmt::Debug for LiveFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveFiles")
            .field("dir", &self.dir)
            .field("ts", &self.ts)
            .field("files", &self.files())
            .finish()
    }
}

/// What a checkpoint made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointInfo {
    /// The commit timestamp the copy holds everything up to.
    pub ts: Timestamp,
    /// Files in the copy.
    pub files: usize,
    /// SSTs hard-linked rather than copied.
    pub linked: usize,
    /// Bytes written (copied files, the manifest, `CURRENT`).
    pub bytes_written: u64,
    /// Bytes the copy holds in all.
    pub total_bytes: u64,
}

impl LiveFiles {
    pub(crate) fn new(
        dir: PathBuf,
        fs: Arc<dyn FileSystem>,
        ts: Timestamp,
        tables: Vec<Arc<FileMeta>>,
        blobs: Vec<Arc<BlobFile>>,
        wals: Vec<CapturedWal>,
        (manifest_number, manifest): (u64, Vec<u8>),
    ) -> Self {
        let mut files = Vec::new();
        for t in tables {
            let f = LiveFile {
                name: file_name(&names::table(&dir, t.number)),
                size: t.size,
                kind: LiveFileKind::Table { uid: t.uid },
            };
            files.push((f, Source::Table(t)));
        }
        for b in blobs {
            let f = LiveFile {
                name: file_name(b.path()),
                size: b.size(),
                kind: LiveFileKind::Blob { uid: b.uid() },
            };
            files.push((f, Source::Blob(b)));
        }
        for w in wals {
            let f = LiveFile {
                name: file_name(&names::wal(&dir, w.number)),
                size: w.len,
                kind: LiveFileKind::Wal,
            };
            files.push((f, Source::Prefix(w.file)));
            if let Some((len, file)) = w.blob {
                let f = LiveFile {
                    name: file_name(&names::blob(&dir, w.number)),
                    size: len,
                    kind: LiveFileKind::Wal,
                };
                files.push((f, Source::Prefix(file)));
            }
        }
        let f = LiveFile {
            name: file_name(&names::manifest(&dir, manifest_number)),
            size: manifest.len() as u64,
            kind: LiveFileKind::Manifest,
        };
        files.push((f, Source::Bytes(manifest)));
        let current = format!("MANIFEST-{manifest_number:06}\n").into_bytes();
        let f = LiveFile {
            name: names::CURRENT.to_owned(),
            size: current.len() as u64,
            kind: LiveFileKind::Current,
        };
        files.push((f, Source::Bytes(current)));
        LiveFiles { dir, fs, ts, files }
    }

    /// The commit timestamp the files hold everything up to (and nothing
    /// after).
    pub fn ts(&self) -> Timestamp {
        self.ts
    }

    /// The files, SSTs first, `CURRENT` last.
    pub fn files(&self) -> Vec<LiveFile> {
        self.files.iter().map(|(f, _)| f.clone()).collect()
    }

    /// Streams file `i` of [`files`](Self::files) to `out`, a chunk at a
    /// time; returns the bytes written.
    pub fn read_file(&self, i: usize, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<u64> {
        let (f, source) = self
            .files
            .get(i)
            .ok_or_else(|| Error::InvalidArgument(format!("no live file {i}")))?;
        match source {
            Source::Bytes(b) => {
                out(b)?;
                Ok(b.len() as u64)
            }
            Source::Table(t) => {
                let file = self
                    .fs
                    .open_random_access(t.path())
                    .map_err(|e| Error::io(t.path(), e))?;
                copy_prefix(&*file, f.size, t.path(), out)
            }
            Source::Blob(b) => {
                let file = self
                    .fs
                    .open_random_access(b.path())
                    .map_err(|e| Error::io(b.path(), e))?;
                copy_prefix(&*file, f.size, b.path(), out)
            }
            Source::Prefix(file) => {
                let path = self.dir.join(&f.name);
                copy_prefix(&**file, f.size, &path, out)
            }
        }
    }

    /// Writes file `i` to `to` (created or truncated, then synced); returns
    /// the bytes written.
    pub fn copy_file(&self, i: usize, fs: &dyn FileSystem, to: &Path) -> Result<u64> {
        let mut w = fs.create(to).map_err(|e| Error::io(to, e))?;
        let n = self.read_file(i, &mut |chunk| {
            w.append(chunk).map_err(|e| Error::io(to, e))
        })?;
        w.sync().map_err(|e| Error::io(to, e))?;
        Ok(n)
    }

    /// Makes `to` a hard link to SST or blob file `i`; false when `i` is
    /// neither or the file system cannot link it there.
    pub fn link_file(&self, i: usize, fs: &dyn FileSystem, to: &Path) -> bool {
        match self.files.get(i) {
            Some((_, Source::Table(t))) => fs.hard_link(t.path(), to).is_ok(),
            Some((_, Source::Blob(b))) => fs.hard_link(b.path(), to).is_ok(),
            _ => false,
        }
    }

    /// Writes a checkpoint into `dir`, which must not exist: the copy is
    /// built in a hidden sibling directory and renamed into place, so
    /// `dir` either does not exist or holds a whole checkpoint. SSTs are
    /// hard-linked where `link` allows and the file system can, and copied
    /// otherwise.
    pub fn write_checkpoint(&self, dir: &Path, link: bool) -> Result<CheckpointInfo> {
        let fs = &*self.fs;
        if fs.file_size(dir).is_ok() || fs.list(dir).is_ok() {
            return Err(Error::InvalidArgument(format!(
                "{} exists: a checkpoint goes into a new directory",
                dir.display()
            )));
        }
        let parent = parent_of(dir);
        let tmp = hidden_sibling(dir, "checkpoint")?;
        fs.create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let built = self.fill(&tmp, link);
        let info = match built {
            Ok(info) => info,
            Err(e) => {
                self.remove_partial(&tmp);
                return Err(e);
            }
        };
        fs.sync_dir(&tmp).map_err(|e| Error::io(&tmp, e))?;
        if let Err(e) = fs.rename(&tmp, dir) {
            self.remove_partial(&tmp);
            return Err(Error::io(dir, e));
        }
        fs.sync_dir(&parent).map_err(|e| Error::io(&parent, e))?;
        Ok(info)
    }

    fn fill(&self, tmp: &Path, link: bool) -> Result<CheckpointInfo> {
        let mut info = CheckpointInfo {
            ts: self.ts,
            files: self.files.len(),
            linked: 0,
            bytes_written: 0,
            total_bytes: 0,
        };
        for (i, (f, _)) in self.files.iter().enumerate() {
            let to = tmp.join(&f.name);
            info.total_bytes += f.size;
            if link && self.link_file(i, &*self.fs, &to) {
                info.linked += 1;
                continue;
            }
            info.bytes_written += self.copy_file(i, &*self.fs, &to)?;
        }
        Ok(info)
    }

    /// Removes what a failed checkpoint wrote (only the files it names).
    fn remove_partial(&self, tmp: &Path) {
        for (f, _) in &self.files {
            let _ = self.fs.remove_file(&tmp.join(&f.name));
        }
        let _ = std::fs::remove_dir(tmp);
    }
}

/// Streams the first `len` bytes of `file` to `out`; a file shorter than
/// that is an error naming it.
fn copy_prefix(
    file: &dyn RandomAccessFile,
    len: u64,
    path: &Path,
    out: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    let mut buf = vec![0u8; COPY_CHUNK.min(len as usize)];
    let mut at = 0u64;
    while at < len {
        let want = (len - at).min(buf.len() as u64) as usize;
        let got = read_full_at(file, &mut buf[..want], at).map_err(|e| Error::io(path, e))?;
        if got < want {
            return Err(Error::io(
                path,
                std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("the file ended at {} of {len} bytes", at + got as u64),
                ),
            ));
        }
        out(&buf[..want])?;
        at += want as u64;
    }
    Ok(len)
}

/// The directory `p` is in (`.` for a bare name).
pub(crate) fn parent_of(p: &Path) -> PathBuf {
    match p.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A hidden, unused directory name beside `target` (`.<name>.<what>-<hex>`),
/// where a copy is built before it is renamed to `target`: beside it, so
/// the rename stays on one file system.
pub(crate) fn hidden_sibling(target: &Path, what: &str) -> Result<PathBuf> {
    let name = target.file_name().ok_or_else(|| {
        Error::InvalidArgument(format!("{} names no directory", target.display()))
    })?;
    let [a, b, c, d, e, f, g, h, ..] = crate::random::uid();
    let r = u64::from_le_bytes([a, b, c, d, e, f, g, h]);
    Ok(parent_of(target).join(format!(".{}.{what}-{r:016x}", name.to_string_lossy())))
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
