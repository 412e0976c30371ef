//! Round-trip properties of the composite formats: tables, logs and
//! manifest records, under random codec settings.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_format::codec::{Compression, EncryptionKey, Keyring};
use strata_format::key::{compare_internal, seek_key, InternalKeyRef, ValueKind};
use strata_format::log::{LogEnd, LogHeader, LogKind, LogReadOptions, LogReader, LogWriter};
use strata_format::manifest::{FileAdded, FileRemoved, VersionEdit};
use strata_format::sst::{Table, TableOptions, TableReadOptions, TableSource, TableWriter};

const UID: [u8; 16] = *b"0123456789abcdef";

fn keyring() -> (Arc<EncryptionKey>, Keyring) {
    let key = Arc::new(EncryptionKey::new(3, [0x42; 32]));
    let mut ring = Keyring::new();
    ring.insert(key.clone());
    (key, ring)
}

/// A table read the way the engine's positioned reads read it: every read
/// a copy into a buffer of its own.
struct Copied(Vec<u8>);

impl TableSource for Copied {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> strata_format::Result<Bytes> {
        let start = (offset as usize).min(self.0.len());
        let end = start.saturating_add(len).min(self.0.len());
        Ok(Bytes::copy_from_slice(&self.0[start..end]))
    }
}

/// (user key, ts) → (kind, value), the model of a table's contents.
type Model = BTreeMap<(Vec<u8>, std::cmp::Reverse<u64>), (ValueKind, Vec<u8>)>;

fn model() -> impl Strategy<Value = Model> {
    proptest::collection::btree_map(
        (
            proptest::collection::vec(0u8..6, 0..6),
            (0u64..6).prop_map(std::cmp::Reverse),
        ),
        (
            prop_oneof![Just(ValueKind::Put), Just(ValueKind::Delete)],
            proptest::collection::vec(any::<u8>(), 0..40),
        ),
        0..300,
    )
}

fn codec() -> impl Strategy<Value = (Compression, bool, usize, usize)> {
    (
        prop_oneof![
            Just(Compression::None),
            (1i32..4).prop_map(|level| Compression::Zstd { level })
        ],
        any::<bool>(),
        prop_oneof![Just(64usize), Just(512), Just(4096)],
        1usize..20,
    )
}

fn internal(uk: &[u8], ts: u64, kind: ValueKind) -> Vec<u8> {
    InternalKeyRef {
        user_key: uk,
        ts,
        kind,
    }
    .to_vec()
}

fn write_table(
    m: &Model,
    compression: Compression,
    key: Option<Arc<EncryptionKey>>,
    block_size: usize,
    restart: usize,
) -> Vec<u8> {
    let opts = TableOptions {
        block_size,
        restart_interval: restart,
        compression,
        key,
        created_at_micros: 77,
        ..TableOptions::default()
    };
    let mut w = TableWriter::new(Vec::new(), 9, UID, opts).unwrap();
    for ((uk, ts), (kind, v)) in m {
        w.add(&internal(uk, ts.0, *kind), v).unwrap();
    }
    let (out, summary) = w.finish().unwrap();
    assert_eq!(summary.size, out.len() as u64);
    assert_eq!(summary.properties.entries, m.len() as u64);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn table_round_trips(m in model(), (compression, encrypt, block_size, restart) in codec(), probes in proptest::collection::vec((proptest::collection::vec(0u8..6, 0..6), 0u64..7), 1..20)) {
        let (key, ring) = keyring();
        let bytes = write_table(&m, compression, encrypt.then_some(key), block_size, restart);
        let opts = TableReadOptions { file_number: 9, expected_uid: Some(UID), keyring: Some(&ring), expected_key_id: None };
        // In memory (slices of one buffer) and read by copies, as the
        // engine's positioned reads do: the same table either way.
        let tables = [
            Table::open(Bytes::from(bytes.clone()), &opts).unwrap(),
            Table::open_source(Copied(bytes), &opts, None).unwrap(),
        ];
        for table in &tables {
            let props = table.properties();
            prop_assert_eq!(props.entries, m.len() as u64);
            prop_assert_eq!(props.tombstones, m.values().filter(|(k, _)| *k == ValueKind::Delete).count() as u64);
            prop_assert_eq!(props.created_at_micros, 77);
            if let Some(((uk, ts), (kind, _))) = m.iter().next() {
                prop_assert_eq!(&props.smallest_key, &internal(uk, ts.0, *kind));
            }

            // Forward and backward scans give the model exactly.
            let expected: Vec<(Vec<u8>, Vec<u8>)> = m.iter().map(|((uk, ts), (k, v))| (internal(uk, ts.0, *k), v.clone())).collect();
            let mut it = table.iter();
            it.seek_to_first().unwrap();
            let mut got = Vec::new();
            while it.valid() { got.push((it.key().to_vec(), it.value().to_vec())); it.next().unwrap(); }
            prop_assert_eq!(&got, &expected);
            it.seek_to_last().unwrap();
            let mut back = Vec::new();
            while it.valid() { back.push((it.key().to_vec(), it.value().to_vec())); it.prev().unwrap(); }
            back.reverse();
            prop_assert_eq!(&back, &expected);

            for (uk, ts) in probes.iter().cloned() {
                // Point read: the newest version at or below ts.
                let want = m.range((uk.clone(), std::cmp::Reverse(ts))..).next().filter(|((k, _), _)| *k == uk);
                let got = table.get(&uk, ts).unwrap();
                match want {
                    Some(((_, vts), (kind, v))) => {
                        let got = got.expect("version present");
                        prop_assert_eq!(got.ts, vts.0);
                        prop_assert_eq!(got.kind, *kind);
                        prop_assert_eq!(&got.value[..], &v[..]);
                    }
                    None => prop_assert!(got.is_none()),
                }
                // Seek lands on the first entry >= the probe.
                let target = seek_key(&uk, ts);
                let mut it = table.iter();
                it.seek(&target).unwrap();
                let first = expected.iter().find(|(k, _)| compare_internal(k, &target) != std::cmp::Ordering::Less);
                prop_assert_eq!(it.valid(), first.is_some());
                if let Some((k, _)) = first { prop_assert_eq!(it.key(), &k[..]); }
            }
        }
    }

    #[test]
    fn log_round_trips(records in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..9000), 0..30),
                       (compression, encrypt, _, _) in codec(), kind in prop_oneof![Just(LogKind::Wal), Just(LogKind::Manifest)]) {
        let (key, ring) = keyring();
        let header = LogHeader { kind, file_number: 5, file_uid: UID, key_id: encrypt.then_some(3) };
        let mut w = LogWriter::new(Vec::new(), header, compression, encrypt.then(|| key.clone())).unwrap();
        let mut offsets = Vec::new();
        for r in &records { offsets.push(w.add_record(r).unwrap()); }
        let bytes = w.into_inner();
        let mut reader = LogReader::new(&bytes, &LogReadOptions { keyring: Some(&ring), durable_len: Some(bytes.len() as u64), ..LogReadOptions::new(5, kind) }).unwrap();
        prop_assert_eq!(reader.header(), Some(&header));
        for (r, off) in records.iter().zip(&offsets) {
            let (at, payload) = reader.next_record().unwrap().expect("record");
            prop_assert_eq!(at, *off);
            prop_assert_eq!(&payload, r);
        }
        prop_assert!(reader.next_record().unwrap().is_none());
        prop_assert_eq!(reader.end(), Some(LogEnd::Clean));
        prop_assert_eq!(reader.valid_len(), bytes.len() as u64);
    }

    #[test]
    fn manifest_records_round_trip(
        ints in proptest::collection::vec(proptest::option::of(any::<u64>()), 4),
        next_ks in proptest::option::of(any::<u32>()),
        names in proptest::collection::vec((any::<u32>(), "[a-z0-9_]{0,20}"), 0..3),
        dropped in proptest::collection::vec(any::<u32>(), 0..3),
        files in proptest::collection::vec((any::<u32>(), 0u8..7, any::<u64>(), any::<u64>(), any::<[u8; 16]>(), proptest::option::of(any::<u32>()),
                                            proptest::collection::vec(any::<u8>(), 0..10), proptest::collection::vec(any::<u8>(), 0..10), any::<u64>(), any::<u64>()), 0..4),
        removed in proptest::collection::vec((any::<u32>(), 0u8..7, any::<u64>()), 0..4),
        sealed in proptest::collection::vec((any::<u64>(), any::<u64>()), 0..3),
        created in proptest::collection::vec((any::<u64>(), any::<[u8; 16]>()), 0..3),
        skipped in proptest::collection::vec(any::<u64>(), 0..3),
    ) {
        let edit = VersionEdit {
            log_number: ints[0], next_file_number: ints[1], last_timestamp: ints[2], history_horizon: ints[3], next_keyspace_id: next_ks,
            keyspaces_created: names,
            keyspaces_dropped: dropped,
            files_added: files.into_iter().map(|(keyspace, level, file_number, size, file_uid, key_id, s, l, min_ts, max_ts)| FileAdded {
                keyspace, level, file_number, size, file_uid, key_id,
                smallest: internal(&s, min_ts, ValueKind::Put), largest: internal(&l, max_ts, ValueKind::Delete), min_ts, max_ts,
                blob_refs: if file_number % 2 == 0 { vec![(file_number / 2, size)] } else { Vec::new() },
            }).collect(),
            files_removed: removed.into_iter().map(|(keyspace, level, file_number)| FileRemoved { keyspace, level, file_number }).collect(),
            wals_sealed: sealed,
            wals_created: created,
            blob_files_added: skipped.iter().map(|&n| strata_format::manifest::BlobFileAdded {
                file_number: n, file_uid: [n as u8; 16], key_id: (n % 2 == 0).then_some(n as u32), size: n / 3,
            }).collect(),
            blob_files_removed: skipped.iter().map(|n| n / 5).collect(),
            numbers_skipped: skipped,
        };
        prop_assert_eq!(VersionEdit::decode(&edit.encode(), 0).unwrap(), edit);
    }
}

/// A plaintext, uncompressed table in memory (a mapping, in the engine)
/// is read without copies: values are slices of the buffer it was opened
/// from. Read by copies, they are not.
#[test]
fn blocks_of_a_table_in_memory_are_slices_of_it() {
    let mut m = Model::new();
    for i in 0u8..200 {
        m.insert(
            (vec![i / 10, i % 10], std::cmp::Reverse(1)),
            (ValueKind::Put, vec![i; 30]),
        );
    }
    let bytes = Bytes::from(write_table(&m, Compression::None, None, 512, 16));
    let opts = TableReadOptions {
        file_number: 9,
        expected_uid: Some(UID),
        keyring: None,
        expected_key_id: None,
    };
    let inside = |v: &Bytes| {
        let (start, p) = (bytes.as_ptr() as usize, v.as_ptr() as usize);
        p >= start && p + v.len() <= start + bytes.len()
    };
    let table = Table::open(bytes.clone(), &opts).unwrap();
    let copied = Table::open_source(Copied(bytes.to_vec()), &opts, None).unwrap();
    for probe in [[0u8, 0], [9, 9], [19, 9]] {
        let v = table.get(&probe, 5).unwrap().unwrap().value;
        assert!(inside(&v), "{probe:?}: a copy");
        let c = copied.get(&probe, 5).unwrap().unwrap().value;
        assert_eq!(v, c);
        assert!(!inside(&c));
    }
}

/// A table with range tombstones: version 2, the tombstones read back
/// through compression and encryption, the key range covering them, and
/// every flipped bit of the range-deletion block an error.
#[test]
fn range_tombstones_round_trip_through_the_codec() {
    use strata_format::range_del::RangeTombstones;
    use strata_format::sst::{SST_BASE_VERSION, SST_FORMAT_VERSION};
    let (key, ring) = keyring();
    let dels = RangeTombstones::fragment([
        (b"a".to_vec(), b"m".to_vec(), 9),
        (b"f".to_vec(), b"zz".to_vec(), 12),
    ]);
    for (compression, key) in [
        (Compression::None, None),
        (Compression::Zstd { level: 3 }, Some(key.clone())),
    ] {
        let opts = TableOptions {
            compression,
            key: key.clone(),
            ..TableOptions::default()
        };
        let mut w = TableWriter::new(Vec::new(), 9, UID, opts).unwrap();
        w.add(&internal(b"c", 5, ValueKind::Put), b"v").unwrap();
        w.add(&internal(b"g", 15, ValueKind::Put), b"w").unwrap();
        w.set_range_tombstones(dels.clone());
        let (bytes, summary) = w.finish().unwrap();
        let p = &summary.properties;
        assert_eq!(p.entries, 2);
        assert_eq!(p.range_deletions, 4);
        assert_eq!((p.min_ts, p.max_ts), (5, 15));
        assert_eq!(p.smallest_key, internal(b"a", 9, ValueKind::RangeDelete));
        assert_eq!(p.largest_key, internal(b"zz", 0, ValueKind::RangeDelete));
        let opts = TableReadOptions {
            file_number: 9,
            keyring: Some(&ring),
            ..Default::default()
        };
        let table = Table::open(Bytes::from(bytes.clone()), &opts).unwrap();
        assert_eq!(table.footer().version, SST_FORMAT_VERSION);
        assert_eq!(table.range_tombstones(), &dels);
        assert_eq!(table.range_tombstones().covering(b"g", 20), Some(12));
        let h = p.range_deletions_handle.unwrap();
        for at in h.offset..h.offset + h.size {
            for bit in [0, 3, 7] {
                let mut bad = bytes.clone();
                bad[at as usize] ^= 1 << bit;
                assert!(Table::open(Bytes::from(bad), &opts).is_err(), "byte {at}");
            }
        }
    }
    // Without tombstones a table stays at the base version.
    let plain = write_table(&Model::new(), Compression::None, None, 4096, 16);
    let t = Table::open(
        Bytes::from(plain),
        &TableReadOptions {
            file_number: 9,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(t.footer().version, SST_BASE_VERSION);
    assert!(t.range_tombstones().is_empty());
}

#[test]
fn empty_table_opens_and_is_empty() {
    let bytes = write_table(&Model::new(), Compression::None, None, 4096, 16);
    let table = Table::open(
        Bytes::from(bytes),
        &TableReadOptions {
            file_number: 9,
            ..Default::default()
        },
    )
    .unwrap();
    let mut it = table.iter();
    it.seek_to_first().unwrap();
    assert!(!it.valid());
    assert!(table.get(b"x", u64::MAX).unwrap().is_none());
}

#[test]
fn table_writer_refuses_bad_input() {
    let mut w = TableWriter::new(Vec::new(), 1, UID, TableOptions::default()).unwrap();
    w.add(&internal(b"b", 1, ValueKind::Put), b"v").unwrap();
    // Out of order, a duplicate, and not an internal key at all.
    assert!(w.add(&internal(b"a", 1, ValueKind::Put), b"v").is_err());
    let mut w = TableWriter::new(Vec::new(), 1, UID, TableOptions::default()).unwrap();
    w.add(&internal(b"b", 1, ValueKind::Put), b"v").unwrap();
    assert!(w.add(&internal(b"b", 1, ValueKind::Put), b"v").is_err());
    let mut w = TableWriter::new(Vec::new(), 1, UID, TableOptions::default()).unwrap();
    assert!(w.add(b"short", b"v").is_err());
    let long = vec![0u8; 64 * 1024 + 1];
    assert!(w.add(&internal(&long, 1, ValueKind::Put), b"v").is_err());
}

#[test]
fn table_bound_to_its_number_uid_and_key() {
    let (key, ring) = keyring();
    let mut m = Model::new();
    m.insert(
        (b"k".to_vec(), std::cmp::Reverse(1)),
        (ValueKind::Put, b"v".to_vec()),
    );
    let bytes = Bytes::from(write_table(&m, Compression::None, Some(key), 4096, 16));
    let ok = TableReadOptions {
        file_number: 9,
        expected_uid: Some(UID),
        keyring: Some(&ring),
        expected_key_id: None,
    };
    assert!(Table::open(bytes.clone(), &ok).is_ok());
    // Another file number: the footer MAC fails.
    let err = Table::open(
        bytes.clone(),
        &TableReadOptions {
            file_number: 10,
            ..ok
        },
    )
    .unwrap_err();
    assert!(matches!(err, strata_format::Error::Decrypt { .. }), "{err}");
    // Another uid (an older file with the same number).
    assert!(Table::open(
        bytes.clone(),
        &TableReadOptions {
            expected_uid: Some([0; 16]),
            ..ok
        }
    )
    .is_err());
    // No key, or the wrong key under the right id.
    assert!(matches!(
        Table::open(
            bytes.clone(),
            &TableReadOptions {
                keyring: None,
                ..ok
            }
        ),
        Err(strata_format::Error::MissingKey { key_id: 3, .. })
    ));
    let mut wrong = Keyring::new();
    wrong.insert(Arc::new(EncryptionKey::new(3, [0x43; 32])));
    assert!(matches!(
        Table::open(
            bytes,
            &TableReadOptions {
                keyring: Some(&wrong),
                ..ok
            }
        ),
        Err(strata_format::Error::Decrypt { .. })
    ));
}

#[test]
fn newer_format_versions_are_refused_as_such() {
    let mut bytes = write_table(&Model::new(), Compression::None, None, 4096, 16);
    let n = bytes.len();
    bytes[n - 16..n - 12].copy_from_slice(&3u32.to_le_bytes());
    let err = Table::open(
        Bytes::from(bytes),
        &TableReadOptions {
            file_number: 9,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            strata_format::Error::UnsupportedVersion {
                found: 3,
                supported: 2,
                ..
            }
        ),
        "{err}"
    );

    let header = LogHeader {
        kind: LogKind::Wal,
        file_number: 1,
        file_uid: UID,
        key_id: None,
    };
    let mut log = LogWriter::new(Vec::new(), header, Compression::None, None)
        .unwrap()
        .into_inner();
    // The version sits after the fragment header (7) and the magic (8); fix
    // the fragment's crc so only the version is wrong.
    log[15..19].copy_from_slice(&9u32.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&log[4..7]), &log[7..]);
    log[..4].copy_from_slice(&crc.to_le_bytes());
    // The header payload has its own codec crc too: recompute it.
    let payload_end = log.len() - 4;
    let codec_crc = crc32c::crc32c(&log[7..payload_end]);
    log[payload_end..].copy_from_slice(&codec_crc.to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&log[4..7]), &log[7..]);
    log[..4].copy_from_slice(&crc.to_le_bytes());
    let err = LogReader::new(
        &log,
        &LogReadOptions {
            keyring: None,
            durable_len: None,
            ..LogReadOptions::new(1, LogKind::Wal)
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            strata_format::Error::UnsupportedVersion { found: 9, .. }
        ),
        "{err}"
    );
}

#[test]
fn log_records_span_blocks_and_torn_tails_are_reported() {
    let header = LogHeader {
        kind: LogKind::Wal,
        file_number: 2,
        file_uid: UID,
        key_id: None,
    };
    let mut w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
    let big = vec![7u8; 100_000];
    w.add_record(b"first").unwrap();
    let big_at = w.add_record(&big).unwrap();
    let full = w.into_inner();
    assert!(full.len() > 3 * 32 * 1024);
    // Cut inside the big record: the first record survives, the tail is torn.
    let cut = &full[..full.len() - 10];
    let mut r = LogReader::new(
        cut,
        &LogReadOptions {
            keyring: None,
            durable_len: None,
            ..LogReadOptions::new(2, LogKind::Wal)
        },
    )
    .unwrap();
    assert_eq!(r.next_record().unwrap().unwrap().1, b"first");
    assert!(r.next_record().unwrap().is_none());
    assert_eq!(r.end(), Some(LogEnd::TornTail { offset: big_at }));
    assert_eq!(r.valid_len(), big_at);
    // The same cut when the whole file was synced is corruption.
    let mut r = LogReader::new(
        cut,
        &LogReadOptions {
            keyring: None,
            durable_len: Some(full.len() as u64),
            ..LogReadOptions::new(2, LogKind::Wal)
        },
    )
    .unwrap();
    r.next_record().unwrap();
    assert!(r.next_record().unwrap_err().is_corruption());
}

#[test]
fn damage_before_the_tail_is_corruption_at_its_offset() {
    let header = LogHeader {
        kind: LogKind::Manifest,
        file_number: 4,
        file_uid: UID,
        key_id: None,
    };
    let mut w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
    let a = w.add_record(b"aaaa").unwrap();
    w.add_record(b"bbbb").unwrap();
    let unsynced = w.get_ref().clone();
    // The writer synced both records, and says so.
    let synced_len = w.offset();
    assert!(w.add_sync_marker(synced_len).unwrap());
    let mut bytes = w.into_inner();
    bytes[a as usize + 9] ^= 0x10;

    // Without the marker nothing proves the records were durable: the
    // damage is a torn tail and nothing after it is read.
    let mut torn = unsynced.clone();
    torn[a as usize + 9] ^= 0x10;
    let mut r = LogReader::new(&torn, &LogReadOptions::new(4, LogKind::Manifest)).unwrap();
    assert!(r.next_record().unwrap().is_none());
    assert_eq!(r.end(), Some(LogEnd::TornTail { offset: a }));

    let mut r = LogReader::new(
        &bytes,
        &LogReadOptions {
            keyring: None,
            durable_len: None,
            ..LogReadOptions::new(4, LogKind::Manifest)
        },
    )
    .unwrap();
    let err = r.next_record().unwrap_err();
    assert_eq!(
        err,
        strata_format::Error::corruption(
            "Manifest log 4: damaged record before the end of the log",
            a
        )
    );
    // The error repeats rather than skipping ahead.
    assert!(r.next_record().is_err());
}

#[test]
fn encrypted_records_after_block_padding_read_back() {
    // A record that ends 1 to 6 bytes before a block boundary leaves padding;
    // the next record is bound to the offset after the padding.
    let (key, ring) = keyring();
    for pad in 1..=6usize {
        let header = LogHeader {
            kind: LogKind::Wal,
            file_number: 5,
            file_uid: UID,
            key_id: Some(3),
        };
        let mut w =
            LogWriter::new(Vec::new(), header, Compression::None, Some(key.clone())).unwrap();
        let h = w.offset() as usize;
        // fragment header (7) + payload + tag (16) + trailer (10)
        let len = 32 * 1024 - pad - h - 7 - 16 - 10;
        let first = vec![1u8; len];
        w.add_record(&first).unwrap();
        assert_eq!(w.offset() as usize, 32 * 1024 - pad);
        let at = w.add_record(b"after the padding").unwrap();
        assert_eq!(at, 32 * 1024);
        let bytes = w.into_inner();
        let opts = LogReadOptions {
            keyring: Some(&ring),
            durable_len: Some(bytes.len() as u64),
            ..LogReadOptions::new(5, LogKind::Wal)
        };
        let mut r = LogReader::new(&bytes, &opts).unwrap();
        assert_eq!(r.next_record().unwrap().unwrap().1, first);
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            (32 * 1024, b"after the padding".to_vec())
        );
        assert!(r.next_record().unwrap().is_none());
        // A nonzero byte in the padding is damage, not ignored.
        let mut bad = bytes.clone();
        bad[32 * 1024 - 1] = 1;
        let mut r = LogReader::new(&bad, &opts).unwrap();
        r.next_record().unwrap();
        assert!(r.next_record().is_err(), "pad {pad}");
    }
}

#[test]
fn forged_plaintext_files_cannot_replace_encrypted_ones() {
    let (_, ring) = keyring();
    // A plaintext table with the right uid, where the manifest says key 3.
    let mut m = Model::new();
    m.insert(
        (b"k".to_vec(), std::cmp::Reverse(1)),
        (ValueKind::Put, b"forged".to_vec()),
    );
    let forged = Bytes::from(write_table(&m, Compression::None, None, 4096, 16));
    let opts = TableReadOptions {
        file_number: 9,
        expected_uid: Some(UID),
        keyring: Some(&ring),
        expected_key_id: Some(Some(3)),
    };
    assert!(matches!(
        Table::open(forged, &opts),
        Err(strata_format::Error::Decrypt { .. })
    ));
    // A plaintext log where key 3 is expected.
    let header = LogHeader {
        kind: LogKind::Manifest,
        file_number: 5,
        file_uid: UID,
        key_id: None,
    };
    let mut w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
    w.add_record(b"forged edit").unwrap();
    let bytes = w.into_inner();
    let opts = LogReadOptions {
        keyring: Some(&ring),
        expected_key_id: Some(Some(3)),
        ..LogReadOptions::new(5, LogKind::Manifest)
    };
    assert!(matches!(
        LogReader::new(&bytes, &opts),
        Err(strata_format::Error::Decrypt { .. })
    ));
    // And a log of another uid than recorded.
    let opts = LogReadOptions {
        expected_uid: Some([1; 16]),
        ..LogReadOptions::new(5, LogKind::Manifest)
    };
    assert!(LogReader::new(&bytes, &opts).is_err());
}
