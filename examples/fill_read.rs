//! Fills a database with random keys, then reads them back at random: the
//! engine end to end, with its throughput and write amplification.
//!
//! `cargo run --release --example fill_read [NUM]` writes NUM (default
//! 1,000,000) entries of 16-byte keys and 100-byte values in random order
//! (fillrandom), then reads NUM random keys (readrandom), and prints ops/s
//! and what `stats()` reports.

use std::error::Error;
use std::time::Instant;

use strata::engine::{Db, Options};

fn key(i: u64) -> [u8; 16] {
    // A bijection of 0..2^64, so keys are distinct and spread out.
    let x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555_5555_5555_5555;
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&x.to_be_bytes());
    k[8..].copy_from_slice(&i.to_be_bytes());
    k
}

fn main() -> Result<(), Box<dyn Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1_000_000);
    let dir = tempfile::tempdir()?;
    let db = Db::open(dir.path(), Options::default())?;
    let ks = db.keyspace("bench")?;
    let mut value = [0u8; 100];
    for (i, b) in value.iter_mut().enumerate() {
        *b = if i < 50 { (i * 37) as u8 } else { b'v' };
    }

    let started = Instant::now();
    for i in 0..n {
        value[..8].copy_from_slice(&i.to_le_bytes());
        ks.put(key(i), value)?;
    }
    let fill = started.elapsed();
    println!(
        "fillrandom: {n} puts in {fill:.2?}: {:.0} ops/s, {:.1} MB/s",
        n as f64 / fill.as_secs_f64(),
        (n * 116) as f64 / fill.as_secs_f64() / 1e6
    );

    // Reads in an order unrelated to the writes.
    let started = Instant::now();
    let mut found = 0u64;
    for j in 0..n {
        let i = j.wrapping_mul(0x2545_F491_4F6C_DD1D) % n;
        if ks.get(key(i))?.is_some() {
            found += 1;
        }
    }
    let read = started.elapsed();
    println!(
        "readrandom: {n} gets in {read:.2?}: {:.0} ops/s ({found} found)",
        n as f64 / read.as_secs_f64()
    );
    if found != n {
        return Err(format!("{} keys missing", n - found).into());
    }

    let stats = db.stats();
    let k = stats.keyspace("bench").ok_or("no stats")?;
    let levels: Vec<String> = k
        .levels
        .iter()
        .map(|l| format!("{}/{:.1}MB", l.files, l.bytes as f64 / 1e6))
        .collect();
    println!("levels (files/size): {}", levels.join(" "));
    println!(
        "write amplification: {:.2} (SSTs {:.2} + WAL), {} flushes, {} compactions, {} stalls, block cache {} hits / {} misses",
        stats.write_amplification(),
        k.write_amplification(),
        k.flushes,
        k.compactions,
        stats.write_stalls,
        stats.block_cache_hits,
        stats.block_cache_misses,
    );
    db.close()?;
    Ok(())
}
