//! The storage system's errors: one enum per concern, as the design names
//! them, all convertible into [`StorageError`].

use crate::access::AccessType;
use crate::transaction::TransactionId;
use crate::types::{StorageKey, StorageType};

/// Any failure of a storage call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// No item under the key.
    #[error("no item under key {0}")]
    NotFound(StorageKey),
    /// A bad argument; nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// A bad configuration.
    #[error("configuration: {0}")]
    Configuration(String),
    /// The identity may not do this.
    #[error("access denied: {access:?} on {key} ({reason})")]
    AccessDenied {
        /// The key.
        key: StorageKey,
        /// What was attempted.
        access: AccessType,
        /// Why it is denied.
        reason: String,
    },
    /// The provider registry refused.
    #[error(transparent)]
    Registry(#[from] RegistryError),
    /// A transaction failed.
    #[error(transparent)]
    Transaction(#[from] TransactionError),
    /// Encryption was demanded or failed.
    #[error(transparent)]
    Encryption(#[from] EncryptionError),
    /// The engine failed (I/O, corruption, a closed database...).
    #[error("engine: {0}")]
    Engine(#[from] strata_engine::Error),
    /// A stored value could not be decoded.
    #[error("corrupt item {key}: {reason}")]
    Corrupt {
        /// The key.
        key: StorageKey,
        /// What is wrong.
        reason: String,
    },
    /// A document does not satisfy the schema it names; nothing was
    /// stored.
    #[error("document violates schema {schema_id:?} at field {field:?}: {reason}")]
    SchemaViolation {
        /// The schema.
        schema_id: String,
        /// The first offending field path.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A store would give two documents the same values in a unique
    /// index; nothing was stored.
    #[error("document {collection}/{id}: unique index on {index} already holds these values for {existing}")]
    UniqueViolation {
        /// The collection.
        collection: String,
        /// The index's fields (`a, b`).
        index: String,
        /// The document being stored.
        id: String,
        /// The document that holds the values.
        existing: String,
    },
    /// What is being created exists already (an index on the field).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The operation gave up waiting for concurrent work (transactions
    /// that stayed open, writers that kept conflicting); retry later.
    #[error("busy: {0}")]
    Busy(String),
    /// A value could not be converted to or from JSON (a document that
    /// does not serialize, or does not deserialize as the type asked for).
    #[error("serialization: {0}")]
    Serialization(String),
    /// An I/O error outside the engine (reading a blob's source stream).
    #[error("I/O: {0}")]
    Io(String),
    /// A write would take its storage type (or key prefix) past the quota
    /// its storage policy sets; nothing was written.
    #[error(
        "quota exceeded for {scope}: {usage} of {limit} bytes used, the write needs {needed} more"
    )]
    QuotaExceeded {
        /// The storage type and prefix the quota is set on.
        scope: String,
        /// The quota in bytes.
        limit: u64,
        /// Bytes in use before the write.
        usage: u64,
        /// Bytes the write would add.
        needed: u64,
    },
    /// A write breaks its storage policy (too large an item, compression
    /// or encryption the policy requires); nothing was written.
    #[error("storage policy of {scope}: {reason}")]
    PolicyViolation {
        /// The storage type and prefix of the policy.
        scope: String,
        /// What the write breaks.
        reason: String,
    },
}

/// Failures of the provider registry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// A provider is already registered for the storage type.
    #[error("a provider is already registered for {0}")]
    AlreadyExists(StorageType),
    /// No provider is registered for the storage type.
    #[error("no provider is registered for {0}")]
    NotFound(StorageType),
    /// The provider registered for the type is not of the kind asked for.
    #[error("the provider for {0} is not a {1} provider")]
    WrongKind(StorageType, &'static str),
}

/// Failures of storage transactions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// No transaction with this id (never begun, or forgotten).
    #[error("no transaction {0}")]
    NotFound(TransactionId),
    /// The transaction is not active (already committed or rolled back).
    #[error("transaction {id} is {status}, not active")]
    InvalidStatus {
        /// The transaction.
        id: TransactionId,
        /// Its status.
        status: String,
    },
    /// Another commit changed what the transaction read or wrote; it was
    /// rolled back and may be retried.
    #[error("transaction {id} conflicts with a concurrent commit on {key}")]
    Conflict {
        /// The transaction.
        id: TransactionId,
        /// The key of the conflict.
        key: String,
    },
}

/// Failures of encryption.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncryptionError {
    /// Encryption was demanded where it is not configured.
    #[error("encryption demanded, but {0} storage is not encrypted")]
    NotEncrypted(StorageType),
    /// No key provider was configured.
    #[error("no encryption key provider is configured")]
    NoKeyProvider,
    /// The key is not available.
    #[error("encryption key {0} is not available")]
    MissingKey(u32),
    /// The algorithm is not supported.
    #[error("unsupported algorithm {0}")]
    UnsupportedAlgorithm(String),
    /// Authentication failed: wrong key, wrong associated data or tampering.
    #[error("decryption failed: wrong key, wrong associated data, or tampered data")]
    DecryptFailed,
}

/// An observer's failure; counted, never passed to the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("observer failed: {0}")]
pub struct ObserverError(pub String);

/// Shorthand for results of storage calls.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// True for a transaction conflict (worth retrying), whether the
    /// engine or a storage transaction reported it.
    pub fn is_conflict(&self) -> bool {
        matches!(
            self,
            StorageError::Transaction(TransactionError::Conflict { .. })
                | StorageError::Engine(strata_engine::Error::Conflict { .. })
        )
    }
}

impl StorageError {
    /// True when a replicated node refused a write because another node
    /// leads: retry it at the leader.
    pub fn is_not_leader(&self) -> bool {
        match self {
            StorageError::Engine(strata_engine::Error::Replication(e)) => {
                #[cfg(feature = "cluster")]
                {
                    matches!(
                        e.downcast_ref::<strata_replication::ReplicaError>(),
                        Some(strata_replication::ReplicaError::NotLeader { .. })
                    )
                }
                #[cfg(not(feature = "cluster"))]
                {
                    let _ = e;
                    false
                }
            }
            _ => false,
        }
    }
}

impl strata_engine::Retryable for StorageError {
    fn is_conflict(&self) -> bool {
        StorageError::is_conflict(self)
    }
}
