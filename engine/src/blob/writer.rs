//! Writing a blob file: its header, then value records appended in order.

use std::sync::Arc;

use strata_format::blob::{encode_record, BlobFileHeader, BlobPointer};
use strata_format::codec::{BlockEncoder, EncryptionKey};
use strata_format::manifest::BlobFileAdded;

use super::{BlobFile, BlobStore};
use crate::error::{Error, Result};
use crate::fs::WritableFile;

/// A blob file being written. Records are encoded into a buffer by
/// [`add`](Self::add) and reach the file at [`flush`](Self::flush), so the
/// values of a commit group take one append.
pub(crate) struct BlobWriter {
    file: Arc<BlobFile>,
    out: Box<dyn WritableFile>,
    encoder: BlockEncoder,
    /// Records encoded and not yet appended.
    buf: Vec<u8>,
    /// Bytes appended to the file.
    written: u64,
    /// Bytes known durable.
    synced: u64,
    /// Bytes handed to background writeback so far.
    written_back: u64,
}

impl BlobWriter {
    /// Creates blob file `number` with uid `uid`, its records sealed with
    /// `key`, and registers it with `store`. The header is appended, not
    /// synced (the first sync covers it).
    pub(crate) fn create(
        store: &BlobStore,
        number: u64,
        uid: [u8; 16],
        key: Option<Arc<EncryptionKey>>,
    ) -> Result<BlobWriter> {
        let header = BlobFileHeader {
            file_number: number,
            file_uid: uid,
            key_id: key.as_ref().map(|k| k.id()),
        };
        let path = crate::fs::names::blob(store.dir(), number);
        let encoder = BlockEncoder::new(store.separation().compression, key)
            .map_err(|e| Error::format(&path, e))?;
        let mut out = store.fs().create(&path).map_err(|e| Error::io(&path, e))?;
        let h = header.encode();
        out.append(&h).map_err(|e| Error::io(&path, e))?;
        let file = store.register(&BlobFileAdded {
            file_number: number,
            file_uid: uid,
            key_id: header.key_id,
            size: h.len() as u64,
        });
        Ok(BlobWriter {
            file,
            out,
            encoder,
            buf: Vec::new(),
            written: h.len() as u64,
            synced: 0,
            written_back: 0,
        })
    }

    /// The file being written.
    pub(crate) fn file(&self) -> &Arc<BlobFile> {
        &self.file
    }

    /// Encodes `value` as the next record and returns its pointer. The
    /// record reaches the file at the next [`flush`](Self::flush).
    pub(crate) fn add(&mut self, value: &[u8]) -> Result<BlobPointer> {
        let offset = self.written + self.buf.len() as u64;
        encode_record(
            &mut self.encoder,
            self.file.number(),
            self.file.uid,
            offset,
            value,
            &mut self.buf,
        )
        .map_err(|e| Error::format(self.file.path(), e))
    }

    /// Appends the records added since the last flush.
    pub(crate) fn flush(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let appended = self.out.append(&self.buf);
        let n = self.buf.len() as u64;
        // Cleared, not taken: the buffer keeps its capacity.
        self.buf.clear();
        appended.map_err(|e| Error::io(self.file.path(), e))?;
        self.written += n;
        self.file.grew_to(self.written);
        let from = self.written_back.max(self.synced);
        if self.written - from >= crate::fs::WRITEBACK_BYTES {
            self.out.start_writeback(from, self.written - from);
            self.written_back = self.written;
        }
        Ok(())
    }

    /// Appends what is buffered and makes everything appended durable.
    pub(crate) fn sync(&mut self) -> Result<()> {
        self.flush()?;
        if self.synced < self.written {
            self.out
                .sync()
                .map_err(|e| Error::io(self.file.path(), e))?;
            self.synced = self.written;
        }
        Ok(())
    }

    /// Bytes of records added and not yet appended.
    pub(crate) fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Bytes appended so far, header included.
    pub(crate) fn len(&self) -> u64 {
        self.written
    }
}
