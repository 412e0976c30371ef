//! Transactions across providers, and the key-value read cache that
//! commits and rollbacks must keep honest.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use strata::{
    DeleteOptions, RetrieveOptions, StorageError, StorageKey, StorageOptions, StorageSystem,
    StorageSystemConfig, StorageType, TransactionError, TransactionStatus,
};

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

fn open_with_cache(dir: &std::path::Path, retention_secs: u64) -> StorageSystem {
    let mut config = StorageSystemConfig {
        cache: Some(strata::CacheConfig {
            capacity_bytes: 1 << 20,
        }),
        ..Default::default()
    };
    config.transactions.retention_secs = retention_secs;
    config.engine.sync_writes = false;
    StorageSystem::builder()
        .path(dir)
        .with_config(config)
        .build()
        .unwrap()
}

#[test]
fn a_transaction_over_two_providers_commits_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 300);
    let resources = storage.get_provider(StorageType::Resource).unwrap();
    let facts = storage.get_provider(StorageType::Fact).unwrap();

    let tx = storage.begin_transaction().unwrap();
    assert_eq!(tx.status, TransactionStatus::Active);
    let o = StorageOptions::new().with_transaction(&tx);
    resources.store(&key("r"), b"r1", &o).unwrap();
    facts.store(&key("f"), b"f1", &o).unwrap();
    facts
        .delete(&key("gone"), &DeleteOptions::new().with_transaction(&tx))
        .unwrap();
    assert!(!resources.exists(&key("r")).unwrap());
    let committed = storage.commit_transaction(tx.id).unwrap();
    assert_eq!(committed.status, TransactionStatus::Committed);
    let ts = committed.commit_time.unwrap();
    // Both writes carry the one commit timestamp.
    assert_eq!(resources.history(&key("r")).unwrap()[0].ts, ts);
    assert_eq!(facts.history(&key("f")).unwrap()[0].ts, ts);

    // Rolled back: nothing applied.
    let tx = storage.begin_transaction().unwrap();
    let o = StorageOptions::new().with_transaction(&tx);
    resources.store(&key("r"), b"r2", &o).unwrap();
    facts.store(&key("f2"), b"never", &o).unwrap();
    let rolled = storage.rollback_transaction(tx.id).unwrap();
    assert_eq!(rolled.status, TransactionStatus::RolledBack);
    assert_eq!(
        resources
            .retrieve(&key("r"), &RetrieveOptions::new())
            .unwrap()
            .value,
        b"r1"
    );
    assert!(!facts.exists(&key("f2")).unwrap());

    // Finished and unknown ids.
    let again = storage.commit_transaction(tx.id).unwrap_err();
    assert!(
        matches!(
            again,
            StorageError::Transaction(TransactionError::InvalidStatus { .. })
        ),
        "{again}"
    );
    let writing = resources.store(&key("r"), b"x", &o).unwrap_err();
    assert!(matches!(
        writing,
        StorageError::Transaction(TransactionError::InvalidStatus { .. })
    ));
    let unknown = strata::TransactionId(12345);
    assert!(matches!(
        storage.commit_transaction(unknown),
        Err(StorageError::Transaction(TransactionError::NotFound(_)))
    ));
    assert_eq!(
        storage.transaction_status(committed.id).unwrap().status,
        TransactionStatus::Committed
    );
}

#[test]
fn finished_transactions_are_forgotten_after_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 0);
    let mut ids = Vec::new();
    for _ in 0..100 {
        let tx = storage.begin_transaction().unwrap();
        storage.commit_transaction(tx.id).unwrap();
        ids.push(tx.id);
    }
    // With no retention, memory holds none of them.
    assert_eq!(storage.transactions().remembered(), 0);
    assert!(matches!(
        storage.transaction_status(ids[0]),
        Err(StorageError::Transaction(TransactionError::NotFound(_)))
    ));
    assert_eq!(storage.transactions().active_count(), 0);
}

#[test]
fn conflicting_transactions_are_retried_by_the_helper() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 300);
    let p = storage.get_provider(StorageType::Metadata).unwrap();
    p.store(&key("counter"), b"0", &StorageOptions::new())
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let storage = storage.clone();
            std::thread::spawn(move || {
                let p = storage.get_provider(StorageType::Metadata).unwrap();
                for _ in 0..25 {
                    storage
                        .transaction(|tx| {
                            let v = p.retrieve(
                                &key("counter"),
                                &RetrieveOptions::new().with_transaction(tx),
                            )?;
                            let n: u64 = String::from_utf8_lossy(&v.value).parse().unwrap();
                            p.store(
                                &key("counter"),
                                (n + 1).to_string().as_bytes(),
                                &StorageOptions::new().with_transaction(tx),
                            )?;
                            Ok(())
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let v = p
        .retrieve(&key("counter"), &RetrieveOptions::new())
        .unwrap();
    assert_eq!(v.value, b"100");
    // A manual commit that conflicts says so and rolls back.
    let a = storage.begin_transaction().unwrap();
    let b = storage.begin_transaction().unwrap();
    for tx in [&a, &b] {
        p.retrieve(
            &key("counter"),
            &RetrieveOptions::new().with_transaction(tx),
        )
        .unwrap();
        p.store(
            &key("counter"),
            b"x",
            &StorageOptions::new().with_transaction(tx),
        )
        .unwrap();
    }
    storage.commit_transaction(a.id).unwrap();
    let err = storage.commit_transaction(b.id).unwrap_err();
    assert!(err.is_conflict(), "{err}");
    assert_eq!(
        storage.transaction_status(b.id).unwrap().status,
        TransactionStatus::RolledBack
    );
}

#[test]
fn the_cache_serves_hits_and_honours_ttls() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 300);
    let p = storage.get_provider(StorageType::Resource).unwrap();
    p.store(&key("a"), b"1", &StorageOptions::new()).unwrap();
    assert!(
        !p.retrieve(&key("a"), &RetrieveOptions::new())
            .unwrap()
            .from_cache
    );
    let hit = p.retrieve(&key("a"), &RetrieveOptions::new()).unwrap();
    assert!(hit.from_cache);
    assert_eq!(hit.value, b"1");
    assert!(
        !p.retrieve(&key("a"), &RetrieveOptions::new().bypass_cache())
            .unwrap()
            .from_cache
    );
    // Not cacheable: never served from the cache.
    p.store(
        &key("nc"),
        b"v",
        &StorageOptions::new().with_cacheable(false),
    )
    .unwrap();
    p.retrieve(&key("nc"), &RetrieveOptions::new()).unwrap();
    assert!(
        !p.retrieve(&key("nc"), &RetrieveOptions::new())
            .unwrap()
            .from_cache
    );
    // A cached item past its TTL is not served.
    p.store(
        &key("t"),
        b"v",
        &StorageOptions::new().with_ttl(Some(Duration::from_millis(40))),
    )
    .unwrap();
    p.retrieve(&key("t"), &RetrieveOptions::new()).unwrap();
    assert!(
        p.retrieve(&key("t"), &RetrieveOptions::new())
            .unwrap()
            .from_cache
    );
    std::thread::sleep(Duration::from_millis(60));
    assert!(matches!(
        p.retrieve(&key("t"), &RetrieveOptions::new()),
        Err(StorageError::NotFound(_))
    ));
}

#[derive(Debug, Clone)]
enum Op {
    Store(u8, u8),
    Delete(u8),
    Read(u8),
    Tx(Vec<(u8, Option<u8>)>, bool),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..8, any::<u8>()).prop_map(|(k, v)| Op::Store(k, v)),
        (0u8..8).prop_map(Op::Delete),
        (0u8..8).prop_map(Op::Read),
        (0u8..8).prop_map(Op::Read),
        (
            proptest::collection::vec((0u8..8, proptest::option::of(any::<u8>())), 1..4),
            any::<bool>()
        )
            .prop_map(|(w, c)| Op::Tx(w, c)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The cache never serves a value a committed write replaced, nor one a
    /// rolled-back transaction wrote: every read equals the model.
    #[test]
    fn cached_reads_always_equal_the_model(ops in proptest::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let storage = open_with_cache(dir.path(), 300);
        let p = storage.get_provider(StorageType::Resource).unwrap();
        let mut model = std::collections::BTreeMap::new();
        let k = |i: u8| key(&format!("k{i}"));
        for op in ops {
            match op {
                Op::Store(i, v) => {
                    p.store(&k(i), &[v], &StorageOptions::new()).unwrap();
                    model.insert(i, v);
                }
                Op::Delete(i) => {
                    p.delete(&k(i), &DeleteOptions::new()).unwrap();
                    model.remove(&i);
                }
                Op::Read(i) => {
                    let got = p.retrieve(&k(i), &RetrieveOptions::new()).ok().map(|it| it.value[0]);
                    prop_assert_eq!(got, model.get(&i).copied());
                }
                Op::Tx(writes, commit) => {
                    let tx = storage.begin_transaction().unwrap();
                    for (i, v) in &writes {
                        match v {
                            Some(v) => { p.store(&k(*i), &[*v], &StorageOptions::new().with_transaction(&tx)).unwrap(); }
                            None => { p.delete(&k(*i), &DeleteOptions::new().with_transaction(&tx)).unwrap(); }
                        }
                        // Warm the cache with the committed value meanwhile.
                        let _ = p.retrieve(&k(*i), &RetrieveOptions::new());
                    }
                    if commit {
                        storage.commit_transaction(tx.id).unwrap();
                        for (i, v) in writes {
                            match v { Some(v) => { model.insert(i, v); } None => { model.remove(&i); } }
                        }
                    } else {
                        storage.rollback_transaction(tx.id).unwrap();
                    }
                }
            }
        }
        for i in 0..8 {
            let got = p.retrieve(&k(i), &RetrieveOptions::new()).ok().map(|it| it.value[0]);
            prop_assert_eq!(got, model.get(&i).copied());
        }
    }
}

#[test]
fn concurrent_readers_never_see_a_replaced_value_after_the_write_returns() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 300);
    let p = storage.get_provider(StorageType::Resource).unwrap();
    p.store(&key("hot"), &0u64.to_le_bytes(), &StorageOptions::new())
        .unwrap();
    let latest = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (p, latest, stop) = (p.clone(), latest.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Acquire) {
                    // Whatever was acknowledged before this read began must
                    // be visible: the value is never older.
                    let floor = latest.load(std::sync::atomic::Ordering::Acquire);
                    let v = p.retrieve(&key("hot"), &RetrieveOptions::new()).unwrap();
                    let n = u64::from_le_bytes(v.value[..8].try_into().unwrap());
                    assert!(n >= floor, "read {n} after {floor} was acknowledged");
                }
            })
        })
        .collect();
    for n in 1..=2000u64 {
        p.store(&key("hot"), &n.to_le_bytes(), &StorageOptions::new())
            .unwrap();
        latest.store(n, std::sync::atomic::Ordering::Release);
    }
    stop.store(true, std::sync::atomic::Ordering::Release);
    for r in readers {
        r.join().unwrap();
    }
}

#[test]
fn abandoned_and_panicking_transactions_are_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = StorageSystemConfig::default();
    config.transactions.max_active_secs = 0;
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .build()
        .unwrap();
    let p = storage.get_provider(StorageType::Fact).unwrap();
    let abandoned = storage.begin_transaction().unwrap();
    p.store(
        &key("a"),
        b"v",
        &StorageOptions::new().with_transaction(&abandoned),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(5));
    // The next begin rolls the abandoned one back.
    let next = storage.begin_transaction().unwrap();
    assert_eq!(
        storage.transaction_status(abandoned.id).unwrap().status,
        TransactionStatus::RolledBack
    );
    storage.rollback_transaction(next.id).unwrap();
    assert!(!p.exists(&key("a")).unwrap());

    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        storage
            .transaction(|tx| {
                p.store(&key("b"), b"v", &StorageOptions::new().with_transaction(tx))?;
                panic!("a bug in the caller");
                #[allow(unreachable_code)]
                Ok(())
            })
            .unwrap();
    }));
    assert!(outcome.is_err());
    assert_eq!(storage.transactions().active_count(), 0);
    assert!(!p.exists(&key("b")).unwrap());
}

#[test]
fn transaction_ids_are_not_sequential() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 300);
    let a = storage.begin_transaction().unwrap().id.0;
    let b = storage.begin_transaction().unwrap().id.0;
    assert!(a.abs_diff(b) > 1_000_000, "{a} {b}");
}

/// Eight threads incrementing one counter through `transaction`, with the
/// default configuration (synced, serializable): none gives up, none is
/// lost.
#[test]
fn contended_increments_all_succeed_with_the_default_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let storage = StorageSystem::open(dir.path()).unwrap();
    let counter = key("counter");
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let storage = storage.clone();
            let counter = counter.clone();
            std::thread::spawn(move || {
                let p = storage.get_provider(StorageType::Resource).unwrap();
                let mut gave_up = 0;
                for _ in 0..100 {
                    let r = storage.transaction(|tx| {
                        let o = RetrieveOptions::new().with_transaction(tx);
                        let n = match p.retrieve(&counter, &o) {
                            Ok(item) => u64::from_le_bytes(item.value.try_into().unwrap()),
                            Err(StorageError::NotFound(_)) => 0,
                            Err(e) => return Err(e),
                        };
                        let w = StorageOptions::new().with_transaction(tx);
                        p.store(&counter, &(n + 1).to_le_bytes(), &w)?;
                        Ok(())
                    });
                    if r.is_err() {
                        gave_up += 1;
                    }
                }
                gave_up
            })
        })
        .collect();
    let gave_up: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(gave_up, 0);
    let p = storage.get_provider(StorageType::Resource).unwrap();
    let v = p.retrieve(&counter, &RetrieveOptions::new()).unwrap().value;
    assert_eq!(u64::from_le_bytes(v.try_into().unwrap()), 800);
    assert_eq!(storage.transactions().active_count(), 0);
}

/// A transaction handle dropped without a commit rolls back at once: its
/// write is gone and nothing stays active.
#[test]
fn a_dropped_transaction_handle_rolls_back_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 300);
    let p = storage.get_provider(StorageType::Resource).unwrap();
    let id = {
        let tx = storage.begin().unwrap();
        p.store(
            &key("k"),
            b"v",
            &StorageOptions::new().with_transaction(&tx),
        )
        .unwrap();
        assert_eq!(storage.transactions().active_count(), 1);
        tx.id()
    };
    assert_eq!(storage.transactions().active_count(), 0);
    assert_eq!(
        storage.transaction_status(id).unwrap().status,
        TransactionStatus::RolledBack
    );
    assert!(matches!(
        p.retrieve(&key("k"), &RetrieveOptions::new()),
        Err(StorageError::NotFound(_))
    ));
    // Committed through the handle: applied, and the drop does nothing.
    let tx = storage.begin().unwrap();
    p.store(
        &key("k"),
        b"w",
        &StorageOptions::new().with_transaction(&tx),
    )
    .unwrap();
    let done = tx.commit().unwrap();
    assert_eq!(done.status, TransactionStatus::Committed);
    assert_eq!(
        p.retrieve(&key("k"), &RetrieveOptions::new())
            .unwrap()
            .value,
        b"w"
    );
    // The id-based calls still work on a handle's transaction.
    let tx = storage.begin().unwrap();
    storage.commit_transaction(tx.id()).unwrap();
    drop(tx);
    assert_eq!(storage.transactions().active_count(), 0);
}

/// One rule for every provider: a read cannot be both inside a
/// transaction and at a past time; it is refused, changing nothing.
#[test]
fn a_read_at_a_time_inside_a_transaction_is_refused_by_every_provider() {
    let dir = tempfile::tempdir().unwrap();
    let storage = open_with_cache(dir.path(), 300);
    let kv = storage.get_provider(StorageType::Resource).unwrap();
    let m = kv.store(&key("k"), b"v1", &StorageOptions::new()).unwrap();
    let blobs = storage.get_provider(StorageType::Blob).unwrap();
    blobs
        .store(&key("b"), b"blob", &StorageOptions::new())
        .unwrap();
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    docs.store_document("c", "d", &serde_json::json!({"n": 1}), &Default::default())
        .unwrap();
    let tx = storage.begin().unwrap();
    kv.store(
        &key("k"),
        b"v2",
        &StorageOptions::new().with_transaction(&tx),
    )
    .unwrap();
    let both = RetrieveOptions::new()
        .with_transaction(&tx)
        .at(m.version.unwrap());
    let refused = |r: Result<(), StorageError>| matches!(r, Err(StorageError::InvalidArgument(_)));
    assert!(refused(kv.retrieve(&key("k"), &both).map(|_| ())));
    assert!(refused(blobs.retrieve(&key("b"), &both).map(|_| ())));
    assert!(refused(
        docs.retrieve_document::<serde_json::Value>("c", "d", &both)
            .map(|_| ())
    ));
    let q = strata::QueryOptions::new()
        .with_transaction(&tx)
        .at(m.version.unwrap());
    assert!(refused(
        docs.query_documents::<serde_json::Value>("c", &strata::DocumentQuery::new(), &q)
            .map(|_| ())
    ));
    // The transaction is untouched and still commits its write.
    tx.commit().unwrap();
    assert_eq!(
        kv.retrieve(&key("k"), &RetrieveOptions::new())
            .unwrap()
            .value,
        b"v2"
    );
}
