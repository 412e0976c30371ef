//! The storage system's configuration: a serde type, so it loads from TOML
//! or JSON.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::encryption::EncryptionConfig;
use crate::error::StorageError;
use crate::provider::ProviderConfig;
use crate::transaction::TransactionConfig;
use crate::types::StorageType;

/// Everything configurable about a storage system. Every field has a
/// default, so a file need only name what it changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
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
    /// Storage policies, stored durably at open (replacing stored ones of
    /// the same type and prefix).
    pub policies: Vec<crate::policy::StoragePolicy>,
}

/// Engine settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// How tables are read: `"mmap"` (the default, fastest) or `"pread"`
    /// (positioned reads: mapped file pages never count in the process's
    /// resident memory, and a failing disk is an error rather than
    /// SIGBUS); README "SST reads" has the measurements.
    pub sst_reads: strata_engine::SstReads,
    /// Values of at least this many bytes (blob chunks among them) are
    /// stored apart from the tree, in blob files, and written once; 0
    /// keeps every value in the tree. SPEC §13.8.
    pub blob_threshold: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            memtable_size: 32 << 20,
            block_cache_size: 32 << 20,
            history_retention_secs: 7 * 24 * 3600,
            sync_writes: true,
            sst_reads: strata_engine::SstReads::default(),
            blob_threshold: 4096,
        }
    }
}

/// A read cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
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
    /// The configuration in TOML `text`. A field this version does not
    /// know (a misspelling) is an error naming it and where it is.
    pub fn from_toml(text: &str) -> crate::Result<Self> {
        let de = toml::Deserializer::parse(text)
            .map_err(|e| StorageError::Configuration(format!("TOML: {e}")))?;
        serde_path_to_error::deserialize(de).map_err(|e| config_error("TOML", e))
    }

    /// The configuration in JSON `text`, refusing unknown fields like
    /// [`from_toml`](Self::from_toml).
    pub fn from_json(text: &str) -> crate::Result<Self> {
        let mut de = serde_json::Deserializer::from_str(text);
        let config: Self =
            serde_path_to_error::deserialize(&mut de).map_err(|e| config_error("JSON", e))?;
        // Text after the object is a mistake, not a comment.
        de.end()
            .map_err(|e| StorageError::Configuration(format!("JSON: {e}")))?;
        Ok(config)
    }

    /// The configuration in the file at `path`: TOML, or JSON for a name
    /// ending in `.json`.
    pub fn load(path: impl AsRef<std::path::Path>) -> crate::Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            StorageError::Configuration(format!("cannot read {}: {e}", path.display()))
        })?;
        let parsed = if path.extension().is_some_and(|e| e == "json") {
            Self::from_json(&text)
        } else {
            Self::from_toml(&text)
        };
        parsed.map_err(|e| StorageError::Configuration(format!("{}: {e}", path.display())))
    }

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

/// A configuration error that names where in the document it is.
fn config_error<E: std::fmt::Display>(
    format: &str,
    e: serde_path_to_error::Error<E>,
) -> StorageError {
    let at = e.path().to_string();
    let inner = e.into_inner();
    if at.is_empty() || at == "." {
        StorageError::Configuration(format!("{format}: {inner}"))
    } else {
        StorageError::Configuration(format!("{format}: at `{at}`: {inner}"))
    }
}
