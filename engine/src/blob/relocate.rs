//! Relocation: a compaction copies the live values of mostly-dead blob
//! files into a blob file of its own, so the old ones can be deleted.

use std::collections::BTreeSet;
use std::sync::Arc;

use strata_format::blob::BlobPointer;
use strata_format::codec::EncryptionKey;

use super::writer::BlobWriter;
use super::{BlobFile, BlobStore};
use crate::error::{Error, Result};

/// Bytes of relocated records buffered before they are appended.
const RELOCATION_BUFFER: usize = 1 << 20;

/// The relocation of one compaction range: which blob files to empty, and
/// the blob files it writes (a new one past `target_size`).
pub(crate) struct Relocation<'a> {
    store: &'a BlobStore,
    victims: BTreeSet<u64>,
    numbers: &'a (dyn Fn() -> Result<u64> + Sync + 'a),
    key: Option<Arc<EncryptionKey>>,
    target_size: u64,
    writer: Option<BlobWriter>,
    finished: Vec<BlobWriter>,
}

impl<'a> Relocation<'a> {
    /// Relocates the values in blob files `victims` into new blob files of
    /// about `target_size` bytes, numbered by `numbers`, sealed with `key`.
    pub(crate) fn new(
        store: &'a BlobStore,
        victims: BTreeSet<u64>,
        numbers: &'a (dyn Fn() -> Result<u64> + Sync + 'a),
        key: Option<Arc<EncryptionKey>>,
        target_size: u64,
    ) -> Self {
        Relocation {
            store,
            victims,
            numbers,
            key,
            target_size,
            writer: None,
            finished: Vec::new(),
        }
    }

    /// When `pointer` points into a blob file being emptied: copies the
    /// value to this job's blob file and writes the new pointer to `out`;
    /// returns whether it did.
    pub(crate) fn relocate(&mut self, pointer: &[u8], out: &mut Vec<u8>) -> Result<bool> {
        let ptr =
            BlobPointer::decode(pointer, 0).map_err(|e| Error::format("<compaction input>", e))?;
        if !self.victims.contains(&ptr.file_number) {
            return Ok(false);
        }
        let value = self.store.read(pointer)?;
        if self
            .writer
            .as_ref()
            .is_some_and(|w| w.len() + w.buffered() as u64 >= self.target_size)
        {
            if let Some(mut w) = self.writer.take() {
                w.sync()?;
                self.finished.push(w);
            }
        }
        let w = match self.writer.as_mut() {
            Some(w) => w,
            None => {
                let number = (self.numbers)()?;
                let w =
                    BlobWriter::create(self.store, number, crate::random::uid(), self.key.clone())?;
                // Marked obsolete until the job's edit installs it: a job
                // that fails leaves nothing behind.
                w.file().mark_obsolete();
                self.writer.insert(w)
            }
        };
        let new = w.add(&value)?;
        // Appended a MiB at a time: nothing reads the file before the
        // job's edit, which follows its sync.
        if w.buffered() >= RELOCATION_BUFFER {
            w.flush()?;
        }
        out.clear();
        new.encode(out);
        Ok(true)
    }

    /// Syncs the blob files written; returns them (still marked obsolete:
    /// the job keeps them when it installs its edit).
    pub(crate) fn finish(mut self) -> Result<Vec<Arc<BlobFile>>> {
        if let Some(mut w) = self.writer.take() {
            w.sync()?;
            self.finished.push(w);
        }
        if !self.finished.is_empty() {
            let dir = self.store.dir();
            self.store
                .fs()
                .sync_dir(dir)
                .map_err(|e| Error::io(dir, e))?;
        }
        Ok(self.finished.iter().map(|w| w.file().clone()).collect())
    }
}
