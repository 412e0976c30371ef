//! Index builds over collections in use: writers (alone and in snapshot
//! transactions) change documents while `create_index` runs, and the
//! finished index must agree exactly with the documents; and a process
//! killed during a build must come back with the index either absent and
//! without a trace, or complete.
//!
//! `STRATA_DOC_KILL_ROUNDS=N` runs N kill rounds instead of 6.

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use strata::document::{DocumentOptions, DocumentQuery, IndexState, PlanKind, QueryOptions};
use strata::{IsolationLevel, StorageSystem, StorageSystemConfig, StorageType};

const WORKER_ENV: &str = "STRATA_DOC_KILL_DIR";
const DOCS: u64 = 20_000;
const GROUPS: u64 = 50;

/// Every value of `g` agrees between the index and a scan, and no entry
/// is stale; returns how many documents the index found.
fn check_index_agrees(storage: &StorageSystem) -> usize {
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    let mut total = 0;
    for g in 0..GROUPS {
        let q = DocumentQuery::new().with_field_equals("g", g);
        let (by_index, stats) = docs
            .query_documents_with_stats::<Value>("c", &q, &QueryOptions::new())
            .unwrap();
        assert_eq!(stats.plan.kind, PlanKind::IndexScan);
        assert_eq!(stats.stale_entries, 0, "group {g}: {stats:?}");
        let by_scan: Vec<Value> = docs
            .query_documents("c", &q, &QueryOptions::new().force_scan())
            .unwrap();
        assert_eq!(by_index, by_scan, "group {g}");
        total += by_index.len();
    }
    // Documents without the field are in the index too.
    let q = DocumentQuery::new().with_field_exists("g", false);
    let missing: Vec<Value> = docs.query_documents("c", &q, &QueryOptions::new()).unwrap();
    let scanned: Vec<Value> = docs
        .query_documents("c", &q, &QueryOptions::new().force_scan())
        .unwrap();
    assert_eq!(missing, scanned);
    total + missing.len()
}

fn load(storage: &StorageSystem, n: u64) {
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for chunk in 0..n / 1000 {
        storage
            .transaction(|tx| {
                let o = DocumentOptions::new().with_transaction(tx);
                for i in chunk * 1000..(chunk + 1) * 1000 {
                    docs.store_document("c", &format!("{i:06}"), &json!({"g": i % GROUPS}), &o)?;
                }
                Ok(())
            })
            .unwrap();
    }
}

#[test]
fn an_index_built_under_concurrent_writers_agrees_with_the_documents() {
    for isolation in [IsolationLevel::Snapshot, IsolationLevel::Serializable] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StorageSystemConfig::default();
        config.engine.sync_writes = false;
        config.transactions.isolation = isolation;
        let storage = StorageSystem::builder()
            .path(dir.path())
            .with_config(config)
            .build()
            .unwrap();
        load(&storage, DOCS);
        let stop = Arc::new(AtomicBool::new(false));
        let mut writers = Vec::new();
        for w in 0..2u64 {
            let storage = storage.clone();
            let stop = stop.clone();
            writers.push(std::thread::spawn(move || {
                let docs = storage.get_document_storage(StorageType::Resource).unwrap();
                let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ w;
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = format!("{:06}", x % (DOCS + 500));
                    let doc = if x.is_multiple_of(11) {
                        json!({"other": 1})
                    } else {
                        json!({"g": (x >> 20) % GROUPS})
                    };
                    let r = if w == 0 {
                        // Alone, in its own transaction.
                        if x.is_multiple_of(13) {
                            docs.delete_document("c", &id, &Default::default())
                                .map(|_| ())
                        } else {
                            docs.store_document("c", &id, &doc, &DocumentOptions::new())
                                .map(|_| ())
                        }
                    } else {
                        // In a caller's transaction, held open a little.
                        storage.transaction(|tx| {
                            let o = DocumentOptions::new().with_transaction(tx);
                            docs.store_document("c", &id, &doc, &o)?;
                            std::thread::sleep(Duration::from_micros(200));
                            Ok(())
                        })
                    };
                    if let Err(e) = r {
                        assert!(e.is_conflict(), "{e}");
                    }
                    n += 1;
                }
                n
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
        let docs = storage.get_document_storage(StorageType::Resource).unwrap();
        let info = docs.create_index("c", "g").unwrap();
        assert_eq!(info.state, IndexState::Ready);
        std::thread::sleep(Duration::from_millis(50));
        stop.store(true, Ordering::Relaxed);
        let writes: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
        assert!(writes > 100, "{writes} writes ran during the build");
        let n = check_index_agrees(&storage);
        let all: Vec<Value> = docs
            .query_documents("c", &DocumentQuery::new(), &QueryOptions::new())
            .unwrap();
        assert_eq!(n, all.len(), "{isolation:?}");
    }
}

fn worker(dir: &Path) {
    let mut config = StorageSystemConfig::default();
    config.engine.memtable_size = 1 << 20;
    let storage = StorageSystem::builder()
        .path(dir)
        .with_config(config)
        .build()
        .unwrap();
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    if docs
        .query_documents::<Value>(
            "c",
            &DocumentQuery::new().with_limit(1),
            &QueryOptions::new(),
        )
        .unwrap()
        .is_empty()
    {
        load(&storage, DOCS);
    }
    // A writer keeps changing documents during the build. The worker ends
    // itself after a minute, should its parent die without killing it.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let s2 = storage.clone();
    std::thread::spawn(move || {
        let docs = s2.get_document_storage(StorageType::Resource).unwrap();
        let mut i = 0u64;
        while std::time::Instant::now() < deadline {
            i += 1;
            let id = format!("{:06}", (i * 7919) % DOCS);
            if let Err(e) =
                docs.store_document("c", &id, &json!({"g": i % GROUPS}), &DocumentOptions::new())
            {
                eprintln!("writer: {e}");
            }
        }
    });
    println!("building");
    match docs.create_index("c", "g") {
        Ok(_) => println!("built"),
        Err(e) => println!("refused {e}"),
    }
    while std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::process::exit(0);
}

#[test]
fn doc_kill_worker_entry() {
    if let Some(dir) = std::env::var_os(WORKER_ENV) {
        worker(Path::new(&dir));
    }
}

/// Raw keys under the index-entry namespace (none may outlive an index).
fn index_entries(storage: &StorageSystem) -> usize {
    let ks = storage.db().keyspace(StorageType::Resource.name()).unwrap();
    ks.prefix("\0strata/doc/x/").unwrap().count()
}

#[test]
fn a_build_killed_midway_leaves_no_half_index() {
    let rounds: usize = std::env::var("STRATA_DOC_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut x = u64::from(std::process::id()) | 1;
    let (mut absent, mut midway, mut complete) = (0, 0, 0);
    for round in 0..rounds {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("db");
        let worker = common::Worker::spawn("doc_kill_worker_entry", WORKER_ENV, &dir);
        // The harness's own "test ... " precedes the worker's first line.
        while !worker
            .lines
            .recv_timeout(Duration::from_secs(120))
            .unwrap()
            .ends_with("building")
        {}
        // Most kills land inside the build; some after it.
        std::thread::sleep(Duration::from_millis(common::xorshift(&mut x) % 250));
        let finished = worker.kill().try_iter().any(|l| l == "built");

        let storage = common::open_unsynced(&dir);
        // Entries on disk before the document provider starts: a build
        // caught midway left some.
        let left = index_entries(&storage);
        let docs = storage.get_document_storage(StorageType::Resource).unwrap();
        let infos = docs.indexes("c").unwrap();
        match infos.as_slice() {
            [] => {
                assert!(!finished, "round {round}: an acknowledged index vanished");
                assert_eq!(index_entries(&storage), 0, "round {round}: entries left");
                let q = DocumentQuery::new().with_field_equals("g", 1);
                let plan = docs.explain("c", &q, &QueryOptions::new()).unwrap();
                assert_eq!(plan.kind, PlanKind::CollectionScan);
                absent += 1;
                if left > 0 {
                    midway += 1;
                }
            }
            [info] => {
                assert_eq!(info.state, IndexState::Ready, "round {round}");
                let n = check_index_agrees(&storage);
                assert_eq!(n as u64, DOCS, "round {round}");
                complete += 1;
            }
            more => panic!("round {round}: {more:?}"),
        }
        storage.close().unwrap();
    }
    println!(
        "{rounds} kills: index absent after {absent} ({midway} with a half-built index removed at open), complete after {complete}"
    );
}
