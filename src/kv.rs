//! The key-value provider: items in their storage type's keyspace, with an
//! optional read cache.

use std::any::Any;
use std::sync::Arc;

use strata_engine::WriteOptions;

use crate::cache::{CachedItem, ReadCache};
use crate::envelope;
use crate::error::{EncryptionError, Result, StorageError};
use crate::provider::{ProviderContext, StorageProvider};
use crate::transaction::{Effects, StorageTransaction};
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo, MAX_KEY_LEN, RESERVED_PREFIX,
};

/// Checks a caller's key: not empty, not too long, not reserved.
pub(crate) fn check_key(key: &StorageKey) -> Result<&[u8]> {
    let k = key.as_str();
    if k.is_empty() {
        return Err(StorageError::InvalidArgument("empty key".into()));
    }
    if k.len() > MAX_KEY_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "key of {} bytes exceeds {MAX_KEY_LEN}",
            k.len()
        )));
    }
    if k.starts_with(RESERVED_PREFIX) {
        return Err(StorageError::InvalidArgument(
            "keys starting with NUL \"strata/\" are reserved".into(),
        ));
    }
    Ok(k.as_bytes())
}

/// Checks a value's size.
pub(crate) fn check_value(value: &[u8]) -> Result<()> {
    if value.len() > crate::MAX_VALUE_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "value of {} bytes exceeds {}; use the blob provider",
            value.len(),
            crate::MAX_VALUE_LEN
        )));
    }
    Ok(())
}

/// Checks what a store asks for: encryption only where it is configured,
/// a positive TTL.
pub(crate) fn check_store_options(
    options: &StorageOptions,
    encrypted: bool,
    t: StorageType,
) -> Result<()> {
    if options.encryption && !encrypted {
        return Err(EncryptionError::NotEncrypted(t).into());
    }
    if options.ttl.is_some_and(|t| t.is_zero()) {
        return Err(StorageError::InvalidArgument(
            "a TTL must be positive".into(),
        ));
    }
    Ok(())
}

/// The metadata of a value about to be stored: its expiry on the
/// engine's clock (the one TTL mechanism: the same timestamp goes to the
/// engine with the write); its commit timestamp comes with the commit.
pub(crate) fn new_metadata(
    db: &strata_engine::Db,
    key: &StorageKey,
    value: &[u8],
    options: &StorageOptions,
) -> StorageMetadata {
    let now = db.now();
    StorageMetadata {
        key: key.clone(),
        size: value.len() as u64,
        stored_at: now,
        expires_at: options.ttl.map(|t| now.saturating_add(t)),
        checksum: envelope::checksum_of(value),
        version: None,
    }
}

/// The commit hook that applies a quota charge when its transaction
/// commits (dropped with the transaction otherwise, which releases it).
pub(crate) fn charge_on_commit(
    charge: crate::policy::Charge,
) -> Option<crate::transaction::CommitHook> {
    Some(Box::new(move |ts| charge.commit(ts)))
}

/// Items of one storage type as key-value pairs.
pub struct KeyValueStorageProvider {
    ctx: ProviderContext,
    cache: Option<Arc<ReadCache>>,
}

impl std::fmt::Debug for KeyValueStorageProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyValueStorageProvider")
            .field("storage_type", &self.ctx.storage_type)
            .field("cache", &self.cache)
            .finish()
    }
}

impl KeyValueStorageProvider {
    /// A provider on `ctx.keyspace`, with a read cache of
    /// `ctx.config.cache_bytes` (none when zero).
    pub fn new(ctx: ProviderContext) -> Self {
        let cache = (ctx.config.cache_bytes > 0).then(|| {
            let c = Arc::new(ReadCache::new(ctx.config.cache_bytes));
            ctx.transactions.register_cache(ctx.storage_type, c.clone());
            c
        });
        KeyValueStorageProvider { ctx, cache }
    }

    /// Items held by the read cache (0 without one).
    pub fn cached_items(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    fn write_options(&self) -> WriteOptions {
        WriteOptions {
            sync: self.ctx.sync,
        }
    }
}

impl StorageProvider for KeyValueStorageProvider {
    fn storage_type(&self) -> StorageType {
        self.ctx.storage_type
    }

    fn store(
        &self,
        key: &StorageKey,
        value: &[u8],
        options: &StorageOptions,
    ) -> Result<StorageMetadata> {
        let k = check_key(key)?;
        check_value(value)?;
        let t = self.ctx.storage_type;
        let options = &self.ctx.policies.prepare(
            t,
            key.as_str(),
            value.len() as u64,
            options,
            self.ctx.encrypted,
        )?;
        check_store_options(options, self.ctx.encrypted, t)?;
        let meta = new_metadata(&self.ctx.db, key, value, options);
        let bytes = envelope::encode_with(value, &meta, options.compression, options.cacheable);
        let ks = &self.ctx.keyspace;
        let charge = self.ctx.policies.charge(
            t,
            key.as_str(),
            k,
            Some((value.len() as u64, meta.expires_at)),
        )?;
        match options.transaction {
            Some(id) => {
                let effects = Effects {
                    written: vec![(t, k.to_vec())],
                    on_commit: charge_on_commit(charge),
                    ..Effects::default()
                };
                self.ctx
                    .transactions
                    .with_effects(id, effects, |tx| match meta.expires_at {
                        Some(at) => tx.put_expiring(ks, k, &bytes, at),
                        None => tx.put(ks, k, &bytes),
                    })?;
                Ok(meta)
            }
            None => {
                let mut b = self.ctx.db.batch();
                match meta.expires_at {
                    Some(at) => b.put_expiring(ks, k, &bytes, at)?,
                    None => b.put(ks, k, &bytes)?,
                }
                let ts = self.ctx.db.write(b, self.write_options())?;
                charge.commit(ts);
                if let Some(c) = &self.cache {
                    c.invalidate(k);
                }
                Ok(meta.committed(ts))
            }
        }
    }

    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem> {
        let k = check_key(key)?;
        options.check()?;
        let ks = &self.ctx.keyspace;
        let entry = if let Some(id) = options.transaction {
            self.ctx.transactions.with(id, |tx| tx.get_entry(ks, k))?
        } else if let Some(ts) = options.at {
            self.ctx
                .policies
                .check_readable(self.ctx.storage_type, ts)?;
            ks.get_entry_at(k, ts)?
        } else if let Some(c) = self.cache.as_ref().filter(|_| !options.bypass_cache) {
            // Expiry as the engine judges it: on its clock.
            if let Some(hit) = c.get(k, self.ctx.db.now()) {
                return Ok(StorageItem {
                    key: key.clone(),
                    value: hit.value.as_ref().clone(),
                    metadata: hit.metadata,
                    from_cache: true,
                });
            }
            let generation = c.generation(k);
            let Some(entry) = ks.get_entry(k)? else {
                return Err(StorageError::NotFound(key.clone()));
            };
            let item = envelope::stored_item(key, &entry)?;
            if envelope::cacheable(&entry.value) {
                c.fill(
                    k,
                    generation,
                    CachedItem {
                        value: Arc::new(item.value.clone()),
                        metadata: item.metadata.clone(),
                    },
                );
            }
            return Ok(item);
        } else {
            ks.get_entry(k)?
        };
        match entry {
            Some(entry) => envelope::stored_item(key, &entry),
            None => Err(StorageError::NotFound(key.clone())),
        }
    }

    fn exists(&self, key: &StorageKey) -> Result<bool> {
        let k = check_key(key)?;
        Ok(self.ctx.keyspace.contains_key(k)?)
    }

    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()> {
        let k = check_key(key)?;
        let ks = &self.ctx.keyspace;
        let t = self.ctx.storage_type;
        let charge = self.ctx.policies.charge(t, key.as_str(), k, None)?;
        match options.transaction {
            Some(id) => {
                let effects = Effects {
                    written: vec![(t, k.to_vec())],
                    on_commit: charge_on_commit(charge),
                    ..Effects::default()
                };
                self.ctx
                    .transactions
                    .with_effects(id, effects, |tx| tx.delete(ks, k))?;
            }
            None => {
                let mut b = self.ctx.db.batch();
                b.delete(ks, k)?;
                let ts = self.ctx.db.write(b, self.write_options())?;
                charge.commit(ts);
                if let Some(c) = &self.cache {
                    c.invalidate(k);
                }
            }
        }
        Ok(())
    }

    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>> {
        list_keys(&self.ctx.keyspace, pattern, |_| true)
    }

    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>> {
        let k = check_key(key)?;
        envelope::decode_history(key, self.ctx.keyspace.history(k)?, self.ctx.db.now())
    }

    fn begin_transaction(&self) -> Result<StorageTransaction> {
        self.ctx.transactions.begin()
    }

    fn commit_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.ctx.transactions.commit(transaction.id).map(|_| ())
    }

    fn rollback_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.ctx.transactions.rollback(transaction.id).map(|_| ())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The keys of `ks` matching `pattern` (and `keep`), in order, skipping
/// reserved keys: one range scan from the pattern's prefix (or past its
/// cursor).
pub(crate) fn list_keys(
    ks: &strata_engine::Keyspace,
    pattern: &KeyPattern,
    keep: impl Fn(&str) -> bool,
) -> Result<Vec<StorageKey>> {
    let mut start = pattern.prefix.as_bytes().to_vec();
    if let Some(after) = &pattern.start_after {
        let mut past = after.as_str().as_bytes().to_vec();
        past.push(0);
        if past > start {
            start = past;
        }
    }
    let limit = pattern.limit.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for entry in ks.range(start..)? {
        let (k, _) = entry?;
        if !k.starts_with(pattern.prefix.as_bytes()) {
            break;
        }
        let Ok(s) = std::str::from_utf8(&k) else {
            continue;
        };
        if s.starts_with(RESERVED_PREFIX) || !pattern.matches(s) || !keep(s) {
            continue;
        }
        out.push(StorageKey::new(s));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}
