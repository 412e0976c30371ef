//! Benchmarks of the engine's hot paths: puts (WAL append and memtable
//! insert, with and without sync), point reads from the memtable, from the
//! block cache and from the files (mapped, or read with pread), misses
//! answered by the bloom filter, and range scans; and range deletes: one
//! range delete against as many point deletes (time, and the bytes each
//! adds to the database's files), and seeks with and without a range
//! tombstone in a level.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use strata::engine::{Db, Keyspace, Options, SstReads, WriteOptions};

const N: u64 = 200_000;

fn key(i: u64) -> [u8; 16] {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&x.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn value(i: u64) -> [u8; 100] {
    let mut v = [b'v'; 100];
    v[..8].copy_from_slice(&i.to_le_bytes());
    v
}

struct Loaded {
    _dir: tempfile::TempDir,
    db: Db,
    ks: Keyspace,
}

/// A database holding N keys; `flushed` moves them into one sorted run.
fn loaded(opts: Options, flushed: bool) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts).unwrap();
    let ks = db.keyspace("bench").unwrap();
    for i in 0..N {
        ks.put(key(i), value(i)).unwrap();
    }
    if flushed {
        db.compact().unwrap();
    }
    Loaded { _dir: dir, db, ks }
}

fn writes(c: &mut Criterion) {
    let mut g = c.benchmark_group("put");
    for (name, sync) in [("nosync", false), ("sync", true)] {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let ks = db.keyspace("bench").unwrap();
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                i += 1;
                let mut batch = db.batch();
                batch.put(&ks, key(i), value(i)).unwrap();
                db.write(batch, WriteOptions { sync }).unwrap()
            })
        });
    }
    g.finish();
}

fn reads(c: &mut Criterion) {
    let mut g = c.benchmark_group("get");
    let mem = loaded(Options::default(), false);
    let mut i = 0u64;
    g.bench_function("memtable", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(mem.ks.get(key(i)).unwrap())
        })
    });
    drop(mem);

    let cached = loaded(Options::default(), true);
    for i in 0..N {
        cached.ks.get(key(i)).unwrap();
    }
    g.bench_function("block_cache", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(cached.ks.get(key(i)).unwrap())
        })
    });
    g.bench_function("miss_filtered", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            black_box(cached.ks.get(key(i + N)).unwrap())
        })
    });
    g.bench_function("scan_seek_then_100", |b| {
        b.iter_batched(
            || {
                i = (i + 7919) % N;
                key(i)
            },
            |start| cached.ks.range(start..).unwrap().take(100).count(),
            BatchSize::SmallInput,
        )
    });
    drop(cached);

    // No block cache to speak of: every read decodes its block from the
    // mapping, or reads it with pread first.
    for (name, sst_reads) in [
        ("uncached", SstReads::Mmap),
        ("uncached_pread", SstReads::Pread),
    ] {
        let cold = loaded(
            Options {
                block_cache_size: 1,
                sst_reads,
                ..Options::default()
            },
            true,
        );
        g.bench_function(name, |b| {
            b.iter(|| {
                i = (i + 7919) % N;
                black_box(cold.ks.get(key(i)).unwrap())
            })
        });
        let _ = &cold.db;
    }
    g.finish();
}

/// Bytes of every file in `dir`: what writes added to the WAL and tables.
fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum()
}

/// Keys deleted by `range_delete/delete_all_*`: `STRATA_BENCH_DELETE_KEYS`,
/// 1,000,000 by default.
fn delete_keys() -> u64 {
    std::env::var("STRATA_BENCH_DELETE_KEYS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000)
}

/// A database of `n` keys in key order (`i` big-endian), flushed.
fn ordered(n: u64) -> Loaded {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("bench").unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        let mut b = db.batch();
        for &i in chunk {
            b.put(&ks, i.to_be_bytes(), value(i)).unwrap();
        }
        db.write(b, WriteOptions::default()).unwrap();
    }
    db.flush().unwrap();
    Loaded { _dir: dir, db, ks }
}

fn range_deletes(c: &mut Criterion) {
    let n = delete_keys();
    let mut g = c.benchmark_group("range_delete");
    g.sample_size(10);
    // Each sample deletes every key of a fresh database, one way or the
    // other, then flushes: what is timed is the deletes and the flush of
    // what they wrote; the bytes they added to the files are printed.
    for name in ["delete_all_one_range", "delete_all_point_deletes"] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = std::time::Duration::ZERO;
                for _ in 0..iters {
                    let l = ordered(n);
                    let before = dir_bytes(l._dir.path());
                    let start = std::time::Instant::now();
                    if name == "delete_all_one_range" {
                        l.ks.delete_range(0u64.to_be_bytes()..n.to_be_bytes())
                            .unwrap();
                    } else {
                        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
                            let mut b = l.db.batch();
                            for &i in chunk {
                                b.delete(&l.ks, i.to_be_bytes()).unwrap();
                            }
                            l.db.write(b, WriteOptions::default()).unwrap();
                        }
                    }
                    l.db.flush().unwrap();
                    total += start.elapsed();
                    let added = dir_bytes(l._dir.path()).saturating_sub(before);
                    eprintln!("{name}: {n} keys, {added} bytes added to the files");
                    assert_eq!(l.ks.iter().unwrap().count(), 0);
                }
                total
            })
        });
    }
    // Seeks then 10 steps over N random keys in one sorted run: without a
    // range tombstone; with a narrow one (1/4096 of the keys) compacted into
    // the run, where reads pay only for asking; and with one over half the
    // keys, where a seek into the deleted half steps over what it hides. A
    // snapshot taken before the delete keeps the deleted keys in the run.
    for (name, end) in [
        ("seek_then_10", None),
        ("seek_then_10_narrow_tombstone", Some(vec![0x80u8, 0x10])),
        ("seek_then_10_half_deleted", Some(vec![0xffu8; 17])),
    ] {
        let l = loaded(Options::default(), true);
        let snap = l.db.snapshot().unwrap();
        if let Some(end) = &end {
            l.ks.delete_range([0x80u8].as_slice()..end.as_slice())
                .unwrap();
            l.db.compact().unwrap();
        }
        let mut i = 0u64;
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    i = (i + 7919) % N;
                    key(i)
                },
                |start| l.ks.range(start..).unwrap().take(10).count(),
                BatchSize::SmallInput,
            )
        });
        drop(snap);
    }
    g.finish();
}

criterion_group!(benches, writes, reads, range_deletes);
criterion_main!(benches);
