//! openraft's log storage on a Strata database (`raft/`): keyspace `log`
//! holds the entries under their index (8 bytes big-endian, so keys sort
//! by index), keyspace `meta` the vote and the last purged log id.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::Path;
use std::sync::Arc;

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogReader, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use strata_engine::{Db, Keyspace, Options, WriteOptions};
use strata_format::raft::{LogIdRecord, VoteRecord};

use crate::codec;
use crate::types::{NodeId, TypeConfig};

const VOTE: &[u8] = b"vote";
const LAST_PURGED: &[u8] = b"last_purged";

/// The Raft log and vote of one node. Cheap to clone: clones share the
/// database (openraft reads the log through clones).
#[derive(Clone)]
pub struct LogStore {
    db: Db,
    log: Keyspace,
    meta: Keyspace,
    /// The last log id appended, kept in memory (read once at open).
    last: Arc<Mutex<Option<LogId<NodeId>>>>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.db.path())
            .finish()
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError<NodeId> {
    StorageIOError::read_logs(&e).into()
}

fn write_err(e: impl std::error::Error + Send + Sync + 'static) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

/// Runs engine work that may block (a sync) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> strata_engine::Result<T> + Send + 'static,
) -> strata_engine::Result<T> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(strata_engine::Error::io(
            std::path::PathBuf::new(),
            std::io::Error::other(format!("a blocking task failed: {e}")),
        ))
    })
}

impl LogStore {
    /// Opens (creating) the log database in `dir`.
    pub fn open(dir: &Path, opts: Options) -> strata_engine::Result<LogStore> {
        let db = Db::open(dir, opts)?;
        let log = db.keyspace("log")?;
        let meta = db.keyspace("meta")?;
        let store = LogStore {
            db,
            log,
            meta,
            last: Arc::new(Mutex::new(None)),
        };
        let last = store.read_last()?;
        *store.last.lock() = last;
        Ok(store)
    }

    /// The last entry's id in the keyspace (decoded from the newest key).
    fn read_last(&self) -> strata_engine::Result<Option<LogId<NodeId>>> {
        match self.log.iter()?.next_back() {
            Some(r) => {
                let (_, v) = r?;
                let e = codec::decode_entry(&v)
                    .map_err(|e| strata_engine::Error::format(self.db.path(), e))?;
                Ok(Some(e.log_id))
            }
            None => Ok(None),
        }
    }

    fn last_purged(&self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        match self.meta.get(LAST_PURGED).map_err(read_err)? {
            Some(v) => Ok(Some(codec::log_id(
                &LogIdRecord::decode(&v).map_err(read_err)?,
            ))),
            None => Ok(None),
        }
    }

    /// The database underneath (for statistics and tests).
    pub fn db(&self) -> &Db {
        &self.db
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let lo = match range.start_bound() {
            Bound::Included(&i) => Bound::Included(key(i).to_vec()),
            Bound::Excluded(&i) => Bound::Excluded(key(i).to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let hi = match range.end_bound() {
            Bound::Included(&i) => Bound::Included(key(i).to_vec()),
            Bound::Excluded(&i) => Bound::Excluded(key(i).to_vec()),
            Bound::Unbounded => Bound::Unbounded,
        };
        let mut out = Vec::new();
        for r in self.log.range((lo, hi)).map_err(read_err)? {
            let (_, v) = r.map_err(read_err)?;
            out.push(codec::decode_entry(&v).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let last_purged_log_id = self.last_purged()?;
        // Purging past the last entry leaves the purge point as the last.
        let last = (*self.last.lock()).max(last_purged_log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let mut b = self.db.batch();
        b.put(&self.meta, VOTE, codec::vote_record(vote).encode())
            .map_err(|e| StorageIOError::write_vote(&e))?;
        let db = self.db.clone();
        blocking(move || db.write(b, WriteOptions { sync: true }))
            .await
            .map_err(|e| StorageIOError::write_vote(&e))?;
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        match self
            .meta
            .get(VOTE)
            .map_err(|e| StorageIOError::read_vote(&e))?
        {
            Some(v) => Ok(Some(codec::vote(
                &VoteRecord::decode(&v).map_err(|e| StorageIOError::read_vote(&e))?,
            ))),
            None => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut b = self.db.batch();
        let mut last = None;
        for e in entries {
            b.put(&self.log, key(e.log_id.index), codec::encode_entry(&e))
                .map_err(write_err)?;
            last = Some(e.log_id);
        }
        if b.is_empty() {
            callback.log_io_completed(Ok(()));
            return Ok(());
        }
        // Synced before openraft hears the entries are durable; off the
        // async worker, so a slow sync does not hold up heartbeats.
        let db = self.db.clone();
        let r = blocking(move || db.write(b, WriteOptions { sync: true })).await;
        match r {
            Ok(_) => {
                *self.last.lock() = last;
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // One range delete of [index, end): atomic, so never a hole.
        let mut b = self.db.batch();
        b.delete_range(&self.log, key(log_id.index).to_vec()..)
            .map_err(write_err)?;
        let db = self.db.clone();
        blocking(move || db.write(b, WriteOptions { sync: true }))
            .await
            .map_err(write_err)?;
        let last = self.read_last().map_err(read_err)?;
        *self.last.lock() = last;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        // One batch: the purge pointer and a range delete of [0, index],
        // so no hole.
        let mut b = self.db.batch();
        b.put(
            &self.meta,
            LAST_PURGED,
            codec::log_id_record(&log_id).encode(),
        )
        .map_err(write_err)?;
        b.delete_range(&self.log, ..=key(log_id.index).to_vec())
            .map_err(write_err)?;
        let db = self.db.clone();
        blocking(move || db.write(b, WriteOptions { sync: true }))
            .await
            .map_err(write_err)?;
        Ok(())
    }
}
