//! Observers: code the application runs after storage events. An observer
//! that fails or panics is counted in the metrics and changes nothing about
//! the operation it observed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use crate::error::ObserverError;
use crate::metrics::StorageMetricsCollector;
use crate::transaction::{StorageTransaction, TransactionId};
use crate::types::{StorageItem, StorageKey, StorageMetadata, StorageType};

/// How an operation ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It succeeded.
    Ok,
    /// It found nothing under the key: an answer, not a failure.
    NotFound,
    /// It failed; the error's message.
    Failed(String),
}

/// One public operation of the storage system, as
/// [`StorageObserver::on_operation`] hears of it: every call of every
/// provider (key-value, documents, blobs and their streams), whatever its
/// outcome.
#[derive(Debug, Clone)]
pub struct StorageEvent<'a> {
    /// The operation (`store`, `retrieve`, `store_document`, `put_stream`,
    /// `open`, ...), as the metrics name it.
    pub operation: &'a str,
    /// The storage type.
    pub storage_type: StorageType,
    /// The key, for an operation on one key.
    pub key: Option<&'a StorageKey>,
    /// The transaction the operation was buffered in, if any: its writes
    /// apply only if it commits (`on_transaction_commit`).
    pub transaction: Option<TransactionId>,
    /// How it ended.
    pub outcome: &'a Outcome,
    /// Bytes stored or read.
    pub bytes: u64,
    /// How long it took.
    pub duration: Duration,
}

/// Called after storage events. Every method defaults to doing nothing.
pub trait StorageObserver: Send + Sync {
    /// Every operation, after it ends, with its outcome and its
    /// transaction.
    fn on_operation(&self, _event: &StorageEvent<'_>) -> Result<(), ObserverError> {
        Ok(())
    }

    /// An item was stored: called once the write is applied, so for a
    /// write in a transaction when (and only if) the transaction commits;
    /// the metadata then carries the commit timestamp.
    fn on_store(
        &self,
        _key: &StorageKey,
        _metadata: &StorageMetadata,
        _provider_type: StorageType,
    ) -> Result<(), ObserverError> {
        Ok(())
    }

    /// An item was retrieved.
    fn on_retrieve(
        &self,
        _key: &StorageKey,
        _item: &StorageItem,
        _provider_type: StorageType,
    ) -> Result<(), ObserverError> {
        Ok(())
    }

    /// An item was deleted: like `on_store`, once applied.
    fn on_delete(
        &self,
        _key: &StorageKey,
        _provider_type: StorageType,
    ) -> Result<(), ObserverError> {
        Ok(())
    }

    /// A transaction began.
    fn on_transaction_begin(&self, _transaction: &StorageTransaction) -> Result<(), ObserverError> {
        Ok(())
    }

    /// A transaction committed.
    fn on_transaction_commit(
        &self,
        _transaction: &StorageTransaction,
    ) -> Result<(), ObserverError> {
        Ok(())
    }

    /// A transaction rolled back (also after a conflict).
    fn on_transaction_rollback(
        &self,
        _transaction: &StorageTransaction,
    ) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// The registered observers, called in registration order.
#[derive(Clone)]
pub(crate) struct Observers {
    list: Vec<Arc<dyn StorageObserver>>,
    metrics: Arc<StorageMetricsCollector>,
}

impl Observers {
    pub(crate) fn new(
        list: Vec<Arc<dyn StorageObserver>>,
        metrics: Arc<StorageMetricsCollector>,
    ) -> Self {
        Observers { list, metrics }
    }

    /// True when no observer is registered (so events need not be built).
    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// Calls `f` on every observer; failures and panics are counted under
    /// `hook` and go no further.
    pub(crate) fn notify(
        &self,
        hook: &str,
        f: impl Fn(&dyn StorageObserver) -> Result<(), ObserverError>,
    ) {
        for o in &self.list {
            let outcome = catch_unwind(AssertUnwindSafe(|| f(o.as_ref())));
            if !matches!(outcome, Ok(Ok(()))) {
                self.metrics.record_observer_error(hook);
            }
        }
    }
}
