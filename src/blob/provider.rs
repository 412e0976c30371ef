//! The blob provider as a plain [`StorageProvider`]: whole values in and
//! out, through the same streams (and the same checks) as the streaming
//! calls.

use std::any::Any;
use std::io::Read;
use std::sync::Arc;

use super::{meta_key, BlobStorageProvider};
use crate::access::AccessType;
use crate::error::{Result, StorageError};
use crate::kv::check_key;
use crate::provider::StorageProvider;
use crate::transaction::StorageTransaction;
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo,
};

impl StorageProvider for BlobStorageProvider {
    fn storage_type(&self) -> StorageType {
        StorageType::Blob
    }

    fn store(
        &self,
        key: &StorageKey,
        value: &[u8],
        options: &StorageOptions,
    ) -> Result<StorageMetadata> {
        let mut m = self.put_stream(key, value, options)?.storage_metadata();
        if options.transaction.is_some() {
            // No version until the transaction commits.
            m.version = None;
        }
        Ok(m)
    }

    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem> {
        options.check()?;
        let mut reader = match (options.transaction, options.at) {
            (Some(tx), _) => {
                self.require(key.as_str(), AccessType::Read)?;
                self.open_in_transaction(key, tx)?
            }
            (None, Some(ts)) => self.open_at(key, ts)?,
            (None, None) => self.open(key)?,
        };
        let size = reader.metadata().size;
        let mut value = Vec::with_capacity(usize::try_from(size).unwrap_or(0).min(1 << 30));
        reader
            .read_to_end(&mut value)
            .map_err(|e| StorageError::Io(e.to_string()))?;
        Ok(StorageItem {
            key: key.clone(),
            value,
            metadata: reader.metadata().storage_metadata(),
            from_cache: false,
        })
    }

    fn exists(&self, key: &StorageKey) -> Result<bool> {
        self.require(key.as_str(), AccessType::Read)?;
        match self.read_metadata(key) {
            Ok(_) => Ok(true),
            Err(StorageError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()> {
        let Some(tx) = options.transaction else {
            return self.delete_blob(key).map(|_| ());
        };
        self.require(key.as_str(), AccessType::Delete)?;
        let k = check_key(key)?;
        let ks = self.ks().clone();
        let mk = meta_key(k);
        let charge = self
            .ctx
            .policies
            .charge(StorageType::Blob, key.as_str(), &mk, None)?;
        let this = self.clone();
        let replaced: Arc<parking_lot::Mutex<Option<super::BlobMetadata>>> = Arc::default();
        let old = replaced.clone();
        let effects = crate::transaction::Effects {
            on_commit: Some(Box::new(move |ts| {
                charge.commit(ts);
                if let Some(m) = old.lock().take() {
                    this.discard(&m.blob_id);
                }
            })),
            ..Default::default()
        };
        self.ctx.transactions.with_effects(tx, effects, |t| {
            *replaced.lock() = super::record_replaced(t, &ks, &mk)?;
            t.delete(&ks, &mk)
        })?;
        Ok(())
    }

    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>> {
        if let Some(c) = &self.caller {
            // The one listing rule of access control: List on the prefix,
            // and only the keys the identity may list and read.
            let unchecked = BlobStorageProvider {
                caller: None,
                ..self.clone()
            };
            return c.wrap(Arc::new(unchecked)).list_keys(pattern);
        }
        let mut p = pattern.clone();
        p.prefix = format!("m/{}", pattern.prefix);
        p.glob = pattern.glob.as_ref().map(|g| format!("m/{g}"));
        p.start_after = pattern
            .start_after
            .as_ref()
            .map(|k| StorageKey::new(format!("m/{k}")));
        let keys = crate::kv::list_keys(self.ks(), &p, |_| true)?;
        Ok(keys
            .into_iter()
            .map(|k| StorageKey::new(&k.as_str()[2..]))
            .collect())
    }

    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>> {
        self.require(key.as_str(), AccessType::Read)?;
        let k = check_key(key)?;
        let versions = self.ks().history(meta_key(k))?;
        let now = self.db().now();
        let mut out = Vec::new();
        for v in versions {
            let expired = v.expires_at.is_some_and(|e| e <= now);
            let item = match v.value {
                Some(_) if !expired => {
                    // Chunks of replaced versions are removed: those read
                    // as absent.
                    self.retrieve(key, &RetrieveOptions::new().at(v.ts)).ok()
                }
                _ => None,
            };
            out.push(VersionInfo {
                ts: v.ts,
                item,
                expired,
            });
        }
        Ok(out)
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
