//! The provider interface every storage type is served through, and the
//! factories that build providers from configuration.

use std::any::Any;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use strata_engine::{Db, Keyspace};

use crate::error::Result;
use crate::transaction::{StorageTransaction, StorageTransactionManager};
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo,
};

/// Stores and retrieves the items of one storage type.
pub trait StorageProvider: Send + Sync {
    /// The storage type this provider serves.
    fn storage_type(&self) -> StorageType;

    /// Stores `value` under `key` (buffered, with a transaction in
    /// `options`).
    fn store(
        &self,
        key: &StorageKey,
        value: &[u8],
        options: &StorageOptions,
    ) -> Result<StorageMetadata>;

    /// The item under `key` ([`StorageError::NotFound`](crate::StorageError::NotFound)
    /// without one), now, as of `options.at`, or inside a transaction.
    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem>;

    /// The item under `key`, or `None` when there is none: for callers
    /// who expect absence (a missing key is an answer, not an error).
    /// Like [`retrieve`](Self::retrieve) otherwise.
    fn get(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<Option<StorageItem>> {
        match self.retrieve(key, options) {
            Ok(item) => Ok(Some(item)),
            Err(crate::StorageError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// True when an item is under `key` (and not expired).
    fn exists(&self, key: &StorageKey) -> Result<bool>;

    /// Deletes the item under `key`, if any.
    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()>;

    /// The keys matching `pattern`, in order.
    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>>;

    /// The versions of `key` within the history window, newest first.
    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>>;

    /// Starts a transaction (the storage system's, shared by every
    /// provider).
    fn begin_transaction(&self) -> Result<StorageTransaction>;

    /// Commits a transaction.
    fn commit_transaction(&self, transaction: &StorageTransaction) -> Result<()>;

    /// Rolls a transaction back.
    fn rollback_transaction(&self, transaction: &StorageTransaction) -> Result<()>;

    /// The provider as `Any`, so a caller can reach a concrete provider's
    /// own methods (e.g. the blob provider's streams).
    fn as_any(&self) -> &dyn Any;
}

/// How one storage type is served, in [`StorageSystemConfig`](crate::StorageSystemConfig).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The factory that builds the provider: `"kv"`, `"blob"`, or a name
    /// registered with `register_provider_factory`.
    pub provider_type: String,
    /// Bytes of read cache (key-value providers; 0: none).
    pub cache_bytes: u64,
    /// Chunk size for blob providers.
    pub chunk_size: usize,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        ProviderConfig {
            provider_type: "kv".into(),
            cache_bytes: 0,
            chunk_size: 1 << 20,
        }
    }
}

/// What a factory gets to build a provider with.
#[derive(Clone)]
pub struct ProviderContext {
    /// The engine database.
    pub db: Db,
    /// The keyspace of the storage type.
    pub keyspace: Keyspace,
    /// The storage type.
    pub storage_type: StorageType,
    /// The transactions shared by every provider.
    pub transactions: Arc<StorageTransactionManager>,
    /// True when the storage type's keyspace is encrypted at rest.
    pub encrypted: bool,
    /// Whether writes are synced before they are acknowledged.
    pub sync: bool,
    /// The provider's configuration.
    pub config: ProviderConfig,
    /// The storage policies every write obeys.
    pub policies: Arc<crate::policy::StoragePolicyManager>,
}

impl std::fmt::Debug for ProviderContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderContext")
            .field("storage_type", &self.storage_type)
            .field("encrypted", &self.encrypted)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Builds providers; registered by name on the builder.
pub trait ProviderFactory: Send + Sync {
    /// A provider for `ctx.storage_type`.
    fn create_provider(&self, ctx: ProviderContext) -> Result<Arc<dyn StorageProvider>>;
}

impl<F> ProviderFactory for F
where
    F: Fn(ProviderContext) -> Result<Arc<dyn StorageProvider>> + Send + Sync,
{
    fn create_provider(&self, ctx: ProviderContext) -> Result<Arc<dyn StorageProvider>> {
        self(ctx)
    }
}
