//! Transactions across providers: every operation given a transaction is
//! buffered in one engine transaction, which sees its own writes and
//! commits all of them atomically (or none).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use strata_engine::{Db, Isolation, Timestamp, TxnOptions, WriteOptions};

use crate::cache::ReadCache;
use crate::error::{Result, StorageError, TransactionError};
use crate::observer::Observers;
use crate::types::StorageType;

/// A transaction's id, unique within a storage system's lifetime and,
/// being seeded from the clock, across restarts in practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TransactionId(pub u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx-{:016x}", self.0)
    }
}

/// Where a transaction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TransactionStatus {
    /// Accepting operations.
    Active,
    /// Committed: every operation applied.
    Committed,
    /// Rolled back (by the caller, or after a conflict): none applied.
    RolledBack,
}

impl fmt::Display for TransactionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TransactionStatus::Active => "active",
            TransactionStatus::Committed => "committed",
            TransactionStatus::RolledBack => "rolled back",
        })
    }
}

/// A storage transaction, as callers see it: pass it to
/// `StorageOptions::with_transaction` to buffer operations in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageTransaction {
    /// Its id.
    pub id: TransactionId,
    /// Its status when this copy was taken.
    pub status: TransactionStatus,
    /// When it began (its reads see the state as of then).
    pub start_time: Timestamp,
    /// Its commit timestamp, once committed.
    pub commit_time: Option<Timestamp>,
}

/// The isolation of storage transactions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum IsolationLevel {
    /// Snapshot isolation: first committer wins; write skew possible.
    Snapshot,
    /// Serializable (the default).
    #[default]
    Serializable,
}

/// How transactions behave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TransactionConfig {
    /// Their isolation.
    pub isolation: IsolationLevel,
    /// How long a finished transaction stays queryable, in seconds.
    pub retention_secs: u64,
    /// At most this many finished transactions are remembered.
    pub max_finished: usize,
    /// Attempts of `StorageSystem::transaction` (and of the storage
    /// system's own internal transactions) before a conflict is returned.
    pub max_attempts: usize,
    /// The pause before the second attempt, in microseconds; it doubles
    /// with each further attempt, with jitter.
    pub backoff_micros: u64,
    /// The longest pause between two attempts, in milliseconds.
    pub max_backoff_millis: u64,
    /// How long an index build waits for transactions begun before it to
    /// finish, in seconds, before it gives up with `Busy`.
    pub index_build_wait_secs: u64,
    /// A transaction still active after this many seconds is rolled back
    /// (at the next `begin`).
    pub max_active_secs: u64,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        TransactionConfig {
            isolation: IsolationLevel::Serializable,
            retention_secs: 300,
            max_finished: 100_000,
            max_attempts: 64,
            backoff_micros: 100,
            max_backoff_millis: 50,
            index_build_wait_secs: 30,
            max_active_secs: 3600,
        }
    }
}

impl TransactionConfig {
    /// The engine's transaction options these settings give, with commits
    /// synced or not.
    pub fn txn_options(&self, sync: bool) -> TxnOptions {
        let isolation = match self.isolation {
            IsolationLevel::Snapshot => Isolation::Snapshot,
            IsolationLevel::Serializable => Isolation::Serializable,
        };
        TxnOptions::new(isolation)
            .with_sync(sync)
            .with_attempts(u32::try_from(self.max_attempts).unwrap_or(u32::MAX))
            .with_backoff(
                Duration::from_micros(self.backoff_micros),
                Duration::from_millis(self.max_backoff_millis),
            )
    }
}

/// Work run after a transaction ends.
pub(crate) type Hook = Box<dyn FnOnce() + Send>;

/// Work run after a transaction commits, given its commit timestamp.
pub(crate) type CommitHook = Box<dyn FnOnce(Timestamp) + Send>;

/// What an operation in a transaction leaves for its end: keys to drop
/// from read caches at commit, and hooks.
#[derive(Default)]
pub(crate) struct Effects {
    pub written: Vec<(StorageType, Vec<u8>)>,
    pub on_abort: Option<Hook>,
    pub on_commit: Option<CommitHook>,
}

/// A transaction being committed or rolled back right now.
fn finishing(id: TransactionId) -> StorageError {
    TransactionError::InvalidStatus {
        id,
        status: "finishing".into(),
    }
    .into()
}

struct Active {
    info: StorageTransaction,
    began: Instant,
    /// `None` once committing or rolled back.
    engine: Mutex<Option<strata_engine::Transaction>>,
    /// Keys written, for cache invalidation at commit.
    written: Mutex<Vec<(StorageType, Vec<u8>)>>,
    /// Run if the transaction does not commit (e.g. to delete blob chunks
    /// written ahead of it).
    on_abort: Mutex<Vec<Hook>>,
    /// Run after it commits (e.g. to delete the chunks of replaced blobs).
    on_commit: Mutex<Vec<CommitHook>>,
}

#[derive(Default)]
struct Finished {
    by_id: HashMap<TransactionId, StorageTransaction>,
    order: VecDeque<(Instant, TransactionId)>,
}

/// Runs storage transactions on the engine.
pub struct StorageTransactionManager {
    db: Db,
    config: TransactionConfig,
    sync: bool,
    next: AtomicU64,
    active: Mutex<HashMap<TransactionId, Arc<Active>>>,
    finished: Mutex<Finished>,
    caches: RwLock<HashMap<StorageType, Arc<ReadCache>>>,
    observers: Arc<Observers>,
}

impl fmt::Debug for StorageTransactionManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StorageTransactionManager")
            .field("active", &self.active.lock().len())
            .finish_non_exhaustive()
    }
}

fn conflict(id: TransactionId, e: strata_engine::Error) -> StorageError {
    match e {
        strata_engine::Error::Conflict { key, .. } => {
            StorageError::Transaction(TransactionError::Conflict {
                id,
                key: String::from_utf8_lossy(&key).into_owned(),
            })
        }
        other => StorageError::Engine(other),
    }
}

impl StorageTransactionManager {
    pub(crate) fn new(
        db: Db,
        config: TransactionConfig,
        sync: bool,
        observers: Arc<Observers>,
    ) -> Self {
        StorageTransactionManager {
            db,
            config,
            sync,
            next: AtomicU64::new(0),
            active: Mutex::new(HashMap::new()),
            finished: Mutex::new(Finished::default()),
            caches: RwLock::new(HashMap::new()),
            observers,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &TransactionConfig {
        &self.config
    }

    /// The options every transaction of the storage system runs with:
    /// the configured isolation, attempts and pauses, and the storage
    /// system's durability. Internal transactions (a document and its
    /// index entries, a blob's metadata swap) retry with them too.
    pub fn txn_options(&self) -> TxnOptions {
        self.config.txn_options(self.sync)
    }

    /// Starts a transaction owned by the returned handle: it rolls back
    /// when the handle is dropped unless committed or rolled back first.
    pub fn begin_owned(self: &Arc<Self>) -> Result<TransactionHandle> {
        let info = self.begin()?;
        Ok(TransactionHandle {
            manager: self.clone(),
            info,
            finished: false,
        })
    }

    /// Adds `hook`, run once transaction `id` commits (never if it rolls
    /// back).
    pub(crate) fn on_commit(&self, id: TransactionId, hook: CommitHook) -> Result<()> {
        let a = self.active(id)?;
        a.on_commit.lock().push(hook);
        Ok(())
    }

    pub(crate) fn register_cache(&self, t: StorageType, cache: Arc<ReadCache>) {
        self.caches.write().insert(t, cache);
    }

    /// A random id, so that nobody can guess another caller's transaction
    /// (falling back to a counter without OS randomness).
    fn new_id(&self) -> TransactionId {
        let mut b = [0u8; 8];
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        if getrandom::fill(&mut b).is_err() {
            return TransactionId(n ^ Timestamp::now().as_u64());
        }
        TransactionId(u64::from_le_bytes(b))
    }

    /// Starts a transaction. Transactions left active longer than
    /// `max_active_secs` are rolled back first, so abandoned ones cannot
    /// pin old versions and memory forever.
    pub fn begin(&self) -> Result<StorageTransaction> {
        self.prune();
        self.expire_abandoned();
        let isolation = self.txn_options().isolation;
        let id = self.new_id();
        // The engine transaction begins under the lock of the active set:
        // whoever reads the oldest active start (an index build waiting for
        // older transactions) sees every transaction that has begun.
        let mut active = self.active.lock();
        let engine = self.db.begin(isolation)?;
        let info = StorageTransaction {
            id,
            status: TransactionStatus::Active,
            start_time: engine.start_ts(),
            commit_time: None,
        };
        active.insert(
            info.id,
            Arc::new(Active {
                info: info.clone(),
                began: Instant::now(),
                engine: Mutex::new(Some(engine)),
                written: Mutex::new(Vec::new()),
                on_abort: Mutex::new(Vec::new()),
                on_commit: Mutex::new(Vec::new()),
            }),
        );
        drop(active);
        self.observers
            .notify("transaction_begin", |o| o.on_transaction_begin(&info));
        Ok(info)
    }

    fn active(&self, id: TransactionId) -> Result<Arc<Active>> {
        if let Some(a) = self.active.lock().get(&id) {
            return Ok(a.clone());
        }
        Err(self.not_active(id))
    }

    fn not_active(&self, id: TransactionId) -> StorageError {
        self.prune();
        match self.finished.lock().by_id.get(&id) {
            Some(t) => TransactionError::InvalidStatus {
                id,
                status: t.status.to_string(),
            }
            .into(),
            None => TransactionError::NotFound(id).into(),
        }
    }

    /// Runs `f` on the engine transaction of `id`.
    pub(crate) fn with<T>(
        &self,
        id: TransactionId,
        f: impl FnOnce(&mut strata_engine::Transaction) -> strata_engine::Result<T>,
    ) -> Result<T> {
        self.with_effects(id, Effects::default(), f)
    }

    /// Runs `f` on the engine transaction of `id` and, if it succeeds,
    /// records `effects` while still holding the transaction: a commit
    /// taking place concurrently either comes first (and `f` is refused)
    /// or sees every key written and every hook.
    pub(crate) fn with_effects<T>(
        &self,
        id: TransactionId,
        effects: Effects,
        f: impl FnOnce(&mut strata_engine::Transaction) -> strata_engine::Result<T>,
    ) -> Result<T> {
        self.with_storage(id, effects, |tx| f(tx).map_err(StorageError::Engine))
    }

    /// Like [`with_effects`](Self::with_effects), for work that fails with
    /// storage errors of its own (decoding, validation).
    pub(crate) fn with_storage<T>(
        &self,
        id: TransactionId,
        effects: Effects,
        f: impl FnOnce(&mut strata_engine::Transaction) -> Result<T>,
    ) -> Result<T> {
        let a = self.active(id)?;
        let mut guard = a.engine.lock();
        let Some(tx) = guard.as_mut() else {
            return Err(finishing(id));
        };
        let v = f(tx).map_err(|e| match e {
            StorageError::Engine(e) => conflict(id, e),
            other => other,
        })?;
        a.written.lock().extend(effects.written);
        if let Some(h) = effects.on_abort {
            a.on_abort.lock().push(h);
        }
        if let Some(h) = effects.on_commit {
            a.on_commit.lock().push(h);
        }
        Ok(v)
    }

    /// The transaction as it is now (active, or finished and still
    /// remembered).
    pub fn status(&self, id: TransactionId) -> Result<StorageTransaction> {
        if let Some(a) = self.active.lock().get(&id) {
            return Ok(a.info.clone());
        }
        self.prune();
        self.finished
            .lock()
            .by_id
            .get(&id)
            .cloned()
            .ok_or_else(|| TransactionError::NotFound(id).into())
    }

    /// Commits every buffered operation of `id` atomically. On a conflict
    /// the transaction is rolled back and the error says so.
    pub fn commit(&self, id: TransactionId) -> Result<StorageTransaction> {
        let a = self.active(id)?;
        let engine = a.engine.lock().take();
        let Some(engine) = engine else {
            return Err(finishing(id));
        };
        let outcome = engine.commit_with(WriteOptions { sync: self.sync });
        let mut info = a.info.clone();
        match outcome {
            Ok(ts) => {
                let caches = self.caches.read();
                for (t, key) in a.written.lock().iter() {
                    if let Some(c) = caches.get(t) {
                        c.invalidate(key);
                    }
                }
                drop(caches);
                a.on_abort.lock().clear();
                for hook in a.on_commit.lock().drain(..) {
                    hook(ts);
                }
                info.status = TransactionStatus::Committed;
                info.commit_time = Some(ts);
                self.remember(&info);
                self.active.lock().remove(&id);
                self.observers
                    .notify("transaction_commit", |o| o.on_transaction_commit(&info));
                Ok(info)
            }
            Err(e) => {
                // The engine transaction is gone: nothing was applied.
                info.status = TransactionStatus::RolledBack;
                self.abort_hooks(&a);
                self.remember(&info);
                self.active.lock().remove(&id);
                self.observers
                    .notify("transaction_rollback", |o| o.on_transaction_rollback(&info));
                Err(conflict(id, e))
            }
        }
    }

    /// Discards every buffered operation of `id`.
    pub fn rollback(&self, id: TransactionId) -> Result<StorageTransaction> {
        let a = self.active(id)?;
        let engine = a.engine.lock().take();
        let Some(engine) = engine else {
            return Err(finishing(id));
        };
        engine.rollback();
        self.abort_hooks(&a);
        let mut info = a.info.clone();
        info.status = TransactionStatus::RolledBack;
        self.remember(&info);
        self.active.lock().remove(&id);
        self.observers
            .notify("transaction_rollback", |o| o.on_transaction_rollback(&info));
        Ok(info)
    }

    fn expire_abandoned(&self) {
        let limit = Duration::from_secs(self.config.max_active_secs);
        let stale: Vec<TransactionId> = self
            .active
            .lock()
            .iter()
            .filter(|(_, a)| a.began.elapsed() > limit)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            let _ = self.rollback(id);
        }
    }

    fn abort_hooks(&self, a: &Active) {
        for hook in a.on_abort.lock().drain(..) {
            hook();
        }
    }

    fn remember(&self, info: &StorageTransaction) {
        let mut f = self.finished.lock();
        f.by_id.insert(info.id, info.clone());
        f.order.push_back((Instant::now(), info.id));
        drop(f);
        self.prune();
    }

    /// Forgets finished transactions past their retention (or beyond the
    /// count limit), so memory stays bounded.
    fn prune(&self) {
        let keep = Duration::from_secs(self.config.retention_secs);
        let mut f = self.finished.lock();
        while let Some(&(at, id)) = f.order.front() {
            if at.elapsed() < keep && f.order.len() <= self.config.max_finished {
                break;
            }
            f.order.pop_front();
            f.by_id.remove(&id);
        }
    }

    /// Finished transactions still remembered.
    pub fn remembered(&self) -> usize {
        self.finished.lock().by_id.len()
    }

    /// The start of the oldest transaction still active: index builds wait
    /// for every transaction that began before them.
    pub(crate) fn oldest_active_start(&self) -> Option<Timestamp> {
        self.active.lock().values().map(|a| a.info.start_time).min()
    }

    /// Transactions active now.
    pub fn active_count(&self) -> usize {
        self.active.lock().len()
    }
}

/// A transaction owned by a handle: pass `&handle` (it dereferences to the
/// [`StorageTransaction`]) to the options of each call, then
/// [`commit`](Self::commit). Dropped without a commit or rollback (an
/// early return, a `?`, a panic), it rolls back at once, releasing its
/// snapshot.
pub struct TransactionHandle {
    manager: Arc<StorageTransactionManager>,
    info: StorageTransaction,
    finished: bool,
}

impl fmt::Debug for TransactionHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionHandle")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for TransactionHandle {
    type Target = StorageTransaction;

    fn deref(&self) -> &StorageTransaction {
        &self.info
    }
}

impl TransactionHandle {
    /// The transaction's id.
    pub fn id(&self) -> TransactionId {
        self.info.id
    }

    /// Commits every buffered operation atomically; on a conflict nothing
    /// applied and the error says so.
    pub fn commit(mut self) -> Result<StorageTransaction> {
        self.finished = true;
        self.manager.commit(self.info.id)
    }

    /// Discards every buffered operation.
    pub fn rollback(mut self) -> Result<StorageTransaction> {
        self.finished = true;
        self.manager.rollback(self.info.id)
    }
}

impl Drop for TransactionHandle {
    fn drop(&mut self) {
        if !self.finished {
            // Already finished through the id-based calls: nothing to do.
            let _ = self.manager.rollback(self.info.id);
        }
    }
}
