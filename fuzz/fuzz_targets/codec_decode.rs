//! Decodes arbitrary bytes as a stored block, plaintext and encrypted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_format::codec::{BlockContext, BlockDecoder, BlockKind, EncryptionKey};

#[path = "../src/keys.rs"]
mod keys;

fuzz_target!(|data: &[u8]| {
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
});
