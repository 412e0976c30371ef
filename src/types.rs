//! The vocabulary of the storage system: storage types, keys, the options
//! of each call and what calls return.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_engine::Timestamp;

use crate::transaction::{StorageTransaction, TransactionId};

/// The kinds of data the storage system keeps, each in its own keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum StorageType {
    /// Resources.
    Resource,
    /// Facts.
    Fact,
    /// Operations.
    Operation,
    /// Transactions (the system's own records of them).
    Transaction,
    /// Registry entries (also where access policies are kept).
    Registry,
    /// Metadata.
    Metadata,
    /// Blobs of any size.
    Blob,
}

impl StorageType {
    /// Every storage type.
    pub const ALL: [StorageType; 7] = [
        StorageType::Resource,
        StorageType::Fact,
        StorageType::Operation,
        StorageType::Transaction,
        StorageType::Registry,
        StorageType::Metadata,
        StorageType::Blob,
    ];

    /// The lower-case name, used for the keyspace and in metrics.
    pub fn name(self) -> &'static str {
        match self {
            StorageType::Resource => "resource",
            StorageType::Fact => "fact",
            StorageType::Operation => "operation",
            StorageType::Transaction => "transaction",
            StorageType::Registry => "registry",
            StorageType::Metadata => "metadata",
            StorageType::Blob => "blob",
        }
    }
}

impl fmt::Display for StorageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The key of a stored item: a UTF-8 string such as `resources/42`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StorageKey(String);

/// Keys starting with this are the storage system's own (access policies
/// in the Registry keyspace): callers cannot store, read or list them.
pub(crate) const RESERVED_PREFIX: &str = "\u{0}strata/";

/// The longest key, in bytes (the engine's key limit, less room for the
/// storage system's prefixes).
pub const MAX_KEY_LEN: usize = 60 * 1024;

impl StorageKey {
    /// A key from any string.
    pub fn new(key: impl Into<String>) -> Self {
        StorageKey(key.into())
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorageKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for StorageKey {
    fn from(s: &str) -> Self {
        StorageKey::new(s)
    }
}

impl From<String> for StorageKey {
    fn from(s: String) -> Self {
        StorageKey(s)
    }
}

/// Options of [`StorageProvider::store`](crate::StorageProvider::store).
#[derive(Debug, Clone, Default)]
pub struct StorageOptions {
    /// Buffer the write in this transaction instead of applying it now.
    pub transaction: Option<TransactionId>,
    /// Demand encryption at rest: an error, never plaintext, when the
    /// storage type is not encrypted.
    pub encryption: bool,
    /// Compress the value (zstd) when that makes it smaller.
    pub compression: bool,
    /// Expire the item after this long.
    pub ttl: Option<Duration>,
    /// Let the read cache keep the value (for providers with one).
    pub cacheable: bool,
}

impl StorageOptions {
    /// Defaults: no transaction, no demands, no TTL, cacheable.
    pub fn new() -> Self {
        StorageOptions {
            cacheable: true,
            ..Default::default()
        }
    }

    /// Buffers the write in `tx`.
    pub fn with_transaction(mut self, tx: &StorageTransaction) -> Self {
        self.transaction = Some(tx.id);
        self
    }

    /// Demands encryption at rest (or not).
    pub fn with_encryption(mut self, on: bool) -> Self {
        self.encryption = on;
        self
    }

    /// Compresses the value (or not).
    pub fn with_compression(mut self, on: bool) -> Self {
        self.compression = on;
        self
    }

    /// Expires the item after `ttl` (`None`: never).
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.ttl = ttl;
        self
    }

    /// Lets the read cache keep the value (or not).
    pub fn with_cacheable(mut self, on: bool) -> Self {
        self.cacheable = on;
        self
    }
}

/// Options of [`StorageProvider::retrieve`](crate::StorageProvider::retrieve).
#[derive(Debug, Clone, Default)]
pub struct RetrieveOptions {
    /// Read the value as of this time (inside the history window).
    pub at: Option<Timestamp>,
    /// Read inside this transaction, seeing its own writes.
    pub transaction: Option<TransactionId>,
    /// Skip the read cache.
    pub bypass_cache: bool,
}

impl RetrieveOptions {
    /// Defaults: the present, outside any transaction, cache allowed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the value as of `ts`.
    pub fn at(mut self, ts: Timestamp) -> Self {
        self.at = Some(ts);
        self
    }

    /// Reads inside `tx`.
    pub fn with_transaction(mut self, tx: &StorageTransaction) -> Self {
        self.transaction = Some(tx.id);
        self
    }

    /// Skips the read cache.
    pub fn bypass_cache(mut self) -> Self {
        self.bypass_cache = true;
        self
    }

    /// Refuses what no provider can do: a read both inside a transaction
    /// (which reads its own snapshot and writes) and at a past time. Every
    /// provider applies this one rule.
    pub(crate) fn check(&self) -> crate::Result<()> {
        if self.transaction.is_some() && self.at.is_some() {
            return Err(crate::StorageError::InvalidArgument(
                "a read is either inside a transaction or at a past time, not both".into(),
            ));
        }
        Ok(())
    }
}

/// Options of [`StorageProvider::delete`](crate::StorageProvider::delete).
#[derive(Debug, Clone, Default)]
pub struct DeleteOptions {
    /// Buffer the delete in this transaction.
    pub transaction: Option<TransactionId>,
}

impl DeleteOptions {
    /// Defaults: applied now.
    pub fn new() -> Self {
        Self::default()
    }

    /// Buffers the delete in `tx`.
    pub fn with_transaction(mut self, tx: &StorageTransaction) -> Self {
        self.transaction = Some(tx.id);
        self
    }
}

/// What is known of a stored item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageMetadata {
    /// Its key.
    pub key: StorageKey,
    /// Size of the value in bytes, as the caller gave it.
    pub size: u64,
    /// When it was stored: the commit timestamp of its version (for a
    /// write still buffered in a transaction, the clock at the store
    /// call; the commit's timestamp is in the committed
    /// [`StorageTransaction`]).
    pub stored_at: Timestamp,
    /// When it expires, if it has a TTL, on the engine's clock
    /// ([`Db::now`](strata_engine::Db::now)): from then on it reads as
    /// absent and compaction reclaims it.
    pub expires_at: Option<Timestamp>,
    /// xxh3-64 of the value.
    pub checksum: u64,
    /// The version's commit timestamp: `retrieve` with
    /// `RetrieveOptions::new().at(version)` reads this version. `None` for
    /// a write buffered in a transaction, which has none until it commits.
    pub version: Option<Timestamp>,
}

impl StorageMetadata {
    /// The metadata of a write committed at `ts`.
    pub(crate) fn committed(mut self, ts: Timestamp) -> Self {
        self.stored_at = ts;
        self.version = Some(ts);
        self
    }
}

/// A retrieved item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorageItem {
    /// Its key.
    pub key: StorageKey,
    /// Its value.
    pub value: Vec<u8>,
    /// Its metadata.
    pub metadata: StorageMetadata,
    /// Served by the read cache.
    pub from_cache: bool,
}

/// One version of a key, from [`StorageProvider::history`](crate::StorageProvider::history).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionInfo {
    /// The commit timestamp of the write.
    pub ts: Timestamp,
    /// The item as written then: `None` for a delete, and for a version
    /// whose TTL has run out (see `expired`).
    pub item: Option<StorageItem>,
    /// True for a version written with a TTL that has expired by now. Its
    /// value is not returned: compaction may already have reclaimed it, so
    /// showing it would depend on when compaction last ran. Reads `at` a
    /// time before the expiry still see it while the history window
    /// keeps it.
    pub expired: bool,
}

/// Which keys [`StorageProvider::list_keys`](crate::StorageProvider::list_keys) returns,
/// in key order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyPattern {
    /// Keys starting with this.
    pub prefix: String,
    /// Keys matching this glob (`*` any run of characters, `?` one
    /// character), when set. Its literal start narrows the scan.
    pub glob: Option<String>,
    /// At most this many keys.
    pub limit: Option<usize>,
    /// Only keys after this one: pass the last key of a page to get the
    /// next page.
    pub start_after: Option<StorageKey>,
}

impl KeyPattern {
    /// Every key.
    pub fn all() -> Self {
        Self::default()
    }

    /// Keys starting with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        KeyPattern {
            prefix: prefix.into(),
            ..Self::default()
        }
    }

    /// Keys matching `glob` (`*`, `?`).
    pub fn glob(glob: impl Into<String>) -> Self {
        let glob = glob.into();
        let prefix: String = glob
            .chars()
            .take_while(|c| *c != '*' && *c != '?')
            .collect();
        KeyPattern {
            prefix,
            glob: Some(glob),
            ..Self::default()
        }
    }

    /// At most `n` keys.
    pub fn with_limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Only keys after `key`.
    pub fn start_after(mut self, key: impl Into<StorageKey>) -> Self {
        self.start_after = Some(key.into());
        self
    }

    /// True when `key` matches the prefix and the glob.
    pub fn matches(&self, key: &str) -> bool {
        key.starts_with(&self.prefix) && self.glob.as_deref().is_none_or(|g| glob_match(g, key))
    }
}

/// Glob matching with `*` (any run, possibly empty) and `?` (one char).
pub(crate) fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("a*c", "abbbc"));
        assert!(glob_match("a*", "a"));
        assert!(glob_match("*", ""));
        assert!(glob_match("a?c", "abc"));
        assert!(!glob_match("a?c", "ac"));
        assert!(glob_match("res/*/x", "res/1/2/x"));
        assert!(!glob_match("res/*/x", "res/1/2/y"));
        assert_eq!(KeyPattern::glob("facts/*/a").prefix, "facts/");
    }
}
