//! Creating and dropping indexes over collections that are in use.
//!
//! Creation: the definition is committed as `Building`, after which every
//! new write maintains the index. Writers outside a caller's transaction
//! are serializable and retry when the definitions they read change; the
//! build waits for every caller's transaction that began before it (which
//! may not know of the index) to finish. Then the existing documents are
//! read in chunks of bounded size, each chunk's entries written in a
//! serializable transaction that retries when a writer touched the chunk
//! meanwhile; finally the definition turns `Ready`. A crash at any point
//! before that leaves a `Building` definition, which the next start drops
//! with its entries: a half-built index is never read.

use std::ops::Bound;
use std::thread;
use std::time::{Duration, Instant};

use strata_engine::{Isolation, Timestamp, TxnOptions, WriteOptions};

use super::execute::decode_doc_with_expiry;
use super::index::{
    decode_info, encode_info, entry_keys, read_infos, IndexInfo, IndexSpec, IndexState, FORMAT,
};
use super::keys;
use super::stats::IndexStatistics;
use super::value::prefix_successor;
use super::{DocumentStorageProvider, Shared};
use crate::access::AccessType;
use crate::error::{Result, StorageError};
use crate::types::StorageKey;

/// Documents indexed per transaction while building, at most.
const BUILD_CHUNK: usize = 1000;
/// Bytes of documents read per build transaction, at most (one document
/// larger than this makes a chunk of its own).
const BUILD_CHUNK_BYTES: usize = 4 << 20;
impl DocumentStorageProvider {
    /// Creates an index on `field` of `collection` and builds it over the
    /// documents already there, in bounded memory; returns once queries
    /// use it. Needs Admin on `collection/`.
    pub fn create_index(&self, collection: &str, field: &str) -> Result<IndexInfo> {
        self.create_index_with(collection, &IndexSpec::on(field))
    }

    /// Creates the index `spec` describes (compound, unique) and builds it
    /// like [`create_index`](Self::create_index). A unique index over
    /// documents that already share values fails with `UniqueViolation`
    /// and leaves no index.
    pub fn create_index_with(&self, collection: &str, spec: &IndexSpec) -> Result<IndexInfo> {
        let c = StorageKey::new(format!("{collection}/"));
        self.timed(
            "create_index",
            Some(&c),
            None,
            |_| 0,
            || {
                keys::check_collection(collection)?;
                spec.check().map_err(StorageError::InvalidArgument)?;
                self.require(&format!("{collection}/"), AccessType::Admin)?;
                self.shared.create_index(collection, spec)
            },
        )
    }

    /// Drops the index on `field` of `collection`: queries stop using it
    /// at once, and its entries are removed. Needs Admin on `collection/`.
    pub fn drop_index(&self, collection: &str, field: &str) -> Result<()> {
        self.drop_index_with(collection, &IndexSpec::on(field))
    }

    /// Drops the index on `spec`'s fields (its `unique` flag is not
    /// compared), like [`drop_index`](Self::drop_index).
    pub fn drop_index_with(&self, collection: &str, spec: &IndexSpec) -> Result<()> {
        let c = StorageKey::new(format!("{collection}/"));
        self.timed(
            "drop_index",
            Some(&c),
            None,
            |_| 0,
            || {
                keys::check_collection(collection)?;
                spec.check().map_err(StorageError::InvalidArgument)?;
                self.require(&format!("{collection}/"), AccessType::Admin)?;
                let _ddl = self.shared.ddl.lock();
                let sh = &self.shared;
                let mk = keys::meta(collection, &spec.key_name());
                let Some(bytes) = sh.keyspace.get(&mk)? else {
                    return Err(StorageError::NotFound(StorageKey::new(format!(
                        "{collection}/index/{}",
                        spec.fields.join(", ")
                    ))));
                };
                let info = decode_info(&mk, &bytes)?;
                sh.remove(collection, info, true)
            },
        )
    }

    /// Gathers the statistics of every ready index of `collection` (one
    /// scan of each index's entries) and stores them for the planner,
    /// which estimates from them what each candidate plan reads. Needs
    /// Admin on `collection/`.
    pub fn analyze(&self, collection: &str) -> Result<Vec<IndexStatistics>> {
        let c = StorageKey::new(format!("{collection}/"));
        self.timed(
            "analyze",
            Some(&c),
            None,
            |_| 0,
            || {
                keys::check_collection(collection)?;
                self.require(&format!("{collection}/"), AccessType::Admin)?;
                let mut snap = self.shared.db.snapshot()?;
                let infos = read_infos(&mut snap, &self.shared.keyspace, collection)?;
                infos
                    .iter()
                    .filter(|i| i.state == IndexState::Ready)
                    .map(|i| self.shared.analyze_index(collection, i))
                    .collect()
            },
        )
    }

    /// The indexes of `collection`, in field order.
    pub fn indexes(&self, collection: &str) -> Result<Vec<IndexInfo>> {
        keys::check_collection(collection)?;
        self.require(&format!("{collection}/"), AccessType::List)?;
        let mut snap = self.shared.db.snapshot()?;
        read_infos(&mut snap, &self.shared.keyspace, collection)
    }
}

impl Shared {
    fn write_options(&self) -> WriteOptions {
        WriteOptions { sync: self.sync }
    }

    /// Commits `info` as the definition of its field if the definition is
    /// now `expect`; returns the commit time.
    fn swap_info(
        &self,
        collection: &str,
        expect: Option<&IndexInfo>,
        info: Option<&IndexInfo>,
        spec: &IndexSpec,
    ) -> Result<Timestamp> {
        let mk = keys::meta(collection, &spec.key_name());
        let field = spec.fields.join(", ");
        let mut t = self.db.begin(Isolation::Serializable)?;
        let now = match t.get(&self.keyspace, &mk)? {
            Some(b) => Some(decode_info(&mk, &b)?),
            None => None,
        };
        if now.as_ref() != expect {
            t.rollback();
            return Err(match (now, expect) {
                (Some(i), None) => StorageError::AlreadyExists(format!(
                    "an index on {field:?} of {collection:?} ({:?})",
                    i.state
                )),
                (Some(i), Some(_)) => StorageError::Busy(format!(
                    "the index on {field:?} of {collection:?} changed meanwhile (now {:?})",
                    i.state
                )),
                (None, _) => {
                    StorageError::NotFound(StorageKey::new(format!("{collection}/index/{field}")))
                }
            });
        }
        match info {
            Some(i) => t.put(&self.keyspace, &mk, encode_info(i))?,
            None => t.delete(&self.keyspace, &mk)?,
        }
        Ok(t.commit_with(self.write_options())?)
    }

    /// How long index creation and removal wait for older transactions
    /// (`transactions.index_build_wait_secs`).
    fn wait_bound(&self) -> Duration {
        Duration::from_secs(self.transactions.config().index_build_wait_secs)
    }

    /// Waits until every caller's transaction that began before `ts` has
    /// finished; false after [`wait_bound`](Self::wait_bound).
    fn wait_for_older(&self, ts: Timestamp) -> bool {
        let deadline = Instant::now() + self.wait_bound();
        while self
            .transactions
            .oldest_active_start()
            .is_some_and(|s| s < ts)
        {
            if Instant::now() > deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(2));
        }
        true
    }

    fn create_index(&self, collection: &str, spec: &IndexSpec) -> Result<IndexInfo> {
        let _ddl = self.ddl.lock();
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)
            .map_err(|e| StorageError::Io(format!("no randomness for an index id: {e}")))?;
        let building = IndexInfo {
            field: spec.fields[0].clone(),
            more_fields: spec.fields[1..].to_vec(),
            unique: spec.unique,
            format: FORMAT,
            id: u64::from_le_bytes(id),
            state: IndexState::Building,
        };
        let field = &spec.fields.join(", ");
        let at = self.swap_info(collection, None, Some(&building), spec)?;
        let built = if self.wait_for_older(at) {
            self.build(collection, &building)
        } else {
            Err(StorageError::Busy(format!(
                "transactions begun before the index on {field:?} did not finish within {} s",
                self.wait_bound().as_secs()
            )))
        };
        if let Err(e) = built {
            // Without a second wait, so the call ends within the bound:
            // the older transactions never knew of the index, and entries
            // a newer one writes late go under an id nobody reads again.
            // Best effort: a leftover `Building` definition is dropped at
            // the next start anyway.
            let _ = self.remove(collection, building, false);
            return Err(e);
        }
        let ready = IndexInfo {
            state: IndexState::Ready,
            ..building.clone()
        };
        self.swap_info(collection, Some(&building), Some(&ready), spec)?;
        // The planner can weigh the new index at once.
        self.analyze_index(collection, &ready)?;
        Ok(ready)
    }

    /// Writes the entries of every existing document, chunk by chunk, each
    /// chunk in a serializable transaction; a chunk a writer changed
    /// meanwhile is tried again through the one retry loop, smaller with
    /// each attempt.
    fn build(&self, collection: &str, info: &IndexInfo) -> Result<()> {
        let prefix = keys::docs(collection);
        let opts = TxnOptions {
            isolation: Isolation::Serializable,
            ..self.transactions.txn_options()
        };
        let mut cursor = prefix.clone();
        loop {
            let done = opts.retry(|attempt| {
                let chunk = (BUILD_CHUNK >> attempt.min(16)).max(1);
                self.build_chunk(collection, info, &cursor, chunk, &opts)
            });
            match done {
                Ok(Some(last)) => {
                    cursor = last;
                    cursor.push(0);
                }
                Ok(None) => return Ok(()),
                Err(e) if e.is_conflict() => {
                    return Err(StorageError::Busy(
                        "index build kept conflicting with writers".into(),
                    ))
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Indexes the documents from `cursor` on, at most `chunk` of them (and
    /// [`BUILD_CHUNK_BYTES`]), in one transaction; returns the last key
    /// indexed, or `None` when none is left.
    fn build_chunk(
        &self,
        collection: &str,
        info: &IndexInfo,
        cursor: &[u8],
        chunk: usize,
        opts: &TxnOptions,
    ) -> Result<Option<Vec<u8>>> {
        let ks = &self.keyspace;
        let prefix = keys::docs(collection);
        let end = prefix_successor(&prefix);
        let mk = keys::meta(collection, &info.spec().key_name());
        let marker = keys::multikey(collection, info.id);
        // The chunk's last key, read outside the transaction, bounds what
        // the transaction reads: writes past it do not conflict.
        let last = {
            let snap = self.db.snapshot()?;
            let hi = end.map_or(Bound::Unbounded, Bound::Excluded);
            let mut last = None;
            let mut bytes = 0;
            for (n, e) in snap
                .range(ks, (Bound::Included(cursor.to_vec()), hi))?
                .enumerate()
            {
                let (k, v) = e?;
                last = Some(k.to_vec());
                bytes += k.len() + v.len();
                if n + 1 >= chunk || bytes >= BUILD_CHUNK_BYTES {
                    break;
                }
            }
            last
        };
        let Some(last) = last else {
            return Ok(None);
        };
        let mut t = self.db.begin(Isolation::Serializable)?;
        let current = t.get(ks, &mk)?.map(|b| decode_info(&mk, &b)).transpose()?;
        if current.as_ref() != Some(info) {
            return Err(StorageError::Busy(format!(
                "the index on {:?} of {collection:?} was dropped while it was built",
                info.name()
            )));
        }
        // The iterator owns its view: entries are put while it runs.
        let docs = t.range(
            ks,
            (
                Bound::Included(cursor.to_vec()),
                Bound::Included(last.clone()),
            ),
        )?;
        for e in docs {
            let (k, v) = e?;
            let id = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            let (doc, expires_at) = decode_doc_with_expiry(collection, &id, &v)?;
            let entries = entry_keys(collection, info, &id, &doc)?;
            // Documents that share values fail the build of a unique
            // index, which is then removed.
            super::write::check_unique(&mut t, ks, collection, info, &id, &entries)?;
            if entries.multikey {
                super::write::mark_multikey(&mut t, ks, &marker)?;
            }
            for key in &entries.keys {
                // The entry expires with its document.
                match expires_at {
                    Some(at) => t.put_expiring(ks, key, id.as_bytes(), at)?,
                    None => t.put(ks, key, id.as_bytes())?,
                }
            }
        }
        t.commit_with(opts.write_options())?;
        Ok(Some(last))
    }

    /// Marks `info` as dropping, waits out older transactions (when
    /// `wait`), removes its entries, then its definition.
    pub(super) fn remove(&self, collection: &str, info: IndexInfo, wait: bool) -> Result<()> {
        let spec = info.spec();
        let dropping = IndexInfo {
            state: IndexState::Dropping,
            ..info.clone()
        };
        let at = if info.state == IndexState::Dropping {
            self.db.last_timestamp()
        } else {
            self.swap_info(collection, Some(&info), Some(&dropping), &spec)?
        };
        // Writers that still maintain it are gone after this (or their
        // late entries, under an id nobody reads again, are harmless).
        if wait {
            let _ = self.wait_for_older(at);
        }
        // One range delete removes every entry, however many: a small
        // write, the space reclaimed by compaction.
        let prefix = keys::entries(collection, info.id);
        let end = prefix_successor(&prefix).map_or(Bound::Unbounded, Bound::Excluded);
        let mut b = self.db.batch();
        b.delete_range(&self.keyspace, (Bound::Included(prefix), end))?;
        b.delete(&self.keyspace, keys::multikey(collection, info.id))?;
        b.delete(&self.keyspace, keys::statistics(collection, info.id))?;
        self.db.write(b, self.write_options())?;
        self.swap_info(collection, Some(&dropping), None, &spec)?;
        Ok(())
    }

    /// Gathers and stores the statistics of `info` (one scan of its
    /// entries, from a snapshot).
    fn analyze_index(&self, collection: &str, info: &IndexInfo) -> Result<IndexStatistics> {
        let mut snap = self.db.snapshot()?;
        let s = super::stats::gather(&mut snap, &self.keyspace, collection, info.id, info.name())?;
        let mut b = self.db.batch();
        b.put(
            &self.keyspace,
            keys::statistics(collection, info.id),
            super::stats::encode(&s),
        )?;
        self.db.write(b, self.write_options())?;
        Ok(s)
    }

    /// Drops every index left `Building` or `Dropping` by a crash.
    pub(super) fn finish_unfinished(&self) -> Result<()> {
        let _ddl = self.ddl.lock();
        let mut unfinished = Vec::new();
        for e in self.keyspace.prefix(keys::META)? {
            let (k, v) = e?;
            let info = decode_info(&k, &v)?;
            if info.state != IndexState::Ready {
                let rest = &k[keys::META.len()..];
                let collection = rest
                    .iter()
                    .position(|&b| b == b'/')
                    .map(|i| String::from_utf8_lossy(&rest[..i]).into_owned())
                    .ok_or_else(|| StorageError::Corrupt {
                        key: StorageKey::new(String::from_utf8_lossy(&k)),
                        reason: "index definition key without a collection".into(),
                    })?;
                unfinished.push((collection, info));
            }
        }
        for (collection, info) in unfinished {
            // At open no transaction is running.
            self.remove(&collection, info, false)?;
        }
        Ok(())
    }
}
