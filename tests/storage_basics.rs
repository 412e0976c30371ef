//! The storage system's basics: the design's first two usage examples,
//! the builder and its configuration from TOML and JSON, the registry, and
//! every provider call with its options.

use std::sync::Arc;
use std::time::Duration;

use strata::engine::MemoryKeyProvider;
use strata::{
    DeleteOptions, EncryptionError, KeyPattern, KeyValueStorageProvider, ProviderContext,
    RegistryError, RetrieveOptions, StorageError, StorageKey, StorageOptions, StorageProvider,
    StorageSystem, StorageSystemConfig, StorageType,
};

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

#[test]
fn the_designs_basic_and_transactional_examples_run() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_key_provider(Arc::new(MemoryKeyProvider::new(1, [9; 32])))
        .build()
        .unwrap();
    // Basic operations.
    let resource_storage = storage.get_provider(StorageType::Resource).unwrap();
    let resource_key = key("resources/1");
    let data = serde_json::to_vec(&serde_json::json!({"id": 1, "name": "r"})).unwrap();
    let options = StorageOptions::new()
        .with_encryption(true)
        .with_compression(true)
        .with_ttl(None);
    let meta = resource_storage
        .store(&resource_key, &data, &options)
        .unwrap();
    assert_eq!(meta.size, data.len() as u64);
    assert_eq!(meta.expires_at, None);
    let item = resource_storage
        .retrieve(&resource_key, &RetrieveOptions::new())
        .unwrap();
    assert_eq!(item.value, data);
    assert_eq!(item.metadata, meta);

    // Transactional storage.
    let fact_storage = storage.get_provider(StorageType::Fact).unwrap();
    let tx = storage.begin_transaction().unwrap();
    let options = StorageOptions::new()
        .with_transaction(&tx)
        .with_encryption(true);
    resource_storage
        .store(&key("resources/2"), b"r2", &options)
        .unwrap();
    fact_storage
        .store(&key("facts/1"), b"f1", &options)
        .unwrap();
    assert!(!fact_storage.exists(&key("facts/1")).unwrap());
    // Inside the transaction its own writes are visible.
    let inside = RetrieveOptions::new().with_transaction(&tx);
    assert_eq!(
        fact_storage
            .retrieve(&key("facts/1"), &inside)
            .unwrap()
            .value,
        b"f1"
    );
    storage.commit_transaction(tx.id).unwrap();
    assert!(fact_storage.exists(&key("facts/1")).unwrap());
    assert!(resource_storage.exists(&key("resources/2")).unwrap());
}

#[test]
fn configuration_loads_from_toml_and_json() {
    let toml_text = r#"
        access_control = false
        [engine]
        memtable_size = 8388608
        sync_writes = false
        history_retention_secs = 60
        [cache]
        capacity_bytes = 1048576
        [transactions]
        isolation = "Snapshot"
        retention_secs = 10
        [providers.Fact]
        provider_type = "kv"
        cache_bytes = 4096
        [providers.Blob]
        provider_type = "blob"
        chunk_size = 65536
    "#;
    let from_toml: StorageSystemConfig = toml::from_str(toml_text).unwrap();
    assert_eq!(from_toml.engine.memtable_size, 8 << 20);
    assert!(!from_toml.engine.sync_writes);
    assert_eq!(from_toml.transactions.retention_secs, 10);
    assert_eq!(
        from_toml.provider_config(StorageType::Fact).cache_bytes,
        4096
    );
    assert_eq!(
        from_toml.provider_config(StorageType::Resource).cache_bytes,
        1 << 20
    );
    assert_eq!(
        from_toml.provider_config(StorageType::Blob).chunk_size,
        65536
    );
    let json = serde_json::to_string(&from_toml).unwrap();
    let from_json: StorageSystemConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(from_json, from_toml);
    let partial: StorageSystemConfig =
        serde_json::from_str(r#"{"engine": {"sync_writes": false}}"#).unwrap();
    assert_eq!(
        partial.engine.memtable_size,
        StorageSystemConfig::default().engine.memtable_size
    );

    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(from_toml)
        .build()
        .unwrap();
    let blob = storage.get_blob_storage().unwrap();
    let m = blob
        .put_stream(&key("b"), &vec![1u8; 200_000][..], &StorageOptions::new())
        .unwrap();
    assert_eq!((m.chunk_size, m.chunks), (65536, 4));
}

/// A provider that wraps the key-value one and tags values, standing for
/// any application-defined provider.
struct Tagging(KeyValueStorageProvider);

impl StorageProvider for Tagging {
    fn storage_type(&self) -> StorageType {
        self.0.storage_type()
    }
    fn store(
        &self,
        k: &StorageKey,
        v: &[u8],
        o: &StorageOptions,
    ) -> strata::Result<strata::StorageMetadata> {
        self.0.store(k, &[b"tag:", v].concat(), o)
    }
    fn retrieve(&self, k: &StorageKey, o: &RetrieveOptions) -> strata::Result<strata::StorageItem> {
        self.0.retrieve(k, o)
    }
    fn exists(&self, k: &StorageKey) -> strata::Result<bool> {
        self.0.exists(k)
    }
    fn delete(&self, k: &StorageKey, o: &DeleteOptions) -> strata::Result<()> {
        self.0.delete(k, o)
    }
    fn list_keys(&self, p: &KeyPattern) -> strata::Result<Vec<StorageKey>> {
        self.0.list_keys(p)
    }
    fn history(&self, k: &StorageKey) -> strata::Result<Vec<strata::VersionInfo>> {
        self.0.history(k)
    }
    fn begin_transaction(&self) -> strata::Result<strata::StorageTransaction> {
        self.0.begin_transaction()
    }
    fn commit_transaction(&self, t: &strata::StorageTransaction) -> strata::Result<()> {
        self.0.commit_transaction(t)
    }
    fn rollback_transaction(&self, t: &strata::StorageTransaction) -> strata::Result<()> {
        self.0.rollback_transaction(t)
    }
    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[test]
fn provider_factories_and_the_registry() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageSystemConfig::default();
    config.providers.insert(
        StorageType::Metadata,
        strata::ProviderConfig {
            provider_type: "tagging".into(),
            ..Default::default()
        },
    );
    // An unknown factory name is a configuration error.
    let err = StorageSystem::builder()
        .path(dir.path())
        .with_config(config.clone())
        .build()
        .unwrap_err();
    assert!(matches!(err, StorageError::Configuration(_)), "{err}");
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .register_provider_factory("tagging", |ctx: ProviderContext| {
            Ok(Arc::new(Tagging(KeyValueStorageProvider::new(ctx))) as Arc<dyn StorageProvider>)
        })
        .build()
        .unwrap();
    let meta = storage.get_provider(StorageType::Metadata).unwrap();
    meta.store(&key("m"), b"v", &StorageOptions::new()).unwrap();
    assert_eq!(
        meta.retrieve(&key("m"), &RetrieveOptions::new())
            .unwrap()
            .value,
        b"tag:v"
    );

    let registry = storage.registry();
    assert_eq!(registry.types(), StorageType::ALL.to_vec());
    let again = storage.get_provider(StorageType::Fact).unwrap();
    assert_eq!(
        registry.register_provider(again),
        Err(RegistryError::AlreadyExists(StorageType::Fact))
    );
    let empty = strata::StorageProviderRegistry::new();
    assert_eq!(
        empty.get_provider(StorageType::Fact).err(),
        Some(RegistryError::NotFound(StorageType::Fact))
    );
}

#[test]
fn store_retrieve_delete_list_history_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::open(dir.path()).unwrap();
    let p = storage.get_provider(StorageType::Operation).unwrap();
    let o = StorageOptions::new();
    for i in 0..30 {
        p.store(&key(&format!("ops/{i:02}")), format!("v{i}").as_bytes(), &o)
            .unwrap();
    }
    p.store(&key("other/x"), b"x", &o).unwrap();
    // Prefix, glob, limit and paging.
    let all = p.list_keys(&KeyPattern::prefix("ops/")).unwrap();
    assert_eq!(all.len(), 30);
    let globbed = p.list_keys(&KeyPattern::glob("ops/?5")).unwrap();
    assert_eq!(globbed, vec![key("ops/05"), key("ops/15"), key("ops/25")]);
    let mut pages = Vec::new();
    let mut pattern = KeyPattern::prefix("ops/").with_limit(7);
    loop {
        let page = p.list_keys(&pattern).unwrap();
        if page.is_empty() {
            break;
        }
        pattern = pattern.clone().start_after(page.last().unwrap().clone());
        pages.extend(page);
    }
    assert_eq!(pages, all);
    assert_eq!(p.list_keys(&KeyPattern::all()).unwrap().len(), 31);

    // Missing keys, deletes, existence.
    let missing = p.retrieve(&key("ops/99"), &RetrieveOptions::new());
    assert!(matches!(missing, Err(StorageError::NotFound(_))));
    p.delete(&key("ops/00"), &DeleteOptions::new()).unwrap();
    assert!(!p.exists(&key("ops/00")).unwrap());
    p.delete(&key("ops/00"), &DeleteOptions::new()).unwrap();

    // Versions and reads of the past.
    let k = key("ops/01");
    let t1 = p.history(&k).unwrap()[0].ts;
    p.store(&k, b"second", &o).unwrap();
    p.store(&k, b"third", &o.clone().with_compression(true))
        .unwrap();
    let h = p.history(&k).unwrap();
    let values: Vec<_> = h
        .iter()
        .map(|v| v.item.as_ref().unwrap().value.clone())
        .collect();
    assert_eq!(
        values,
        vec![b"third".to_vec(), b"second".to_vec(), b"v1".to_vec()]
    );
    let old = p.retrieve(&k, &RetrieveOptions::new().at(t1)).unwrap();
    assert_eq!(old.value, b"v1");

    // TTL.
    let short = key("ops/ttl");
    let m = p
        .store(
            &short,
            b"soon gone",
            &o.clone().with_ttl(Some(Duration::from_millis(50))),
        )
        .unwrap();
    assert!(m.expires_at.is_some());
    assert!(p.exists(&short).unwrap());
    std::thread::sleep(Duration::from_millis(80));
    assert!(!p.exists(&short).unwrap());
    assert!(matches!(
        p.retrieve(&short, &RetrieveOptions::new()),
        Err(StorageError::NotFound(_))
    ));

    // Compression is transparent and shrinks what is stored.
    let big = vec![b'z'; 100_000];
    p.store(&key("ops/big"), &big, &o.clone().with_compression(true))
        .unwrap();
    assert_eq!(
        p.retrieve(&key("ops/big"), &RetrieveOptions::new())
            .unwrap()
            .value,
        big
    );

    // Bad input changes nothing.
    assert!(matches!(
        p.store(&key(""), b"v", &o),
        Err(StorageError::InvalidArgument(_))
    ));
    assert!(matches!(
        p.store(&key("\u{0}strata/acl/x"), b"v", &o),
        Err(StorageError::InvalidArgument(_))
    ));
    assert!(matches!(
        p.store(&key("k"), b"v", &o.clone().with_ttl(Some(Duration::ZERO))),
        Err(StorageError::InvalidArgument(_))
    ));
    // Encryption demanded where none is configured: an error, not plaintext.
    let err = p
        .store(&key("secret"), b"v", &o.clone().with_encryption(true))
        .unwrap_err();
    assert!(matches!(
        err,
        StorageError::Encryption(EncryptionError::NotEncrypted(StorageType::Operation))
    ));
    assert!(!p.exists(&key("secret")).unwrap());
}

#[test]
fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = StorageSystem::open(dir.path()).unwrap();
        let p = storage.get_provider(StorageType::Registry).unwrap();
        p.store(&key("a"), b"1", &StorageOptions::new()).unwrap();
        storage.close().unwrap();
    }
    let storage = StorageSystem::open(dir.path()).unwrap();
    let p = storage.get_provider(StorageType::Registry).unwrap();
    assert_eq!(
        p.retrieve(&key("a"), &RetrieveOptions::new())
            .unwrap()
            .value,
        b"1"
    );
    // Each storage type has its own keyspace.
    let f = storage.get_provider(StorageType::Fact).unwrap();
    assert!(!f.exists(&key("a")).unwrap());
    let names = storage.db().keyspaces();
    for t in StorageType::ALL {
        assert!(names.contains(&t.name().to_owned()), "{names:?}");
    }
}

/// A misspelt field is an error naming it and where it is, in TOML and
/// JSON; a known one still loads.
#[test]
fn a_misspelt_configuration_field_is_an_error_naming_it() {
    let e = StorageSystemConfig::from_json(r#"{"engine":{"sync_write":false}}"#).unwrap_err();
    let m = e.to_string();
    assert!(m.contains("sync_write") && m.contains("engine"), "{m}");
    let e = StorageSystemConfig::from_toml("[engine]\nsync_write = false\n").unwrap_err();
    let m = e.to_string();
    assert!(m.contains("sync_write") && m.contains("engine"), "{m}");
    let e = StorageSystemConfig::from_toml("[providers.Fact]\ncache_byte = 1\n").unwrap_err();
    assert!(e.to_string().contains("cache_byte"), "{e}");
    assert!(
        serde_json::from_str::<StorageSystemConfig>(r#"{"engine":{"sync_write":false}}"#).is_err()
    );
    let ok = StorageSystemConfig::from_toml("[engine]\nsync_writes = false\n").unwrap();
    assert!(!ok.engine.sync_writes);
    let ok = StorageSystemConfig::from_json(r#"{"engine":{"sync_writes":false}}"#).unwrap();
    assert!(!ok.engine.sync_writes);
    // Text after the object is refused, not ignored.
    let e =
        StorageSystemConfig::from_json(r#"{"engine":{"sync_writes":false}} {"x":1}"#).unwrap_err();
    assert!(e.to_string().contains("trailing"), "{e}");
}

/// A second open of the same directory in this process says that, not
/// that another process holds it.
#[test]
fn a_second_open_in_the_same_process_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let first = StorageSystem::open(dir.path()).unwrap();
    let e = StorageSystem::open(dir.path()).unwrap_err();
    assert!(
        e.to_string().contains("already open in this process"),
        "{e}"
    );
    assert!(!e.to_string().contains("another process"), "{e}");
    first.close().unwrap();
}

/// The history of a TTL item marks the versions that have expired, without
/// their value (compaction may already have dropped it); reads at a time
/// before the expiry still see it.
#[test]
fn history_marks_expired_versions_without_their_value() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(strata::engine::ManualClock::new(strata::Timestamp::now()));
    let mut config = StorageSystemConfig::default();
    config.engine.sync_writes = false;
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .with_engine_options(strata::engine::Options {
            clock: clock.clone(),
            ..Default::default()
        })
        .build()
        .unwrap();
    let p = storage.get_provider(StorageType::Resource).unwrap();
    let k = key("session");
    let kept = p.store(&k, b"forever", &StorageOptions::new()).unwrap();
    let short = p
        .store(
            &k,
            b"briefly",
            &StorageOptions::new().with_ttl(Some(Duration::from_secs(10))),
        )
        .unwrap();
    let h = p.history(&k).unwrap();
    assert_eq!(h.len(), 2);
    assert!(!h[0].expired && h[0].item.as_ref().unwrap().value == b"briefly");
    clock.advance(Duration::from_secs(11));
    let h = p.history(&k).unwrap();
    assert_eq!(h.len(), 2);
    assert!(h[0].expired, "{h:?}");
    assert!(
        h[0].item.is_none(),
        "an expired version's value was returned"
    );
    assert_eq!(Some(h[0].ts), short.version);
    assert!(!h[1].expired && h[1].item.as_ref().unwrap().value == b"forever");
    assert_eq!(Some(h[1].ts), kept.version);
    // The present reads as absent; the time before the expiry still reads.
    assert!(p.get(&k, &RetrieveOptions::new()).unwrap().is_none());
    let then = p
        .retrieve(&k, &RetrieveOptions::new().at(short.version.unwrap()))
        .unwrap();
    assert_eq!(then.value, b"briefly");
}

/// A store returns its version's commit timestamp: `stored_at` is the
/// commit time and a read at it returns what was stored, for items,
/// documents and blobs alike.
#[test]
fn writes_return_the_commit_timestamp_a_read_at_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::open(dir.path()).unwrap();
    let p = storage.get_provider(StorageType::Fact).unwrap();
    let k = key("f");
    let first = p.store(&k, b"one", &StorageOptions::new()).unwrap();
    let second = p.store(&k, b"two", &StorageOptions::new()).unwrap();
    let v1 = first.version.unwrap();
    assert_eq!(first.stored_at, v1);
    assert!(second.version.unwrap() > v1);
    let at = |ts| p.retrieve(&k, &RetrieveOptions::new().at(ts)).unwrap();
    assert_eq!(at(v1).value, b"one");
    assert_eq!(at(v1).metadata.version, Some(v1));
    assert_eq!(at(second.version.unwrap()).value, b"two");
    let now = p.retrieve(&k, &RetrieveOptions::new()).unwrap();
    assert_eq!(now.metadata, second);
    // Documents.
    let docs = storage.get_document_storage(StorageType::Fact).unwrap();
    let d1 = docs
        .store_document("c", "1", &serde_json::json!({"n": 1}), &Default::default())
        .unwrap();
    docs.store_document("c", "1", &serde_json::json!({"n": 2}), &Default::default())
        .unwrap();
    let back: serde_json::Value = docs
        .retrieve_document("c", "1", &RetrieveOptions::new().at(d1.version.unwrap()))
        .unwrap();
    assert_eq!(back, serde_json::json!({"n": 1}));
    assert_eq!(d1.stored_at, d1.version.unwrap());
    // Blobs.
    let blobs = storage.get_blob_storage().unwrap();
    let b1 = blobs
        .put_stream(&key("b"), &b"first"[..], &StorageOptions::new())
        .unwrap();
    blobs
        .put_stream(&key("b"), &b"second"[..], &StorageOptions::new())
        .unwrap();
    let meta = blobs.open(&key("b")).unwrap().metadata().clone();
    assert!(meta.stored_at > b1.stored_at);
    let bp = storage.get_provider(StorageType::Blob).unwrap();
    let at_b1 = bp
        .retrieve(
            &key("b"),
            &RetrieveOptions::new().at(strata::Timestamp(b1.stored_at)),
        )
        .unwrap();
    assert_eq!(
        at_b1.metadata.version,
        Some(strata::Timestamp(b1.stored_at))
    );
    // Inside a transaction there is no version until the commit.
    let tx = storage.begin().unwrap();
    let m = p
        .store(&k, b"three", &StorageOptions::new().with_transaction(&tx))
        .unwrap();
    assert_eq!(m.version, None);
    let done = tx.commit().unwrap();
    let now = p.retrieve(&k, &RetrieveOptions::new()).unwrap();
    assert_eq!(now.metadata.version, done.commit_time);
}
