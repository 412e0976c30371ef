//! Observers: code the application runs after storage events. An observer
//! that fails or panics is counted in the metrics and changes nothing about
//! the operation it observed.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::error::ObserverError;
use crate::metrics::StorageMetricsCollector;
use crate::transaction::StorageTransaction;
use crate::types::{StorageItem, StorageKey, StorageMetadata, StorageType};

/// Called after storage events. Every method defaults to doing nothing.
pub trait StorageObserver: Send + Sync {
    /// An item was stored (for a transaction: buffered in it).
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

    /// An item was deleted.
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
