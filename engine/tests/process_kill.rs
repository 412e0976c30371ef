//! Process kill (crash scenarios S5, S6 and S11 of the reliability
//! checklist): a child process writes batches and transactions across
//! keyspaces, synced in even rounds and unsynced in odd ones (a process
//! crash keeps unsynced writes too: they are in the OS's buffers), and
//! reports each acknowledged one (with the WAL appended through a mapping
//! in two rounds of four, by `write` in the others); the parent kills it
//! with SIGKILL at a random moment, reopens the database, and checks that
//! the state is exactly the acknowledged prefix (or one more, the write in
//! flight), that every batch is whole, and, over the rounds, that flushes
//! and compactions were caught mid-way.
//!
//! `STRATA_KILL_ROUNDS=N` runs N rounds instead of 30.

mod common;

use common::Rng;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use strata_engine::{Db, Isolation, Options, WriteOptions};

const WORKER_ENV: &str = "STRATA_KILL_WORKER_DIR";
/// `1` when the worker writes without sync.
const UNSYNCED_ENV: &str = "STRATA_KILL_WORKER_UNSYNCED";
/// `1` when the worker appends to the WAL with `write` (`wal_mmap` off).
const NO_MMAP_ENV: &str = "STRATA_KILL_WORKER_NO_MMAP";
const KEYSPACES: [&str; 3] = ["x", "y", "z"];
const GROUPS: u64 = 40;

fn options() -> Options {
    Options {
        memtable_size: 128 * 1024,
        block_size: 1024,
        target_file_size: 64 * 1024,
        base_level_size: 256 * 1024,
        l0_compaction_trigger: 2,
        ..Options::default()
    }
}

/// What operation `i` does: writes value base `i` to the ten keys of group
/// `i % GROUPS`, spread over the keyspaces (S11), or deletes them all.
fn op_group(i: u64) -> (u64, bool) {
    (i % GROUPS, i % 11 == 10)
}

fn key(group: u64, j: u64) -> (usize, Vec<u8>) {
    ((j % 3) as usize, format!("{j}-{group:03}").into_bytes())
}

fn value(i: u64, j: u64) -> Vec<u8> {
    let mut v = format!("base{i:08}-{j}-").into_bytes();
    // Big enough that flushes and compactions take a while.
    v.resize(1500, b'.');
    v
}

/// The state after the first `n` operations: (keyspace, key) → value.
fn model(n: u64) -> BTreeMap<(usize, Vec<u8>), Vec<u8>> {
    let mut m = BTreeMap::new();
    for i in 0..n {
        let (g, delete) = op_group(i);
        for j in 0..10 {
            let k = key(g, j);
            if delete {
                m.remove(&k);
            } else {
                m.insert(k, value(i, j));
            }
        }
    }
    m
}

fn seq(db: &Db) -> u64 {
    db.keyspace("meta")
        .unwrap()
        .get("seq")
        .unwrap()
        .map_or(0, |v| u64::from_be_bytes(v[..8].try_into().unwrap()))
}

/// The child: continues the operation sequence where the database left it,
/// printing `ack N` after operation N is acknowledged.
fn worker(dir: &Path) {
    let opts = Options {
        wal_mmap: std::env::var(NO_MMAP_ENV).as_deref() != Ok("1"),
        ..options()
    };
    let db = Db::open(dir, opts).unwrap();
    let meta = db.keyspace("meta").unwrap();
    let ks: Vec<_> = KEYSPACES.iter().map(|n| db.keyspace(n).unwrap()).collect();
    let mut i = seq(&db);
    let sync = WriteOptions {
        sync: std::env::var(UNSYNCED_ENV).as_deref() != Ok("1"),
    };
    loop {
        let (g, delete) = op_group(i);
        let next = (i + 1).to_be_bytes();
        if i.is_multiple_of(2) {
            let mut b = db.batch();
            for j in 0..10 {
                let (k, key) = key(g, j);
                if delete {
                    b.delete(&ks[k], key).unwrap();
                } else {
                    b.put(&ks[k], key, value(i, j)).unwrap();
                }
            }
            b.put(&meta, "seq", next).unwrap();
            db.write(b, sync).unwrap();
        } else {
            let mut tx = db.begin(Isolation::Serializable).unwrap();
            for j in 0..10 {
                let (k, key) = key(g, j);
                if delete {
                    tx.delete(&ks[k], key).unwrap();
                } else {
                    tx.put(&ks[k], key, value(i, j)).unwrap();
                }
            }
            tx.put(&meta, "seq", next).unwrap();
            tx.commit_with(sync).unwrap();
        }
        println!("ack {i}");
        i += 1;
    }
}

#[test]
fn kill_worker_entry() {
    // Only does something when started by the parent below.
    if let Some(dir) = std::env::var_os(WORKER_ENV) {
        worker(Path::new(&dir));
    }
}

#[test]
fn sigkill_at_random_moments_keeps_the_acknowledged_prefix() {
    let rounds: usize = std::env::var("STRATA_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ u64::from(std::process::id()));
    let mut acked: Option<u64> = None;
    let mut caught_midway = 0;
    let mut in_flight_recovered = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "kill_worker_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, &dir)
            .env(UNSYNCED_ENV, if round % 2 == 1 { "1" } else { "" })
            .env(NO_MMAP_ENV, if round / 2 % 2 == 1 { "1" } else { "" })
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line.strip_prefix("ack ") {
                    let _ = tx.send(n.parse::<u64>().unwrap());
                }
            }
        });
        // Wait for the worker to get going, then kill it at a random moment.
        let started = Instant::now();
        let first = rx.recv_timeout(Duration::from_secs(60));
        assert!(
            first.is_ok(),
            "round {round}: the worker never acknowledged a write"
        );
        std::thread::sleep(Duration::from_millis(rng.below(400)));
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            !status.success(),
            "round {round}: the worker exited by itself"
        );
        reader.join().unwrap();
        for n in std::iter::once(first.unwrap()).chain(rx.try_iter()) {
            acked = Some(acked.map_or(n, |a| a.max(n)));
        }
        let _ = started;

        let db = Db::open(&dir, options()).unwrap();
        let n = seq(&db);
        let must = acked.map_or(0, |a| a + 1);
        assert!(
            n == must || n == must + 1,
            "round {round}: recovered {n} operations, {must} were acknowledged"
        );
        if n == must + 1 {
            in_flight_recovered += 1;
        }
        let expected = model(n);
        let mut got = BTreeMap::new();
        let snap = db.snapshot().unwrap();
        for (k, name) in KEYSPACES.iter().enumerate() {
            let ks = db.keyspace(name).unwrap();
            for r in snap.range::<&[u8], _>(&ks, ..).unwrap() {
                let (key, v) = r.unwrap();
                got.insert((k, key.to_vec()), v.to_vec());
            }
        }
        assert!(
            got == expected,
            "round {round}: state is not the prefix of {n} operations"
        );
        if db.stats().files_removed_at_open > 0 {
            caught_midway += 1;
        }
        db.close().unwrap();
    }
    eprintln!(
        "{rounds} rounds, {} operations acknowledged, flush or compaction caught mid-way in {caught_midway}, write in flight recovered in {in_flight_recovered}",
        acked.map_or(0, |a| a + 1)
    );
    assert!(
        caught_midway > 0,
        "no round caught a flush or compaction mid-way"
    );
}
