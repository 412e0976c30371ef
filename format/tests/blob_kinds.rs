//! Value kind 3 (blob pointer) and block kind 8 (blob record) were reserved
//! until blob files gave them their meaning: every decoder now takes them,
//! and no kind is reserved any more.

use std::sync::Arc;

use strata_format::batch::{BatchBuilder, BatchRecord};
use strata_format::blob::{encode_record, BlobPointer, BLOB_HEADER_LEN};
use strata_format::codec::{BlockDecoder, BlockEncoder, BlockKind, Compression, EncryptionKey};
use strata_format::key::{InternalKeyRef, ValueKind};
use strata_format::manifest::{BlobFileAdded, FileAdded, VersionEdit};
use strata_format::sst::{TableOptions, TableWriter};

/// An internal key with any kind byte.
fn raw_key(user_key: &[u8], ts: u64, kind: u8) -> Vec<u8> {
    let mut k = user_key.to_vec();
    k.extend_from_slice(&ts.to_be_bytes());
    k.push(kind);
    k
}

#[test]
fn no_kind_is_reserved() {
    assert!(ValueKind::ALL.iter().all(|k| !k.is_reserved()));
    assert!(BlockKind::ALL.iter().all(|k| !k.is_reserved()));
    for code in 0..=u8::MAX {
        let decoded = ValueKind::from_u8(code);
        assert_eq!(decoded.is_some(), (1..=5).contains(&code), "code {code}");
    }
    assert_eq!(
        InternalKeyRef::parse(&raw_key(b"u", 1, 3)).unwrap().kind,
        ValueKind::BlobPointer
    );
    assert!(InternalKeyRef::parse(&raw_key(b"u", 1, 6)).is_err());
}

#[test]
fn batches_and_tables_carry_blob_pointers() {
    let p = BlobPointer {
        file_number: 9,
        offset: BLOB_HEADER_LEN as u64,
        stored_len: 20,
        value_len: 10,
    };
    let mut b = BatchBuilder::new();
    b.add(ValueKind::BlobPointer, 1, b"a", &p.to_bytes());
    let mut rec = Vec::new();
    b.encode_into(9, &mut rec);
    let decoded = BatchRecord::decode(&rec, 0).unwrap();
    let op = decoded.ops()[0];
    assert_eq!(op.kind, ValueKind::BlobPointer);
    assert_eq!(BlobPointer::decode(op.value, 0).unwrap(), p);

    let mut w = TableWriter::new(Vec::new(), 3, [1; 16], TableOptions::default()).unwrap();
    w.add(&raw_key(b"k", 1, 3), &p.to_bytes()).unwrap();
    // Range deletes are still not data entries: they have their own block.
    assert!(w.add(&raw_key(b"l", 1, 4), b"m").is_err());
}

#[test]
fn blob_records_encode_and_decode() {
    let key = Arc::new(EncryptionKey::new(2, [0x33; 32]));
    for key in [None, Some(key)] {
        let mut enc = BlockEncoder::new(Compression::None, key.clone()).unwrap();
        let mut out = Vec::new();
        let p = encode_record(&mut enc, 3, [1; 16], 4096, b"chunk", &mut out).unwrap();
        let got = p
            .decode_record(&out, [1; 16], key.as_deref(), &mut BlockDecoder::new())
            .unwrap();
        assert_eq!(&got[..], b"chunk");
        // Any bytes at all: an error, never a panic.
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let q = BlobPointer {
                stored_len: len as u64,
                ..p
            };
            assert!(q
                .decode_record(&junk, [1; 16], key.as_deref(), &mut BlockDecoder::new())
                .is_err());
        }
    }
}

#[test]
fn manifest_blob_fields_round_trip_and_references_need_their_file() {
    let file = FileAdded {
        keyspace: 2,
        level: 1,
        file_number: 4,
        size: 100,
        file_uid: [2; 16],
        key_id: None,
        smallest: raw_key(b"a", 1, 3),
        largest: raw_key(b"z", 1, 1),
        min_ts: 1,
        max_ts: 1,
        blob_refs: vec![(7, 1000), (8, 20)],
    };
    let edit = VersionEdit {
        files_added: vec![file.clone()],
        blob_files_added: vec![BlobFileAdded {
            file_number: 8,
            file_uid: [5; 16],
            key_id: Some(3),
            size: 4000,
        }],
        blob_files_removed: vec![6],
        ..VersionEdit::default()
    };
    assert_eq!(VersionEdit::decode(&edit.encode(), 0).unwrap(), edit);
    // References to a file the record does not add are corruption: the
    // reference field follows its file's field, so it is what the file's
    // encoding with references adds to the one without.
    let with = VersionEdit {
        files_added: vec![file.clone()],
        ..VersionEdit::default()
    }
    .encode();
    let without = VersionEdit {
        files_added: vec![FileAdded {
            blob_refs: Vec::new(),
            ..file
        }],
        ..VersionEdit::default()
    }
    .encode();
    let refs_alone = &with[without.len()..];
    assert!(VersionEdit::decode(refs_alone, 0)
        .unwrap_err()
        .is_corruption());
}
