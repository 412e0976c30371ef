//! The storage system's configuration: a serde type, so it loads from TOML
//! or JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::encryption::EncryptionConfig;
use crate::provider::ProviderConfig;
use crate::transaction::TransactionConfig;
use crate::types::StorageType;

/// Everything configurable about a storage system. Every field has a
/// default, so a file need only name what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct StorageSystemConfig {
    /// The database directory (the builder's `path` wins).
    pub path: Option<PathBuf>,
    /// The engine under the providers.
    pub engine: EngineConfig,
    /// A read cache for every key-value provider whose own configuration
    /// gives none.
    pub cache: Option<CacheConfig>,
    /// Which storage types are encrypted at rest (with a key provider).
    pub encryption: EncryptionConfig,
    /// How transactions behave.
    pub transactions: TransactionConfig,
    /// Provider per storage type; missing types get the key-value provider
    /// (the blob provider for `Blob`).
    pub providers: BTreeMap<StorageType, ProviderConfig>,
    /// Check every call of `as_identity` providers against the access
    /// policies (also on when the builder is given policies).
    pub access_control: bool,
}

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineConfig {
    /// Bytes of memtables before a flush.
    pub memtable_size: usize,
    /// Bytes of the block cache.
    pub block_cache_size: usize,
    /// How far back reads of the past may go, in seconds.
    pub history_retention_secs: u64,
    /// Sync every write before acknowledging it (off: a power failure may
    /// lose the last writes, never half of one).
    pub sync_writes: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memtable_size: 32 << 20,
            block_cache_size: 32 << 20,
            history_retention_secs: 7 * 24 * 3600,
            sync_writes: true,
        }
    }
}

/// A read cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CacheConfig {
    /// Bytes it may hold.
    pub capacity_bytes: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            capacity_bytes: 16 << 20,
        }
    }
}

impl StorageSystemConfig {
    /// The provider configuration of `t`, defaults filled in.
    pub fn provider_config(&self, t: StorageType) -> ProviderConfig {
        let mut c = self
            .providers
            .get(&t)
            .cloned()
            .unwrap_or_else(|| ProviderConfig {
                provider_type: if t == StorageType::Blob { "blob" } else { "kv" }.into(),
                ..ProviderConfig::default()
            });
        if c.cache_bytes == 0 && c.provider_type == "kv" {
            if let Some(cache) = &self.cache {
                c.cache_bytes = cache.capacity_bytes;
            }
        }
        c
    }
}
