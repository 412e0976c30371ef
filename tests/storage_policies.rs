//! Storage policies: a test per policy (default TTL, maximum item size,
//! quota, history window, required encryption and compression), their
//! durability and run-time changes, quota accounting checked against a
//! full recount after every step of a random workload (overwrites,
//! deletes, expiries, transactions, compaction), and after a SIGKILL in
//! the middle of writes. `STRATA_POLICY_KILL_ROUNDS=N` runs N kill rounds
//! instead of 5.

mod common;

use std::io::Read;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use strata::engine::{ManualClock, MemoryKeyProvider, Options};
use strata::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageError, StorageKey, StorageOptions,
    StoragePolicy, StorageSystem, StorageSystemConfig, StorageType, Timestamp,
};

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

fn config() -> StorageSystemConfig {
    let mut c = StorageSystemConfig::default();
    c.engine.sync_writes = false;
    c.engine.history_retention_secs = 0;
    c
}

fn open(dir: &Path, clock: &Arc<ManualClock>, c: StorageSystemConfig) -> StorageSystem {
    StorageSystem::builder()
        .path(dir)
        .with_config(c)
        .with_engine_options(Options {
            clock: clock.clone(),
            ..Default::default()
        })
        .build()
        .unwrap()
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::now()))
}

/// Usage equals a full recount for every quota scope of `t`.
fn assert_usage_exact(storage: &StorageSystem, t: StorageType, context: &str) {
    let p = storage.policies();
    let recount = p.recount(t).unwrap();
    let tracked: Vec<_> = p
        .quotas()
        .into_iter()
        .filter(|q| q.storage_type == t)
        .collect();
    assert_eq!(tracked, recount, "{context}");
}

#[test]
fn a_default_ttl_applies_to_writes_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    storage
        .policies()
        .set_policy(
            StoragePolicy::for_prefix(StorageType::Fact, "tmp/")
                .with_default_ttl(Duration::from_secs(60)),
        )
        .unwrap();
    let p = storage.get_provider(StorageType::Fact).unwrap();
    let o = StorageOptions::new();
    let m = p.store(&key("tmp/a"), b"x", &o).unwrap();
    assert!(m.expires_at.is_some());
    let explicit = o.clone().with_ttl(Some(Duration::from_secs(600)));
    p.store(&key("tmp/b"), b"x", &explicit).unwrap();
    p.store(&key("kept"), b"x", &o).unwrap();
    let docs = storage.get_document_storage(StorageType::Fact).unwrap();
    let d = docs
        .store_document("tmp", "d", &json!({"n": 1}), &Default::default())
        .unwrap();
    assert!(
        d.expires_at.is_some(),
        "documents under the prefix get it too"
    );
    clock.advance(Duration::from_secs(61));
    assert!(p
        .get(&key("tmp/a"), &RetrieveOptions::new())
        .unwrap()
        .is_none());
    assert!(p
        .get(&key("tmp/b"), &RetrieveOptions::new())
        .unwrap()
        .is_some());
    assert!(p
        .get(&key("kept"), &RetrieveOptions::new())
        .unwrap()
        .is_some());
    assert!(docs
        .retrieve_document::<serde_json::Value>("tmp", "d", &RetrieveOptions::new())
        .is_err());
}

#[test]
fn items_beyond_the_maximum_size_are_refused_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    for t in [StorageType::Resource, StorageType::Blob] {
        storage
            .policies()
            .set_policy(StoragePolicy::new(t).with_max_item_bytes(1000))
            .unwrap();
    }
    let p = storage.get_provider(StorageType::Resource).unwrap();
    p.store(&key("k"), &[1u8; 1000], &StorageOptions::new())
        .unwrap();
    let e = p
        .store(&key("k"), &[2u8; 1001], &StorageOptions::new())
        .unwrap_err();
    assert!(matches!(e, StorageError::PolicyViolation { .. }), "{e}");
    assert_eq!(
        p.retrieve(&key("k"), &RetrieveOptions::new())
            .unwrap()
            .value,
        [1u8; 1000]
    );
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    let big = json!({"s": "x".repeat(2000)});
    assert!(matches!(
        docs.store_document("c", "1", &big, &Default::default()),
        Err(StorageError::PolicyViolation { .. })
    ));
    // A blob stream stops at the limit and leaves no chunk behind.
    let blobs = storage.get_blob_storage().unwrap();
    let e = blobs
        .put_stream(&key("b"), &vec![0u8; 5000][..], &StorageOptions::new())
        .unwrap_err();
    assert!(matches!(e, StorageError::PolicyViolation { .. }), "{e}");
    let ks = storage.db().keyspace("blob").unwrap();
    assert_eq!(ks.prefix("c/").unwrap().count(), 0);
    assert_eq!(ks.prefix("p/").unwrap().count(), 0);
    blobs
        .put_stream(&key("b"), &vec![0u8; 1000][..], &StorageOptions::new())
        .unwrap();
}

#[test]
fn quotas_refuse_writes_beyond_them_and_track_usage_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    let policies = storage.policies();
    policies
        .set_policy(StoragePolicy::for_prefix(StorageType::Resource, "a/").with_quota_bytes(1000))
        .unwrap();
    let p = storage.get_provider(StorageType::Resource).unwrap();
    let o = StorageOptions::new();
    // "a/1" + 400 bytes = 403.
    p.store(&key("a/1"), &[0u8; 400], &o).unwrap();
    p.store(&key("a/2"), &[0u8; 400], &o).unwrap();
    assert_eq!(policies.usage(StorageType::Resource, "a/"), Some(806));
    let e = p.store(&key("a/3"), &[0u8; 400], &o).unwrap_err();
    assert!(
        matches!(
            e,
            StorageError::QuotaExceeded {
                limit: 1000,
                usage: 806,
                ..
            }
        ),
        "{e}"
    );
    assert!(p
        .get(&key("a/3"), &RetrieveOptions::new())
        .unwrap()
        .is_none());
    // Outside the scope: no limit.
    p.store(&key("b/1"), &[0u8; 4000], &o).unwrap();
    // An overwrite counts only its growth.
    p.store(&key("a/1"), &[0u8; 500], &o).unwrap();
    assert_eq!(policies.usage(StorageType::Resource, "a/"), Some(906));
    // A delete frees.
    p.delete(&key("a/2"), &DeleteOptions::new()).unwrap();
    assert_eq!(policies.usage(StorageType::Resource, "a/"), Some(503));
    // An expiry frees.
    p.store(
        &key("a/t"),
        &[0u8; 300],
        &o.clone().with_ttl(Some(Duration::from_secs(5))),
    )
    .unwrap();
    assert_eq!(policies.usage(StorageType::Resource, "a/"), Some(806));
    clock.advance(Duration::from_secs(6));
    assert_eq!(policies.usage(StorageType::Resource, "a/"), Some(503));
    // Documents count as collection/id plus their JSON.
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    docs.store_document("a", "d", &json!({"n": 1}), &Default::default())
        .unwrap();
    assert_eq!(
        policies.usage(StorageType::Resource, "a/"),
        Some(503 + 3 + 7)
    );
    // A rolled-back transaction reserves nothing once it ends.
    let tx = storage.begin().unwrap();
    p.store(&key("a/x"), &[0u8; 400], &o.clone().with_transaction(&tx))
        .unwrap();
    let e = p.store(&key("a/y"), &[0u8; 100], &o).unwrap_err();
    assert!(
        matches!(e, StorageError::QuotaExceeded { .. }),
        "reserved by the open transaction"
    );
    drop(tx);
    p.store(&key("a/y"), &[0u8; 100], &o).unwrap();
    assert_usage_exact(&storage, StorageType::Resource, "after the steps");
    // Compaction changes no usage; neither does a reopen.
    let before = policies.quotas();
    storage.db().compact().unwrap();
    assert_eq!(policies.quotas(), before);
    storage.close().unwrap();
    drop(storage);
    let storage = open(dir.path(), &clock, config());
    assert_eq!(storage.policies().quotas(), before);
    let text = storage.metrics().render_prometheus();
    assert!(
        text.contains("strata_storage_quota_usage_bytes{type=\"resource\",prefix=\"a/\"}"),
        "{text}"
    );
}

#[test]
fn concurrent_writers_never_pass_a_quota_together() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    storage
        .policies()
        .set_policy(StoragePolicy::new(StorageType::Fact).with_quota_bytes(10_000))
        .unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let storage = storage.clone();
            std::thread::spawn(move || {
                let p = storage.get_provider(StorageType::Fact).unwrap();
                let mut ok = 0;
                for i in 0..100 {
                    // "t/ii" + 96 bytes = 100 bytes each.
                    let k = key(&format!("{t}/{i:02}"));
                    match p.store(&k, &[0u8; 96], &StorageOptions::new()) {
                        Ok(_) => ok += 1,
                        Err(StorageError::QuotaExceeded { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                ok
            })
        })
        .collect();
    let stored: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(stored, 100, "exactly what fits");
    assert_eq!(
        storage.policies().usage(StorageType::Fact, ""),
        Some(10_000)
    );
    assert_usage_exact(&storage, StorageType::Fact, "after the race");
}

/// Threads overwrite and delete the same few keys, alone and in
/// transactions, while another changes the quotas: afterwards usage equals
/// a recount, so no charge was lost or counted twice in the races.
#[test]
fn racing_writes_to_the_same_keys_and_policy_changes_keep_usage_exact() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    storage
        .policies()
        .set_policy(StoragePolicy::for_prefix(StorageType::Fact, "k/").with_quota_bytes(2_000))
        .unwrap();
    let writers: Vec<_> = (0..3u64)
        .map(|t| {
            let storage = storage.clone();
            std::thread::spawn(move || {
                let p = storage.get_provider(StorageType::Fact).unwrap();
                let mut x = 0x2545_f491_4f6c_dd1d ^ (t + 1);
                for _ in 0..300 {
                    let r = common::xorshift(&mut x);
                    let k = key(&format!("k/{}", r % 6));
                    let value = vec![t as u8; ((r >> 8) % 400) as usize];
                    let outcome = match (r >> 20) % 4 {
                        0 | 1 => p.store(&k, &value, &StorageOptions::new()).map(|_| ()),
                        2 => p.delete(&k, &DeleteOptions::new()),
                        _ => {
                            let tx = storage.begin().unwrap();
                            let other = key(&format!("k/{}", (r >> 4) % 6));
                            let a =
                                p.store(&k, &value, &StorageOptions::new().with_transaction(&tx));
                            let b = p.delete(&other, &DeleteOptions::new().with_transaction(&tx));
                            match (a, b) {
                                (Ok(_), Ok(_)) if r.is_multiple_of(2) => tx.commit().map(|_| ()),
                                (Err(e), _) | (_, Err(e)) => Err(e),
                                _ => tx.rollback().map(|_| ()),
                            }
                        }
                    };
                    match outcome {
                        Ok(()) | Err(StorageError::QuotaExceeded { .. }) => {}
                        Err(e) if e.is_conflict() => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    let changer = {
        let storage = storage.clone();
        std::thread::spawn(move || {
            for i in 0..20u64 {
                let policy = StoragePolicy::for_prefix(StorageType::Fact, "k/")
                    .with_quota_bytes(1_000 + (i % 3) * 1_000);
                // A recount waits for the writes in flight, which must not
                // wait for it in turn: no `Busy` within the 30 s bound.
                storage.policies().set_policy(policy).unwrap();
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    changer.join().unwrap();
    assert_usage_exact(&storage, StorageType::Fact, "after the race");
    let p = storage.get_provider(StorageType::Fact).unwrap();
    let mut held = 0;
    for k in p.list_keys(&KeyPattern::prefix("k/")).unwrap() {
        held += (k.as_str().len() + p.retrieve(&k, &RetrieveOptions::new()).unwrap().value.len())
            as u64;
    }
    assert_eq!(tracked(&storage, StorageType::Fact), held);
}

/// A recount waits for an open transaction that wrote the type; that
/// transaction's next write must not wait for the recount in turn.
#[test]
fn a_policy_change_waiting_for_a_transaction_lets_its_next_write_through() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut c = config();
    c.transactions.index_build_wait_secs = 5;
    let storage = open(dir.path(), &clock, c);
    let quota = |bytes| StoragePolicy::for_prefix(StorageType::Fact, "k/").with_quota_bytes(bytes);
    storage.policies().set_policy(quota(2_000)).unwrap();
    let p = storage.get_provider(StorageType::Fact).unwrap();
    let tx = storage.begin().unwrap();
    let w = StorageOptions::new().with_transaction(&tx);
    p.store(&key("k/1"), b"first", &w).unwrap();
    let changer = {
        let storage = storage.clone();
        std::thread::spawn(move || storage.policies().set_policy(quota(3_000)))
    };
    // Give the change time to start waiting for the transaction.
    std::thread::sleep(Duration::from_millis(200));
    p.store(&key("k/2"), b"second", &w).unwrap();
    tx.commit().unwrap();
    changer.join().unwrap().unwrap();
    assert_usage_exact(&storage, StorageType::Fact, "after the change");
    assert_eq!(tracked(&storage, StorageType::Fact), 3 + 5 + 3 + 6);
}

#[test]
fn blob_quotas_count_whole_blobs_and_refuse_without_leaving_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    storage
        .policies()
        .set_policy(StoragePolicy::new(StorageType::Blob).with_quota_bytes(10_000))
        .unwrap();
    let blobs = storage.get_blob_storage().unwrap();
    blobs
        .put_stream(&key("one"), &vec![1u8; 6000][..], &StorageOptions::new())
        .unwrap();
    let e = blobs
        .put_stream(&key("two"), &vec![1u8; 6000][..], &StorageOptions::new())
        .unwrap_err();
    assert!(matches!(e, StorageError::QuotaExceeded { .. }), "{e}");
    let ks = storage.db().keyspace("blob").unwrap();
    assert_eq!(
        ks.prefix("c/").unwrap().count(),
        1,
        "only the first blob's chunk"
    );
    // Replacing a blob counts its new size only.
    blobs
        .put_stream(&key("one"), &vec![1u8; 9000][..], &StorageOptions::new())
        .unwrap();
    assert_eq!(storage.policies().usage(StorageType::Blob, ""), Some(9003));
    blobs.delete_blob(&key("one")).unwrap();
    assert_eq!(storage.policies().usage(StorageType::Blob, ""), Some(0));
    assert_usage_exact(&storage, StorageType::Blob, "blobs");
}

#[test]
fn a_type_history_window_keeps_its_past_readable() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    assert_eq!(storage.db().history_retention(), Duration::ZERO);
    storage
        .policies()
        .set_policy(
            StoragePolicy::new(StorageType::Fact).with_history_retention(Duration::from_secs(3600)),
        )
        .unwrap();
    assert_eq!(storage.db().history_retention(), Duration::from_secs(3600));
    let p = storage.get_provider(StorageType::Fact).unwrap();
    let first = p.store(&key("k"), b"one", &StorageOptions::new()).unwrap();
    p.store(&key("k"), b"two", &StorageOptions::new()).unwrap();
    clock.advance(Duration::from_secs(60));
    storage.db().compact().unwrap();
    let then = p
        .retrieve(
            &key("k"),
            &RetrieveOptions::new().at(first.version.unwrap()),
        )
        .unwrap();
    assert_eq!(then.value, b"one", "compaction kept what the window needs");
    // Another type's shorter window refuses reads of its older past.
    storage
        .policies()
        .set_policy(
            StoragePolicy::new(StorageType::Resource)
                .with_history_retention(Duration::from_secs(10)),
        )
        .unwrap();
    let r = storage.get_provider(StorageType::Resource).unwrap();
    let old = r.store(&key("k"), b"old", &StorageOptions::new()).unwrap();
    clock.advance(Duration::from_secs(11));
    r.store(&key("k"), b"new", &StorageOptions::new()).unwrap();
    let e = r
        .retrieve(&key("k"), &RetrieveOptions::new().at(old.version.unwrap()))
        .unwrap_err();
    assert!(e.to_string().contains("history"), "{e}");
    // A policy on a prefix cannot set a window.
    assert!(storage
        .policies()
        .set_policy(
            StoragePolicy::for_prefix(StorageType::Fact, "x")
                .with_history_retention(Duration::from_secs(1))
        )
        .is_err());
}

#[test]
fn required_encryption_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config();
    c.encryption.encrypted_types = Some(vec![StorageType::Fact]);
    let keys = Arc::new(MemoryKeyProvider::new(1, [7u8; 32]));
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(c)
        .with_key_provider(keys)
        .build()
        .unwrap();
    let policies = storage.policies();
    for t in [StorageType::Fact, StorageType::Resource] {
        policies
            .set_policy(StoragePolicy::new(t).with_required_encryption(true))
            .unwrap();
    }
    let o = StorageOptions::new();
    storage
        .get_provider(StorageType::Fact)
        .unwrap()
        .store(&key("k"), b"secret", &o)
        .unwrap();
    let e = storage
        .get_provider(StorageType::Resource)
        .unwrap()
        .store(&key("k"), b"secret", &o)
        .unwrap_err();
    assert!(matches!(e, StorageError::Encryption(_)), "{e}");
    policies
        .set_policy(StoragePolicy::new(StorageType::Resource).with_required_compression(true))
        .unwrap();
    let r = storage.get_provider(StorageType::Resource).unwrap();
    let value = vec![b'a'; 10_000];
    r.store(&key("z"), &value, &o).unwrap();
    let raw = storage
        .db()
        .keyspace("resource")
        .unwrap()
        .get("z")
        .unwrap()
        .unwrap();
    assert!(raw.len() < 1000, "stored uncompressed: {} bytes", raw.len());
    assert_eq!(
        r.retrieve(&key("z"), &RetrieveOptions::new())
            .unwrap()
            .value,
        value
    );
    assert!(policies
        .set_policy(StoragePolicy::new(StorageType::Blob).with_required_compression(true))
        .is_err());
}

#[test]
fn policies_are_durable_come_from_the_configuration_and_explain_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let mut c = config();
    c.policies = vec![StoragePolicy::new(StorageType::Operation).with_max_item_bytes(100)];
    let storage = open(dir.path(), &clock, c.clone());
    storage
        .policies()
        .set_policy(
            StoragePolicy::for_prefix(StorageType::Operation, "big/")
                .with_max_item_bytes(10_000)
                .with_quota_bytes(1 << 20),
        )
        .unwrap();
    let e = storage
        .policies()
        .effective(StorageType::Operation, "big/x");
    assert_eq!(e.max_item_bytes, Some(10_000));
    assert_eq!(e.sources["max_item_bytes"], "operation \"big/\"");
    assert_eq!(e.quotas.len(), 1);
    let shown = e.to_string();
    assert!(
        shown.contains("items up to 10000 bytes") && shown.contains("quota"),
        "{shown}"
    );
    let small = storage
        .policies()
        .effective(StorageType::Operation, "other");
    assert_eq!(small.max_item_bytes, Some(100));
    storage.close().unwrap();
    drop(storage);
    let storage = open(dir.path(), &clock, config());
    assert_eq!(storage.policies().policies().len(), 2, "durable");
    assert!(storage
        .policies()
        .remove_policy(StorageType::Operation, "big/")
        .unwrap());
    let p = storage.get_provider(StorageType::Operation).unwrap();
    assert!(matches!(
        p.store(&key("big/x"), &[0u8; 500], &StorageOptions::new()),
        Err(StorageError::PolicyViolation { .. })
    ));
    // A misspelt policy field is refused like any configuration field.
    let e =
        StorageSystemConfig::from_toml("[[policies]]\nstorage_type = \"Fact\"\nquota_byte = 5\n")
            .unwrap_err();
    assert!(e.to_string().contains("quota_byte"), "{e}");
}

/// One random workload step.
fn step(storage: &StorageSystem, x: &mut u64, clock: &ManualClock) {
    let r = common::xorshift(x);
    let p = storage.get_provider(StorageType::Resource).unwrap();
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    let k = key(&format!("q/{}", r % 20));
    let size = (r >> 8) % 300;
    let o = StorageOptions::new();
    let outcome = match (r >> 20) % 9 {
        0..=2 => p.store(&k, &vec![1u8; size as usize], &o).map(|_| ()),
        3 => p
            .store(
                &k,
                &vec![1u8; size as usize],
                &o.clone().with_ttl(Some(Duration::from_secs(1 + r % 5))),
            )
            .map(|_| ()),
        4 => p.delete(&k, &DeleteOptions::new()),
        5 => docs
            .store_document(
                "q",
                &format!("d{}", r % 5),
                &json!({"s": "x".repeat(size as usize)}),
                &Default::default(),
            )
            .map(|_| ()),
        6 => docs
            .delete_document("q", &format!("d{}", r % 5), &DeleteOptions::new())
            .map(|_| ()),
        7 => {
            let tx = storage.begin().unwrap();
            let w = o.clone().with_transaction(&tx);
            let a = p.store(&k, &vec![2u8; size as usize], &w);
            let b = p.delete(
                &key(&format!("q/{}", (r >> 5) % 20)),
                &DeleteOptions::new().with_transaction(&tx),
            );
            match (a, b) {
                (Ok(_), Ok(_)) if !r.is_multiple_of(3) => tx.commit().map(|_| ()),
                (Err(e), _) | (_, Err(e)) => Err(e),
                _ => tx.rollback().map(|_| ()),
            }
        }
        _ => {
            clock.advance(Duration::from_secs(1));
            if r.is_multiple_of(4) {
                storage.db().compact().unwrap();
            }
            Ok(())
        }
    };
    match outcome {
        Ok(()) | Err(StorageError::QuotaExceeded { .. }) => {}
        Err(e) if e.is_conflict() => {}
        Err(e) => panic!("{e}"),
    }
}

#[test]
fn quota_usage_equals_a_recount_after_every_step_of_a_random_workload() {
    let dir = tempfile::tempdir().unwrap();
    let clock = clock();
    let storage = open(dir.path(), &clock, config());
    storage
        .policies()
        .set_policy(StoragePolicy::for_prefix(StorageType::Resource, "q/").with_quota_bytes(4000))
        .unwrap();
    storage
        .policies()
        .set_policy(StoragePolicy::new(StorageType::Resource).with_quota_bytes(1 << 20))
        .unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15;
    let steps: usize = std::env::var("STRATA_POLICY_MODEL_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400);
    for i in 0..steps {
        step(&storage, &mut x, &clock);
        assert_usage_exact(&storage, StorageType::Resource, &format!("step {i}"));
    }
}

const WORKER_ENV: &str = "STRATA_POLICY_KILL_DIR";

fn worker(dir: &Path) {
    // The storage's own clock, so TTLs pass as the steps advance it.
    let clock = clock();
    let storage = open(dir, &clock, config());
    let blobs = storage.get_blob_storage().unwrap();
    let mut x = u64::from(std::process::id()) | 1;
    let mut n = 0u64;
    loop {
        step(&storage, &mut x, &clock);
        if n.is_multiple_of(10) {
            let r = common::xorshift(&mut x);
            let _ = blobs.put_stream(
                &key(&format!("b{}", r % 4)),
                &vec![3u8; (r % 3000) as usize][..],
                &StorageOptions::new(),
            );
        }
        n += 1;
        println!("ack {n}");
    }
}

#[test]
fn policy_kill_worker_entry() {
    if let Some(dir) = std::env::var_os(WORKER_ENV) {
        worker(Path::new(&dir));
    }
}

/// The bytes held in the worker's two quota scopes (Resource `q/` and all
/// of Blob), counted through the public API alone: what a recount must
/// agree with.
fn public_usage(storage: &StorageSystem) -> (u64, u64) {
    let p = storage.get_provider(StorageType::Resource).unwrap();
    let mut items = 0;
    for k in p.list_keys(&KeyPattern::prefix("q/")).unwrap() {
        if let Some(item) = p.get(&k, &RetrieveOptions::new()).unwrap() {
            items += (k.as_str().len() + item.value.len()) as u64;
        }
    }
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for d in 0..5 {
        let id = format!("d{d}");
        if let Ok(v) = docs.retrieve_document::<Value>("q", &id, &RetrieveOptions::new()) {
            items += ("q/".len() + id.len() + serde_json::to_vec(&v).unwrap().len()) as u64;
        }
    }
    let blobs = storage.get_blob_storage().unwrap();
    let mut blob_bytes = 0;
    for b in 0..4 {
        let k = format!("b{b}");
        if let Ok(m) = blobs.metadata(&key(&k)) {
            blob_bytes += k.len() as u64 + m.size;
        }
    }
    (items, blob_bytes)
}

/// The usage of `t`'s single quota scope.
fn tracked(storage: &StorageSystem, t: StorageType) -> u64 {
    let q: Vec<_> = storage
        .policies()
        .quotas()
        .into_iter()
        .filter(|q| q.storage_type == t)
        .collect();
    assert_eq!(q.len(), 1, "{q:?}");
    q[0].usage
}

/// A child writes under quotas (items, documents, blobs, transactions,
/// TTLs) and is killed at a random moment; after reopening, the usage of
/// every scope equals a full recount, and stays equal as writing goes on.
#[test]
fn quota_usage_after_a_sigkill_equals_a_full_recount() {
    let rounds: usize = std::env::var("STRATA_POLICY_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let storage = open(&dir, &clock(), config());
        let p = storage.policies();
        p.set_policy(StoragePolicy::for_prefix(StorageType::Resource, "q/").with_quota_bytes(4000))
            .unwrap();
        p.set_policy(StoragePolicy::new(StorageType::Blob).with_quota_bytes(8000))
            .unwrap();
    }
    let mut x = u64::from(std::process::id()) | 1;
    for round in 0..rounds {
        let worker = common::Worker::spawn("policy_kill_worker_entry", WORKER_ENV, &dir);
        let line = worker.lines.recv_timeout(Duration::from_secs(60));
        assert!(line.is_ok(), "round {round}: the worker did not start");
        std::thread::sleep(Duration::from_millis(common::xorshift(&mut x) % 300));
        drop(worker.kill());
        let clock = clock();
        let storage = open(&dir, &clock, config());
        for t in [StorageType::Resource, StorageType::Blob] {
            assert_usage_exact(&storage, t, &format!("round {round} after the kill"));
        }
        assert_eq!(
            (
                tracked(&storage, StorageType::Resource),
                tracked(&storage, StorageType::Blob)
            ),
            public_usage(&storage),
            "round {round}: usage against the public API's count"
        );
        for _ in 0..50 {
            step(&storage, &mut x, &clock);
        }
        assert_usage_exact(
            &storage,
            StorageType::Resource,
            &format!("round {round} after more writes"),
        );
        let mut b = Vec::new();
        if let Ok(mut r) = storage.get_blob_storage().unwrap().open(&key("b1")) {
            r.read_to_end(&mut b).unwrap();
        }
        storage.close().unwrap();
    }
}
