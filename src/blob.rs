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
//! records the old id under `d/`; the old chunks are deleted after it. An
//! open finishes what a crash interrupted: `d/` ids lose their chunks, `p/`
//! ids no metadata references lose theirs. Compaction then reclaims the
//! space.

use std::any::Any;
use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_engine::{Db, Isolation, Keyspace, Snapshot, Timestamp, TxnOptions, WriteOptions};

use crate::error::{EncryptionError, Result, StorageError};
use crate::kv::check_key;
use crate::provider::{ProviderContext, StorageProvider};
use crate::transaction::StorageTransaction;
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo,
};

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
    /// When it was stored (raw timestamp).
    pub stored_at: u64,
    /// When it expires (raw timestamp), if it has a TTL.
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
        }
    }
}

/// More chunks than any blob can have (2^40 bytes in 1-byte chunks).
const MAX_CHUNKS: u64 = 1 << 40;

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

/// Blobs of any size, in the Blob keyspace.
pub struct BlobStorageProvider {
    ctx: ProviderContext,
    chunk_size: usize,
}

impl std::fmt::Debug for BlobStorageProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStorageProvider")
            .field("chunk_size", &self.chunk_size)
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
        let p = BlobStorageProvider { ctx, chunk_size };
        // No writer runs yet: chunks of interrupted writes can go too.
        p.collect_garbage(true)?;
        Ok(p)
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

    /// Removes the chunks of replaced or deleted blobs and, with
    /// `interrupted` (only when no write can be running), of writes a crash
    /// cut short.
    fn collect_garbage(&self, interrupted: bool) -> Result<()> {
        let mut doomed: Vec<(String, Option<u64>)> = Vec::new();
        for entry in self.ks().prefix("d/")? {
            let (k, v) = entry?;
            let id = String::from_utf8_lossy(&k[2..]).into_owned();
            let count = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes);
            doomed.push((id, count));
        }
        let pending: Vec<String> = if !interrupted {
            Vec::new()
        } else {
            self.ks()
                .prefix("p/")?
                .map(|e| e.map(|(k, _)| String::from_utf8_lossy(&k[2..]).into_owned()))
                .collect::<std::result::Result<_, _>>()?
        };
        if !pending.is_empty() {
            let mut referenced = std::collections::HashSet::new();
            for entry in self.ks().prefix("m/")? {
                let (_, v) = entry?;
                if let Ok(m) = serde_json::from_slice::<BlobMetadata>(&v) {
                    referenced.insert(m.blob_id);
                }
            }
            for id in pending {
                if referenced.contains(&id) {
                    let mut b = self.db().batch();
                    b.delete(self.ks(), format!("p/{id}"))?;
                    self.db().write(b, self.sync())?;
                } else {
                    doomed.push((id, None));
                }
            }
        }
        for (id, count) in doomed {
            self.remove_chunks(&id, count)?;
        }
        Ok(())
    }

    /// Deletes every chunk of `id` (`count` of them when known, else found
    /// by scanning), then its `d/` and `p/` markers.
    fn remove_chunks(&self, id: &str, count: Option<u64>) -> Result<()> {
        // In groups, so memory stays flat whatever the count.
        let mut group: Vec<Vec<u8>> = Vec::with_capacity(256);
        let flush = |group: &mut Vec<Vec<u8>>| -> Result<()> {
            if group.is_empty() {
                return Ok(());
            }
            let mut b = self.db().batch();
            for k in group.drain(..) {
                b.delete(self.ks(), k)?;
            }
            self.db().write(b, WriteOptions::default())?;
            Ok(())
        };
        match count.filter(|&n| n <= MAX_CHUNKS) {
            Some(n) => {
                for i in 0..n {
                    group.push(chunk_key(id, i));
                    if group.len() == 256 {
                        flush(&mut group)?;
                    }
                }
            }
            None => {
                let keys: Vec<Vec<u8>> = self
                    .ks()
                    .prefix(chunk_prefix(id))?
                    .map(|e| e.map(|(k, _)| k.to_vec()))
                    .collect::<std::result::Result<_, _>>()?;
                for k in keys {
                    group.push(k);
                    if group.len() == 256 {
                        flush(&mut group)?;
                    }
                }
            }
        }
        flush(&mut group)?;
        let mut b = self.db().batch();
        b.delete(self.ks(), format!("d/{id}"))?;
        b.delete(self.ks(), format!("p/{id}"))?;
        self.db().write(b, self.sync())?;
        Ok(())
    }

    /// Stores everything `reader` yields under `key`, a chunk at a time.
    /// With a transaction in `options` the blob appears when it commits
    /// (its chunks are written ahead and removed if it does not).
    pub fn put_stream(
        &self,
        key: &StorageKey,
        mut reader: impl Read,
        options: &StorageOptions,
    ) -> Result<BlobMetadata> {
        let k = check_key(key)?;
        if options.encryption && !self.ctx.encrypted {
            return Err(EncryptionError::NotEncrypted(StorageType::Blob).into());
        }
        let id = new_blob_id();
        let mut b = self.db().batch();
        b.put(self.ks(), format!("p/{id}"), b"")?;
        self.db().write(b, WriteOptions::default())?;
        let written = self.write_chunks(&id, &mut reader);
        let (size, chunks, hash) = match written {
            Ok(w) => w,
            Err(e) => {
                let _ = self.remove_chunks(&id, None);
                return Err(e);
            }
        };
        let now = Timestamp::now();
        let meta = BlobMetadata {
            key: key.as_str().to_owned(),
            size,
            chunk_size: self.chunk_size as u64,
            chunks,
            content_hash: format!("{hash:032x}"),
            stored_at: now.as_u64(),
            expires_at: options.ttl.map(|t| now.saturating_add(t).as_u64()),
            blob_id: id.clone(),
        };
        let bytes = serde_json::to_vec(&meta).map_err(|e| StorageError::Io(e.to_string()))?;
        match options.transaction {
            Some(tx) => {
                let ks = self.ks().clone();
                let mk = meta_key(k);
                // If the transaction does not commit, the chunks written
                // ahead of it go. If it does, the write is no longer
                // pending (its marker was written after the transaction
                // began, so the transaction itself must not touch it), and
                // the replaced chunks go.
                let this = self.clone_for_hooks();
                let id2 = id.clone();
                let on_abort: crate::transaction::Hook = Box::new(move || {
                    let _ = this.remove_chunks(&id2, Some(chunks));
                });
                let this = self.clone_for_hooks();
                let id3 = id.clone();
                let on_commit: crate::transaction::Hook = Box::new(move || {
                    let mut b = this.db().batch();
                    if b.delete(this.ks(), format!("p/{id3}")).is_ok() {
                        let _ = this.db().write(b, this.sync());
                    }
                    let _ = this.collect_garbage(false);
                });
                let effects = crate::transaction::Effects {
                    on_abort: Some(on_abort),
                    on_commit: Some(on_commit),
                    ..Default::default()
                };
                let swapped = self.ctx.transactions.with_effects(tx, effects, |t| {
                    let old = t.get(&ks, &mk)?;
                    t.put(&ks, &mk, &bytes)?;
                    if let Some(old) = &old {
                        if let Ok(m) = serde_json::from_slice::<BlobMetadata>(old) {
                            t.put(&ks, format!("d/{}", m.blob_id), m.chunks.to_le_bytes())?;
                        }
                    }
                    Ok(())
                });
                if let Err(e) = swapped {
                    let _ = self.remove_chunks(&id, Some(chunks));
                    return Err(e);
                }
            }
            None => {
                let old = self.swap_meta(k, Some(&bytes), Some(&id))?;
                if let Some(old) = old {
                    self.remove_chunks(&old.blob_id, Some(old.chunks))?;
                }
            }
        }
        Ok(meta)
    }

    /// A handle sharing the provider's context, for cleanups run later.
    fn clone_for_hooks(&self) -> BlobStorageProvider {
        BlobStorageProvider {
            ctx: self.ctx.clone(),
            chunk_size: self.chunk_size,
        }
    }

    fn write_chunks(&self, id: &str, reader: &mut impl Read) -> Result<(u64, u64, u128)> {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; self.chunk_size];
        let mut size = 0u64;
        let mut index = 0u64;
        loop {
            let n = read_full(reader, &mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            let mut b = self.db().batch();
            b.put(self.ks(), chunk_key(id, index), &buf[..n])?;
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
    /// the replaced blob's chunks for removal; returns the replaced blob.
    fn swap_meta(
        &self,
        key: &[u8],
        new: Option<&[u8]>,
        new_id: Option<&str>,
    ) -> Result<Option<BlobMetadata>> {
        let mk = meta_key(key);
        let ks = self.ks();
        // Serializable: when another writer swaps the same blob, this one
        // runs again and reads its metadata anew, so the chunks recorded
        // for removal are the ones it replaced.
        let opts = TxnOptions {
            isolation: Isolation::Serializable,
            ..self.ctx.transactions.txn_options()
        };
        self.db()
            .transaction_with(&opts, |t| {
                let old = t.get(ks, &mk)?;
                match new {
                    Some(bytes) => t.put(ks, &mk, bytes)?,
                    None => t.delete(ks, &mk)?,
                }
                let old = old.and_then(|v| serde_json::from_slice::<BlobMetadata>(&v).ok());
                if let Some(m) = &old {
                    t.put(ks, format!("d/{}", m.blob_id), m.chunks.to_le_bytes())?;
                }
                if let Some(id) = new_id {
                    t.delete(ks, format!("p/{id}"))?;
                }
                Ok::<_, strata_engine::Error>(old)
            })
            .map_err(StorageError::from)
    }

    /// The metadata of the blob under `key`.
    pub fn metadata(&self, key: &StorageKey) -> Result<BlobMetadata> {
        let k = check_key(key)?;
        let raw = self
            .ks()
            .get(meta_key(k))?
            .ok_or_else(|| StorageError::NotFound(key.clone()))?;
        self.parse_meta(key, &raw)
    }

    fn parse_meta(&self, key: &StorageKey, raw: &[u8]) -> Result<BlobMetadata> {
        let m: BlobMetadata = serde_json::from_slice(raw).map_err(|e| StorageError::Corrupt {
            key: key.clone(),
            reason: format!("blob metadata: {e}"),
        })?;
        if m.expires_at.is_some_and(|e| e <= Timestamp::now().as_u64()) {
            return Err(StorageError::NotFound(key.clone()));
        }
        Ok(m)
    }

    /// A reader over the blob under `key` as it is now; later writes do not
    /// change what it reads.
    pub fn open(&self, key: &StorageKey) -> Result<BlobReader> {
        let snap = self.db().snapshot()?;
        self.open_in(key, snap)
    }

    /// A reader over the blob under `key` as of `ts`.
    pub fn open_at(&self, key: &StorageKey, ts: Timestamp) -> Result<BlobReader> {
        let snap = self.db().snapshot_at(ts)?;
        self.open_in(key, snap)
    }

    /// A reader over the blob under `key` as transaction `tx` sees it: the
    /// metadata is read in the transaction (its own writes included, and
    /// the read checked at commit); the chunks, written ahead of any
    /// transaction under their own id, from the latest state.
    fn open_in_transaction(
        &self,
        key: &StorageKey,
        tx: crate::transaction::TransactionId,
    ) -> Result<BlobReader> {
        let k = check_key(key)?;
        let ks = self.ks().clone();
        let raw = self
            .ctx
            .transactions
            .with(tx, |t| t.get(&ks, meta_key(k)))?
            .ok_or_else(|| StorageError::NotFound(key.clone()))?;
        let snap = self.db().snapshot()?;
        self.reader(key, &raw, snap)
    }

    fn open_in(&self, key: &StorageKey, snap: Snapshot) -> Result<BlobReader> {
        let k = check_key(key)?;
        let raw = snap
            .get(self.ks(), meta_key(k))?
            .ok_or_else(|| StorageError::NotFound(key.clone()))?;
        self.reader(key, &raw, snap)
    }

    fn reader(&self, key: &StorageKey, raw: &[u8], snap: Snapshot) -> Result<BlobReader> {
        let meta = self.parse_meta(key, raw)?;
        if meta.chunk_size == 0 || meta.chunks != meta.size.div_ceil(meta.chunk_size) {
            return Err(StorageError::Corrupt {
                key: key.clone(),
                reason: "blob metadata: chunk count does not match the size".into(),
            });
        }
        Ok(BlobReader {
            snap,
            ks: self.ks().clone(),
            meta,
            pos: 0,
            chunk: None,
        })
    }

    /// Deletes the blob under `key` (its chunks go with it).
    pub fn delete_blob(&self, key: &StorageKey) -> Result<bool> {
        let k = check_key(key)?;
        match self.swap_meta(k, None, None)? {
            Some(old) => {
                self.remove_chunks(&old.blob_id, Some(old.chunks))?;
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

/// Fills `buf` as far as the reader allows; returns the bytes read.
fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StorageError::Io(e.to_string())),
        }
    }
    Ok(n)
}

/// Reads a blob as of the moment it was opened, one chunk in memory at a
/// time.
pub struct BlobReader {
    snap: Snapshot,
    ks: Keyspace,
    meta: BlobMetadata,
    pos: u64,
    chunk: Option<(u64, bytes::Bytes)>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("meta", &self.meta)
            .field("pos", &self.pos)
            .finish()
    }
}

impl BlobReader {
    /// The blob's metadata.
    pub fn metadata(&self) -> &BlobMetadata {
        &self.meta
    }

    fn load(&mut self, index: u64) -> std::io::Result<()> {
        if self.chunk.as_ref().is_some_and(|(i, _)| *i == index) {
            return Ok(());
        }
        let key = chunk_key(&self.meta.blob_id, index);
        let data = self
            .snap
            .get(&self.ks, key)
            .map_err(std::io::Error::other)?
            .ok_or_else(|| {
                std::io::Error::other(format!("blob {}: chunk {index} is missing", self.meta.key))
            })?;
        let expected = if index + 1 == self.meta.chunks {
            self.meta.size - index * self.meta.chunk_size
        } else {
            self.meta.chunk_size
        };
        if data.len() as u64 != expected {
            return Err(std::io::Error::other(format!(
                "blob {}: chunk {index} has {} bytes, expected {expected}",
                self.meta.key,
                data.len()
            )));
        }
        self.chunk = Some((index, data));
        Ok(())
    }

    /// Reads the whole blob again and checks its content hash.
    pub fn verify(&mut self) -> Result<bool> {
        let save = self.pos;
        self.pos = 0;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self
                .read(&mut buf)
                .map_err(|e| StorageError::Io(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        self.pos = save;
        Ok(format!("{:032x}", hasher.digest128()) == self.meta.content_hash)
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.meta.size || buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / self.meta.chunk_size;
        self.load(index)?;
        let Some((_, data)) = &self.chunk else {
            return Ok(0);
        };
        let off = (self.pos - index * self.meta.chunk_size) as usize;
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.meta.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(t) => {
                self.pos = t;
                Ok(t)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the blob",
            )),
        }
    }
}

impl StorageProvider for BlobStorageProvider {
    fn storage_type(&self) -> StorageType {
        StorageType::Blob
    }

    fn store(
        &self,
        key: &StorageKey,
        value: &[u8],
        options: &StorageOptions,
    ) -> Result<StorageMetadata> {
        self.put_stream(key, value, options)
            .map(|m| m.storage_metadata())
    }

    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem> {
        let mut reader = match (options.transaction, options.at) {
            (Some(tx), _) => self.open_in_transaction(key, tx)?,
            (None, Some(ts)) => self.open_at(key, ts)?,
            (None, None) => self.open(key)?,
        };
        let mut value =
            Vec::with_capacity(usize::try_from(reader.meta.size).unwrap_or(0).min(1 << 30));
        reader
            .read_to_end(&mut value)
            .map_err(|e| StorageError::Io(e.to_string()))?;
        Ok(StorageItem {
            key: key.clone(),
            value,
            metadata: reader.meta.storage_metadata(),
            from_cache: false,
        })
    }

    fn exists(&self, key: &StorageKey) -> Result<bool> {
        match self.metadata(key) {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()> {
        match options.transaction {
            Some(tx) => {
                let k = check_key(key)?;
                let ks = self.ks().clone();
                let mk = meta_key(k);
                let this = self.clone_for_hooks();
                let effects = crate::transaction::Effects {
                    on_commit: Some(Box::new(move || {
                        let _ = this.collect_garbage(false);
                    })),
                    ..Default::default()
                };
                self.ctx.transactions.with_effects(tx, effects, |t| {
                    if let Some(old) = t.get(&ks, &mk)? {
                        if let Ok(m) = serde_json::from_slice::<BlobMetadata>(&old) {
                            t.put(&ks, format!("d/{}", m.blob_id), m.chunks.to_le_bytes())?;
                        }
                    }
                    t.delete(&ks, &mk)
                })?;
                Ok(())
            }
            None => self.delete_blob(key).map(|_| ()),
        }
    }

    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>> {
        let mut p = pattern.clone();
        p.prefix = format!("m/{}", pattern.prefix);
        p.glob = pattern.glob.as_ref().map(|g| format!("m/{g}"));
        p.start_after = pattern
            .start_after
            .as_ref()
            .map(|k| StorageKey::new(format!("m/{k}")));
        let keys = crate::kv::list_keys(self.ks(), &p, |_| true)?;
        Ok(keys
            .into_iter()
            .map(|k| StorageKey::new(&k.as_str()[2..]))
            .collect())
    }

    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>> {
        let k = check_key(key)?;
        let versions = self.ks().history(meta_key(k))?;
        let mut out = Vec::new();
        for v in versions {
            let item = match v.value {
                None => None,
                // Chunks of replaced versions are removed: those read as
                // absent.
                Some(_) => self.retrieve(key, &RetrieveOptions::new().at(v.ts)).ok(),
            };
            out.push(VersionInfo { ts: v.ts, item });
        }
        Ok(out)
    }

    fn begin_transaction(&self) -> Result<StorageTransaction> {
        self.ctx.transactions.begin()
    }

    fn commit_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.ctx.transactions.commit(transaction.id).map(|_| ())
    }

    fn rollback_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.ctx.transactions.rollback(transaction.id).map(|_| ())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl BlobStorageProvider {
    /// Removes the chunks of blobs replaced or deleted by committed
    /// transactions (recorded under `d/`); also done at every open.
    pub fn cleanup(&self) -> Result<()> {
        self.collect_garbage(false)
    }
}

/// Shared handle type returned by `StorageSystem::get_blob_storage`.
pub type SharedBlobStorage = Arc<BlobStorageProvider>;
