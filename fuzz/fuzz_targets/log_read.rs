//! Reads arbitrary bytes as a WAL and as a manifest, records and all.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use strata_format::batch::BatchRecord;
use strata_format::codec::{EncryptionKey, Keyring};
use strata_format::log::{LogKind, LogReadOptions, LogReader};
use strata_format::manifest::VersionEdit;

#[path = "../src/keys.rs"]
mod keys;

fuzz_target!(|data: &[u8]| {
    let mut ring = Keyring::new();
    ring.insert(Arc::new(EncryptionKey::new(keys::KEY_ID, keys::KEY)));
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
                } else {
                    let _ = BatchRecord::decode(&record, at);
                }
            }
        }
    }
});
