//! The bodies of the fuzz targets, shared by the cargo-fuzz binaries and by
//! the stable-toolchain test that replays every checked-in seed
//! (`tests/fuzz_corpus.rs` at the workspace root). Each takes arbitrary
//! bytes and panics only on a bug.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use strata_format::batch::BatchRecord;
use strata_format::block::Block;
use strata_format::bloom::BloomFilter;
use strata_format::codec::{BlockContext, BlockDecoder, BlockKind, EncryptionKey, Keyring};
use strata_format::key::compare_internal;
use strata_format::log::{LogKind, LogReadOptions, LogReader};
use strata_format::manifest::VersionEdit;
use strata_format::sst::{Table, TableReadOptions, TableSource};

#[path = "keys.rs"]
mod keys;

/// The target names, as in `fuzz/Cargo.toml` and `fuzz/seeds/`.
pub const TARGETS: [&str; 9] = [
    "sst_open",
    "log_read",
    "manifest_decode",
    "block_iter",
    "codec_decode",
    "bloom_decode",
    "ops",
    "backup_catalog",
    "raft_records",
];

/// Runs the target called `name` on `data`.
pub fn run(name: &str, data: &[u8]) {
    match name {
        "sst_open" => sst_open(data),
        "log_read" => log_read(data),
        "backup_catalog" => backup_catalog(data),
        "raft_records" => raft_records(data),
        "manifest_decode" => manifest_decode(data),
        "block_iter" => block_iter(data),
        "codec_decode" => codec_decode(data),
        "bloom_decode" => bloom_decode(data),
        "ops" => ops(data),
        other => panic!("unknown fuzz target {other}"),
    }
}

fn keyring() -> Keyring {
    let mut ring = Keyring::new();
    ring.insert(Arc::new(EncryptionKey::new(keys::KEY_ID, keys::KEY)));
    ring
}

/// An SST read the way the engine's positioned reads read one: every read
/// a copy of the range asked for (fewer bytes past the end).
struct Copied(Vec<u8>);

impl TableSource for Copied {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> strata_format::Result<Bytes> {
        let start = usize::try_from(offset).map_or(self.0.len(), |o| o.min(self.0.len()));
        let end = start.saturating_add(len).min(self.0.len());
        Ok(Bytes::copy_from_slice(&self.0[start..end]))
    }
}

/// Opens arbitrary bytes as an SST and walks it every way a reader can,
/// once in memory and once read by copies: both read the same.
pub fn sst_open(data: &[u8]) {
    let in_memory = sst_walk(data, Bytes::copy_from_slice(data));
    let copied = sst_walk(data, Copied(data.to_vec()));
    assert_eq!(in_memory, copied, "the two sources read differently");
}

/// What one walk of a table saw: whether it opened, the entries of a
/// forward and a backward scan, and the answers of the probes.
type Walk = Option<(Vec<(Vec<u8>, Vec<u8>)>, usize, Vec<String>)>;

fn sst_walk(data: &[u8], source: impl TableSource + 'static) -> Walk {
    let ring = keyring();
    let opts = TableReadOptions {
        file_number: 7,
        expected_uid: None,
        keyring: Some(&ring),
        expected_key_id: None,
    };
    let table = Table::open_source(source, &opts, None).ok()?;
    // A scan ends, and yields no more entries than the file has bytes. Key
    // order is not asserted: a plaintext file whose checksums were forged
    // to match (the fuzzer learns checksums from comparisons) may hold any
    // order, which only `Db::verify` checks.
    let mut it = table.iter();
    let mut forward = Vec::new();
    if it.seek_to_first().is_ok() {
        while it.valid() {
            forward.push((it.key().to_vec(), it.value().to_vec()));
            if it.next().is_err() {
                break;
            }
        }
    }
    assert!(forward.len() <= data.len(), "more entries than bytes");
    let mut backward = 0;
    if it.seek_to_last().is_ok() {
        while it.valid() && it.prev().is_ok() {
            backward += 1;
        }
    }
    let mut probes = Vec::new();
    for probe in [&b""[..], b"a", b"key", b"\xff\xff"] {
        probes.push(format!("{:?}", table.get(probe, u64::MAX)));
        probes.push(format!("{:?}", table.get(probe, 1)));
    }
    Some((forward, backward, probes))
}

/// Reads arbitrary bytes as a WAL and as a manifest, records and all.
pub fn log_read(data: &[u8]) {
    let ring = keyring();
    for (kind, number) in [(LogKind::Wal, 3), (LogKind::Manifest, 2)] {
        for durable in [None, Some(data.len() as u64 / 2)] {
            let Ok(mut r) = LogReader::new(
                data,
                &LogReadOptions {
                    keyring: Some(&ring),
                    durable_len: durable,
                    ..LogReadOptions::new(number, kind)
                },
            ) else {
                continue;
            };
            while let Ok(Some((at, record))) = r.next_record() {
                if kind == LogKind::Manifest {
                    let _ = VersionEdit::decode(&record, at);
                } else if let Ok(b) = BatchRecord::decode(&record, at) {
                    for op in b.ops() {
                        let _ = (op.key.len(), op.value.len());
                    }
                }
            }
        }
    }
}

/// Decodes arbitrary bytes as a manifest record; what decodes must encode
/// back to the same record.
pub fn manifest_decode(data: &[u8]) {
    if let Ok(edit) = VersionEdit::decode(data, 0) {
        let again = VersionEdit::decode(&edit.encode(), 0).expect("re-encoded record decodes");
        assert_eq!(again, edit);
    }
}

/// Decodes arbitrary bytes as a backup catalog; what decodes re-encodes to
/// the same bytes and names only files inside the backup.
pub fn backup_catalog(data: &[u8]) {
    use strata_format::backup::{is_valid_location, Catalog};
    if let Ok(c) = Catalog::decode(data, "catalog") {
        assert!(c
            .files
            .iter()
            .all(|f| is_valid_location(c.id, &f.stored_as)));
        let again = Catalog::decode(&c.encode(), "catalog").expect("re-encoded catalog decodes");
        assert_eq!(again, c);
    }
}

/// Decodes arbitrary bytes as each record of a replicated node's log and
/// state machine (SPEC §18.1); what decodes re-encodes to a record that
/// decodes to the same value.
pub fn raft_records(data: &[u8]) {
    use strata_format::raft::{
        AppliedRecord, CommandBatchRecord, CommandRecord, EntryRecord, LogIdRecord,
        MembershipRecord, PartialRecord, ResponseRecord, VoteRecord,
    };
    macro_rules! round_trip {
        ($t:ty) => {
            if let Ok(r) = <$t>::decode(data) {
                let again = <$t>::decode(&r.encode()).expect("re-encoded record decodes");
                assert_eq!(again, r);
            }
        };
    }
    round_trip!(LogIdRecord);
    round_trip!(VoteRecord);
    round_trip!(MembershipRecord);
    round_trip!(EntryRecord);
    round_trip!(CommandRecord);
    round_trip!(CommandBatchRecord);
    round_trip!(AppliedRecord);
    round_trip!(PartialRecord);
    round_trip!(ResponseRecord);
    if let Ok(commands) = CommandBatchRecord::decode_payload(data) {
        assert!(!commands.is_empty() || data.get(1) == Some(&11));
    }
}

/// Walks arbitrary bytes as a data block: seeks, forward and backward.
pub fn block_iter(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (probe, block) = rest.split_at((split as usize).min(rest.len()) / 8);
    let Ok(block) = Block::new(Bytes::copy_from_slice(block), 0) else {
        return;
    };
    let mut it = block.iter(compare_internal);
    let mut steps = 0usize;
    if it.seek_to_first().is_ok() {
        while it.valid() && it.next().is_ok() {
            steps += 1;
        }
    }
    assert!(steps <= block.size(), "more entries than bytes");
    if it.seek_to_last().is_ok() {
        while it.valid() && it.prev().is_ok() {}
    }
    let _ = it.seek(probe);
}

/// Decodes arbitrary bytes as a stored block, plaintext and encrypted, and
/// as a storage-system item.
pub fn codec_decode(data: &[u8]) {
    let key = EncryptionKey::new(keys::KEY_ID, keys::KEY);
    let ctx = BlockContext {
        file_number: 7,
        file_uid: keys::UID,
        offset: 0,
        kind: BlockKind::Data,
    };
    let mut d = BlockDecoder::new();
    let _ = d.decode(data, &ctx, None, 1 << 20);
    let _ = d.decode(data, &ctx, Some(&key), 1 << 20);
    // Blob files: the same bytes as a pointer (what decodes re-encodes to
    // the same bytes), a header, and a value record.
    if let Ok(p) = strata_format::blob::BlobPointer::decode(data, 0) {
        assert_eq!(p.to_bytes(), data, "re-encoded blob pointer");
    }
    let _ = strata_format::blob::BlobFileHeader::decode(data);
    let record = strata_format::blob::BlobPointer {
        file_number: 7,
        offset: strata_format::blob::BLOB_HEADER_LEN as u64,
        stored_len: data.len() as u64,
        value_len: (data.len() as u64).min(1 << 20),
    };
    let _ = record.decode_record(data, keys::UID, None, &mut d);
    let _ = record.decode_record(data, keys::UID, Some(&key), &mut d);
    // The storage system's item encoding: what decodes re-encodes to the
    // same value and header.
    if let Ok((value, header)) = strata_format::item::decode_item(data, 1 << 20) {
        let again = strata_format::item::encode_item(&value, &header, false);
        let (v2, h2) = strata_format::item::decode_item(&again, 1 << 20).expect("re-encoded item");
        assert_eq!((v2, h2), (value, header));
    }
}

/// Decodes arbitrary bytes as a bloom filter and probes it.
pub fn bloom_decode(data: &[u8]) {
    let Ok(filter) = BloomFilter::new(data) else {
        return;
    };
    for k in 0..64u32 {
        let _ = filter.may_contain(&k.to_le_bytes());
    }
    let _ = filter.may_contain(data);
}

/// Reads operations from fuzz bytes.
struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let b = self.data.get(self.pos).copied();
        self.pos += 1;
        b
    }
    fn small(&mut self, n: u8) -> u8 {
        self.byte().unwrap_or(0) % n
    }
}

type Model = [BTreeMap<Vec<u8>, Vec<u8>>; 2];

/// One write of a batch or transaction: keyspace, key, value (`None`:
/// delete).
type Write = (usize, Vec<u8>, Option<Vec<u8>>);

fn write_op(inp: &mut Input<'_>) -> Write {
    let ks = inp.small(2) as usize;
    let key = vec![b'k', inp.small(24)];
    let b = inp.byte().unwrap_or(0);
    if b.is_multiple_of(5) {
        return (ks, key, None);
    }
    // Mostly short values; now and then one spanning log and SST blocks.
    let len = if b.is_multiple_of(17) {
        5000
    } else {
        usize::from(b % 48)
    };
    (ks, key, Some(vec![b; len]))
}

/// Op bytes from this one on are range deletes.
const RANGE_DELETE_OP: u8 = 0xf0;

/// A range delete: keyspace, start, and end (`None`: unbounded), over the
/// keys `write_op` writes.
fn range_op(inp: &mut Input<'_>) -> (usize, Vec<u8>, Option<Vec<u8>>) {
    let ks = inp.small(2) as usize;
    let a = inp.small(24);
    let b = inp.small(26);
    let start = vec![b'k', a];
    let end = (b < 25).then(|| vec![b'k', a.max(b).saturating_add(1)]);
    (ks, start, end)
}

fn apply(model: &mut Model, writes: &[Write]) {
    for (ks, k, v) in writes {
        match v {
            Some(v) => model[*ks].insert(k.clone(), v.clone()),
            None => model[*ks].remove(k),
        };
    }
}

fn scan(
    it: impl DoubleEndedIterator<Item = strata_engine::Result<strata_engine::KvPair>>,
    rev: bool,
) -> Vec<(Vec<u8>, Vec<u8>)> {
    let collect = |r: strata_engine::Result<strata_engine::KvPair>| {
        let (k, v) = r.expect("scan");
        (k.to_vec(), v.to_vec())
    };
    if rev {
        let mut v: Vec<_> = it.rev().map(collect).collect();
        v.reverse();
        v
    } else {
        it.map(collect).collect()
    }
}

fn as_vec(m: &BTreeMap<Vec<u8>, Vec<u8>>) -> Vec<(Vec<u8>, Vec<u8>)> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// An arbitrary sequence of puts, deletes, range deletes, batches,
/// transactions, snapshot reads, flushes, compactions and reopens on an
/// in-memory database, checked against a model after every step.
pub fn ops(data: &[u8]) {
    use strata_engine::fs::SimFs;
    use strata_engine::{Db, Isolation, Options, SstReads, WriteOptions};

    let fs = SimFs::new();
    let opts = Options {
        memtable_size: 4096,
        block_size: 256,
        target_file_size: 4096,
        base_level_size: 8192,
        l0_compaction_trigger: 2,
        l0_slowdown_trigger: 8,
        l0_stop_trigger: 12,
        block_cache_size: 64 * 1024,
        history_retention: std::time::Duration::from_secs(3600),
        // Both ways of reading tables, chosen without taking a byte from
        // the input, so existing seeds keep their meaning.
        sst_reads: if data.len().is_multiple_of(2) {
            SstReads::Mmap
        } else {
            SstReads::Pread
        },
        fs: Arc::new(fs),
        ..Options::default()
    };
    let dir = std::path::Path::new("/db");
    let mut db = Db::open(dir, opts.clone()).expect("open");
    let mut model: Model = Default::default();
    // Snapshots with the model as of them; reads of the past by timestamp.
    let mut snaps: Vec<(strata_engine::Snapshot, Model)> = Vec::new();
    let mut past: Vec<(strata_engine::Timestamp, Model)> = Vec::new();
    let mut inp = Input { data, pos: 0 };
    let mut steps = 0;
    while let Some(op) = inp.byte() {
        steps += 1;
        if steps > 120 {
            break;
        }
        let ks: Vec<_> = ["a", "b"]
            .iter()
            .map(|n| db.keyspace(n).expect("keyspace"))
            .collect();
        if op >= RANGE_DELETE_OP {
            // A byte this high was a plain write before range deletes came;
            // seeds made since use it for them.
            let (k, start, end) = range_op(&mut inp);
            let ts = match &end {
                Some(end) => ks[k].delete_range(start.clone()..end.clone()),
                None => ks[k].delete_range(start.clone()..),
            }
            .expect("delete_range");
            model[k].retain(|key, _| *key < start || end.as_ref().is_some_and(|e| key >= e));
            past.push((ts, model.clone()));
            continue;
        }
        match op % 11 {
            0..=2 => {
                let w = write_op(&mut inp);
                let ts = match &w.2 {
                    Some(v) => ks[w.0].put(&w.1, v),
                    None => ks[w.0].delete(&w.1),
                }
                .expect("write");
                apply(&mut model, &[w]);
                past.push((ts, model.clone()));
            }
            3 => {
                let n = 1 + inp.small(8);
                let writes: Vec<Write> = (0..n).map(|_| write_op(&mut inp)).collect();
                let mut b = db.batch();
                for (k, key, v) in &writes {
                    match v {
                        Some(v) => b.put(&ks[*k], key, v).expect("batch put"),
                        None => b.delete(&ks[*k], key).expect("batch delete"),
                    }
                }
                let sync = inp.small(2) == 0;
                let ts = db.write(b, WriteOptions { sync }).expect("batch");
                apply(&mut model, &writes);
                past.push((ts, model.clone()));
            }
            4 => {
                let iso = if inp.small(2) == 0 {
                    Isolation::Snapshot
                } else {
                    Isolation::Serializable
                };
                let mut tx = db.begin(iso).expect("begin");
                let mut mine = model.clone();
                let n = 1 + inp.small(6);
                for _ in 0..n {
                    let (k, key, v) = write_op(&mut inp);
                    // A read of its own writes first.
                    let seen = tx.get(&ks[k], &key).expect("tx get");
                    assert_eq!(seen.as_deref(), mine[k].get(&key).map(|v| &v[..]));
                    match &v {
                        Some(v) => tx.put(&ks[k], &key, v).expect("tx put"),
                        None => tx.delete(&ks[k], &key).expect("tx delete"),
                    }
                    apply(&mut mine, &[(k, key, v)]);
                }
                if inp.small(4) == 0 {
                    tx.rollback();
                } else {
                    // Nothing runs concurrently: the commit cannot conflict.
                    let ts = tx.commit().expect("commit");
                    model = mine;
                    past.push((ts, model.clone()));
                }
            }
            5 => {
                if snaps.len() == 4 {
                    snaps.remove(0);
                }
                snaps.push((db.snapshot().expect("snapshot"), model.clone()));
            }
            6 => {
                if let Some((snap, m)) = snaps.get(usize::from(inp.small(4)) % snaps.len().max(1)) {
                    for (i, k) in ks.iter().enumerate() {
                        let got = scan(snap.range::<&[u8], _>(k, ..).expect("range"), i == 1);
                        assert_eq!(got, as_vec(&m[i]), "snapshot read");
                    }
                }
                if !past.is_empty() {
                    let (ts, m) = &past[usize::from(inp.small(255)) % past.len()];
                    let snap = db.snapshot_at(*ts).expect("snapshot_at");
                    for (i, k) in ks.iter().enumerate() {
                        let got = scan(snap.range::<&[u8], _>(k, ..).expect("range"), false);
                        assert_eq!(got, as_vec(&m[i]), "read as of a past timestamp");
                    }
                }
            }
            7 => db.flush().expect("flush"),
            8 => db.compact().expect("compact"),
            9 => {
                snaps.clear();
                drop(ks);
                db.close().expect("close");
                drop(db);
                db = Db::open(dir, opts.clone()).expect("reopen");
            }
            _ => {
                let k = usize::from(inp.small(2));
                let key = vec![b'k', inp.small(24)];
                let got = ks[k].get(&key).expect("get");
                assert_eq!(got.as_deref(), model[k].get(&key).map(|v| &v[..]), "get");
            }
        }
    }
    for (i, name) in ["a", "b"].iter().enumerate() {
        let k = db.keyspace(name).expect("keyspace");
        assert_eq!(scan(k.iter().expect("iter"), false), as_vec(&model[i]));
        assert_eq!(scan(k.iter().expect("iter"), true), as_vec(&model[i]));
    }
    db.close().expect("close");
}
