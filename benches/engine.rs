//! Benchmarks of the engine's hot paths: puts (WAL append and memtable
//! insert, with and without sync), point reads from the memtable, from the
//! block cache and from the files (mapped, or read with pread), misses
//! answered by the bloom filter, and range scans.

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

criterion_group!(benches, writes, reads);
criterion_main!(benches);
