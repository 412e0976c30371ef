//! Cross-provider atomicity across a process kill: a child commits
//! transactions that each store a resource and a fact (and delete another
//! pair now and then) and reports each commit; the parent kills it with
//! SIGKILL at random moments and checks, after reopening, that every
//! transaction is all there or all absent, and that every acknowledged one
//! is there. `STRATA_STORAGE_KILL_ROUNDS=N` runs N rounds instead of 20.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use strata::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageKey, StorageOptions, StorageSystem,
    StorageType,
};

const WORKER_ENV: &str = "STRATA_STORAGE_KILL_DIR";
const GROUPS: u64 = 25;

fn key(s: String) -> StorageKey {
    StorageKey::new(s)
}

fn seq(storage: &StorageSystem) -> u64 {
    let meta = storage.get_provider(StorageType::Metadata).unwrap();
    meta.retrieve(&key("seq".into()), &RetrieveOptions::new())
        .map(|i| u64::from_le_bytes(i.value[..8].try_into().unwrap()))
        .unwrap_or(0)
}

/// Transaction `i` writes value `i` to resource and fact of group
/// `i % GROUPS`, or deletes both every seventh time.
fn model(n: u64) -> BTreeMap<u64, u64> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        if i % 7 == 6 {
            m.remove(&(i % GROUPS));
        } else {
            m.insert(i % GROUPS, i);
        }
    }
    m
}

fn worker(dir: &Path) {
    let storage = StorageSystem::open(dir).unwrap();
    let resources = storage.get_provider(StorageType::Resource).unwrap();
    let facts = storage.get_provider(StorageType::Fact).unwrap();
    let meta = storage.get_provider(StorageType::Metadata).unwrap();
    let mut i = seq(&storage);
    loop {
        let g = i % GROUPS;
        storage
            .transaction(|tx| {
                let o = StorageOptions::new().with_transaction(tx);
                let d = DeleteOptions::new().with_transaction(tx);
                let value = i.to_le_bytes().repeat(64);
                if i % 7 == 6 {
                    resources.delete(&key(format!("r/{g:02}")), &d)?;
                    facts.delete(&key(format!("f/{g:02}")), &d)?;
                } else {
                    resources.store(&key(format!("r/{g:02}")), &value, &o)?;
                    facts.store(&key(format!("f/{g:02}")), &value, &o)?;
                }
                meta.store(&key("seq".into()), &(i + 1).to_le_bytes(), &o)?;
                Ok(())
            })
            .unwrap();
        println!("ack {i}");
        i += 1;
    }
}

#[test]
fn storage_kill_worker_entry() {
    if let Some(dir) = std::env::var_os(WORKER_ENV) {
        worker(Path::new(&dir));
    }
}

fn read_all(storage: &StorageSystem, t: StorageType) -> BTreeMap<u64, u64> {
    let p = storage.get_provider(t).unwrap();
    let mut out = BTreeMap::new();
    for k in p.list_keys(&KeyPattern::all()).unwrap() {
        let g: u64 = k.as_str()[2..].parse().unwrap();
        let v = p.retrieve(&k, &RetrieveOptions::new()).unwrap().value;
        assert_eq!(v.len(), 8 * 64);
        out.insert(g, u64::from_le_bytes(v[..8].try_into().unwrap()));
    }
    out
}

#[test]
fn transactions_over_two_providers_survive_sigkill_whole() {
    let rounds: usize = std::env::var("STRATA_STORAGE_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let mut x = u64::from(std::process::id()) | 1;
    let mut acked: Option<u64> = None;
    for round in 0..rounds {
        let worker = common::Worker::spawn("storage_kill_worker_entry", WORKER_ENV, &dir);
        let ack = |line: String| line.strip_prefix("ack ").map(|n| n.parse::<u64>().unwrap());
        let first = loop {
            let line = worker.lines.recv_timeout(Duration::from_secs(60));
            assert!(line.is_ok(), "round {round}: no commit from the worker");
            if let Some(n) = line.ok().and_then(ack) {
                break n;
            }
        };
        std::thread::sleep(Duration::from_millis(common::xorshift(&mut x) % 300));
        let rest = worker.kill();
        for n in std::iter::once(first).chain(rest.try_iter().filter_map(ack)) {
            acked = Some(acked.map_or(n, |a| a.max(n)));
        }

        let storage = StorageSystem::open(&dir).unwrap();
        let n = seq(&storage);
        let must = acked.map_or(0, |a| a + 1);
        assert!(
            n == must || n == must + 1,
            "round {round}: {n} transactions recovered, {must} acknowledged"
        );
        let expected = model(n);
        let resources = read_all(&storage, StorageType::Resource);
        let facts = read_all(&storage, StorageType::Fact);
        assert_eq!(resources, facts, "round {round}: a transaction was split");
        assert_eq!(resources, expected, "round {round}: not the prefix of {n}");
        storage.close().unwrap();
    }
}
