//! Benchmarks of transactions and reads of the past: commit throughput at
//! 1, 4 and 8 threads (disjoint keys, and a mix where a tenth of the
//! transactions touch one hot key), synced and not, and `get_at` against
//! `get`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use strata::engine::{Db, Error, Isolation, Options, WriteOptions};

fn commit_many(db: &Db, threads: u64, per_thread: u64, hot: bool, sync: bool) -> Duration {
    let ks = db.keyspace("bench").unwrap();
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (db, ks) = (db.clone(), ks.clone());
            s.spawn(move || {
                for i in 0..per_thread {
                    let key = if hot && i % 10 == 0 {
                        "hot".to_string()
                    } else {
                        format!("t{t}-{i}")
                    };
                    loop {
                        let mut tx = db.begin(Isolation::Serializable).unwrap();
                        let v = tx.get(&ks, &key).unwrap().map_or(0, |v| v.len());
                        tx.put(&ks, &key, vec![b'x'; 100 + v % 3]).unwrap();
                        match tx.commit_with(WriteOptions { sync }) {
                            Ok(_) => break,
                            Err(Error::Conflict { .. }) => continue,
                            Err(e) => panic!("{e}"),
                        }
                    }
                }
            });
        }
    });
    started.elapsed()
}

fn commits(c: &mut Criterion) {
    let mut g = c.benchmark_group("txn_commit");
    g.sample_size(10);
    for (sync, per_thread_total) in [(false, 4000u64), (true, 400u64)] {
        for threads in [1u64, 4, 8] {
            for hot in [false, true] {
                if sync && hot {
                    continue;
                }
                let name = format!(
                    "{}{}_{threads}t",
                    if sync { "sync" } else { "nosync" },
                    if hot { "_hot" } else { "" }
                );
                g.throughput(Throughput::Elements(per_thread_total));
                g.bench_function(&name, |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        for _ in 0..iters {
                            let dir = tempfile::tempdir().unwrap();
                            let db = Db::open(dir.path(), Options::default()).unwrap();
                            total +=
                                commit_many(&db, threads, per_thread_total / threads, hot, sync);
                        }
                        total
                    })
                });
            }
        }
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(
        dir.path(),
        Options {
            history_retention: Duration::from_secs(3600),
            ..Options::default()
        },
    )
    .unwrap();
    let ks = db.keyspace("bench").unwrap();
    let mut stamps = Vec::new();
    for round in 0..4u64 {
        for i in 0..50_000u64 {
            let t = ks.put(i.to_be_bytes(), [round as u8; 100]).unwrap();
            if i == 0 {
                stamps.push(t);
            }
        }
    }
    db.compact().unwrap();
    let mut g = c.benchmark_group("read");
    let mut i = 0u64;
    g.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 7919) % 50_000;
            black_box(ks.get(i.to_be_bytes()).unwrap())
        })
    });
    let past = stamps[1];
    g.bench_function("get_at_past", |b| {
        b.iter(|| {
            i = (i + 7919) % 50_000;
            black_box(ks.get_at(i.to_be_bytes(), past).unwrap())
        })
    });
    g.finish();
}

criterion_group!(benches, commits, reads);
criterion_main!(benches);
