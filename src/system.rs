//! The storage system: one engine database, a provider per storage type,
//! and the services they share (transactions, encryption, access control,
//! metrics, observers); and its builder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Duration;

use strata_engine::{Db, EncryptionKeyProvider, Options};

use crate::access::{
    AccessControlledProvider, AccessPolicy, AccessPolicyProvider, Caller, Identity,
    StorageAccessController, StoredPolicyProvider,
};
use crate::blob::BlobStorageProvider;
use crate::config::StorageSystemConfig;
use crate::document::DocumentStorageProvider;
use crate::encryption::StorageEncryptionManager;
use crate::error::{RegistryError, Result, StorageError};
use crate::instrument::{Instrument, Instrumented};
use crate::kv::KeyValueStorageProvider;
use crate::metrics::{MetricsRegistry, StorageMetricsCollector};
use crate::observer::{Observers, StorageObserver};
use crate::policy::{Layout, StoragePolicyManager};
use crate::provider::{ProviderContext, ProviderFactory, StorageProvider};
use crate::registry::StorageProviderRegistry;
use crate::transaction::{
    StorageTransaction, StorageTransactionManager, TransactionHandle, TransactionId,
};
use crate::types::StorageType;

struct Inner {
    db: Db,
    config: StorageSystemConfig,
    registry: StorageProviderRegistry,
    blob: Option<Arc<BlobStorageProvider>>,
    transactions: Arc<StorageTransactionManager>,
    metrics: Arc<StorageMetricsCollector>,
    encryption: Arc<StorageEncryptionManager>,
    access: Option<Arc<StorageAccessController>>,
    instrument: Arc<Instrument>,
    policies: Arc<StoragePolicyManager>,
    /// Document providers, made on first use (one per storage type, so
    /// their counters and schemas are shared).
    documents: Mutex<HashMap<StorageType, DocumentStorageProvider>>,
}

/// The storage system. Cheap to clone; the database closes when the last
/// clone (and the last provider handle) is dropped, or at [`close`](Self::close).
#[derive(Clone)]
pub struct StorageSystem {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StorageSystem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSystem")
            .field("path", &self.inner.db.path())
            .field("registry", &self.inner.registry)
            .finish_non_exhaustive()
    }
}

impl StorageSystem {
    /// Opens (creating if needed) the storage system in `dir` with the
    /// default configuration.
    pub fn open(dir: impl AsRef<Path>) -> Result<StorageSystem> {
        Self::builder().path(dir).build()
    }

    /// A builder, for configuration, keys, metrics, observers, policies
    /// and provider factories.
    pub fn builder() -> StorageSystemBuilder {
        StorageSystemBuilder::default()
    }

    /// The provider of `t`.
    pub fn get_provider(&self, t: StorageType) -> Result<Arc<dyn StorageProvider>> {
        Ok(self.inner.registry.get_provider(t)?)
    }

    /// The blob provider, with its streaming calls.
    pub fn get_blob_storage(&self) -> Result<Arc<BlobStorageProvider>> {
        self.inner.blob.clone().ok_or_else(|| {
            match self.inner.registry.get_provider(StorageType::Blob) {
                Ok(_) => RegistryError::WrongKind(StorageType::Blob, "blob").into(),
                Err(e) => e.into(),
            }
        })
    }

    /// The document provider of `t`: collections of JSON documents in
    /// `t`'s keyspace, beside (and invisible to) its key-value items. Not
    /// available for [`StorageType::Blob`].
    pub fn get_document_storage(&self, t: StorageType) -> Result<Arc<DocumentStorageProvider>> {
        if t == StorageType::Blob {
            return Err(RegistryError::WrongKind(t, "document").into());
        }
        let mut docs = self.inner.documents.lock();
        if let Some(d) = docs.get(&t) {
            return Ok(Arc::new(d.clone()));
        }
        let ctx = ProviderContext {
            db: self.inner.db.clone(),
            keyspace: self.inner.db.keyspace(t.name())?,
            storage_type: t,
            transactions: self.inner.transactions.clone(),
            encrypted: self.inner.encryption.is_encrypted(t),
            sync: self.inner.config.engine.sync_writes,
            config: self.inner.config.provider_config(t),
            policies: self.inner.policies.clone(),
        };
        let d = DocumentStorageProvider::new(ctx, self.inner.instrument.clone())?;
        docs.insert(t, d.clone());
        Ok(Arc::new(d))
    }

    /// The provider registry.
    pub fn registry(&self) -> &StorageProviderRegistry {
        &self.inner.registry
    }

    /// Starts a transaction spanning every provider.
    pub fn begin_transaction(&self) -> Result<StorageTransaction> {
        self.inner.transactions.begin()
    }

    /// Commits transaction `id`: all its operations apply atomically.
    pub fn commit_transaction(&self, id: TransactionId) -> Result<StorageTransaction> {
        self.inner.transactions.commit(id)
    }

    /// Rolls transaction `id` back.
    pub fn rollback_transaction(&self, id: TransactionId) -> Result<StorageTransaction> {
        self.inner.transactions.rollback(id)
    }

    /// Transaction `id` as it is now; finished ones are remembered for the
    /// configured retention.
    pub fn transaction_status(&self, id: TransactionId) -> Result<StorageTransaction> {
        self.inner.transactions.status(id)
    }

    /// Starts a transaction owned by the returned handle, which rolls it
    /// back when dropped uncommitted.
    pub fn begin(&self) -> Result<TransactionHandle> {
        self.inner.transactions.begin_owned()
    }

    /// Runs `f` in a transaction and commits it; on a conflict, pauses
    /// (exponentially longer, with jitter) and runs it again in a new
    /// transaction, up to `transactions.max_attempts` times. An error from
    /// `f`, or a panic, rolls back; the error is returned.
    pub fn transaction<T>(&self, mut f: impl FnMut(&StorageTransaction) -> Result<T>) -> Result<T> {
        self.inner.transactions.txn_options().retry(|_| {
            let tx = self.begin()?;
            let v = f(&tx)?;
            tx.commit()?;
            Ok(v)
        })
    }

    /// The storage policies: set, remove and list them, see what applies
    /// to a key, and the quotas' usage.
    pub fn policies(&self) -> &Arc<StoragePolicyManager> {
        &self.inner.policies
    }

    /// The transaction manager.
    pub fn transactions(&self) -> &Arc<StorageTransactionManager> {
        &self.inner.transactions
    }

    /// Providers that check every call of `identity` against the access
    /// policies (every call is allowed when access control is off).
    pub fn as_identity(&self, identity: &Identity) -> IdentityStorage {
        IdentityStorage {
            system: self.clone(),
            identity: identity.clone(),
        }
    }

    /// The access controller, when access control is on: add and remove
    /// policies through it.
    pub fn access_control(&self) -> Option<&Arc<StorageAccessController>> {
        self.inner.access.as_ref()
    }

    /// The metrics.
    pub fn metrics(&self) -> &Arc<StorageMetricsCollector> {
        &self.inner.metrics
    }

    /// The encryption manager.
    pub fn encryption(&self) -> &Arc<StorageEncryptionManager> {
        &self.inner.encryption
    }

    /// The configuration in effect.
    pub fn config(&self) -> &StorageSystemConfig {
        &self.inner.config
    }

    /// The engine database underneath.
    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// Makes a consistent, openable copy of the whole storage system in
    /// `dir` (which must not exist) as of one commit, while writes go on:
    /// every type's items, documents with their indexes, blobs and
    /// policies, since all of them live in the engine (see the engine's
    /// `Db::checkpoint`). Open the copy with the same configuration (and
    /// key provider, when encrypted). A blob or transaction still being
    /// written is not in it; an unfinished blob's chunks are removed when
    /// the copy opens.
    pub fn checkpoint(&self, dir: impl AsRef<Path>) -> Result<strata_engine::CheckpointInfo> {
        Ok(self.inner.db.checkpoint(dir)?)
    }

    /// Closes the database: later calls fail.
    pub fn close(&self) -> Result<()> {
        Ok(self.inner.db.close()?)
    }
}

/// The storage system seen through one identity.
#[derive(Debug, Clone)]
pub struct IdentityStorage {
    system: StorageSystem,
    identity: Identity,
}

impl IdentityStorage {
    /// The provider of `t`, checking every call.
    pub fn get_provider(&self, t: StorageType) -> Result<Arc<dyn StorageProvider>> {
        let inner = self.system.get_provider(t)?;
        Ok(match &self.system.inner.access {
            Some(controller) => Arc::new(AccessControlledProvider::new(
                inner,
                self.identity.clone(),
                controller.clone(),
            )),
            None => inner,
        })
    }

    /// The blob provider with its streaming calls, checking every call of
    /// the identity like any provider: Write to `put_stream`, Read to
    /// `open` and `metadata`, Delete to `delete_blob`, List to list.
    pub fn get_blob_storage(&self) -> Result<Arc<BlobStorageProvider>> {
        let inner = self.system.get_blob_storage()?;
        Ok(match &self.system.inner.access {
            Some(controller) => {
                Arc::new(inner.with_caller(Caller::new(self.identity.clone(), controller.clone())))
            }
            None => inner,
        })
    }

    /// The document provider of `t`, checking every call; a query leaves
    /// out the documents the identity may not read.
    pub fn get_document_storage(&self, t: StorageType) -> Result<Arc<DocumentStorageProvider>> {
        let inner = self.system.get_document_storage(t)?;
        Ok(match &self.system.inner.access {
            Some(controller) => {
                Arc::new(inner.with_identity(self.identity.clone(), controller.clone()))
            }
            None => inner,
        })
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }
}

/// Builds a [`StorageSystem`]. Cloned, it builds the same system again
/// (a replicated node does, over the database a snapshot brought).
#[derive(Default, Clone)]
pub struct StorageSystemBuilder {
    path: Option<PathBuf>,
    config: StorageSystemConfig,
    key_provider: Option<Arc<dyn EncryptionKeyProvider>>,
    metrics_registry: Option<Arc<MetricsRegistry>>,
    observers: Vec<Arc<dyn StorageObserver>>,
    policies: Option<Vec<AccessPolicy>>,
    policy_provider: Option<Arc<dyn AccessPolicyProvider>>,
    factories: HashMap<String, Arc<dyn ProviderFactory>>,
    engine_options: Option<Options>,
}

impl std::fmt::Debug for StorageSystemBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageSystemBuilder")
            .field("path", &self.path)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl StorageSystemBuilder {
    /// A builder with the default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// The database directory.
    pub fn path(mut self, dir: impl AsRef<Path>) -> Self {
        self.path = Some(dir.as_ref().to_path_buf());
        self
    }

    /// The configuration.
    pub fn with_config(mut self, config: StorageSystemConfig) -> Self {
        self.config = config;
        self
    }

    /// The key provider: storage types are encrypted at rest with its keys
    /// (every type, unless the configuration names some).
    pub fn with_key_provider(mut self, provider: Arc<dyn EncryptionKeyProvider>) -> Self {
        self.key_provider = Some(provider);
        self
    }

    /// A metrics registry to record into (shared with the application).
    pub fn with_metrics_registry(mut self, registry: Arc<MetricsRegistry>) -> Self {
        self.metrics_registry = Some(registry);
        self
    }

    /// An observer of storage events.
    pub fn with_observer(mut self, observer: Arc<dyn StorageObserver>) -> Self {
        self.observers.push(observer);
        self
    }

    /// Turns access control on, storing these policies (replacing stored
    /// ones with the same ids).
    pub fn with_access_policies(mut self, policies: Vec<AccessPolicy>) -> Self {
        self.policies = Some(policies);
        self
    }

    /// Turns access control on with policies from another source than the
    /// Registry keyspace.
    pub fn with_policy_provider(mut self, provider: Arc<dyn AccessPolicyProvider>) -> Self {
        self.policy_provider = Some(provider);
        self
    }

    /// A provider factory, for configurations naming `name` as a
    /// provider type.
    pub fn register_provider_factory(
        mut self,
        name: impl Into<String>,
        factory: impl ProviderFactory + 'static,
    ) -> Self {
        self.factories.insert(name.into(), Arc::new(factory));
        self
    }

    /// Engine options to start from (file system, clock, level shapes...);
    /// the configuration's engine settings and the key provider still
    /// apply on top.
    pub fn with_engine_options(mut self, options: Options) -> Self {
        self.engine_options = Some(options);
        self
    }

    /// The engine options the database is opened with: the ones given,
    /// with the configuration's engine settings and the key provider on
    /// top.
    pub fn engine_options(&self) -> Options {
        let config = &self.config;
        let encryption =
            StorageEncryptionManager::new(self.key_provider.clone(), &config.encryption);
        let mut opts = self.engine_options.clone().unwrap_or_default();
        opts.memtable_size = config.engine.memtable_size;
        opts.block_cache_size = config.engine.block_cache_size;
        // Everything is kept until the policies are read, which may ask for
        // a longer window than the configuration's: a window's start never
        // moves back, so nothing may be collected before it is set.
        opts.history_retention = Duration::MAX;
        opts.sst_reads = config.engine.sst_reads;
        opts.blob_threshold =
            (config.engine.blob_threshold > 0).then_some(config.engine.blob_threshold);
        opts.key_provider = self.key_provider.clone();
        opts.plaintext_keyspaces = encryption.plaintext_keyspaces();
        opts
    }

    /// Opens the database and builds every provider.
    pub fn build(self) -> Result<StorageSystem> {
        let dir = self
            .path
            .clone()
            .or_else(|| self.config.path.clone())
            .ok_or_else(|| StorageError::Configuration("no path given".into()))?;
        let db = Db::open(&dir, self.engine_options())?;
        self.build_on(db)
    }

    /// Builds every provider over `db`, a database opened with (at least)
    /// [`engine_options`](Self::engine_options): a replica's data database,
    /// say, whose writes go through its log.
    pub fn build_on(self, db: Db) -> Result<StorageSystem> {
        let config = self.config;
        let encryption = Arc::new(StorageEncryptionManager::new(
            self.key_provider.clone(),
            &config.encryption,
        ));
        let mut keyspaces = std::collections::BTreeMap::new();
        for t in StorageType::ALL {
            let layout = match config.provider_config(t).provider_type.as_str() {
                "kv" => Layout::Items,
                "blob" => Layout::Blobs,
                _ => Layout::Custom,
            };
            keyspaces.insert(t, (db.keyspace(t.name())?, layout));
        }
        let policies = Arc::new(StoragePolicyManager::open(
            db.clone(),
            db.keyspace(StorageType::Registry.name())?,
            keyspaces,
            Duration::from_secs(config.engine.history_retention_secs),
            config.engine.sync_writes,
            Duration::from_secs(config.transactions.index_build_wait_secs),
            &config.policies,
        )?);
        let metrics = Arc::new(StorageMetricsCollector::new(
            self.metrics_registry.unwrap_or_default(),
            db.clone(),
        ));
        metrics.set_policies(policies.clone());
        let observers = Arc::new(Observers::new(self.observers, metrics.clone()));
        let transactions = Arc::new(StorageTransactionManager::new(
            db.clone(),
            config.transactions.clone(),
            config.engine.sync_writes,
            observers.clone(),
        ));
        let instrument = Arc::new(Instrument::new(
            metrics.clone(),
            (*observers).clone(),
            transactions.clone(),
        ));
        let registry = StorageProviderRegistry::new();
        let mut blob = None;
        for t in StorageType::ALL {
            let pc = config.provider_config(t);
            let ctx = ProviderContext {
                db: db.clone(),
                keyspace: db.keyspace(t.name())?,
                storage_type: t,
                transactions: transactions.clone(),
                encrypted: encryption.is_encrypted(t),
                sync: config.engine.sync_writes,
                config: pc.clone(),
                policies: policies.clone(),
            };
            let provider: Arc<dyn StorageProvider> = match pc.provider_type.as_str() {
                "kv" => Arc::new(KeyValueStorageProvider::new(ctx)),
                "blob" => {
                    // Registered bare (the registry's wrapper measures its
                    // calls); handed out with its own instrumentation for
                    // the streaming calls.
                    let b = BlobStorageProvider::new(ctx)?;
                    b.report_cleanup_failures_to(
                        metrics
                            .registry()
                            .counter("strata_blob_cleanup_failures_total", &[("type", t.name())]),
                    );
                    if t == StorageType::Blob {
                        blob = Some(Arc::new(b.with_instrument(instrument.clone())));
                    }
                    Arc::new(b)
                }
                name => match self.factories.get(name) {
                    Some(f) => f.create_provider(ctx)?,
                    None => {
                        return Err(StorageError::Configuration(format!(
                            "no provider factory named {name:?} (for {t})"
                        )))
                    }
                },
            };
            if provider.storage_type() != t {
                return Err(StorageError::Configuration(format!(
                    "the provider built for {t} serves {}",
                    provider.storage_type()
                )));
            }
            registry
                .register_provider(Arc::new(Instrumented::new(provider, instrument.clone())))?;
        }
        let access = if let Some(p) = self.policy_provider {
            Some(Arc::new(StorageAccessController::new(p)))
        } else if config.access_control || self.policies.is_some() {
            let stored =
                StoredPolicyProvider::load(db.clone(), db.keyspace(StorageType::Registry.name())?)?;
            let have = stored.policies()?;
            for p in self.policies.unwrap_or_default() {
                if !have.contains(&p) {
                    crate::policy::seed(stored.put_policy(p))?;
                }
            }
            Some(Arc::new(StorageAccessController::new(Arc::new(stored))))
        } else {
            None
        };
        Ok(StorageSystem {
            inner: Arc::new(Inner {
                db,
                config,
                registry,
                blob,
                transactions,
                metrics,
                encryption,
                access,
                instrument,
                policies,
                documents: Mutex::new(HashMap::new()),
            }),
        })
    }
}
