//! Strata: an embedded log-structured storage engine with MVCC timestamps,
//! time-travel reads, and per-block compression and encryption.
//!
//! The crate is layered: [`format`] defines every byte on disk, [`engine`]
//! builds the LSM tree on it, and this crate's root is the storage system
//! applications program against: a [`StorageSystem`] with a
//! [`StorageProvider`] per [`StorageType`], transactions across providers,
//! a key-value provider with a read cache, blobs of any size as streams,
//! [documents](document) with secondary indexes and queries as of any past
//! time, encryption at rest and of application data, access control,
//! metrics and observers.
//!
//! ```
//! use strata::{RetrieveOptions, StorageKey, StorageOptions, StorageSystem, StorageType};
//! # fn main() -> strata::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let storage = StorageSystem::open(dir.path())?;
//! let resources = storage.get_provider(StorageType::Resource)?;
//! let key = StorageKey::new("resources/42");
//! resources.store(&key, b"{\"name\":\"ada\"}", &StorageOptions::new())?;
//! let item = resources.retrieve(&key, &RetrieveOptions::new())?;
//! assert_eq!(item.value, b"{\"name\":\"ada\"}");
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod access;
pub mod blob;
mod cache;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod document;
pub mod encryption;
mod envelope;
pub mod error;
mod instrument;
pub mod kv;
pub mod metrics;
pub mod observer;
pub mod policy;
pub mod provider;
pub mod registry;
#[cfg(feature = "server")]
pub mod server;
pub mod system;
pub mod transaction;
pub mod types;

pub use access::{
    AccessControlledProvider, AccessDecision, AccessPolicy, AccessPolicyProvider, AccessType,
    Effect, Identity, Principal, StorageAccessController, StoredPolicyProvider,
};
pub use blob::{BlobMetadata, BlobReader, BlobStorageProvider};
pub use config::{CacheConfig, EngineConfig, StorageSystemConfig};
pub use document::{
    DocumentMetadata, DocumentOptions, DocumentQuery, DocumentSchema, DocumentStorageProvider,
    FieldType, QueryOptions, QueryPlan, SortOrder,
};
pub use encryption::{
    EncryptedData, EncryptionAlgorithm, EncryptionConfig, EncryptionContext,
    StorageEncryptionManager,
};
pub use error::{
    EncryptionError, ObserverError, RegistryError, Result, StorageError, TransactionError,
};
pub use kv::KeyValueStorageProvider;
pub use metrics::{
    engine_prometheus, Histogram, MetricsRegistry, OperationStats, StorageMetricsCollector,
};
pub use observer::{Outcome, StorageEvent, StorageObserver};
pub use policy::{EffectivePolicy, QuotaStatus, StoragePolicy, StoragePolicyManager};
pub use provider::{ProviderConfig, ProviderContext, ProviderFactory, StorageProvider};
pub use registry::StorageProviderRegistry;
pub use strata_engine as engine;
pub use strata_engine::Timestamp;
pub use strata_format as format;
pub use system::{IdentityStorage, StorageSystem, StorageSystemBuilder};
pub use transaction::{
    IsolationLevel, StorageTransaction, StorageTransactionManager, TransactionConfig,
    TransactionHandle, TransactionId, TransactionStatus,
};
pub use types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo, MAX_KEY_LEN,
};

/// The largest value a key-value provider stores (the engine's limit);
/// larger data goes to the blob provider, in chunks.
pub const MAX_VALUE_LEN: usize = strata_engine::MAX_VALUE_LEN - 64;
