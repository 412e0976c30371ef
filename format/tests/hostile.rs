//! Hostile input: every decoder, fed damaged or random bytes, returns the
//! original data or an error. Never different data, never a panic.

use std::sync::Arc;

use bytes::Bytes;
use proptest::prelude::*;
use strata_format::codec::{Compression, EncryptionKey, Keyring};
use strata_format::key::{InternalKeyRef, ValueKind};
use strata_format::log::{LogEnd, LogHeader, LogKind, LogReadOptions, LogReader, LogWriter};
use strata_format::manifest::VersionEdit;
use strata_format::sst::{
    Footer, Table, TableOptions, TableReadOptions, TableSource, TableWriter, FOOTER_LEN,
};
use strata_format::{Error, Result};

const UID: [u8; 16] = [0x5a; 16];

fn ring() -> (Arc<EncryptionKey>, Keyring) {
    let key = Arc::new(EncryptionKey::new(1, [0x11; 32]));
    let mut ring = Keyring::new();
    ring.insert(key.clone());
    (key, ring)
}

/// Everything a reader can get out of a table: a full forward scan, a full
/// backward scan, and a point read of every key.
type TableContents = (
    Vec<(Vec<u8>, Vec<u8>)>,
    Vec<(Vec<u8>, Vec<u8>)>,
    Vec<Option<Vec<u8>>>,
);

fn entries() -> Vec<(Vec<u8>, Vec<u8>)> {
    (0u32..40)
        .map(|i| {
            let kind = if i % 7 == 3 {
                ValueKind::Delete
            } else {
                ValueKind::Put
            };
            let key = InternalKeyRef {
                user_key: format!("key{:03}", i / 2).as_bytes(),
                ts: u64::from(100 - i % 2),
                kind,
            }
            .to_vec();
            (
                key,
                format!("value-{i}-{}", "x".repeat((i % 5) as usize)).into_bytes(),
            )
        })
        .collect()
}

fn small_table(compression: Compression, key: Option<Arc<EncryptionKey>>) -> Vec<u8> {
    let opts = TableOptions {
        block_size: 256,
        restart_interval: 4,
        compression,
        key,
        ..TableOptions::default()
    };
    let mut w = TableWriter::new(Vec::new(), 3, UID, opts).unwrap();
    for (k, v) in entries() {
        w.add(&k, &v).unwrap();
    }
    w.finish().unwrap().0
}

/// A table read the way the engine's positioned reads read it: every read
/// a copy of the asked range (fewer bytes past the end).
struct Copied(Vec<u8>);

impl TableSource for Copied {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        let start = usize::try_from(offset).map_or(self.0.len(), |o| o.min(self.0.len()));
        let end = start.saturating_add(len).min(self.0.len());
        Ok(Bytes::copy_from_slice(&self.0[start..end]))
    }
}

/// A file cut short after it was opened: it still claims its old length,
/// but reads past `cut` come back short.
struct CutShort {
    data: Vec<u8>,
    cut: usize,
}

impl TableSource for CutShort {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        Copied(self.data[..self.cut].to_vec()).read_at(offset, len)
    }
}

/// A medium that fails every read reaching past `from`.
struct FailsFrom {
    data: Vec<u8>,
    from: u64,
}

impl TableSource for FailsFrom {
    fn len(&self) -> u64 {
        self.data.len() as u64
    }

    fn read_at(&self, offset: u64, len: usize) -> Result<Bytes> {
        if offset + len as u64 > self.from {
            return Err(std::io::Error::other(format!("EIO at offset {offset}")).into());
        }
        Copied(self.data.clone()).read_at(offset, len)
    }
}

/// Reads a table in memory and read by copies (as positioned reads do):
/// both give the same contents or the same error.
fn read_table(bytes: &[u8], ring: &Keyring) -> Result<TableContents> {
    let in_memory = read_table_from(Bytes::copy_from_slice(bytes), ring);
    let copied = read_table_from(Copied(bytes.to_vec()), ring);
    assert_eq!(in_memory, copied, "the two sources read differently");
    in_memory
}

fn read_table_from(source: impl TableSource + 'static, ring: &Keyring) -> Result<TableContents> {
    let opts = TableReadOptions {
        file_number: 3,
        expected_uid: Some(UID),
        keyring: Some(ring),
        expected_key_id: None,
    };
    let table = Table::open_source(source, &opts, None)?;
    let mut it = table.iter();
    let mut forward = Vec::new();
    it.seek_to_first()?;
    while it.valid() {
        forward.push((it.key().to_vec(), it.value().to_vec()));
        it.next()?;
    }
    let mut backward = Vec::new();
    it.seek_to_last()?;
    while it.valid() {
        backward.push((it.key().to_vec(), it.value().to_vec()));
        it.prev()?;
    }
    let mut gets = Vec::new();
    for i in 0..20 {
        let got = table.get(format!("key{i:03}").as_bytes(), u64::MAX)?;
        gets.push(got.map(|e| e.value.to_vec()));
    }
    Ok((forward, backward, gets))
}

fn table_variants() -> Vec<(&'static str, Vec<u8>)> {
    let (key, _) = ring();
    vec![
        ("plain", small_table(Compression::None, None)),
        ("zstd", small_table(Compression::Zstd { level: 3 }, None)),
        (
            "zstd+aes",
            small_table(Compression::Zstd { level: 3 }, Some(key.clone())),
        ),
        ("aes", small_table(Compression::None, Some(key))),
    ]
}

#[test]
fn every_bit_flip_of_a_table_is_detected() {
    let (_, ring) = ring();
    for (name, bytes) in table_variants() {
        let original = read_table(&bytes, &ring).unwrap();
        assert_eq!(original.0.len(), 40);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            match read_table(&bad, &ring) {
                Err(_) => {}
                Ok(got) => assert_eq!(got, original, "{name}: flipping bit {bit} changed the data"),
            }
        }
    }
}

#[test]
fn every_truncation_of_a_table_is_detected() {
    let (_, ring) = ring();
    for (name, bytes) in table_variants() {
        for len in 0..bytes.len() {
            assert!(
                read_table(&bytes[..len], &ring).is_err(),
                "{name}: truncated to {len} bytes still opens"
            );
        }
        // A byte appended: the footer is no longer at the end.
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            read_table(&longer, &ring).is_err(),
            "{name}: extended file still opens"
        );
    }
}

/// A file that shrinks under an open table (as a truncation by another
/// process would make it) gives the original data or an error naming the
/// offset of the read that came back short: never a panic, never other
/// data.
#[test]
fn a_table_cut_short_after_open_reads_the_same_or_fails_at_the_cut() {
    let (_, ring) = ring();
    for (name, bytes) in table_variants() {
        let original = read_table(&bytes, &ring).unwrap();
        let mut short_reads = 0;
        for cut in 0..bytes.len() {
            let source = CutShort {
                data: bytes.clone(),
                cut,
            };
            match read_table_from(source, &ring) {
                Ok(got) => assert_eq!(got, original, "{name}: cut at {cut}"),
                Err(Error::Corruption { what, offset }) => {
                    assert!(what.contains("sst 3"), "{name}: {what}");
                    if what.contains("bytes asked") {
                        // The offset of the read that came back short: a
                        // block or the footer, inside the file.
                        assert!(
                            offset < bytes.len() as u64,
                            "{name}: cut {cut}, error at {offset}"
                        );
                        short_reads += 1;
                    }
                }
                Err(e) => panic!("{name}: cut at {cut}: {e}"),
            }
        }
        assert!(short_reads > 0, "{name}: no short read reported");
    }
}

/// A read the medium fails is an I/O error, whichever block it was for.
#[test]
fn failed_reads_are_io_errors() {
    let (_, ring) = ring();
    for (name, bytes) in table_variants() {
        for from in (0..bytes.len() as u64).step_by(7) {
            let source = FailsFrom {
                data: bytes.clone(),
                from,
            };
            match read_table_from(source, &ring) {
                Err(Error::Io(e)) => assert!(e.message.contains("EIO at offset"), "{e}"),
                other => panic!("{name}: failing from {from}: {other:?}"),
            }
        }
    }
}

#[test]
fn zeroed_pages_of_a_table_are_detected() {
    let (key, ring) = ring();
    let opts = TableOptions {
        block_size: 1024,
        key: Some(key),
        ..TableOptions::default()
    };
    let mut w = TableWriter::new(Vec::new(), 3, UID, opts).unwrap();
    for i in 0u32..2000 {
        let k = InternalKeyRef {
            user_key: format!("key{i:05}").as_bytes(),
            ts: 1,
            kind: ValueKind::Put,
        }
        .to_vec();
        w.add(&k, &[i as u8; 20]).unwrap();
    }
    let bytes = w.finish().unwrap().0;
    assert!(bytes.len() > 4 * 4096);
    for page in 0..bytes.len().div_ceil(4096) {
        let mut bad = bytes.clone();
        let end = ((page + 1) * 4096).min(bad.len());
        bad[page * 4096..end].fill(0);
        let opts = TableReadOptions {
            file_number: 3,
            expected_uid: Some(UID),
            keyring: Some(&ring),
            expected_key_id: None,
        };
        let result = Table::open(Bytes::from(bad), &opts).and_then(|t| {
            let mut it = t.iter();
            it.seek_to_first()?;
            while it.valid() {
                it.next()?;
            }
            Ok(())
        });
        assert!(result.is_err(), "zeroing page {page} went unnoticed");
    }
}

fn small_log(encrypted: bool) -> (Vec<u8>, Vec<Vec<u8>>) {
    let (key, _) = ring();
    let header = LogHeader {
        kind: LogKind::Wal,
        file_number: 8,
        file_uid: UID,
        key_id: encrypted.then_some(1),
    };
    let mut w = LogWriter::new(
        Vec::new(),
        header,
        Compression::None,
        encrypted.then_some(key),
    )
    .unwrap();
    let records: Vec<Vec<u8>> = (0..6)
        .map(|i| format!("record {i} {}", "r".repeat(i * 7)).into_bytes())
        .collect();
    for r in &records {
        w.add_record(r).unwrap();
    }
    (w.into_inner(), records)
}

/// Reads every record; returns them with how the log ended.
fn read_log(
    bytes: &[u8],
    ring: &Keyring,
    durable: Option<u64>,
) -> Result<(Vec<Vec<u8>>, Option<LogEnd>)> {
    let mut r = LogReader::new(
        bytes,
        &LogReadOptions {
            keyring: Some(ring),
            durable_len: durable,
            ..LogReadOptions::new(8, LogKind::Wal)
        },
    )?;
    let mut out = Vec::new();
    while let Some((_, rec)) = r.next_record()? {
        out.push(rec);
    }
    Ok((out, r.end()))
}

#[test]
fn every_bit_flip_of_a_log_is_detected() {
    let (_, ring) = ring();
    for encrypted in [false, true] {
        let (bytes, records) = small_log(encrypted);
        for bit in 0..bytes.len() * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            // Synced in full: any damage is an error.
            match read_log(&bad, &ring, Some(bytes.len() as u64)) {
                Err(_) => {}
                Ok(got) => assert_eq!(got, (records.clone(), Some(LogEnd::Clean)), "bit {bit}"),
            }
            // Durable length unknown: an error, or a torn tail after a prefix
            // of the records, never a changed record.
            match read_log(&bad, &ring, None) {
                Err(_) => {}
                Ok((got, end)) => {
                    assert_eq!(got[..], records[..got.len()], "bit {bit}");
                    if got.len() < records.len() {
                        assert!(
                            matches!(end, Some(LogEnd::TornTail { .. })),
                            "bit {bit}: lost records silently"
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn every_bit_flip_of_a_synced_log_with_markers_is_an_error() {
    // A writer that syncs after each record and says so with a sync marker:
    // damage to any record is provably damage to durable data.
    let (key, ring) = ring();
    for encrypted in [false, true] {
        let header = LogHeader {
            kind: LogKind::Wal,
            file_number: 8,
            file_uid: UID,
            key_id: encrypted.then_some(1),
        };
        let mut w = LogWriter::new(
            Vec::new(),
            header,
            Compression::None,
            encrypted.then(|| key.clone()),
        )
        .unwrap();
        let records: Vec<Vec<u8>> = (0..4).map(|i| format!("rec {i}").into_bytes()).collect();
        for r in &records {
            w.add_record(r).unwrap();
            let synced = w.offset();
            assert!(w.add_sync_marker(synced).unwrap());
        }
        let last_marker = w.offset() - 19;
        let bytes = w.into_inner();
        for bit in 0..last_marker as usize * 8 {
            let mut bad = bytes.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            // The caller knows the uid (the manifest records it), so markers
            // count even when the header is what was damaged.
            let read = LogReader::new(
                &bad,
                &LogReadOptions {
                    keyring: Some(&ring),
                    expected_uid: Some(UID),
                    ..LogReadOptions::new(8, LogKind::Wal)
                },
            )
            .and_then(|mut r| {
                let mut out = Vec::new();
                while let Some((_, rec)) = r.next_record()? {
                    out.push(rec);
                }
                Ok((out, r.end()))
            });
            match read {
                Err(e) => assert!(e.is_corruption(), "bit {bit}: {e}"),
                Ok(got) => panic!("bit {bit} went unnoticed: {got:?}"),
            }
        }
    }
}

#[test]
fn every_truncation_of_a_log_is_a_prefix_or_an_error() {
    let (_, ring) = ring();
    for encrypted in [false, true] {
        let (bytes, records) = small_log(encrypted);
        for len in 0..bytes.len() {
            let cut = &bytes[..len];
            assert!(
                read_log(cut, &ring, Some(bytes.len() as u64)).is_err(),
                "cut at {len} went unnoticed"
            );
            let (got, end) = read_log(cut, &ring, None).unwrap();
            assert_eq!(got[..], records[..got.len()]);
            assert!(got.len() < records.len());
            if end == Some(LogEnd::Clean) {
                // Only a cut exactly at a record boundary reads clean.
                let mut r = LogReader::new(
                    &bytes,
                    &LogReadOptions {
                        keyring: Some(&ring),
                        durable_len: None,
                        ..LogReadOptions::new(8, LogKind::Wal)
                    },
                )
                .unwrap();
                let mut boundaries = vec![0, r.valid_len()];
                while r.next_record().unwrap().is_some() {
                    boundaries.push(r.valid_len());
                }
                assert!(
                    boundaries.contains(&(len as u64)),
                    "cut at {len} read clean"
                );
            }
        }
    }
}

#[test]
fn a_log_read_with_the_wrong_key_or_number_fails() {
    let (bytes, _) = small_log(true);
    let mut wrong = Keyring::new();
    wrong.insert(Arc::new(EncryptionKey::new(1, [0x12; 32])));
    let mut r = LogReader::new(
        &bytes,
        &LogReadOptions {
            keyring: Some(&wrong),
            durable_len: None,
            ..LogReadOptions::new(8, LogKind::Wal)
        },
    )
    .unwrap();
    assert!(matches!(
        r.next_record(),
        Err(strata_format::Error::Decrypt { .. })
    ));
    assert!(matches!(
        LogReader::new(
            &bytes,
            &LogReadOptions {
                keyring: None,
                durable_len: None,
                ..LogReadOptions::new(8, LogKind::Wal)
            }
        ),
        Err(strata_format::Error::MissingKey { .. })
    ));
    assert!(LogReader::new(
        &bytes,
        &LogReadOptions {
            keyring: None,
            durable_len: None,
            ..LogReadOptions::new(9, LogKind::Wal)
        }
    )
    .is_err());
    assert!(LogReader::new(
        &bytes,
        &LogReadOptions {
            keyring: None,
            durable_len: None,
            ..LogReadOptions::new(8, LogKind::Manifest)
        }
    )
    .is_err());
}

proptest! {
    #[test]
    fn random_bytes_never_panic_any_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..400), n in 0u64..4) {
        let (_, ring) = ring();
        let _ = read_table(&bytes, &ring);
        let _ = read_log(&bytes, &ring, None);
        let _ = read_log(&bytes, &ring, Some(n));
        let _ = VersionEdit::decode(&bytes, 0);
        if bytes.len() >= FOOTER_LEN {
            let _ = Footer::decode(&bytes[..FOOTER_LEN], n, 0);
        }
    }

    #[test]
    fn random_damage_to_a_table_never_changes_data(edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8), variant in 0usize..4) {
        let (_, ring) = ring();
        let (_, bytes) = table_variants().swap_remove(variant);
        let original = read_table(&bytes, &ring).unwrap();
        let mut bad = bytes.clone();
        for (at, b) in edits {
            let i = at.index(bad.len());
            bad[i] = b;
        }
        if let Ok(got) = read_table(&bad, &ring) {
            prop_assert_eq!(got, original);
        }
    }
}

#[test]
fn a_marker_copied_into_a_record_does_not_count() {
    // A record whose payload holds a valid marker of another log (another
    // uid) claiming everything durable: damage before it stays a torn tail.
    let (_, ring) = ring();
    let other = LogHeader {
        kind: LogKind::Wal,
        file_number: 8,
        file_uid: [0xaa; 16],
        key_id: None,
    };
    let mut w = LogWriter::new(Vec::new(), other, Compression::None, None).unwrap();
    w.add_record(&[0u8; 4000]).unwrap();
    let start = w.offset();
    assert!(w.add_sync_marker(start).unwrap());
    let planted = w.get_ref()[start as usize..].to_vec();

    let header = LogHeader {
        kind: LogKind::Wal,
        file_number: 8,
        file_uid: UID,
        key_id: None,
    };
    let mut w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
    w.add_record(b"first").unwrap();
    let second = w.add_record(b"second, lost in a crash").unwrap();
    let mut value = vec![b'.'; 5000];
    value.extend_from_slice(&planted);
    w.add_record(&value).unwrap();
    let mut bytes = w.into_inner();
    bytes[second as usize + 9] ^= 0xff;
    let (got, end) = read_log(&bytes, &ring, None).unwrap();
    assert_eq!(got, vec![b"first".to_vec()]);
    assert_eq!(end, Some(LogEnd::TornTail { offset: second }));
}
