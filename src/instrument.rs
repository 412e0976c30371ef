//! Every public operation of the storage system is measured and observed
//! here, once: [`Instrument::run`] times a call, records it in the metrics
//! and tells the observers how it ended. Registered providers are wrapped
//! in [`Instrumented`]; the document provider and the blob streams call
//! `run` themselves.

use std::any::Any;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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

    /// Adds one to counter `name` of storage type `t`.
    pub(crate) fn count(&self, name: &str, t: StorageType) {
        self.metrics
            .registry()
            .counter(name, &[("type", t.name())])
            .fetch_add(1, Ordering::Relaxed);
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

    /// Tells the observers `f` once a write is applied: now, or for a
    /// write buffered in `tx`, when (and only if) it commits, with the
    /// commit timestamp.
    pub(crate) fn on_applied(
        &self,
        tx: Option<TransactionId>,
        hook: &'static str,
        f: impl Fn(
                &dyn StorageObserver,
                Option<strata_engine::Timestamp>,
            ) -> std::result::Result<(), crate::ObserverError>
            + Send
            + 'static,
    ) {
        if self.observers.is_empty() {
            return;
        }
        match tx {
            None => self.observers.notify(hook, |o| f(o, None)),
            Some(id) => {
                let observers = self.observers.clone();
                // The transaction is active: the write was just buffered
                // in it, under the same check.
                let _ = self.transactions.on_commit(
                    id,
                    Box::new(move |ts| observers.notify(hook, |o| f(o, Some(ts)))),
                );
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
        let meta = self.instrument.run(
            "store",
            t,
            Some(key),
            tx,
            |m: &StorageMetadata| m.size,
            || self.inner.store(key, value, options),
        )?;
        let (k, m) = (key.clone(), meta.clone());
        self.instrument
            .on_applied(tx, "store", move |o, ts| match ts {
                Some(ts) => o.on_store(&k, &m.clone().committed(ts), t),
                None => o.on_store(&k, &m, t),
            });
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
        self.instrument.run(
            "delete",
            t,
            Some(key),
            tx,
            |_| 0,
            || self.inner.delete(key, options),
        )?;
        let k = key.clone();
        self.instrument
            .on_applied(tx, "delete", move |o, _| o.on_delete(&k, t));
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
