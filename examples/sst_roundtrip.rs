//! Writes an SST to a file and reads it back: the format layer end to end.
//!
//! `cargo run --release --example sst_roundtrip [ENTRIES]` writes ENTRIES
//! (default 200,000) entries of 16-byte keys and 100-byte values with zstd
//! compression and AES-256-GCM-SIV encryption, reopens the file, scans it,
//! reads every key back, and checks every byte.

use std::error::Error;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use strata::format::codec::{Compression, EncryptionKey, Keyring};
use strata::format::key::{InternalKeyRef, ValueKind};
use strata::format::sst::{Table, TableOptions, TableReadOptions, TableWriter};

fn key(i: u64) -> [u8; 16] {
    // Spread keys over the key space in an order unrelated to i.
    (i.wrapping_mul(0x9E37_79B9_7F4A_7C15) as u128 | (u128::from(i) << 64)).to_be_bytes()
}

fn value(i: u64) -> Vec<u8> {
    let mut v = format!("value-{i:010}-").into_bytes();
    v.resize(100, b'0' + (i % 10) as u8);
    v
}

fn main() -> Result<(), Box<dyn Error>> {
    let n: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("000001.sst");
    let uid = [7u8; 16];
    let master = Arc::new(EncryptionKey::new(1, [0x42; 32]));

    let mut keys: Vec<[u8; 16]> = (0..n).map(key).collect();
    let mut order: Vec<u64> = (0..n).collect();
    order.sort_by_key(|&i| keys[i as usize]);
    keys.sort();

    let started = Instant::now();
    let opts = TableOptions {
        compression: Compression::Zstd { level: 3 },
        key: Some(master.clone()),
        ..TableOptions::default()
    };
    let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
    let mut w = TableWriter::new(file, 1, uid, opts)?;
    let mut ikey = Vec::with_capacity(32);
    for &i in &order {
        ikey.clear();
        InternalKeyRef {
            user_key: &key(i),
            ts: 1,
            kind: ValueKind::Put,
        }
        .encode_into(&mut ikey);
        w.add(&ikey, &value(i))?;
    }
    let (file, summary) = w.finish()?;
    file.into_inner()?.sync_all()?;
    let write_time = started.elapsed();

    let raw = summary.properties.raw_key_bytes + summary.properties.raw_value_bytes;
    println!(
        "wrote {n} entries in {} data blocks: {} bytes on disk for {raw} bytes of keys and values ({:.2}x) in {:.2?}",
        summary.properties.data_blocks,
        summary.size,
        raw as f64 / summary.size as f64,
        write_time,
    );

    let mut ring = Keyring::new();
    ring.insert(master);
    let started = Instant::now();
    let table = Table::open(
        Bytes::from(std::fs::read(&path)?),
        &TableReadOptions {
            file_number: 1,
            expected_uid: Some(uid),
            keyring: Some(&ring),
            expected_key_id: None,
        },
    )?;
    let mut it = table.iter();
    it.seek_to_first()?;
    let mut seen = 0usize;
    while it.valid() {
        let k = InternalKeyRef::parse(it.key())?;
        if k.user_key != keys[seen] {
            return Err(format!("scan: entry {seen} has the wrong key").into());
        }
        seen += 1;
        it.next()?;
    }
    let scan_time = started.elapsed();
    if seen as u64 != n {
        return Err(format!("scan found {seen} entries, wrote {n}").into());
    }

    let started = Instant::now();
    for i in 0..n {
        let e = table
            .get(&key(i), u64::MAX)?
            .ok_or("a written key is missing")?;
        if e.value[..] != value(i)[..] {
            return Err(format!("key {i} has the wrong value").into());
        }
    }
    let absent = (n..n + 100_000)
        .filter(|&i| !table.may_contain(&key(i)))
        .count();
    println!(
        "scanned {n} entries in {scan_time:.2?}; read every key back in {:.2?}; the bloom filter ruled out {absent} of 100000 absent keys",
        started.elapsed()
    );
    println!("all {n} entries verified");
    Ok(())
}
