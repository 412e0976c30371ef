//! Writing a document: the document and its index entries in one
//! engine transaction (the caller's, or one of its own, retried on
//! conflict), and reading one back from the same places.

use serde_json::Value;
use strata_engine::{Isolation, Timestamp, Transaction, TxnOptions};

use super::{index, keys, Shared};
use crate::error::{Result, StorageError};
use crate::policy::Charge;
use crate::transaction::{Effects, TransactionId};
use crate::types::{RetrieveOptions, StorageKey};

impl Shared {
    /// The stored version of document `id`: now, as of `options.at`, or
    /// in `options.transaction`; `NotFound` naming `key` without one.
    pub(super) fn read_doc(
        &self,
        collection: &str,
        id: &str,
        key: &StorageKey,
        options: &RetrieveOptions,
    ) -> Result<strata_engine::Entry> {
        options.check()?;
        let dk = keys::doc(collection, id);
        let raw = match (options.transaction, options.at) {
            (Some(tx), _) => self
                .transactions
                .with(tx, |t| t.get_entry(&self.keyspace, &dk))?,
            (None, Some(ts)) => {
                self.policies.check_readable(self.storage_type, ts)?;
                self.keyspace.get_entry_at(&dk, ts)?
            }
            (None, None) => self.keyspace.get_entry(&dk)?,
        };
        raw.ok_or_else(|| StorageError::NotFound(key.clone()))
    }

    /// Writes (or with `new` `None`, deletes) a document and its index
    /// entries, in the caller's transaction or in one of its own, with its
    /// quota `charge` applied at the commit; says whether it existed, and
    /// the commit timestamp when committed here.
    pub(super) fn write(
        &self,
        collection: &str,
        id: &str,
        new: Option<(&Value, &[u8])>,
        expires_at: Option<Timestamp>,
        tx: Option<TransactionId>,
        charge: Charge,
    ) -> Result<(bool, Option<Timestamp>)> {
        let apply = |t: &mut Transaction| self.apply_write(t, collection, id, new, expires_at);
        if let Some(tx) = tx {
            let effects = Effects {
                on_commit: crate::kv::charge_on_commit(charge),
                ..Effects::default()
            };
            return self
                .transactions
                .with_storage(tx, effects, apply)
                .map(|existed| (existed, None));
        }
        // Serializable whatever the configuration: a concurrent index
        // creation changes the definitions read here, which makes this
        // commit conflict and run again.
        let opts = TxnOptions {
            isolation: Isolation::Serializable,
            ..self.transactions.txn_options()
        };
        let (existed, ts) = self.db.transaction_with(&opts, apply)?;
        charge.commit(ts);
        Ok((existed, Some(ts)))
    }

    fn apply_write(
        &self,
        t: &mut Transaction,
        collection: &str,
        id: &str,
        new: Option<(&Value, &[u8])>,
        expires_at: Option<Timestamp>,
    ) -> Result<bool> {
        let ks = &self.keyspace;
        let dk = keys::doc(collection, id);
        let old = t.get(ks, &dk)?;
        // An old document that does not decode is being replaced or deleted
        // by the caller: its entries cannot be found, and are skipped as
        // stale by queries from now on.
        let old_doc = old
            .as_ref()
            .and_then(|b| super::execute::decode_doc(collection, id, b).ok());
        let infos = index::read_infos(t, ks, collection)?;
        // Every key is computed and every unique value checked before
        // anything is written, so a refused store leaves the transaction
        // untouched.
        let mut dels = Vec::new();
        let mut puts = Vec::new();
        let mut markers = Vec::new();
        for info in infos.iter().filter(|i| i.maintained()) {
            let new_entries = match new {
                Some((doc, _)) => Some(index::entry_keys(collection, info, id, doc)?),
                None => None,
            };
            let old_keys = old_doc
                .as_ref()
                .and_then(|d| index::entry_keys(collection, info, id, d).ok())
                .map(|e| e.keys)
                .unwrap_or_default();
            let new_keys = new_entries.as_ref().map_or(&[][..], |e| &e.keys[..]);
            dels.extend(old_keys.into_iter().filter(|k| !new_keys.contains(k)));
            if let Some(e) = new_entries {
                check_unique(t, ks, collection, info, id, &e)?;
                if e.multikey {
                    markers.push(keys::multikey(collection, info.id));
                }
                puts.extend(e.keys);
            }
        }
        for m in markers {
            mark_multikey(t, ks, &m)?;
        }
        for k in dels {
            t.delete(ks, k)?;
        }
        // The document and its entries expire at one timestamp, so an
        // index never outlives or hides its document.
        let put = |t: &mut Transaction, k: &[u8], v: &[u8]| match expires_at {
            Some(at) => t.put_expiring(ks, k, v, at),
            None => t.put(ks, k, v),
        };
        for k in puts {
            put(t, &k, id.as_bytes())?;
        }
        match new {
            Some((_, bytes)) => put(t, &dk, bytes)?,
            None if old.is_some() => t.delete(ks, &dk)?,
            None => {}
        }
        Ok(old.is_some())
    }
}

/// Fails with `UniqueViolation` when another document holds one of the
/// unique keys of `entries` (document `id`'s in `info`).
pub(super) fn check_unique(
    t: &mut Transaction,
    ks: &strata_engine::Keyspace,
    collection: &str,
    info: &index::IndexInfo,
    id: &str,
    entries: &index::Entries,
) -> Result<()> {
    for k in &entries.unique {
        if let Some(holder) = t.get(ks, k)? {
            if holder != id.as_bytes() {
                return Err(StorageError::UniqueViolation {
                    collection: collection.to_owned(),
                    index: info.name(),
                    id: id.to_owned(),
                    existing: String::from_utf8_lossy(&holder).into_owned(),
                });
            }
        }
    }
    Ok(())
}

/// Records that an index is multikey. The marker is written once: later
/// writers only read it, so array writes do not conflict over it.
pub(super) fn mark_multikey(
    t: &mut Transaction,
    ks: &strata_engine::Keyspace,
    marker: &[u8],
) -> Result<()> {
    if t.get(ks, marker)?.is_none() {
        t.put(ks, marker, b"")?;
    }
    Ok(())
}
