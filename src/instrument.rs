//! The layer every registered provider is wrapped in: each call is timed
//! and counted in the metrics, and observers hear of it afterwards.

use std::any::Any;
use std::sync::Arc;
use std::time::Instant;

use crate::error::Result;
use crate::metrics::StorageMetricsCollector;
use crate::observer::Observers;
use crate::provider::StorageProvider;
use crate::transaction::StorageTransaction;
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo,
};

/// A provider with metrics and observers around it.
pub(crate) struct Instrumented {
    inner: Arc<dyn StorageProvider>,
    metrics: Arc<StorageMetricsCollector>,
    observers: Arc<Observers>,
}

impl Instrumented {
    pub(crate) fn new(
        inner: Arc<dyn StorageProvider>,
        metrics: Arc<StorageMetricsCollector>,
        observers: Arc<Observers>,
    ) -> Self {
        Instrumented {
            inner,
            metrics,
            observers,
        }
    }

    fn timed<T>(
        &self,
        op: &str,
        bytes: impl Fn(&T) -> u64,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let r = f();
        let n = r.as_ref().map_or(0, &bytes);
        self.metrics
            .record_operation(op, self.inner.storage_type(), r.is_ok(), start.elapsed(), n);
        r
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
        let meta = self.timed(
            "store",
            |m: &StorageMetadata| m.size,
            || self.inner.store(key, value, options),
        )?;
        let t = self.storage_type();
        self.observers
            .notify("store", |o| o.on_store(key, &meta, t));
        Ok(meta)
    }

    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem> {
        let item = self.timed(
            "retrieve",
            |i: &StorageItem| i.value.len() as u64,
            || self.inner.retrieve(key, options),
        )?;
        let t = self.storage_type();
        self.observers
            .notify("retrieve", |o| o.on_retrieve(key, &item, t));
        Ok(item)
    }

    fn exists(&self, key: &StorageKey) -> Result<bool> {
        self.timed("exists", |_| 0, || self.inner.exists(key))
    }

    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()> {
        self.timed("delete", |_| 0, || self.inner.delete(key, options))?;
        let t = self.storage_type();
        self.observers.notify("delete", |o| o.on_delete(key, t));
        Ok(())
    }

    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>> {
        self.timed("list_keys", |_| 0, || self.inner.list_keys(pattern))
    }

    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>> {
        self.timed("history", |_| 0, || self.inner.history(key))
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
