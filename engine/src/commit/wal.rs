//! The write-ahead log: the WAL being appended to, and the older WALs
//! not yet fully flushed.
//!
//! Locks: [`Logs`] holds the open WAL behind one `Mutex` (taken by the
//! commit group leader for its append and sync, by a memtable switch to
//! rotate, by the sync thread) and the list of live WAL numbers behind
//! another, taken alone or inside the first.

use std::sync::Arc;

use parking_lot::Mutex;
use strata_format::batch::{encode_header, MAX_HEADER_LEN};
use strata_format::codec::Compression;
use strata_format::key::ValueKind;
use strata_format::log::{LogHeader, LogKind, LogWriter};

use crate::blob::writer::BlobWriter;
use crate::blob::{BlobFile, BlobStore};
use crate::error::{Error, Result};
use crate::fs::{names, FileSystem, WritableFile};

/// WAL space is allocated this much at a time ahead of the appends, so a
/// synced commit rarely changes the file's size (fdatasync then commits no
/// metadata). Sealing gives the rest back.
const WAL_PREALLOC: u64 = 1 << 20;

/// The open WAL.
pub(crate) struct Wal {
    number: u64,
    /// The key the WAL's records are encrypted with.
    key_id: Option<u32>,
    /// The file's uid, recorded in the manifest.
    uid: [u8; 16],
    log: LogWriter<Vec<u8>>,
    file: Box<dyn WritableFile>,
    /// Bytes appended to the file so far.
    len: u64,
    /// Bytes known durable.
    synced: u64,
    /// A sync happened since the last sync marker was written: the next
    /// append starts with one, so recovery can tell damage to synced
    /// records (corruption) from a torn unsynced tail.
    marker_due: bool,
    /// The file's path, for errors (kept, not rebuilt per commit).
    path: std::path::PathBuf,
    /// Bytes allocated ahead of the appends (zeros past `len`, which a
    /// reader after a crash takes for the torn tail they are).
    allocated: u64,
    /// False once the file system declined to preallocate: not asked again.
    preallocating: bool,
    /// Bytes handed to background writeback so far.
    written_back: u64,
    /// The key the WAL's records (and its blob file's) are sealed with.
    key: Option<Arc<strata_format::codec::EncryptionKey>>,
    /// Where separated values go (`None` for a detached WAL).
    blobs: Option<Arc<BlobStore>>,
    /// The blob file beside this WAL, created with the first separated
    /// value: it shares the WAL's number and uid.
    blob: Option<BlobWriter>,
}

impl Wal {
    /// Creates WAL file `number` and writes its header.
    pub(crate) fn create(
        fs: &dyn FileSystem,
        dir: &std::path::Path,
        number: u64,
        key: Option<Arc<strata_format::codec::EncryptionKey>>,
        map_appends: bool,
        blobs: Arc<BlobStore>,
    ) -> Result<Wal> {
        let path = names::wal(dir, number);
        let header = LogHeader {
            kind: LogKind::Wal,
            file_number: number,
            file_uid: crate::random::uid(),
            key_id: key.as_ref().map(|k| k.id()),
        };
        let mut log = LogWriter::new(Vec::new(), header, Compression::None, key.clone())
            .map_err(|e| Error::format(&path, e))?;
        let mut file = fs.create(&path).map_err(|e| Error::io(&path, e))?;
        file.map_appends(map_appends);
        let bytes = std::mem::take(log.get_mut());
        file.append(&bytes).map_err(|e| Error::io(&path, e))?;
        Ok(Wal {
            number,
            key_id: header.key_id,
            uid: header.file_uid,
            log,
            file,
            len: bytes.len() as u64,
            synced: 0,
            marker_due: false,
            path,
            allocated: 0,
            preallocating: true,
            written_back: 0,
            key,
            blobs: Some(blobs),
            blob: None,
        })
    }

    /// A WAL of a database opened read-only: no file; every append or
    /// sync fails with `PermissionDenied` (the facade refuses writes before
    /// they get here).
    pub(crate) fn detached(dir: &std::path::Path, number: u64) -> Result<Wal> {
        let header = LogHeader {
            kind: LogKind::Wal,
            file_number: number,
            file_uid: [0; 16],
            key_id: None,
        };
        let path = names::wal(dir, number);
        let log = LogWriter::new(Vec::new(), header, Compression::None, None)
            .map_err(|e| Error::format(&path, e))?;
        Ok(Wal {
            number,
            key_id: None,
            uid: [0; 16],
            log,
            file: Box::new(Detached),
            len: 0,
            synced: 0,
            marker_due: false,
            path,
            allocated: 0,
            preallocating: false,
            written_back: 0,
            key: None,
            blobs: None,
            blob: None,
        })
    }

    /// Queues a sync marker for the next append, if one is due.
    fn mark_synced(&mut self) -> Result<()> {
        if self.marker_due {
            let synced = self.synced;
            if self
                .log
                .add_sync_marker(synced)
                .map_err(|e| Error::format(&self.path, e))?
            {
                self.marker_due = false;
            }
        }
        Ok(())
    }

    /// Syncs the file, then appends and syncs a sync marker covering
    /// everything before it: after this, any damage to the file's records
    /// is detectable as corruption. Used when the WAL is retired or the
    /// database closed.
    pub(crate) fn seal(&mut self) -> Result<()> {
        self.sync()?;
        self.mark_synced()?;
        let bytes = std::mem::take(self.log.get_mut());
        if !bytes.is_empty() {
            self.file
                .append(&bytes)
                .map_err(|e| Error::io(&self.path, e))?;
            self.len += bytes.len() as u64;
            self.sync()?;
            self.marker_due = false;
        }
        self.give_back_preallocated()
    }

    /// Cuts the zeros allocated past the appends and makes that durable, so
    /// a retired WAL ends where its records end (recovery reads zeros after
    /// the last record as a torn tail, which is only allowed in the WAL a
    /// crash interrupted).
    pub(crate) fn give_back_preallocated(&mut self) -> Result<()> {
        if self.allocated > self.len {
            self.file
                .truncate(self.len)
                .and_then(|()| self.file.sync())
                .map_err(|e| Error::io(&self.path, e))?;
            self.allocated = self.len;
        }
        Ok(())
    }

    /// Syncs the file if anything is not yet durable; says whether it did.
    pub(crate) fn sync(&mut self) -> Result<bool> {
        if self.synced < self.len {
            // The blob file first: a WAL record made durable must never
            // point at a value that is not (recovery relies on it, §13.8).
            if let Some(b) = self.blob.as_mut() {
                b.sync()?;
            }
            self.file.sync().map_err(|e| Error::io(&self.path, e))?;
            self.synced = self.len;
            self.marker_due = true;
            return Ok(true);
        }
        Ok(false)
    }

    /// The WAL's file number.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The key its records are encrypted with.
    pub(crate) fn key_id(&self) -> Option<u32> {
        self.key_id
    }

    /// The file's uid, recorded in the manifest.
    pub(crate) fn uid(&self) -> [u8; 16] {
        self.uid
    }

    /// Bytes appended so far.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Bytes known durable.
    pub(crate) fn synced_len(&self) -> u64 {
        self.synced
    }

    /// True when a put of a value `len` bytes long is stored apart.
    #[inline]
    pub(crate) fn separates(&self, len: usize) -> bool {
        self.blobs
            .as_ref()
            .is_some_and(|b| b.separation().separates(len))
    }

    /// The blob file beside this WAL, if a value was separated into it.
    pub(crate) fn blob_file(&self) -> Option<&Arc<BlobFile>> {
        self.blob.as_ref().map(BlobWriter::file)
    }

    /// The writes `ops` (`count` of them) with the value of every put the
    /// separation takes written to the blob file beside this WAL and
    /// replaced by a pointer to it. The records reach the file at the next
    /// [`append_group`](Self::append_group), before the WAL records.
    pub(crate) fn separate(&mut self, ops: &[u8], count: u64) -> Result<Vec<u8>> {
        let Some(store) = self.blobs.clone() else {
            return Err(Error::Io {
                path: self.path.clone(),
                kind: std::io::ErrorKind::PermissionDenied,
                message: "the database is read-only".into(),
            });
        };
        let separation = store.separation();
        let blob = match &mut self.blob {
            Some(blob) => blob,
            None => {
                let w = BlobWriter::create(&store, self.number, self.uid, self.key.clone())?;
                // Its name is durable before any record pointing into it is.
                store
                    .fs()
                    .sync_dir(store.dir())
                    .map_err(|e| Error::io(store.dir(), e))?;
                self.blob.insert(w)
            }
        };
        let mut out = strata_format::batch::BatchBuilder::new();
        let mut ptr = Vec::with_capacity(strata_format::blob::BlobPointer::MAX_ENCODED_LEN);
        for op in strata_format::batch::OpIter::new(ops, count, 0) {
            let op = op.map_err(|e| Error::format("<write batch>", e))?;
            if op.kind == ValueKind::Put && separation.separates(op.value.len()) {
                ptr.clear();
                blob.add(op.value)?.encode(&mut ptr);
                out.add(ValueKind::BlobPointer, op.keyspace, op.key, &ptr);
            } else {
                out.add(op.kind, op.keyspace, op.key, op.value);
            }
        }
        Ok(out.into_parts().0)
    }

    /// Appends one record per batch, the `i`th committed at `first_ts + i`,
    /// in one append; syncs when `sync`. Each record's header is written
    /// beside its encoded writes, which go from the batch's bytes straight
    /// into the log's output. Returns the bytes appended and whether a sync
    /// happened. On error the WAL's tail is in doubt.
    pub(crate) fn append_group<'a>(
        &mut self,
        first_ts: u64,
        batches: impl Iterator<Item = (u64, &'a [u8])>,
        sync: bool,
    ) -> Result<(u64, bool)> {
        self.mark_synced()?;
        // Separated values reach their file before the records that point
        // at them reach theirs.
        if let Some(b) = self.blob.as_mut() {
            b.flush()?;
        }
        let mut header = [0u8; MAX_HEADER_LEN];
        for (i, (count, ops)) in batches.enumerate() {
            let n = encode_header(first_ts + i as u64, count, &mut header);
            self.log
                .add_record_parts_in_place(&[&header[..n], ops])
                .map_err(|e| Error::format(&self.path, e))?;
        }
        let n = self.log.get_mut().len() as u64;
        if self.preallocating && self.len + n > self.allocated {
            // Best effort: where space cannot be allocated ahead, the
            // appends grow the file as they go.
            let want = (self.len + n).div_ceil(WAL_PREALLOC) * WAL_PREALLOC;
            match self.file.preallocate(want) {
                Ok(true) => self.allocated = want,
                Ok(false) | Err(_) => self.preallocating = false,
            }
        }
        let appended = self.file.append(self.log.get_mut());
        // Cleared, not taken: the buffer keeps its capacity.
        self.log.get_mut().clear();
        appended.map_err(|e| Error::io(&self.path, e))?;
        self.len += n;
        let synced = if sync { self.sync()? } else { false };
        if self.len - self.written_back.max(self.synced) >= crate::fs::WRITEBACK_BYTES {
            let from = self.written_back.max(self.synced);
            self.file.start_writeback(from, self.len - from);
            self.written_back = self.len;
        }
        Ok((n, synced))
    }
}

/// A WAL taken out of use: its number and length.
pub(crate) type Retired = (u64, u64);
/// A WAL put in use: its number and uid.
pub(crate) type Created = (u64, [u8; 16]);

/// The open WAL and the numbers of every WAL not yet fully flushed (see the
/// module doc).
pub(crate) struct Logs {
    current: Mutex<Wal>,
    live: Mutex<Vec<u64>>,
}

impl Logs {
    /// Logs writing to `wal`, the only live one.
    pub(crate) fn new(wal: Wal) -> Self {
        let n = wal.number;
        Logs {
            current: Mutex::new(wal),
            live: Mutex::new(vec![n]),
        }
    }

    /// Runs `f` on the open WAL, under its lock.
    pub(crate) fn with_current<T>(&self, f: impl FnOnce(&mut Wal) -> T) -> T {
        f(&mut self.current.lock())
    }

    /// Syncs the open WAL if anything is not yet durable; says whether it
    /// did.
    pub(crate) fn sync(&self) -> Result<bool> {
        self.current.lock().sync()
    }

    /// Replaces the open WAL with the one `create` makes, sealing the old
    /// one first when `seal` (else it is retired as it is, its tail in
    /// doubt). Returns the old WAL's (number, length) and the new one's
    /// (number, uid). On error the old WAL stays open.
    pub(crate) fn rotate(
        &self,
        seal: bool,
        create: impl FnOnce() -> Result<Wal>,
    ) -> Result<(Retired, Created)> {
        let mut wal = self.current.lock();
        if seal {
            wal.seal()?;
        } else {
            // Retired in doubt: still give back the zeros, if the file
            // system lets us (a torn tail is expected here anyway).
            let _ = wal.give_back_preallocated();
        }
        let next = create()?;
        let old = (wal.number, wal.len);
        let new = (next.number, next.uid);
        self.live.lock().push(next.number);
        *wal = next;
        Ok((old, new))
    }

    /// The live WALs' numbers, oldest first.
    pub(crate) fn live(&self) -> Vec<u64> {
        self.live.lock().clone()
    }

    /// Deletes every WAL numbered below `number` (all its writes are in
    /// SSTs now).
    pub(crate) fn retire_below(&self, number: u64, fs: &dyn FileSystem, dir: &std::path::Path) {
        let mut retired = Vec::new();
        self.live.lock().retain(|&n| {
            let keep = n >= number;
            if !keep {
                retired.push(n);
            }
            keep
        });
        // Unlinked outside the lock: removing a file can take tens of
        // milliseconds (its pages are dropped), and a memtable switch
        // takes this lock to list its new WAL.
        for n in retired {
            let _ = fs.remove_file(&names::wal(dir, n));
        }
    }
}

/// The file of a detached WAL: refuses every write.
struct Detached;

impl WritableFile for Detached {
    fn append(&mut self, _data: &[u8]) -> std::io::Result<()> {
        Err(std::io::ErrorKind::PermissionDenied.into())
    }

    fn sync(&mut self) -> std::io::Result<()> {
        Err(std::io::ErrorKind::PermissionDenied.into())
    }
}
