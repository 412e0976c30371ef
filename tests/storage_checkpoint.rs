//! `StorageSystem::checkpoint`: a copy of items, documents with their
//! indexes, blobs and policies at one commit, taken while writes go on,
//! that opens as a storage system of its own; encrypted types stay
//! encrypted.

use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use strata::engine::MemoryKeyProvider;
use strata::{
    DocumentQuery, EncryptionConfig, QueryOptions, RetrieveOptions, StorageKey, StorageOptions,
    StoragePolicy, StorageSystem, StorageSystemConfig, StorageType,
};

fn config() -> StorageSystemConfig {
    let mut c = StorageSystemConfig {
        encryption: EncryptionConfig {
            encrypted_types: Some(vec![StorageType::Resource, StorageType::Blob]),
        },
        ..Default::default()
    };
    c.engine.sync_writes = false;
    c
}

fn open(dir: &std::path::Path, keys: &Arc<MemoryKeyProvider>) -> StorageSystem {
    StorageSystem::builder()
        .path(dir)
        .with_config(config())
        .with_key_provider(keys.clone())
        .build()
        .unwrap()
}

#[test]
fn a_checkpoint_holds_items_documents_blobs_and_policies_and_opens() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = Arc::new(MemoryKeyProvider::new(1, [9; 32]));
    let storage = open(&tmp.path().join("db"), &keys);
    let resources = storage.get_provider(StorageType::Resource).unwrap();
    let docs = storage.get_document_storage(StorageType::Fact).unwrap();
    let blobs = storage.get_blob_storage().unwrap();
    storage
        .policies()
        .set_policy(StoragePolicy::new(StorageType::Fact).with_quota_bytes(1 << 30))
        .unwrap();
    docs.create_index("people", "age").unwrap();
    for i in 0..300 {
        resources
            .store(
                &StorageKey::new(format!("r/{i}")),
                format!("SECRET-RESOURCE-{i}").as_bytes(),
                &StorageOptions::new(),
            )
            .unwrap();
        docs.store_document(
            "people",
            &format!("p{i}"),
            &json!({"age": i % 50, "name": format!("n{i}")}),
            &Default::default(),
        )
        .unwrap();
    }
    let blob: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    blobs
        .put_stream(&StorageKey::new("big"), &blob[..], &StorageOptions::new())
        .unwrap();
    storage.db().flush().unwrap();

    // Writers keep going while the checkpoint is taken.
    let stop = Arc::new(AtomicBool::new(false));
    let w = {
        let (storage, stop) = (storage.clone(), stop.clone());
        std::thread::spawn(move || {
            let p = storage.get_provider(StorageType::Resource).unwrap();
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                p.store(
                    &StorageKey::new(format!("late/{n}")),
                    b"x",
                    &StorageOptions::new(),
                )
                .unwrap();
                n += 1;
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let dir = tmp.path().join("cp");
    let info = storage.checkpoint(&dir).unwrap();
    stop.store(true, Ordering::Relaxed);
    w.join().unwrap();
    assert!(info.linked > 0, "{info:?}");

    // No plaintext of an encrypted type in the copy's files.
    for e in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(e.unwrap().path()).unwrap();
        assert!(!bytes.windows(15).any(|w| w == b"SECRET-RESOURCE"));
    }
    let copy = open(&dir, &keys);
    let r = copy.get_provider(StorageType::Resource).unwrap();
    for i in 0..300 {
        let item = r
            .retrieve(&StorageKey::new(format!("r/{i}")), &RetrieveOptions::new())
            .unwrap();
        assert_eq!(item.value, format!("SECRET-RESOURCE-{i}").as_bytes());
    }
    // Exactly the writes at or below the checkpoint's timestamp.
    let source = storage.get_provider(StorageType::Resource).unwrap();
    let at = RetrieveOptions::new().at(info.ts);
    for n in 0.. {
        let k = StorageKey::new(format!("late/{n}"));
        let then = source.get(&k, &at).unwrap().is_some();
        assert_eq!(
            r.get(&k, &RetrieveOptions::new()).unwrap().is_some(),
            then,
            "{k:?}"
        );
        if !then && source.get(&k, &RetrieveOptions::new()).unwrap().is_none() {
            break;
        }
    }
    let d = copy.get_document_storage(StorageType::Fact).unwrap();
    assert_eq!(d.indexes("people").unwrap().len(), 1);
    let q = DocumentQuery::new().with_field_equals("age", 7);
    let plan = d.explain("people", &q, &QueryOptions::new()).unwrap();
    assert!(format!("{plan:?}").contains("age"), "{plan:?}");
    let found: Vec<Value> = d
        .query_documents("people", &q, &QueryOptions::new())
        .unwrap();
    assert_eq!(found.len(), 6);
    let mut back = Vec::new();
    copy.get_blob_storage()
        .unwrap()
        .open(&StorageKey::new("big"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();
    assert!(back == blob);
    assert_eq!(copy.policies().policies().len(), 1);
    assert_eq!(
        copy.policies().usage(StorageType::Fact, ""),
        storage.policies().usage(StorageType::Fact, "")
    );
}
