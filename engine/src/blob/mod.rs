//! Key-value separation: values of at least `Options::blob_threshold`
//! bytes live in blob files, and the tree holds pointers to them (SPEC
//! §13.8).
//!
//! A blob file is written in one of two ways: beside a WAL, holding the
//! large values of the commits that WAL logged (it shares the WAL's number
//! and uid; see [`crate::commit::wal`]), or by a compaction that relocates
//! the live values of mostly-dead blob files. A blob file is referenced by
//! the memtables whose entries point into it and by the SSTs that do (each
//! [`FileMeta`](crate::levels::FileMeta) holds its blob files), so it stays
//! on disk while any version or read view can reach it; once the current
//! state no longer points into it, it is marked obsolete and deleted when
//! the last reference is dropped, as SSTs are.
//!
//! Locks: the store's map of open files is taken alone, never while
//! waiting on anything else.

pub(crate) mod relocate;
pub(crate) mod set;
pub(crate) mod writer;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

use bytes::Bytes;
use parking_lot::Mutex;
use strata_format::blob::{BlobFileHeader, BlobPointer, BLOB_HEADER_LEN};
use strata_format::codec::{BlockDecoder, Compression};
use strata_format::key::ValueKind;
use strata_format::manifest::BlobFileAdded;

use crate::encryption::Ciphers;
use crate::error::{Error, Result};
use crate::fs::{names, read_full_at, FileSystem, RandomAccessFile};

/// One blob file, shared by everything that points into it.
pub(crate) struct BlobFile {
    number: u64,
    uid: [u8; 16],
    key_id: Option<u32>,
    /// Bytes written so far (header included): grows while a WAL's blob
    /// file is appended to, fixed once it is sealed.
    size: AtomicU64,
    path: PathBuf,
    fs: Arc<dyn FileSystem>,
    /// Opened on the first read.
    reader: OnceLock<Box<dyn RandomAccessFile>>,
    /// The header was read and matches what the manifest (or the WAL)
    /// says of the file.
    checked: AtomicBool,
    obsolete: AtomicBool,
}

impl std::fmt::Debug for BlobFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobFile")
            .field("number", &self.number)
            .field("size", &self.size())
            .finish_non_exhaustive()
    }
}

impl BlobFile {
    /// The file's number.
    pub(crate) fn number(&self) -> u64 {
        self.number
    }

    /// The key its records are sealed with.
    pub(crate) fn key_id(&self) -> Option<u32> {
        self.key_id
    }

    /// The file's random uid (also in its header).
    pub(crate) fn uid(&self) -> [u8; 16] {
        self.uid
    }

    /// Bytes written so far, header included.
    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Records that the writer appended up to `size` bytes.
    pub(crate) fn grew_to(&self, size: u64) {
        self.size.fetch_max(size, Ordering::AcqRel);
    }

    /// What the manifest records of the file.
    pub(crate) fn to_edit(&self) -> BlobFileAdded {
        BlobFileAdded {
            file_number: self.number,
            file_uid: self.uid,
            key_id: self.key_id,
            size: self.size(),
        }
    }

    /// The current state no longer points into the file: it is deleted
    /// when the last reference to it goes.
    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    /// The file joined the state after all (a job's output, marked
    /// obsolete until its edit was logged): it is kept.
    pub(crate) fn keep(&self) {
        self.obsolete.store(false, Ordering::Release);
    }

    /// The file's path.
    pub(crate) fn path(&self) -> &std::path::Path {
        &self.path
    }

    fn reader(&self) -> Result<&dyn RandomAccessFile> {
        if let Some(r) = self.reader.get() {
            return Ok(&**r);
        }
        let r = self
            .fs
            .open_random_access(&self.path)
            .map_err(|e| Error::io(&self.path, e))?;
        let r = self.reader.get_or_init(|| r);
        Ok(&**r)
    }

    /// Checks the header against what the state says of the file (once).
    fn check_header(&self, r: &dyn RandomAccessFile) -> Result<()> {
        if self.checked.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut h = [0u8; BLOB_HEADER_LEN];
        let n = read_full_at(r, &mut h, 0).map_err(|e| Error::io(&self.path, e))?;
        let header = BlobFileHeader::decode(&h[..n]).map_err(|e| Error::format(&self.path, e))?;
        let expected = BlobFileHeader {
            file_number: self.number,
            file_uid: self.uid,
            key_id: self.key_id,
        };
        if header != expected {
            return Err(Error::format(
                &self.path,
                strata_format::Error::corruption(
                    format!("blob file header says {header:?}, the state records {expected:?}"),
                    0,
                ),
            ));
        }
        self.checked.store(true, Ordering::Release);
        Ok(())
    }

    /// Reads the value `ptr` points to.
    pub(crate) fn read(&self, ptr: &BlobPointer, ciphers: &Ciphers) -> Result<Bytes> {
        let r = self.reader()?;
        self.check_header(r)?;
        let size = self.size().max(r.size());
        let past_end = || {
            Error::format(
                &self.path,
                strata_format::Error::corruption(
                    format!(
                        "blob record of {} bytes runs past the end of the file ({size} bytes)",
                        ptr.stored_len
                    ),
                    ptr.offset,
                ),
            )
        };
        // Allocated only for a record within what the file holds.
        if ptr.offset.saturating_add(ptr.stored_len) > size {
            return Err(past_end());
        }
        let mut buf = vec![0u8; ptr.stored_len as usize];
        let n = read_full_at(r, &mut buf, ptr.offset).map_err(|e| Error::io(&self.path, e))?;
        if n < buf.len() {
            return Err(past_end());
        }
        let key = match self.key_id {
            None => None,
            Some(id) => Some(ciphers.get(id).ok_or_else(|| {
                Error::format(
                    &self.path,
                    strata_format::Error::MissingKey {
                        what: "blob record".into(),
                        offset: ptr.offset,
                        key_id: id,
                    },
                )
            })?),
        };
        let mut decoder = BlockDecoder::new();
        let value = ptr
            .decode_record(&buf, self.uid, key.as_deref(), &mut decoder)
            .map_err(|e| Error::format(&self.path, e))?;
        Ok(match value {
            // A plain record: the value is the start of the buffer read.
            std::borrow::Cow::Borrowed(v) => {
                let len = v.len();
                Bytes::from(buf).slice(..len)
            }
            std::borrow::Cow::Owned(v) => Bytes::from(v),
        })
    }
}

impl Drop for BlobFile {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            // Best effort: a file left behind is removed at the next open.
            let _ = self.fs.remove_file(&self.path);
        }
    }
}

/// How values are separated: the threshold and the codec of new records.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Separation {
    /// Values of a put at least this long go to a blob file (`None`: none).
    pub threshold: Option<usize>,
    /// Compression of blob records.
    pub compression: Compression,
}

impl Separation {
    /// True when a put of a value `len` bytes long is separated.
    #[inline]
    pub(crate) fn separates(&self, len: usize) -> bool {
        self.threshold.is_some_and(|t| len >= t)
    }
}

/// The blob files of one database, by number: every one a memtable or an
/// SST of some version can point into. Holds them weakly; the memtables
/// and SSTs that point into a file keep it.
pub(crate) struct BlobStore {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    ciphers: Arc<Ciphers>,
    separation: Separation,
    files: Mutex<HashMap<u64, Weak<BlobFile>>>,
}

impl std::fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStore")
            .field("separation", &self.separation)
            .finish_non_exhaustive()
    }
}

impl BlobStore {
    /// The blob files of the database in `dir`.
    pub(crate) fn new(
        dir: PathBuf,
        fs: Arc<dyn FileSystem>,
        ciphers: Arc<Ciphers>,
        separation: Separation,
    ) -> Self {
        BlobStore {
            dir,
            fs,
            ciphers,
            separation,
            files: Mutex::new(HashMap::new()),
        }
    }

    /// How values are separated.
    pub(crate) fn separation(&self) -> Separation {
        self.separation
    }

    /// The file system blob files are written through.
    pub(crate) fn fs(&self) -> &Arc<dyn FileSystem> {
        &self.fs
    }

    /// The database's directory.
    pub(crate) fn dir(&self) -> &std::path::Path {
        &self.dir
    }

    /// The keys blob records are sealed and opened with.
    pub(crate) fn ciphers(&self) -> &Arc<Ciphers> {
        &self.ciphers
    }

    /// The file `meta` describes: the one already known under its number,
    /// or a new handle.
    pub(crate) fn register(&self, meta: &BlobFileAdded) -> Arc<BlobFile> {
        let mut files = self.files.lock();
        if let Some(f) = files.get(&meta.file_number).and_then(Weak::upgrade) {
            f.grew_to(meta.size);
            return f;
        }
        let f = Arc::new(BlobFile {
            number: meta.file_number,
            uid: meta.file_uid,
            key_id: meta.key_id,
            size: AtomicU64::new(meta.size),
            path: names::blob(&self.dir, meta.file_number),
            fs: self.fs.clone(),
            reader: OnceLock::new(),
            checked: AtomicBool::new(false),
            obsolete: AtomicBool::new(false),
        });
        files.retain(|_, w| w.strong_count() > 0);
        files.insert(meta.file_number, Arc::downgrade(&f));
        f
    }

    /// The file numbered `number`, if something still points into it.
    pub(crate) fn get(&self, number: u64) -> Option<Arc<BlobFile>> {
        self.files.lock().get(&number).and_then(Weak::upgrade)
    }

    /// Reads the value a pointer (the stored value of a blob pointer
    /// entry) names.
    pub(crate) fn read(&self, pointer: &[u8]) -> Result<Bytes> {
        let ptr =
            BlobPointer::decode(pointer, 0).map_err(|e| Error::format("<blob pointer>", e))?;
        let Some(file) = self.get(ptr.file_number) else {
            return Err(Error::format(
                names::blob(&self.dir, ptr.file_number),
                strata_format::Error::corruption(
                    "a blob pointer names a blob file the database does not hold",
                    ptr.offset,
                ),
            ));
        };
        file.read(&ptr, &self.ciphers)
    }

    /// An entry as readers see it: a blob pointer's value read from its
    /// file, as a put; any other entry as it is.
    #[inline]
    pub(crate) fn load(&self, kind: ValueKind, value: Bytes) -> Result<(ValueKind, Bytes)> {
        if kind == ValueKind::BlobPointer {
            return Ok((ValueKind::Put, self.read(&value)?));
        }
        Ok((kind, value))
    }
}
