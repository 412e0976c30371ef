//! Blobs of any size, written and read as streams in fixed-size chunks so
//! that memory stays flat whatever the size.
//!
//! In the Blob keyspace:
//!
//! ```text
//! m/<key>            → the blob's metadata (JSON): size, chunk size, chunk
//!                      count, xxh3-128 of the content, its blob id
//! c/<id>/<index BE>  → chunk `index` of blob `id`
//! p/<id>             → a blob being written (its chunks may be orphans)
//! d/<id>             → chunk count of a replaced or deleted blob whose
//!                      chunks are being removed
//! ```
//!
//! Chunks go under a fresh random id, so a blob being written is invisible
//! until its metadata is committed, and replacing a blob never mixes
//! chunks. The metadata swap is a serializable transaction that also
//! records the old id under `d/`; the old chunks are deleted after it.
//! [`cleanup`](BlobStorageProvider::cleanup) and every open finish what a
//! failure or a crash interrupted (see `gc`). A blob with a TTL has its
//! metadata and every chunk written with one expiry on the engine's clock:
//! it vanishes from reads and listings at once, and compaction reclaims
//! all of it.

mod gc;
mod provider;
mod reader;

use std::io::Read;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_engine::{
    Db, Entry, Isolation, Keyspace, Snapshot, Timestamp, TxnOptions, WriteOptions,
};

pub use reader::BlobReader;

use crate::access::{AccessType, Caller};
use crate::error::{Result, StorageError};
use crate::instrument::Instrument;
use crate::kv::check_key;
use crate::policy::Charge;
use crate::provider::ProviderContext;
use crate::transaction::TransactionId;
use crate::types::{StorageKey, StorageMetadata, StorageOptions, StorageType};
use gc::Garbage;
use reader::read_full;

/// What is stored of a blob besides its chunks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobMetadata {
    /// The blob's key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Bytes per chunk (the last may be shorter).
    pub chunk_size: u64,
    /// Number of chunks.
    pub chunks: u64,
    /// xxh3-128 of the content, as 32 hex digits.
    pub content_hash: String,
    /// When it was stored (raw timestamp): the commit timestamp of its
    /// metadata, which `open_at` reads it at.
    pub stored_at: u64,
    /// When it expires (raw timestamp on the engine's clock), if it has a
    /// TTL.
    pub expires_at: Option<u64>,
    /// The id its chunks are stored under.
    pub blob_id: String,
}

impl BlobMetadata {
    fn storage_metadata(&self) -> StorageMetadata {
        StorageMetadata {
            key: StorageKey::new(self.key.clone()),
            size: self.size,
            stored_at: Timestamp(self.stored_at),
            expires_at: self.expires_at.map(Timestamp),
            // The low half of the content hash.
            checksum: u128::from_str_radix(&self.content_hash, 16).map_or(0, |h| h as u64),
            version: Some(Timestamp(self.stored_at)),
        }
    }
}

fn meta_key(key: &[u8]) -> Vec<u8> {
    [b"m/", key].concat()
}

fn chunk_key(id: &str, index: u64) -> Vec<u8> {
    let mut k = format!("c/{id}/").into_bytes();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

fn chunk_prefix(id: &str) -> Vec<u8> {
    format!("c/{id}/").into_bytes()
}

fn new_blob_id() -> String {
    static FALLBACK: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: the clock and a process-wide counter still
        // give every blob written by this process its own id.
        let n = FALLBACK.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b[..8].copy_from_slice(&Timestamp::now().as_u64().to_le_bytes());
        b[8..].copy_from_slice(&n.to_le_bytes());
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Blobs of any size, in the Blob keyspace. Handles share their state;
/// the one from [`StorageSystem::get_blob_storage`](crate::StorageSystem::get_blob_storage)
/// measures and observes every call, and one from
/// [`IdentityStorage::get_blob_storage`](crate::IdentityStorage::get_blob_storage)
/// also checks the identity's access.
#[derive(Clone)]
pub struct BlobStorageProvider {
    ctx: ProviderContext,
    chunk_size: usize,
    garbage: Arc<Garbage>,
    instrument: Option<Arc<Instrument>>,
    caller: Option<Caller>,
}

impl std::fmt::Debug for BlobStorageProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStorageProvider")
            .field("chunk_size", &self.chunk_size)
            .field("identity", &self.caller.as_ref().map(Caller::identity))
            .finish()
    }
}

impl BlobStorageProvider {
    /// A provider on `ctx.keyspace`, with chunks of `ctx.config.chunk_size`
    /// bytes; finishes cleanups a crash interrupted.
    pub fn new(ctx: ProviderContext) -> Result<Self> {
        let chunk_size = ctx.config.chunk_size;
        if chunk_size == 0 || chunk_size > 64 << 20 {
            return Err(StorageError::Configuration(
                "blob chunk size must be between 1 byte and 64 MiB".into(),
            ));
        }
        let p = BlobStorageProvider {
            ctx,
            chunk_size,
            garbage: Arc::default(),
            instrument: None,
            caller: None,
        };
        p.collect_garbage()?;
        Ok(p)
    }

    /// This provider, measuring and observing every streaming call.
    pub(crate) fn with_instrument(&self, instrument: Arc<Instrument>) -> Self {
        BlobStorageProvider {
            instrument: Some(instrument),
            ..self.clone()
        }
    }

    /// This provider, checking every call of `caller`.
    pub(crate) fn with_caller(&self, caller: Caller) -> Self {
        BlobStorageProvider {
            caller: Some(caller),
            ..self.clone()
        }
    }

    fn ks(&self) -> &Keyspace {
        &self.ctx.keyspace
    }

    fn db(&self) -> &Db {
        &self.ctx.db
    }

    fn sync(&self) -> WriteOptions {
        WriteOptions {
            sync: self.ctx.sync,
        }
    }

    fn require(&self, key: &str, access: AccessType) -> Result<()> {
        match &self.caller {
            Some(c) => c.require(StorageType::Blob, key, access),
            None => Ok(()),
        }
    }

    /// Measures and observes `f` as operation `op` when this handle is
    /// instrumented.
    fn timed<T>(
        &self,
        op: &str,
        key: Option<&StorageKey>,
        tx: Option<TransactionId>,
        bytes: impl Fn(&T) -> u64,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        match &self.instrument {
            Some(i) => i.run(op, StorageType::Blob, key, tx, bytes, f),
            None => f(),
        }
    }

    /// Counts failed removals in `counter` too (the metrics'
    /// `strata_blob_cleanup_failures_total`), whichever handle fails.
    pub(crate) fn report_cleanup_failures_to(&self, counter: Arc<std::sync::atomic::AtomicU64>) {
        self.garbage.report_to(counter);
    }

    /// Stores everything `reader` yields under `key`, a chunk at a time.
    /// With a transaction in `options` the blob appears when it commits
    /// (its chunks are written ahead and removed if it does not). Needs
    /// Write on `key`.
    pub fn put_stream(
        &self,
        key: &StorageKey,
        reader: impl Read,
        options: &StorageOptions,
    ) -> Result<BlobMetadata> {
        let tx = options.transaction;
        let applied = self.instrument.as_ref().map(|i| i.expect_applied(tx));
        let meta = self.timed(
            "put_stream",
            Some(key),
            tx,
            |m: &BlobMetadata| m.size,
            || {
                self.require(key.as_str(), AccessType::Write)?;
                self.write_blob(key, reader, options)
            },
        )?;
        if let Some(a) = applied {
            let mut m = meta.storage_metadata();
            if tx.is_some() {
                m.version = None;
            }
            a.fire("store", || {
                crate::instrument::stored(key, &m, StorageType::Blob)
            });
        }
        Ok(meta)
    }

    fn write_blob(
        &self,
        key: &StorageKey,
        mut reader: impl Read,
        options: &StorageOptions,
    ) -> Result<BlobMetadata> {
        let k = check_key(key)?;
        let policies = &self.ctx.policies;
        // The size is known only at the end: the limit is checked as the
        // stream goes.
        let options = &policies.prepare(
            StorageType::Blob,
            key.as_str(),
            0,
            options,
            self.ctx.encrypted,
        )?;
        let max = policies.max_item_bytes(StorageType::Blob, key.as_str());
        crate::kv::check_store_options(options, self.ctx.encrypted, StorageType::Blob)?;
        // One expiry for the metadata and every chunk.
        let now = self.db().now();
        let expires_at = options.ttl.map(|t| now.saturating_add(t));
        let id = new_blob_id();
        let writing = self.garbage.writing(&id);
        let mut b = self.db().batch();
        b.put(self.ks(), format!("p/{id}"), b"")?;
        self.db().write(b, WriteOptions::default())?;
        let written = self
            .write_chunks(&id, &mut reader, expires_at, max.map(|m| (m, key.as_str())))
            .and_then(|(size, chunks, hash)| {
                let charge = policies.charge(
                    StorageType::Blob,
                    key.as_str(),
                    &meta_key(k),
                    Some((size, expires_at)),
                )?;
                Ok((size, chunks, hash, charge))
            });
        let (size, chunks, hash, charge) = match written {
            Ok(w) => w,
            Err(e) => {
                drop(writing);
                self.discard(&id);
                return Err(e);
            }
        };
        let mut meta = BlobMetadata {
            key: key.as_str().to_owned(),
            size,
            chunk_size: self.chunk_size as u64,
            chunks,
            content_hash: format!("{hash:032x}"),
            stored_at: now.as_u64(),
            expires_at: expires_at.map(Timestamp::as_u64),
            blob_id: id.clone(),
        };
        let bytes = serde_json::to_vec(&meta).map_err(|e| StorageError::Io(e.to_string()))?;
        match options.transaction {
            Some(tx) => {
                // Still being written until the transaction ends: its
                // hooks (or the failure below) let go.
                writing.keep();
                if let Err(e) = self.swap_in_transaction(tx, k, &meta, &bytes, charge) {
                    self.garbage.done(&id);
                    self.discard(&id);
                    return Err(e);
                }
            }
            None => {
                let swapped = self.swap_meta(k, Some((&bytes, expires_at)), Some(&id));
                drop(writing);
                let (old, ts) = match swapped {
                    Ok(s) => s,
                    Err(e) => {
                        self.discard(&id);
                        return Err(e);
                    }
                };
                charge.commit(ts);
                meta.stored_at = ts.as_u64();
                if let Some(old) = old {
                    self.discard(&old.blob_id);
                }
            }
        }
        Ok(meta)
    }

    /// Buffers the metadata swap in transaction `tx`. If the transaction
    /// does not commit, the chunks written ahead of it go; if it does,
    /// the write is no longer pending (its marker was written after the
    /// transaction began, so the transaction itself must not touch it) and
    /// the replaced chunks go.
    fn swap_in_transaction(
        &self,
        tx: TransactionId,
        k: &[u8],
        meta: &BlobMetadata,
        bytes: &[u8],
        charge: Charge,
    ) -> Result<()> {
        let id = meta.blob_id.as_str();
        let expires_at = meta.expires_at.map(Timestamp);
        let ks = self.ks().clone();
        let mk = meta_key(k);
        let (this, id2) = (self.clone(), id.to_owned());
        let on_abort: crate::transaction::Hook = Box::new(move || {
            this.garbage.done(&id2);
            this.discard(&id2);
        });
        let (this, id3) = (self.clone(), id.to_owned());
        let replaced: Arc<parking_lot::Mutex<Option<BlobMetadata>>> = Arc::default();
        let old = replaced.clone();
        let on_commit: crate::transaction::CommitHook = Box::new(move |ts| {
            charge.commit(ts);
            this.garbage.done(&id3);
            let mut b = this.db().batch();
            if b.delete(this.ks(), format!("p/{id3}")).is_ok()
                && this.db().write(b, this.sync()).is_err()
            {
                // The marker stays; the next cleanup sees the metadata
                // referencing the id and removes it.
                this.garbage.failed();
            }
            if let Some(m) = old.lock().take() {
                this.discard(&m.blob_id);
            }
        });
        let effects = crate::transaction::Effects {
            on_abort: Some(on_abort),
            on_commit: Some(on_commit),
            ..Default::default()
        };
        self.ctx.transactions.with_effects(tx, effects, |t| {
            *replaced.lock() = record_replaced(t, &ks, &mk)?;
            match expires_at {
                Some(at) => t.put_expiring(&ks, &mk, bytes, at),
                None => t.put(&ks, &mk, bytes),
            }
        })
    }

    /// Writes the chunks of what `reader` yields under `id`; fails before
    /// writing past `max` bytes (the policy's limit, for the key named).
    fn write_chunks(
        &self,
        id: &str,
        reader: &mut impl Read,
        expires_at: Option<Timestamp>,
        max: Option<(u64, &str)>,
    ) -> Result<(u64, u64, u128)> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; self.chunk_size];
        let mut size = 0u64;
        let mut index = 0u64;
        loop {
            let n = read_full(reader, &mut buf)?;
            if n == 0 {
                break;
            }
            if let Some((max, key)) = max {
                if size + n as u64 > max {
                    return Err(crate::policy::too_large(StorageType::Blob, key, max));
                }
            }
            hasher.update(&buf[..n]);
            let mut b = self.db().batch();
            let ck = chunk_key(id, index);
            match expires_at {
                Some(at) => b.put_expiring(self.ks(), ck, &buf[..n], at)?,
                None => b.put(self.ks(), ck, &buf[..n])?,
            }
            self.db().write(b, WriteOptions::default())?;
            size += n as u64;
            index += 1;
            if n < buf.len() {
                break;
            }
        }
        Ok((size, index, hasher.digest128()))
    }

    /// Replaces (or removes) the metadata of `key` atomically, recording
    /// the replaced blob's chunks for removal; returns the replaced blob
    /// and the commit timestamp.
    fn swap_meta(
        &self,
        key: &[u8],
        new: Option<(&[u8], Option<Timestamp>)>,
        new_id: Option<&str>,
    ) -> Result<(Option<BlobMetadata>, Timestamp)> {
        let mk = meta_key(key);
        let ks = self.ks();
        // Serializable: when another writer swaps the same blob, this one
        // runs again and reads its metadata anew, so the chunks recorded
        // for removal are the ones it replaced.
        let opts = TxnOptions {
            isolation: Isolation::Serializable,
            ..self.ctx.transactions.txn_options()
        };
        let (old, ts) = self.db().transaction_with(&opts, |t| {
            let old = record_replaced(t, ks, &mk)?;
            match new {
                Some((bytes, Some(at))) => t.put_expiring(ks, &mk, bytes, at)?,
                Some((bytes, None)) => t.put(ks, &mk, bytes)?,
                None => t.delete(ks, &mk)?,
            }
            if let Some(id) = new_id {
                t.delete(ks, format!("p/{id}"))?;
            }
            Ok::<_, strata_engine::Error>(old)
        })?;
        Ok((old, ts))
    }

    /// The metadata of the blob under `key`. Needs Read on `key`.
    pub fn metadata(&self, key: &StorageKey) -> Result<BlobMetadata> {
        self.timed(
            "metadata",
            Some(key),
            None,
            |_| 0,
            || {
                self.require(key.as_str(), AccessType::Read)?;
                self.read_metadata(key)
            },
        )
    }

    fn read_metadata(&self, key: &StorageKey) -> Result<BlobMetadata> {
        let k = check_key(key)?;
        let entry = self
            .ks()
            .get_entry(meta_key(k))?
            .ok_or_else(|| StorageError::NotFound(key.clone()))?;
        parse_meta(key, &entry)
    }

    /// A reader over the blob under `key` as it is now; later writes do not
    /// change what it reads. Needs Read on `key`.
    pub fn open(&self, key: &StorageKey) -> Result<BlobReader> {
        self.timed(
            "open",
            Some(key),
            None,
            |_| 0,
            || {
                self.require(key.as_str(), AccessType::Read)?;
                self.open_in(key, self.db().snapshot()?)
            },
        )
    }

    /// A reader over the blob under `key` as of `ts`. Needs Read on `key`.
    pub fn open_at(&self, key: &StorageKey, ts: Timestamp) -> Result<BlobReader> {
        self.timed(
            "open",
            Some(key),
            None,
            |_| 0,
            || {
                self.require(key.as_str(), AccessType::Read)?;
                self.ctx.policies.check_readable(StorageType::Blob, ts)?;
                self.open_in(key, self.db().snapshot_at(ts)?)
            },
        )
    }

    /// A reader over the blob under `key` as transaction `tx` sees it: the
    /// metadata is read in the transaction (its own writes included, and
    /// the read checked at commit); the chunks, written ahead of any
    /// transaction under their own id, from the latest state.
    fn open_in_transaction(&self, key: &StorageKey, tx: TransactionId) -> Result<BlobReader> {
        let k = check_key(key)?;
        let ks = self.ks().clone();
        let entry = self
            .ctx
            .transactions
            .with(tx, |t| t.get_entry(&ks, meta_key(k)))?
            .ok_or_else(|| StorageError::NotFound(key.clone()))?;
        self.reader(key, &entry, self.db().snapshot()?)
    }

    fn open_in(&self, key: &StorageKey, snap: Snapshot) -> Result<BlobReader> {
        let k = check_key(key)?;
        let entry = snap
            .get_entry(self.ks(), meta_key(k))?
            .ok_or_else(|| StorageError::NotFound(key.clone()))?;
        self.reader(key, &entry, snap)
    }

    fn reader(&self, key: &StorageKey, entry: &Entry, snap: Snapshot) -> Result<BlobReader> {
        let meta = parse_meta(key, entry)?;
        if meta.chunk_size == 0 || meta.chunks != meta.size.div_ceil(meta.chunk_size) {
            return Err(StorageError::Corrupt {
                key: key.clone(),
                reason: "blob metadata: chunk count does not match the size".into(),
            });
        }
        Ok(BlobReader::new(snap, self.ks().clone(), meta))
    }

    /// Deletes the blob under `key` (its chunks go with it); true when it
    /// existed. Needs Delete on `key`.
    pub fn delete_blob(&self, key: &StorageKey) -> Result<bool> {
        let applied = self.instrument.as_ref().map(|i| i.expect_applied(None));
        let existed = self.timed(
            "delete_blob",
            Some(key),
            None,
            |_| 0,
            || {
                self.require(key.as_str(), AccessType::Delete)?;
                let k = check_key(key)?;
                let charge = self.ctx.policies.charge(
                    StorageType::Blob,
                    key.as_str(),
                    &meta_key(k),
                    None,
                )?;
                let (old, ts) = self.swap_meta(k, None, None)?;
                charge.commit(ts);
                if let Some(old) = &old {
                    self.discard(&old.blob_id);
                }
                Ok(old.is_some())
            },
        )?;
        if existed {
            if let Some(a) = applied {
                a.fire("delete", || {
                    crate::instrument::deleted(key, StorageType::Blob)
                });
            }
        }
        Ok(existed)
    }

    /// Removes the chunks nothing references any more: those of replaced
    /// or deleted blobs, and those of writes that failed (a full disk) or
    /// that a crash cut short; writes running meanwhile are left alone.
    /// Also done at every open. Returns how many blobs' chunks went.
    /// Needs Admin on the empty key.
    pub fn cleanup(&self) -> Result<u64> {
        self.timed(
            "cleanup",
            None,
            None,
            |_| 0,
            || {
                self.require("", AccessType::Admin)?;
                self.collect_garbage()
            },
        )
    }

    /// Chunk removals that failed since the storage system opened (each
    /// left for the next [`cleanup`](Self::cleanup) or open, and counted in
    /// `strata_blob_cleanup_failures_total`).
    pub fn cleanup_failures(&self) -> u64 {
        self.garbage.failures()
    }
}

/// Reads, in `t`, the metadata under `mk` that a write is about to
/// replace, and records its chunks for removal (`d/<id>`); returns it.
fn record_replaced(
    t: &mut strata_engine::Transaction,
    ks: &Keyspace,
    mk: &[u8],
) -> strata_engine::Result<Option<BlobMetadata>> {
    let old = t
        .get(ks, mk)?
        .and_then(|v| serde_json::from_slice::<BlobMetadata>(&v).ok());
    if let Some(m) = &old {
        t.put(ks, format!("d/{}", m.blob_id), m.chunks.to_le_bytes())?;
    }
    Ok(old)
}

/// Decodes blob metadata as read from the engine: its `stored_at` is the
/// version's commit timestamp, its expiry the engine's.
fn parse_meta(key: &StorageKey, entry: &Entry) -> Result<BlobMetadata> {
    let mut m: BlobMetadata =
        serde_json::from_slice(&entry.value).map_err(|e| StorageError::Corrupt {
            key: key.clone(),
            reason: format!("blob metadata: {e}"),
        })?;
    if let Some(ts) = entry.ts {
        m.stored_at = ts.as_u64();
    }
    if let Some(at) = entry.expires_at {
        m.expires_at = Some(at.as_u64());
    }
    Ok(m)
}

/// Shared handle type returned by `StorageSystem::get_blob_storage`.
pub type SharedBlobStorage = Arc<BlobStorageProvider>;
