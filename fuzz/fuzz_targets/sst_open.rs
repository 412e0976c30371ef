//! Opens arbitrary bytes as an SST and walks it every way a reader can.
#![no_main]

use std::sync::Arc;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_format::codec::{EncryptionKey, Keyring};
use strata_format::sst::{Table, TableReadOptions};

#[path = "../src/keys.rs"]
mod keys;

fuzz_target!(|data: &[u8]| {
    let mut ring = Keyring::new();
    ring.insert(Arc::new(EncryptionKey::new(keys::KEY_ID, keys::KEY)));
    let opts = TableReadOptions {
        file_number: 7,
        expected_uid: None,
        keyring: Some(&ring),
        expected_key_id: None,
    };
    let Ok(table) = Table::open(Bytes::copy_from_slice(data), &opts) else {
        return;
    };
    let mut it = table.iter();
    if it.seek_to_first().is_ok() {
        while it.valid() && it.next().is_ok() {}
    }
    if it.seek_to_last().is_ok() {
        while it.valid() && it.prev().is_ok() {}
    }
    for probe in [&b""[..], b"a", b"key", b"\xff\xff"] {
        let _ = table.get(probe, u64::MAX);
        let _ = table.get(probe, 1);
    }
});
