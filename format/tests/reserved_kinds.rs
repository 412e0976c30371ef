//! Reserved kinds (value kind 3, block kind 8) are named in the code but
//! have no meaning yet: every decoder refuses them as corruption naming
//! where they are, and every writer refuses to write them. Value kind 4
//! (range delete) was reserved until format version 2 gave it its meaning.

use std::sync::Arc;

use strata_format::batch::{BatchBuilder, BatchRecord};
use strata_format::codec::{
    decode_block, BlockContext, BlockEncoder, BlockKind, Compression, EncryptionKey, MAX_BLOCK_LEN,
};
use strata_format::coding::put_varint64;
use strata_format::key::{InternalKeyRef, ValueKind};
use strata_format::manifest::{FileAdded, VersionEdit};
use strata_format::sst::{TableOptions, TableWriter};
use strata_format::Error;

const RESERVED_VALUE_KINDS: [u8; 1] = [3];

/// An internal key with any kind byte (the writers refuse reserved kinds).
fn raw_key(user_key: &[u8], ts: u64, kind: u8) -> Vec<u8> {
    let mut k = user_key.to_vec();
    k.extend_from_slice(&ts.to_be_bytes());
    k.push(kind);
    k
}

fn expect_corruption(err: Error, offset: u64, code: u8) {
    match &err {
        Error::Corruption { what, offset: at } => {
            assert_eq!(*at, offset, "{err}");
            assert!(
                what.contains(&format!("kind {code}")) && what.contains("reserved"),
                "{err}"
            );
        }
        other => panic!("expected corruption, got {other}"),
    }
}

#[test]
fn the_reserved_kinds_are_the_ones_spec_marks() {
    let reserved: Vec<u8> = ValueKind::ALL
        .into_iter()
        .filter(|k| k.is_reserved())
        .map(|k| k as u8)
        .collect();
    assert_eq!(reserved, RESERVED_VALUE_KINDS);
    for code in 0..=u8::MAX {
        let decoded = ValueKind::from_u8(code);
        assert!(decoded.is_none_or(|k| k as u8 == code && !k.is_reserved()));
    }
    assert!(BlockKind::Blob.is_reserved());
    assert!(!BlockKind::WalRecord.is_reserved());
}

#[test]
fn internal_keys_of_reserved_kinds_are_refused() {
    for code in RESERVED_VALUE_KINDS {
        let key = raw_key(b"user", 7, code);
        let err = InternalKeyRef::parse(&key).unwrap_err();
        // The offset of the kind byte within the key.
        expect_corruption(err, key.len() as u64 - 1, code);
    }
    // Unknown codes stay refused, and the allowed ones parse.
    assert!(InternalKeyRef::parse(&raw_key(b"u", 1, 6)).is_err());
    assert!(InternalKeyRef::parse(&raw_key(b"u", 1, 0)).is_err());
    for code in [1, 2, 4, 5] {
        assert_eq!(
            InternalKeyRef::parse(&raw_key(b"u", 1, code)).unwrap().kind as u8,
            code
        );
    }
}

#[test]
fn batch_ops_of_reserved_kinds_are_refused() {
    for code in RESERVED_VALUE_KINDS {
        // A valid record of two puts, then the second op's kind changed.
        let mut b = BatchBuilder::new();
        b.add(ValueKind::Put, 1, b"a", b"x");
        b.add(ValueKind::Put, 1, b"b", b"y");
        let mut rec = Vec::new();
        b.encode_into(9, &mut rec);
        let second = rec.len() - b.size() / 2;
        assert_eq!(rec[second], ValueKind::Put as u8);
        rec[second] = code;
        let base = 1000;
        let err = BatchRecord::decode(&rec, base).unwrap_err();
        expect_corruption(err, base + second as u64, code);
    }
}

#[test]
fn writers_refuse_reserved_kinds() {
    // Range deletes are not data entries either: they have their own block.
    for code in [3, 4] {
        let mut w = TableWriter::new(Vec::new(), 3, [1; 16], TableOptions::default()).unwrap();
        let err = w.add(&raw_key(b"k", 1, code), b"v").unwrap_err();
        assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
    }
    let ctx = BlockContext {
        file_number: 3,
        file_uid: [1; 16],
        offset: 0,
        kind: BlockKind::Blob,
    };
    let mut enc = BlockEncoder::new(Compression::None, None).unwrap();
    let err = enc.encode(b"chunk", &ctx, &mut Vec::new()).unwrap_err();
    assert!(matches!(err, Error::InvalidArgument(_)), "{err}");
}

#[test]
fn blocks_of_the_reserved_kind_are_refused() {
    let key = Arc::new(EncryptionKey::new(2, [0x33; 32]));
    for key in [None, Some(key)] {
        // A block stored under another kind, presented as a blob chunk.
        let at = BlockContext {
            file_number: 3,
            file_uid: [1; 16],
            offset: 4096,
            kind: BlockKind::Data,
        };
        let mut stored = Vec::new();
        BlockEncoder::new(Compression::None, key.clone())
            .unwrap()
            .encode(b"chunk", &at, &mut stored)
            .unwrap();
        let blob = BlockContext {
            kind: BlockKind::Blob,
            ..at
        };
        let err = decode_block(&stored, &blob, key.as_deref(), MAX_BLOCK_LEN).unwrap_err();
        expect_corruption(err, 4096, BlockKind::Blob as u8);
        // Any bytes at all: an error, never a panic.
        for len in 0..40 {
            let junk: Vec<u8> = (0..len).map(|i| i as u8).collect();
            assert!(decode_block(&junk, &blob, key.as_deref(), MAX_BLOCK_LEN).is_err());
        }
    }
}

#[test]
fn manifest_keys_of_reserved_kinds_are_refused() {
    for code in RESERVED_VALUE_KINDS {
        let edit = VersionEdit {
            files_added: vec![FileAdded {
                keyspace: 0,
                level: 1,
                file_number: 4,
                size: 100,
                file_uid: [2; 16],
                key_id: None,
                smallest: raw_key(b"a", 1, code),
                largest: raw_key(b"z", 1, ValueKind::Put as u8),
                min_ts: 1,
                max_ts: 1,
            }],
            ..VersionEdit::default()
        };
        let err = VersionEdit::decode(&edit.encode(), 0).unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }
    // A reserved kind inside a batch built by hand: still refused.
    let mut rec = 5u64.to_le_bytes().to_vec();
    put_varint64(&mut rec, 1);
    rec.extend_from_slice(&[3, 0, 1, b'k', 0]);
    expect_corruption(BatchRecord::decode(&rec, 0).unwrap_err(), 9, 3);
}
