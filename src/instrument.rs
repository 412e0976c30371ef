//! Every public operation of the storage system is measured and observed
//! here, once: [`Instrument::run`] times a call, records it in the metrics
//! and tells the observers how it ended. Registered providers are wrapped
//! in [`Instrumented`]; the document provider and the blob streams call
//! `run` themselves.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::Mutex;
use strata_engine::Timestamp;

use crate::error::{Result, StorageError};
use crate::metrics::StorageMetricsCollector;
use crate::observer::{Observers, Outcome, StorageEvent, StorageObserver};
use crate::provider::StorageProvider;
use crate::transaction::{StorageTransaction, StorageTransactionManager, TransactionId};
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo,
};

/// The metrics and observers every operation reports to.
pub(crate) struct Instrument {
    metrics: Arc<StorageMetricsCollector>,
    observers: Observers,
    transactions: Arc<StorageTransactionManager>,
}

impl Instrument {
    pub(crate) fn new(
        metrics: Arc<StorageMetricsCollector>,
        observers: Observers,
        transactions: Arc<StorageTransactionManager>,
    ) -> Self {
        Instrument {
            metrics,
            observers,
            transactions,
        }
    }

    /// Runs `f` as operation `op` on `key` of `t` (in `tx`): times it,
    /// counts it (a `NotFound` is an outcome, counted apart, not an error)
    /// with the bytes `bytes` says it moved, and tells the observers.
    pub(crate) fn run<T>(
        &self,
        op: &str,
        t: StorageType,
        key: Option<&StorageKey>,
        tx: Option<TransactionId>,
        bytes: impl Fn(&T) -> u64,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let r = f();
        let duration = start.elapsed();
        let (outcome, n) = match &r {
            Ok(v) => (Outcome::Ok, bytes(v)),
            Err(StorageError::NotFound(_)) => (Outcome::NotFound, 0),
            Err(e) => (Outcome::Failed(e.to_string()), 0),
        };
        self.metrics
            .record_operation(op, t, !matches!(outcome, Outcome::Failed(_)), duration, n);
        if outcome == Outcome::NotFound {
            self.metrics
                .registry()
                .counter(
                    "strata_storage_not_found_total",
                    &[("type", t.name()), ("op", op)],
                )
                .fetch_add(1, Ordering::Relaxed);
        }
        if !self.observers.is_empty() {
            let event = StorageEvent {
                operation: op,
                storage_type: t,
                key,
                transaction: tx,
                outcome: &outcome,
                bytes: n,
                duration,
            };
            self.observers
                .notify("operation", |o| o.on_operation(&event));
        }
        r
    }

    /// True when an observer is registered.
    pub(crate) fn observed(&self) -> bool {
        !self.observers.is_empty()
    }

    /// Tells every observer something now (failures counted under `hook`).
    pub(crate) fn notify(
        &self,
        hook: &str,
        f: impl Fn(&dyn StorageObserver) -> std::result::Result<(), crate::ObserverError>,
    ) {
        self.observers.notify(hook, f);
    }

    /// Prepares to tell the observers of a write once it is applied: call
    /// it before the write, and [`Applied::fire`] after it succeeds. For a
    /// write in transaction `tx` the news waits for the commit (and is
    /// dropped with a rollback); a commit racing the write is caught
    /// either way.
    pub(crate) fn expect_applied(&self, tx: Option<TransactionId>) -> Applied {
        if self.observers.is_empty() {
            return Applied::Off;
        }
        let Some(id) = tx else {
            return Applied::Now(self.observers.clone());
        };
        let slot = Arc::new(Mutex::new(Slot::Waiting));
        let s = slot.clone();
        let hooked = self.transactions.on_commit(
            id,
            Box::new(move |ts| {
                let armed = std::mem::replace(&mut *s.lock(), Slot::Committed(ts));
                if let Slot::Armed(f) = armed {
                    f(ts);
                }
            }),
        );
        match hooked {
            // Not active: the write will fail too.
            Err(_) => Applied::Off,
            Ok(()) => Applied::InTx(slot, self.observers.clone()),
        }
    }
}

/// What a transaction's commit hook and the write it reports agree on.
pub(crate) enum Slot {
    /// Neither the write's news nor the commit yet.
    Waiting,
    /// The write's news, for the commit to deliver.
    Armed(Box<dyn FnOnce(Timestamp) + Send>),
    /// Committed first (another thread committed while the write returned).
    Committed(Timestamp),
}

/// A write's news for the observers, once it is applied (see
/// [`Instrument::expect_applied`]).
pub(crate) enum Applied {
    /// No observer.
    Off,
    /// Applied when the write returns.
    Now(Observers),
    /// Applied when its transaction commits.
    InTx(Arc<Mutex<Slot>>, Observers),
}

/// An observer call given the commit timestamp when the write is
/// transactional.
pub(crate) type Notice = Box<
    dyn Fn(&dyn StorageObserver, Option<Timestamp>) -> std::result::Result<(), crate::ObserverError>
        + Send,
>;

impl Applied {
    /// The write succeeded: tell the observers `f` (under `hook`) now, or
    /// when its transaction commits.
    pub(crate) fn fire(self, hook: &'static str, f: impl FnOnce() -> Notice) {
        match self {
            Applied::Off => {}
            Applied::Now(observers) => {
                let f = f();
                observers.notify(hook, |o| f(o, None));
            }
            Applied::InTx(slot, observers) => {
                let f = f();
                let mut s = slot.lock();
                match std::mem::replace(&mut *s, Slot::Waiting) {
                    Slot::Committed(ts) => {
                        drop(s);
                        observers.notify(hook, |o| f(o, Some(ts)));
                    }
                    _ => {
                        *s = Slot::Armed(Box::new(move |ts| {
                            observers.notify(hook, |o| f(o, Some(ts)))
                        }));
                    }
                }
            }
        }
    }
}

/// A provider with metrics and observers around it.
pub(crate) struct Instrumented {
    inner: Arc<dyn StorageProvider>,
    instrument: Arc<Instrument>,
}

impl Instrumented {
    pub(crate) fn new(inner: Arc<dyn StorageProvider>, instrument: Arc<Instrument>) -> Self {
        Instrumented { inner, instrument }
    }
}

impl StorageProvider for Instrumented {
    fn storage_type(&self) -> StorageType {
        self.inner.storage_type()
    }

    fn store(
        &self,
        key: &StorageKey,
        value: &[u8],
        options: &StorageOptions,
    ) -> Result<StorageMetadata> {
        let t = self.storage_type();
        let tx = options.transaction;
        let applied = self.instrument.expect_applied(tx);
        let meta = self.instrument.run(
            "store",
            t,
            Some(key),
            tx,
            |m: &StorageMetadata| m.size,
            || self.inner.store(key, value, options),
        )?;
        applied.fire("store", || stored(key, &meta, t));
        Ok(meta)
    }

    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem> {
        let t = self.storage_type();
        let item = self.instrument.run(
            "retrieve",
            t,
            Some(key),
            options.transaction,
            |i: &StorageItem| i.value.len() as u64,
            || self.inner.retrieve(key, options),
        )?;
        self.instrument
            .notify("retrieve", |o| o.on_retrieve(key, &item, t));
        Ok(item)
    }

    fn exists(&self, key: &StorageKey) -> Result<bool> {
        let t = self.storage_type();
        self.instrument.run(
            "exists",
            t,
            Some(key),
            None,
            |_| 0,
            || self.inner.exists(key),
        )
    }

    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()> {
        let t = self.storage_type();
        let tx = options.transaction;
        let applied = self.instrument.expect_applied(tx);
        self.instrument.run(
            "delete",
            t,
            Some(key),
            tx,
            |_| 0,
            || self.inner.delete(key, options),
        )?;
        applied.fire("delete", || deleted(key, t));
        Ok(())
    }

    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>> {
        let t = self.storage_type();
        self.instrument.run(
            "list_keys",
            t,
            None,
            None,
            |_| 0,
            || self.inner.list_keys(pattern),
        )
    }

    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>> {
        let t = self.storage_type();
        self.instrument.run(
            "history",
            t,
            Some(key),
            None,
            |_| 0,
            || self.inner.history(key),
        )
    }

    fn begin_transaction(&self) -> Result<StorageTransaction> {
        self.inner.begin_transaction()
    }

    fn commit_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.inner.commit_transaction(transaction)
    }

    fn rollback_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.inner.rollback_transaction(transaction)
    }

    fn as_any(&self) -> &dyn Any {
        self.inner.as_any()
    }
}

/// The news of a store: its metadata, with the commit's timestamp for a
/// transactional one.
pub(crate) fn stored(key: &StorageKey, meta: &StorageMetadata, t: StorageType) -> Notice {
    let (k, m) = (key.clone(), meta.clone());
    Box::new(move |o, ts| match ts {
        Some(ts) => o.on_store(&k, &m.clone().committed(ts), t),
        None => o.on_store(&k, &m, t),
    })
}

/// The news of a delete.
pub(crate) fn deleted(key: &StorageKey, t: StorageType) -> Notice {
    let k = key.clone();
    Box::new(move |o, _| o.on_delete(&k, t))
}
