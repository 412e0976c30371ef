//! Writing a document: the document and its index entries in one
//! engine transaction (the caller's, or one of its own, retried on
//! conflict), and reading one back from the same places.

use serde_json::Value;
use strata_engine::{Isolation, Timestamp, Transaction, TxnOptions};

use super::{index, keys, plan, Shared};
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
            .and_then(|b| plan::decode_doc(collection, id, b).ok());
        let infos = index::read_infos(t, ks, collection)?;
        // Every key is computed before anything is written, so a value too
        // long to index leaves the transaction untouched.
        let mut dels = Vec::new();
        let mut puts = Vec::new();
        for info in infos.iter().filter(|i| i.maintained()) {
            let new_key = match new {
                Some((doc, _)) => Some(index::entry_key(collection, info, id, doc)?),
                None => None,
            };
            let old_key = old_doc
                .as_ref()
                .and_then(|d| index::entry_key(collection, info, id, d).ok());
            if let Some(k) = old_key {
                if new_key.as_ref() != Some(&k) {
                    dels.push(k);
                }
            }
            puts.extend(new_key);
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
