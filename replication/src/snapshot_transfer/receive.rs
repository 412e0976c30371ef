//! The receiving side of a snapshot transfer.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use xxhash_rust::xxh3::Xxh3Default;

use super::{io_err, Chunk, ReceiveLimits, SnapshotManifest, TransferError};
use crate::state_machine::SnapshotFiles;

/// The file being written: its handle and the checksum so far.
struct Writing {
    file: File,
    hash: Xxh3Default,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RecvState {
    Receiving,
    Finished,
    Failed,
}

/// The receiving side: writes a manifest's files into a staging directory
/// from chunks that arrive in order, checking each file as it completes.
/// Dropped unfinished (or after an error), it removes the directory.
pub struct SnapshotReceiver {
    dir: PathBuf,
    manifest: SnapshotManifest,
    limits: ReceiveLimits,
    /// The next chunk's file and offset.
    file: usize,
    offset: u64,
    /// The file `file`, open while it is incomplete.
    writing: Option<Writing>,
    state: RecvState,
}

impl std::fmt::Debug for SnapshotReceiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReceiver")
            .field("dir", &self.dir)
            .field("file", &self.file)
            .field("offset", &self.offset)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

impl SnapshotReceiver {
    /// A receiver of the snapshot `manifest` describes, into the new
    /// directory `staging_dir` (its parent must exist; the directory must
    /// not). The manifest is checked against `limits` first; nothing is
    /// created if it fails.
    pub fn new(
        staging_dir: impl Into<PathBuf>,
        manifest: SnapshotManifest,
        limits: ReceiveLimits,
    ) -> Result<SnapshotReceiver, TransferError> {
        manifest.validate(&limits)?;
        let dir = staging_dir.into();
        std::fs::create_dir(&dir).map_err(io_err(&dir))?;
        // From here on the directory is the receiver's: dropped on error,
        // it removes it.
        let mut r = SnapshotReceiver {
            dir,
            manifest,
            limits,
            file: 0,
            offset: 0,
            writing: None,
            state: RecvState::Receiving,
        };
        r.open_next()?;
        Ok(r)
    }

    /// The staging directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifest being received.
    pub fn manifest(&self) -> &SnapshotManifest {
        &self.manifest
    }

    /// The file index and offset of the chunk expected next; `None` once
    /// every file is complete (or the receive ended).
    pub fn expected(&self) -> Option<(u32, u64)> {
        if self.state != RecvState::Receiving || self.file >= self.manifest.files.len() {
            return None;
        }
        Some((u32::try_from(self.file).ok()?, self.offset))
    }

    /// Writes `chunk`, which must be the next one: its file and offset
    /// exactly those expected, its data not empty, within the limit and
    /// within the file. The chunk that completes a file has the file
    /// checked against its checksum and synced. Any error ends the
    /// transfer and removes the staging directory.
    pub fn accept(&mut self, chunk: &Chunk) -> Result<(), TransferError> {
        if self.state != RecvState::Receiving {
            return Err(TransferError::Closed);
        }
        let r = self.write_chunk(chunk);
        if r.is_err() {
            self.fail();
        }
        r
    }

    /// Checks that every file arrived whole (and matched its checksum),
    /// syncs the staging directory and returns it as the snapshot to
    /// install. The directory is then the caller's to remove.
    pub fn finish(mut self) -> Result<SnapshotFiles, TransferError> {
        if self.state != RecvState::Receiving {
            return Err(TransferError::Closed);
        }
        if let Some(entry) = self.manifest.files.get(self.file) {
            return Err(TransferError::Incomplete {
                name: entry.name.clone(),
                received: self.offset,
                len: entry.len,
            });
        }
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io_err(&self.dir))?;
        self.state = RecvState::Finished;
        Ok(SnapshotFiles::new(self.dir.clone()))
    }

    fn write_chunk(&mut self, chunk: &Chunk) -> Result<(), TransferError> {
        let Some(entry) = self.manifest.files.get(self.file) else {
            return Err(TransferError::AfterEnd {
                file: chunk.file,
                offset: chunk.offset,
            });
        };
        if chunk.file as usize != self.file || chunk.offset != self.offset {
            return Err(TransferError::OutOfOrder {
                file: chunk.file,
                offset: chunk.offset,
                expected_file: u32::try_from(self.file).unwrap_or(u32::MAX),
                expected_name: entry.name.clone(),
                expected_offset: self.offset,
            });
        }
        let len = chunk.data.len();
        if len == 0 {
            return Err(TransferError::EmptyChunk {
                name: entry.name.clone(),
                offset: chunk.offset,
            });
        }
        if len > self.limits.max_chunk_bytes {
            return Err(TransferError::ChunkTooLarge {
                name: entry.name.clone(),
                offset: chunk.offset,
                len,
                limit: self.limits.max_chunk_bytes,
            });
        }
        let end = self.offset.saturating_add(len as u64);
        if end > entry.len {
            return Err(TransferError::PastEnd {
                name: entry.name.clone(),
                offset: chunk.offset,
                len,
                file_len: entry.len,
            });
        }
        let path = self.dir.join(&entry.name);
        let Some(w) = self.writing.as_mut() else {
            return Err(TransferError::Closed);
        };
        w.file.write_all(&chunk.data).map_err(io_err(&path))?;
        w.hash.update(&chunk.data);
        self.offset = end;
        if end == entry.len {
            self.complete()?;
            self.open_next()?;
        }
        Ok(())
    }

    /// Opens the file expected next (creating it); an empty file is
    /// complete at once, and the one after it opened.
    fn open_next(&mut self) -> Result<(), TransferError> {
        while let Some(entry) = self.manifest.files.get(self.file) {
            let path = self.dir.join(&entry.name);
            let file = File::options()
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(io_err(&path))?;
            self.writing = Some(Writing {
                file,
                hash: Xxh3Default::new(),
            });
            if entry.len > 0 {
                return Ok(());
            }
            self.complete()?;
        }
        Ok(())
    }

    /// Checks and syncs the completed file and moves to the next.
    fn complete(&mut self) -> Result<(), TransferError> {
        let (Some(entry), Some(w)) = (self.manifest.files.get(self.file), self.writing.take())
        else {
            return Err(TransferError::Closed);
        };
        let actual = w.hash.digest();
        if actual != entry.checksum {
            return Err(TransferError::Checksum {
                name: entry.name.clone(),
                expected: entry.checksum,
                actual,
            });
        }
        let path = self.dir.join(&entry.name);
        w.file.sync_all().map_err(io_err(&path))?;
        self.file += 1;
        self.offset = 0;
        Ok(())
    }

    /// Ends the transfer: closes the open file and removes the directory.
    fn fail(&mut self) {
        self.state = RecvState::Failed;
        self.writing = None;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for SnapshotReceiver {
    fn drop(&mut self) {
        if self.state == RecvState::Receiving {
            self.fail();
        }
    }
}
