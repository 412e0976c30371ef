//! Measures checkpoints and backups on a database of about 1 GB:
//! checkpoint time and bytes written with hard links and with copies,
//! backup create and restore throughput, and the size of an incremental
//! backup after 1% of the keys changed.
//!
//! `cargo run --release -p strata-engine --example checkpoint_backup [DIR] [GB]`
//! (DIR defaults to a temporary directory; GB to 1).

use std::time::Instant;

use strata_engine::backup::BackupEngine;
use strata_engine::{Db, Options, WriteOptions};

const VALUE: usize = 1000;

fn value(i: u64, round: u64) -> Vec<u8> {
    // Incompressible, so the data on disk is the size asked for.
    let mut x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ round;
    (0..VALUE)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn mb(b: u64) -> f64 {
    b as f64 / 1e6
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let tmp = tempfile::tempdir_in(args.get(1).map_or(".", String::as_str))?;
    let gb: f64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1.0);
    let keys = (gb * 1e9 / (VALUE + 16) as f64) as u64;
    let opts = Options {
        memtable_size: 64 << 20,
        ..Options::default()
    };
    let db = Db::open(tmp.path().join("db"), opts.clone())?;
    let ks = db.keyspace("data")?;
    let start = Instant::now();
    for chunk in (0..keys).collect::<Vec<_>>().chunks(1000) {
        let mut b = db.batch();
        for &i in chunk {
            b.put(&ks, format!("key{i:012}"), value(i, 0))?;
        }
        db.write(b, WriteOptions { sync: false })?;
    }
    db.compact()?;
    let size: u64 = db
        .stats()
        .keyspaces
        .iter()
        .flat_map(|k| k.levels.iter().map(|l| l.bytes))
        .sum();
    println!(
        "filled {keys} keys, {:.0} MB of SSTs in {:.1} s",
        mb(size),
        start.elapsed().as_secs_f64()
    );
    // A little in the WAL too, as a live database has.
    for i in 0..1000 {
        ks.put(format!("key{i:012}"), value(i, 1))?;
    }

    let t = Instant::now();
    let linked = db.checkpoint(tmp.path().join("cp-linked"))?;
    let linked_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let copied = db
        .live_files()?
        .write_checkpoint(&tmp.path().join("cp-copied"), false)?;
    let copied_s = t.elapsed().as_secs_f64();
    println!(
        "checkpoint, hard links: {linked_s:.3} s, {:.1} MB written of {:.0} MB ({} of {} files linked)",
        mb(linked.bytes_written),
        mb(linked.total_bytes),
        linked.linked,
        linked.files
    );
    println!(
        "checkpoint, copies:     {copied_s:.3} s, {:.0} MB written; links/copies time ratio {:.4}",
        mb(copied.bytes_written),
        linked_s / copied_s
    );

    let backups = BackupEngine::open(tmp.path().join("backups"))?;
    let t = Instant::now();
    let first = backups.create(&db, &mut |_, _| {})?;
    let create_s = t.elapsed().as_secs_f64();
    println!(
        "backup 1: {:.0} MB copied in {create_s:.2} s: {:.0} MB/s",
        mb(first.bytes_copied),
        mb(first.bytes_copied) / create_s
    );
    // 1% of the keys change.
    let mut b = db.batch();
    for i in (0..keys).step_by(100) {
        b.put(&ks, format!("key{i:012}"), value(i, 2))?;
        if b.len() >= 1000 {
            db.write(
                std::mem::replace(&mut b, db.batch()),
                WriteOptions { sync: false },
            )?;
        }
    }
    db.write(b, WriteOptions { sync: false })?;
    db.flush()?;
    let second = backups.create(&db, &mut |_, _| {})?;
    println!(
        "backup 2 after 1% of keys changed: {:.1} MB copied of {:.0} MB ({:.2}%)",
        mb(second.bytes_copied),
        mb(second.info.bytes),
        100.0 * second.bytes_copied as f64 / second.info.bytes as f64
    );
    let t = Instant::now();
    let r = backups.restore(
        second.info.id,
        &tmp.path().join("restored"),
        None,
        &opts,
        &mut |_, _| {},
    )?;
    let restore_s = t.elapsed().as_secs_f64();
    println!(
        "restore: {:.0} MB in {restore_s:.2} s: {:.0} MB/s",
        mb(r.bytes),
        mb(r.bytes) / restore_s
    );
    let t = Instant::now();
    let problems = backups.verify(None, &mut |_, _| {})?;
    let verify_s = t.elapsed().as_secs_f64();
    println!(
        "verify: {} problems, {:.0} MB/s",
        problems.len(),
        mb(second.info.bytes) / verify_s
    );
    Ok(())
}
