//! The document provider: serde documents grouped in collections, with
//! secondary indexes kept in the same engine transaction as the
//! documents, a query planner that explains itself, schema validation,
//! and queries against the state as of any past time in the history
//! window (SPEC §17).
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use strata::document::{DocumentOptions, DocumentQuery, QueryOptions, SortOrder};
//! use strata::{StorageSystem, StorageType};
//! # fn main() -> strata::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! #[derive(Serialize, Deserialize)]
//! struct Task { title: String, priority: u32 }
//!
//! let storage = StorageSystem::open(dir.path())?;
//! let docs = storage.get_document_storage(StorageType::Resource)?;
//! docs.create_index("tasks", "priority")?;
//! for (id, p) in [("a", 3), ("b", 1), ("c", 2)] {
//!     let task = Task { title: format!("task {id}"), priority: p };
//!     docs.store_document("tasks", id, &task, &DocumentOptions::new())?;
//! }
//! let query = DocumentQuery::new().with_field_greater_than("priority", 1);
//! let options = QueryOptions::new().with_sort_field("priority", SortOrder::Descending);
//! let found: Vec<Task> = docs.query_documents("tasks", &query, &options)?;
//! assert_eq!(found.iter().map(|t| t.priority).collect::<Vec<_>>(), [3, 2]);
//! assert!(docs.explain("tasks", &query, &options)?.to_string().starts_with("INDEX SCAN"));
//! # Ok(()) }
//! ```

mod candidate;
mod ddl;
mod execute;
mod index;
mod keys;
mod plan;
mod provider;
mod query;
mod run_query;
mod schema;
mod stats;
mod time;
mod value;
mod write;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strata_engine::{Db, Keyspace, Timestamp};

pub use index::{IndexInfo, IndexSpec, IndexState, MAX_INDEXED_VALUE_LEN, MAX_INDEX_FIELDS};

/// Where documents sit in a storage type's keyspace (their keys follow as
/// `collection/id`).
pub(crate) const DOC_PREFIX: &str = keys::DOC;
pub use keys::{MAX_COLLECTION_LEN, MAX_ID_LEN};
pub use plan::{PlanCandidate, PlanKind, QueryPlan, QueryStats};
pub use query::{
    DocumentQuery, FieldFilter, Filter, FilterOp, QueryOptions, SortOrder, MAX_FILTERS,
    MAX_FILTER_DEPTH,
};
pub use run_query::DocumentPage;
pub use schema::{DocumentSchema, FieldType, SchemaField, SchemaRegistry};
pub use stats::{IndexStatistics, BUCKETS};

use crate::access::{AccessType, Caller, Identity, StorageAccessController};
use crate::envelope;
use crate::error::{Result, StorageError};
use crate::instrument::Instrument;
use crate::kv::{check_store_options, check_value, new_metadata};

use crate::provider::ProviderContext;
use crate::transaction::TransactionId;
use crate::types::{
    DeleteOptions, RetrieveOptions, StorageKey, StorageMetadata, StorageOptions, StorageType,
};

/// How a document is stored: the storage options of any store (a
/// transaction, a TTL, encryption demanded, compression) and the schema
/// it must satisfy.
#[derive(Debug, Clone, Default)]
pub struct DocumentOptions {
    /// The options every store takes.
    pub storage: StorageOptions,
    /// Validate the document against this schema first.
    pub schema_id: Option<String>,
}

impl DocumentOptions {
    /// Defaults: no transaction, no TTL, no schema.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates against schema `id`.
    pub fn with_schema(mut self, id: impl Into<String>) -> Self {
        self.schema_id = Some(id.into());
        self
    }

    /// Buffers the write in `tx`.
    pub fn with_transaction(mut self, tx: &crate::StorageTransaction) -> Self {
        self.storage.transaction = Some(tx.id);
        self
    }

    /// Expires the document (and its index entries) after `ttl`.
    pub fn with_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.storage.ttl = ttl;
        self
    }

    /// Compresses the document's JSON (zstd) when that makes it smaller.
    pub fn with_compression(mut self, on: bool) -> Self {
        self.storage.compression = on;
        self
    }

    /// Demands encryption at rest: an error, never plaintext, when the
    /// storage type is not encrypted.
    pub fn with_encryption(mut self, on: bool) -> Self {
        self.storage.encryption = on;
        self
    }
}

impl From<StorageOptions> for DocumentOptions {
    fn from(storage: StorageOptions) -> Self {
        DocumentOptions {
            storage,
            schema_id: None,
        }
    }
}

/// What storing a document produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentMetadata {
    /// The collection.
    pub collection: String,
    /// The document's id.
    pub id: String,
    /// `collection/id`: the key access policies match.
    pub key: StorageKey,
    /// Bytes of JSON.
    pub size: u64,
    /// When it was stored: its commit timestamp (for a store buffered in
    /// a transaction, the clock at the call).
    pub stored_at: Timestamp,
    /// When it expires, with a TTL, on the engine's clock; its index
    /// entries expire at the same timestamp.
    pub expires_at: Option<Timestamp>,
    /// The checksum of its JSON.
    pub checksum: u64,
    /// The schema it was validated against.
    pub schema_id: Option<String>,
    /// The version's commit timestamp (`None` inside a transaction):
    /// `retrieve_document` at it reads this document.
    pub version: Option<Timestamp>,
}

/// Counters of one document provider since the storage system opened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentStats {
    /// Documents stored.
    pub documents_stored: u64,
    /// Documents deleted.
    pub documents_deleted: u64,
    /// Queries run.
    pub queries: u64,
    /// Queries answered through an index.
    pub index_queries: u64,
    /// Queries answered by a collection scan.
    pub scan_queries: u64,
    /// Index entries read by queries.
    pub index_entries_read: u64,
    /// Documents read by queries.
    pub documents_read: u64,
}

#[derive(Default)]
struct Counters {
    stored: AtomicU64,
    deleted: AtomicU64,
    queries: AtomicU64,
    index_queries: AtomicU64,
    scan_queries: AtomicU64,
    entries_read: AtomicU64,
    docs_read: AtomicU64,
}

/// State shared by a provider and its identity-scoped views.
pub(crate) struct Shared {
    db: Db,
    keyspace: Keyspace,
    storage_type: StorageType,
    transactions: Arc<crate::StorageTransactionManager>,
    encrypted: bool,
    sync: bool,
    schemas: SchemaRegistry,
    instrument: Arc<Instrument>,
    policies: Arc<crate::policy::StoragePolicyManager>,
    counters: Counters,
    /// Serializes index creation and removal.
    ddl: Mutex<()>,
}

/// Documents of one storage type, in collections, with indexes and
/// schemas. Get it from
/// [`StorageSystem::get_document_storage`](crate::StorageSystem::get_document_storage).
#[derive(Clone)]
pub struct DocumentStorageProvider {
    shared: Arc<Shared>,
    caller: Option<Caller>,
}

impl std::fmt::Debug for DocumentStorageProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentStorageProvider")
            .field("storage_type", &self.shared.storage_type)
            .field("identity", &self.caller.as_ref().map(Caller::identity))
            .finish()
    }
}

impl DocumentStorageProvider {
    /// A provider on `ctx.keyspace`; finishes removing any index whose
    /// build or removal a crash interrupted.
    pub(crate) fn new(ctx: ProviderContext, instrument: Arc<Instrument>) -> Result<Self> {
        let schemas = SchemaRegistry::load(ctx.db.clone(), ctx.keyspace.clone(), ctx.sync)?;
        let shared = Arc::new(Shared {
            db: ctx.db,
            keyspace: ctx.keyspace,
            storage_type: ctx.storage_type,
            transactions: ctx.transactions,
            encrypted: ctx.encrypted,
            sync: ctx.sync,
            schemas,
            instrument,
            policies: ctx.policies,
            counters: Counters::default(),
            ddl: Mutex::new(()),
        });
        // On a replica the build may be running on another node (or in
        // another storage system over this database): only a single node
        // knows that an unfinished build was interrupted.
        if !shared.db.is_replica() {
            shared.finish_unfinished()?;
        }
        Ok(DocumentStorageProvider {
            shared,
            caller: None,
        })
    }

    /// The same provider, checking every call of `identity`.
    pub(crate) fn with_identity(
        &self,
        identity: Identity,
        controller: Arc<StorageAccessController>,
    ) -> Self {
        DocumentStorageProvider {
            shared: self.shared.clone(),
            caller: Some(Caller::new(identity, controller)),
        }
    }

    /// The storage type whose keyspace holds the documents.
    pub fn storage_type(&self) -> StorageType {
        self.shared.storage_type
    }

    /// The schemas documents are validated against (read-only: register
    /// through [`register_schema`](Self::register_schema), which checks
    /// access).
    pub fn schema_registry(&self) -> &SchemaRegistry {
        &self.shared.schemas
    }

    /// Stores `schema`, replacing any with its id. Needs Admin on the key
    /// `/schema/<id>` (which no document key can equal: collection names
    /// are not empty).
    pub fn register_schema(&self, schema: DocumentSchema) -> Result<()> {
        self.require(&format!("/schema/{}", schema.id), AccessType::Admin)?;
        self.shared.schemas.register(schema)
    }

    /// Counters since the storage system opened.
    pub fn stats(&self) -> DocumentStats {
        let c = &self.shared.counters;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        DocumentStats {
            documents_stored: l(&c.stored),
            documents_deleted: l(&c.deleted),
            queries: l(&c.queries),
            index_queries: l(&c.index_queries),
            scan_queries: l(&c.scan_queries),
            index_entries_read: l(&c.entries_read),
            documents_read: l(&c.docs_read),
        }
    }

    fn require(&self, key: &str, access: AccessType) -> Result<()> {
        match &self.caller {
            Some(c) => c.require(self.shared.storage_type, key, access),
            None => Ok(()),
        }
    }

    /// Whether calls are checked against access policies.
    fn checks_access(&self) -> bool {
        self.caller.is_some()
    }

    fn allowed(&self, key: &str, access: AccessType) -> Result<bool> {
        match &self.caller {
            Some(c) => c.allowed(self.shared.storage_type, key, access),
            None => Ok(true),
        }
    }

    /// Measures and observes operation `op` (on `key`, in `tx`), like
    /// every operation of the storage system.
    fn timed<T>(
        &self,
        op: &str,
        key: Option<&StorageKey>,
        tx: Option<TransactionId>,
        bytes: impl Fn(&T) -> u64,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.shared
            .instrument
            .run(op, self.shared.storage_type, key, tx, bytes, f)
    }

    /// Stores `document` as `id` in `collection`, replacing any document
    /// with that id, and updates every index of the collection in the same
    /// engine transaction. Needs Write on `collection/id`.
    pub fn store_document<T: Serialize + ?Sized>(
        &self,
        collection: &str,
        id: &str,
        document: &T,
        options: &DocumentOptions,
    ) -> Result<DocumentMetadata> {
        let key = StorageKey::new(format!("{collection}/{id}"));
        let tx = options.storage.transaction;
        let stored = |m: &DocumentMetadata| m.size;
        let applied = self.shared.instrument.expect_applied(tx);
        let meta = self.timed("store_document", Some(&key), tx, stored, || {
            keys::check_collection(collection)?;
            keys::check_id(id)?;
            let key = key.clone();
            self.require(key.as_str(), AccessType::Write)?;
            let doc = serde_json::to_value(document)
                .map_err(|e| StorageError::Serialization(format!("document {key}: {e}")))?;
            if value::depth(&doc) > value::MAX_DEPTH {
                return Err(StorageError::InvalidArgument(format!(
                    "document {key} nests deeper than {}",
                    value::MAX_DEPTH
                )));
            }
            if let Some(s) = &options.schema_id {
                self.shared.schemas.validate(s, &doc)?;
            }
            let json = serde_json::to_vec(&doc)
                .map_err(|e| StorageError::Serialization(format!("document {key}: {e}")))?;
            check_value(&json)?;
            let t = self.shared.storage_type;
            let o = &self.shared.policies.prepare(
                t,
                key.as_str(),
                json.len() as u64,
                &options.storage,
                self.shared.encrypted,
            )?;
            check_store_options(o, self.shared.encrypted, t)?;
            let mut meta = new_metadata(&self.shared.db, &key, &json, o);
            let bytes = envelope::encode_with(&json, &meta, o.compression, o.cacheable);
            let charge = self.shared.policies.charge(
                t,
                key.as_str(),
                &keys::doc(collection, id),
                Some((json.len() as u64, meta.expires_at)),
            )?;
            let (_, ts) = self.shared.write(
                collection,
                id,
                Some((&doc, &bytes)),
                meta.expires_at,
                o.transaction,
                charge,
            )?;
            if let Some(ts) = ts {
                meta = meta.committed(ts);
            }
            self.shared.counters.stored.fetch_add(1, Ordering::Relaxed);
            Ok(DocumentMetadata {
                collection: collection.to_owned(),
                id: id.to_owned(),
                key,
                size: meta.size,
                stored_at: meta.stored_at,
                expires_at: meta.expires_at,
                checksum: meta.checksum,
                schema_id: options.schema_id.clone(),
                version: meta.version,
            })
        })?;
        let m = StorageMetadata {
            key: meta.key.clone(),
            size: meta.size,
            stored_at: meta.stored_at,
            expires_at: meta.expires_at,
            checksum: meta.checksum,
            version: meta.version,
        };
        let t = self.shared.storage_type;
        applied.fire("store", || crate::instrument::stored(&m.key, &m, t));
        Ok(meta)
    }

    /// The document `id` of `collection` as a `T`: now, as of
    /// `options.at`, or inside `options.transaction`. Needs Read on
    /// `collection/id`.
    pub fn retrieve_document<T: DeserializeOwned>(
        &self,
        collection: &str,
        id: &str,
        options: &RetrieveOptions,
    ) -> Result<T> {
        let key = StorageKey::new(format!("{collection}/{id}"));
        let read = |(_, len): &(T, u64)| *len;
        let (doc, _) = self.timed(
            "retrieve_document",
            Some(&key),
            options.transaction,
            read,
            || {
                keys::check_collection(collection)?;
                keys::check_id(id)?;
                self.require(key.as_str(), AccessType::Read)?;
                let entry = self.shared.read_doc(collection, id, &key, options)?;
                let doc = execute::decode_doc(collection, id, &entry.value)?;
                if self.shared.instrument.observed() {
                    let item = envelope::stored_item(&key, &entry)?;
                    let t = self.shared.storage_type;
                    self.shared
                        .instrument
                        .notify("retrieve", |o| o.on_retrieve(&key, &item, t));
                }
                let doc = serde_json::from_value(doc)
                    .map_err(|e| StorageError::Serialization(format!("document {key}: {e}")))?;
                Ok((doc, entry.value.len() as u64))
            },
        )?;
        Ok(doc)
    }

    /// Deletes document `id` and its index entries; true when it existed.
    /// Needs Delete on `collection/id`.
    pub fn delete_document(
        &self,
        collection: &str,
        id: &str,
        options: &DeleteOptions,
    ) -> Result<bool> {
        let key = StorageKey::new(format!("{collection}/{id}"));
        let tx = options.transaction;
        let applied = self.shared.instrument.expect_applied(tx);
        let existed = self.timed(
            "delete_document",
            Some(&key),
            tx,
            |_| 0,
            || {
                keys::check_collection(collection)?;
                keys::check_id(id)?;
                self.require(key.as_str(), AccessType::Delete)?;
                let charge = self.shared.policies.charge(
                    self.shared.storage_type,
                    key.as_str(),
                    &keys::doc(collection, id),
                    None,
                )?;
                let (existed, _) = self.shared.write(collection, id, None, None, tx, charge)?;
                if existed {
                    self.shared.counters.deleted.fetch_add(1, Ordering::Relaxed);
                }
                Ok(existed)
            },
        )?;
        if existed {
            let t = self.shared.storage_type;
            applied.fire("delete", || crate::instrument::deleted(&key, t));
        }
        Ok(existed)
    }
}
