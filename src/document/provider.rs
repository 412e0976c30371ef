//! The document provider as a plain [`StorageProvider`]: the key
//! `collection/id` names a document and the value is its JSON text, so
//! code written against the provider interface (and its metrics and
//! access checks) reaches documents, and every write through it still
//! maintains the indexes.

use std::any::Any;

use serde_json::Value;

use super::{keys, DocumentOptions, DocumentStorageProvider};
use crate::access::AccessType;
use crate::envelope;
use crate::error::{Result, StorageError};
use crate::provider::StorageProvider;
use crate::transaction::StorageTransaction;
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey, StorageMetadata,
    StorageOptions, StorageType, VersionInfo,
};

/// Splits `collection/id`.
fn split(key: &StorageKey) -> Result<(&str, &str)> {
    let (c, id) = key.as_str().split_once('/').ok_or_else(|| {
        StorageError::InvalidArgument(format!("document key {key}: expected collection/id"))
    })?;
    keys::check_collection(c)?;
    keys::check_id(id)?;
    Ok((c, id))
}

impl StorageProvider for DocumentStorageProvider {
    fn storage_type(&self) -> StorageType {
        self.shared.storage_type
    }

    /// Stores `value`, which must be JSON, as document `collection/id`.
    fn store(
        &self,
        key: &StorageKey,
        value: &[u8],
        options: &StorageOptions,
    ) -> Result<StorageMetadata> {
        let (c, id) = split(key)?;
        let doc: Value = serde_json::from_slice(value).map_err(|e| {
            StorageError::InvalidArgument(format!("document {key} is not JSON: {e}"))
        })?;
        let m = self.store_document(c, id, &doc, &DocumentOptions::from(options.clone()))?;
        Ok(StorageMetadata {
            key: m.key,
            size: m.size,
            stored_at: m.stored_at,
            expires_at: m.expires_at,
            checksum: m.checksum,
            version: m.version,
        })
    }

    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem> {
        let (c, id) = split(key)?;
        self.require(key.as_str(), AccessType::Read)?;
        let entry = self.shared.read_doc(c, id, key, options)?;
        envelope::stored_item(key, &entry)
    }

    fn exists(&self, key: &StorageKey) -> Result<bool> {
        let (c, id) = split(key)?;
        self.require(key.as_str(), AccessType::Read)?;
        Ok(self.shared.keyspace.contains_key(keys::doc(c, id))?)
    }

    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()> {
        let (c, id) = split(key)?;
        self.delete_document(c, id, options).map(|_| ())
    }

    /// The `collection/id` keys matching `pattern`; needs List on its
    /// prefix and leaves out documents the caller may not read.
    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>> {
        self.require(&pattern.prefix, AccessType::List)?;
        let limit = pattern.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let base = keys::DOC.as_bytes();
        let mut start = [base, pattern.prefix.as_bytes()].concat();
        if let Some(after) = &pattern.start_after {
            let mut past = [base, after.as_str().as_bytes(), &[0]].concat();
            if past > start {
                std::mem::swap(&mut start, &mut past);
            }
        }
        let full_prefix = [base, pattern.prefix.as_bytes()].concat();
        for entry in self.shared.keyspace.range(start..)? {
            let (k, _) = entry?;
            if !k.starts_with(&full_prefix) {
                break;
            }
            let Ok(s) = std::str::from_utf8(&k[base.len()..]) else {
                continue;
            };
            if !pattern.matches(s) || !self.allowed(s, AccessType::Read)? {
                continue;
            }
            out.push(StorageKey::new(s));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>> {
        let (c, id) = split(key)?;
        self.require(key.as_str(), AccessType::Read)?;
        let versions = self.shared.keyspace.history(keys::doc(c, id))?;
        envelope::decode_history(key, versions, self.shared.db.now())
    }

    fn begin_transaction(&self) -> Result<StorageTransaction> {
        self.shared.transactions.begin()
    }

    fn commit_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.shared.transactions.commit(transaction.id).map(|_| ())
    }

    fn rollback_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.shared
            .transactions
            .rollback(transaction.id)
            .map(|_| ())
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
