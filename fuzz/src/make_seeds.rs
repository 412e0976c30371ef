//! Writes valid files of every kind into `fuzz/seeds/<target>/`, so that a
//! campaign starts from real structures instead of from nothing.

use std::path::Path;
use std::sync::Arc;

use strata_format::block::BlockBuilder;
use strata_format::codec::{BlockContext, BlockEncoder, BlockKind, Compression, EncryptionKey};
use strata_format::key::{InternalKeyRef, ValueKind};
use strata_format::log::{LogHeader, LogKind, LogWriter};
use strata_format::manifest::{FileAdded, VersionEdit};
use strata_format::sst::{TableOptions, TableWriter};

mod keys;

fn ikey(k: &str, ts: u64, kind: ValueKind) -> Vec<u8> {
    InternalKeyRef {
        user_key: k.as_bytes(),
        ts,
        kind,
    }
    .to_vec()
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create seed dir");
    std::fs::write(d.join(name), bytes).expect("write seed");
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
    let key = Arc::new(EncryptionKey::new(keys::KEY_ID, keys::KEY));
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..60)
        .map(|i| {
            let kind = if i % 9 == 0 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            (
                ikey(&format!("key{:03}", i / 2), 100 - (i % 2) as u64, kind),
                format!("v{i}").into_bytes(),
            )
        })
        .collect();

    for (name, compression, k) in [
        ("plain", Compression::None, None),
        ("zstd", Compression::Zstd { level: 1 }, None),
        ("aes", Compression::None, Some(key.clone())),
        (
            "zstd-aes",
            Compression::Zstd { level: 1 },
            Some(key.clone()),
        ),
    ] {
        let opts = TableOptions {
            block_size: 256,
            restart_interval: 4,
            compression,
            key: k.clone(),
            ..TableOptions::default()
        };
        let mut w = TableWriter::new(Vec::new(), 7, keys::UID, opts).expect("writer");
        for (key, value) in &entries {
            w.add(key, value).expect("add");
        }
        write(&dir, "sst_open", name, &w.finish().expect("finish").0);

        for (kind, number, target) in [
            (LogKind::Wal, 3, "log_read"),
            (LogKind::Manifest, 2, "log_read"),
        ] {
            let header = LogHeader {
                kind,
                file_number: number,
                file_uid: keys::UID,
                key_id: k.as_ref().map(|k| k.id()),
            };
            let mut w =
                LogWriter::new(Vec::new(), header, compression, k.clone()).expect("log writer");
            for i in 0..5 {
                let edit = VersionEdit {
                    next_file_number: Some(10 + i),
                    keyspaces_created: vec![(i as u32, format!("ks{i}"))],
                    files_added: vec![FileAdded {
                        keyspace: 0,
                        level: 1,
                        file_number: 9,
                        size: 4096,
                        file_uid: keys::UID,
                        key_id: None,
                        smallest: ikey("a", 1, ValueKind::Put),
                        largest: ikey("z", 9, ValueKind::Put),
                        min_ts: 1,
                        max_ts: 9,
                        blob_refs: Vec::new(),
                    }],
                    ..VersionEdit::default()
                };
                w.add_record(&edit.encode()).expect("record");
                if i % 2 == 1 {
                    let synced = w.offset();
                    w.add_sync_marker(synced).expect("sync marker");
                }
            }
            write(&dir, target, &format!("{kind:?}-{name}"), &w.into_inner());
        }

        let mut b = BlockBuilder::new(4);
        for (key, value) in entries.iter().take(20) {
            b.add(key, value);
        }
        let raw = b.finish();
        let mut block_seed = vec![40u8];
        block_seed.extend_from_slice(&ikey("key005", 50, ValueKind::Put)[..5]);
        block_seed.extend_from_slice(&raw);
        write(&dir, "block_iter", name, &block_seed);
        let ctx = BlockContext {
            file_number: 7,
            file_uid: keys::UID,
            offset: 0,
            kind: BlockKind::Data,
        };
        let mut out = Vec::new();
        BlockEncoder::new(compression, k.clone())
            .expect("encoder")
            .encode(&raw, &ctx, &mut out)
            .expect("encode");
        write(&dir, "codec_decode", name, &out);
    }
    let edit = VersionEdit {
        log_number: Some(4),
        last_timestamp: Some(99),
        keyspaces_dropped: vec![3],
        ..VersionEdit::default()
    };
    write(&dir, "manifest_decode", "edit", &edit.encode());

    let catalog = strata_format::backup::Catalog {
        id: 3,
        created_ms: 1_764_856_200_000,
        ts: 42,
        files: vec![
            strata_format::backup::CatalogFile {
                name: "000012.sst".into(),
                size: 4096,
                crc32c: 0x1a2b_3c4d,
                stored_as: "shared/000012-00112233445566778899aabbccddeeff.sst".into(),
            },
            strata_format::backup::CatalogFile {
                name: "CURRENT".into(),
                size: 16,
                crc32c: 7,
                stored_as: "backups/000003/CURRENT".into(),
            },
        ],
    };
    write(&dir, "backup_catalog", "valid", &catalog.encode());

    {
        use strata_format::raft::*;
        let id = LogIdRecord {
            term: 3,
            node: 2,
            index: 400,
        };
        let cmd = CommandRecord {
            ts_hint: 1_000,
            session: (7, 9),
            keyspaces: vec!["kv".into()],
            ops: vec![1, 0, 1, b'k', 1, b'v'],
            count: 1,
            check: None,
        };
        let txn = CommandRecord {
            check: Some(CheckRecord {
                start_ts: 900,
                serializable: true,
                reads: vec![(0, b"k".to_vec())],
                ranges: vec![(0, BoundRecord::Included(b"a".to_vec()), BoundRecord::Unbounded)],
            }),
            ..cmd.clone()
        };
        let batch = CommandBatchRecord {
            commands: vec![cmd.clone(), txn.clone()],
        };
        write(&dir, "raft_records", "command", &cmd.encode());
        write(&dir, "raft_records", "transaction", &txn.encode());
        write(&dir, "raft_records", "batch", &batch.encode());
        write(
            &dir,
            "raft_records",
            "entry",
            &EntryRecord {
                log_id: id,
                payload: PayloadRecord::Normal(batch.encode()),
            }
            .encode(),
        );
        write(
            &dir,
            "raft_records",
            "partial",
            &PartialRecord {
                log_id: id,
                applied: 1,
                ts: 1_001,
            }
            .encode(),
        );
        write(
            &dir,
            "raft_records",
            "membership",
            &MembershipRecord {
                configs: vec![vec![1, 2, 3]],
                nodes: vec![(1, "127.0.0.1:7001".into())],
            }
            .encode(),
        );
    }

    for (name, value, compress) in [
        ("item-plain", &b"a value"[..], false),
        ("item-zstd", &[b'z'; 4000][..], true),
    ] {
        let header = strata_format::item::ItemHeader {
            stored_at: 1,
            expires_at: Some(2),
            size: value.len() as u64,
            checksum: strata_format::item::item_checksum(value),
            cacheable: true,
        };
        write(
            &dir,
            "codec_decode",
            name,
            &strata_format::item::encode_item(value, &header, compress),
        );
    }

    for (name, n) in [("small", 10u32), ("large", 1000)] {
        let mut b = strata_format::bloom::BloomBuilder::new(10);
        for k in 0..n {
            b.add_key(&k.to_le_bytes());
        }
        write(&dir, "bloom_decode", name, &b.finish());
    }

    // Operation sequences: bytes from a fixed generator, so every kind of
    // step (writes, batches, transactions, snapshots, flushes, compactions,
    // reopens) appears.
    for seed in 1..=6u64 {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bytes: Vec<u8> = (0..(100 * seed as usize))
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        write(&dir, "ops", &format!("seq-{seed}"), &bytes);
    }
    // One with range deletes among them (op bytes of 0xf0 and up).
    let mut x = 7u64.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let bytes: Vec<u8> = (0..400)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let b = x as u8;
            if b % 5 == 0 {
                0xf0 | (b & 0x0f)
            } else {
                b
            }
        })
        .collect();
    write(&dir, "ops", "range-deletes", &bytes);
    println!("seeds written to {}", dir.display());
}
