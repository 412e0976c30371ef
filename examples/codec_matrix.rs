//! fillrandom and readrandom for {no compression, zstd} × {plaintext,
//! AES-256-GCM-SIV}, in one run, with ratios against plaintext without
//! compression, and the size on disk.
//!
//! `cargo run --release --example codec_matrix [NUM]` (default 1,000,000
//! keys of 16 bytes; values of 100 bytes that compress to about half, as
//! db_bench makes them). Reads run after a full compaction with a warm block cache large
//! enough to hold the data.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use strata::engine::{Db, MemoryKeyProvider, Options};
use strata::format::codec::Compression;

fn key(i: u64) -> [u8; 16] {
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555_5555_5555_5555;
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&x.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

/// Compressible to about half, as db_bench makes its values: 50 random
/// bytes, repeated.
fn value(i: u64) -> Vec<u8> {
    let mut x = i.wrapping_mul(0x2545_F491_4F6C_DD1D) | 1;
    let half: Vec<u8> = (0..50)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    [&half[..], &half[..]].concat()
}

struct Config {
    name: &'static str,
    zstd: bool,
    aes: bool,
}

struct Loaded {
    _dir: tempfile::TempDir,
    db: Db,
    fill: f64,
    disk: u64,
}

fn options(c: &Config) -> Options {
    Options {
        compression: if c.zstd {
            vec![
                Compression::None,
                Compression::None,
                Compression::Zstd { level: 3 },
            ]
        } else {
            vec![Compression::None]
        },
        key_provider: c
            .aes
            .then(|| Arc::new(MemoryKeyProvider::new(1, [0x5a; 32])) as _),
        block_cache_size: 512 << 20,
        ..Options::default()
    }
}

/// fillrandom into a fresh database; returns ops/s.
fn fill(
    c: &Config,
    n: u64,
    values: &[Vec<u8>],
) -> Result<(tempfile::TempDir, Db, f64), Box<dyn Error>> {
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), options(c))?;
    let ks = db.keyspace("bench")?;
    let started = Instant::now();
    for i in 0..n {
        ks.put(key(i), &values[(i % values.len() as u64) as usize])?;
    }
    db.flush()?;
    Ok((dir, db, n as f64 / started.elapsed().as_secs_f64()))
}

/// readrandom over a warm cache; returns ops/s.
fn read(db: &Db, n: u64) -> Result<f64, Box<dyn Error>> {
    let ks = db.keyspace("bench")?;
    let started = Instant::now();
    for j in 0..n {
        let i = j.wrapping_mul(0x2545_F491_4F6C_DD1D) % n;
        if ks.get(key(i))?.is_none() {
            return Err("a key is missing".into());
        }
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let configs = [
        Config {
            name: "none, plaintext",
            zstd: false,
            aes: false,
        },
        Config {
            name: "none, AES-256-GCM-SIV",
            zstd: false,
            aes: true,
        },
        Config {
            name: "zstd, plaintext",
            zstd: true,
            aes: false,
        },
        Config {
            name: "zstd, AES-256-GCM-SIV",
            zstd: true,
            aes: true,
        },
    ];
    let values: Vec<Vec<u8>> = (0..1024).map(value).collect();
    // Fills in three rounds, each round going through every configuration
    // (the machine is shared and noisy, so neighbours in time share its
    // moods); the median of each counts. The last fill is kept for reads.
    let mut fills = vec![Vec::new(); configs.len()];
    let mut dbs: Vec<Option<(tempfile::TempDir, Db)>> = configs.iter().map(|_| None).collect();
    for _ in 0..3 {
        for (i, c) in configs.iter().enumerate() {
            dbs[i] = None;
            let (dir, db, ops) = fill(c, n, &values)?;
            fills[i].push(ops);
            dbs[i] = Some((dir, db));
        }
    }
    let mut loaded: Vec<Loaded> = Vec::new();
    for (d, f) in dbs.into_iter().zip(&fills) {
        let (dir, db) = d.ok_or("no database")?;
        db.compact()?;
        let disk = db
            .stats()
            .keyspace("bench")
            .ok_or("no stats")?
            .levels
            .iter()
            .map(|l| l.bytes)
            .sum();
        let ks = db.keyspace("bench")?;
        for i in 0..n {
            ks.get(key(i))?; // warm the block cache
        }
        loaded.push(Loaded {
            _dir: dir,
            db,
            fill: median(f),
            disk,
        });
    }
    // Reads in five interleaved rounds; the median of each counts.
    let mut rounds = vec![Vec::new(); configs.len()];
    for _ in 0..5 {
        for (r, l) in rounds.iter_mut().zip(&loaded) {
            r.push(read(&l.db, n)?);
        }
    }
    let reads: Vec<f64> = rounds.iter().map(|r| median(r)).collect();
    for (c, l) in configs.iter().zip(&loaded) {
        let s = l.db.stats();
        eprintln!(
            "{}: block cache {} hits, {} misses",
            c.name, s.block_cache_hits, s.block_cache_misses
        );
    }
    let (base_fill, base_read, base_disk) = (loaded[0].fill, reads[0], loaded[0].disk);
    println!("| codec | fillrandom ops/s | vs base | readrandom ops/s | vs base | SSTs on disk | vs base |");
    println!("|---|---|---|---|---|---|---|");
    for ((c, l), r) in configs.iter().zip(&loaded).zip(&reads) {
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.2} | {:.1} MB | {:.2} |",
            c.name,
            l.fill,
            l.fill / base_fill,
            r,
            r / base_read,
            l.disk as f64 / 1e6,
            l.disk as f64 / base_disk as f64
        );
    }
    Ok(())
}
