//! How an item is stored in its keyspace: a small header before the value,
//! so that its metadata comes back exactly and compression is per item.
//!
//! ```text
//! version u8 (1) ‖ flags u8 (bit 0: zstd; bit 1: not cacheable) ‖ stored_at u64 LE
//! ‖ expires_at u64 LE (0: none) ‖ size u64 LE ‖ checksum u64 LE ‖ payload
//! ```
//!
//! `size` and `checksum` (xxh3-64) are those of the value as given; the
//! payload is the value, zstd-compressed when the flag says so.

use strata_engine::Timestamp;

use crate::error::{Result, StorageError};
use crate::types::{StorageKey, StorageMetadata};

const VERSION: u8 = 1;
const ZSTD: u8 = 1;
const NO_CACHE: u8 = 2;
const HEADER: usize = 2 + 8 * 4;

/// Values at most this large are never worth compressing.
const MIN_COMPRESS: usize = 64;

/// Encodes `value` with its metadata; compresses when asked and when it
/// saves at least an eighth.
#[cfg(test)]
pub(crate) fn encode(value: &[u8], meta: &StorageMetadata, compress: bool) -> Vec<u8> {
    encode_with(value, meta, compress, true)
}

/// [`encode`], recording whether read caches may keep the item.
pub(crate) fn encode_with(
    value: &[u8],
    meta: &StorageMetadata,
    compress: bool,
    cacheable: bool,
) -> Vec<u8> {
    let mut flags = if cacheable { 0 } else { NO_CACHE };
    let mut payload: Option<Vec<u8>> = None;
    if compress && value.len() >= MIN_COMPRESS {
        if let Ok(c) = zstd::bulk::compress(value, 3) {
            if c.len() <= value.len() - value.len() / 8 {
                flags |= ZSTD;
                payload = Some(c);
            }
        }
    }
    let body = payload.as_deref().unwrap_or(value);
    let mut out = Vec::with_capacity(HEADER + body.len());
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&meta.stored_at.as_u64().to_le_bytes());
    out.extend_from_slice(&meta.expires_at.map_or(0, |t| t.as_u64()).to_le_bytes());
    out.extend_from_slice(&meta.size.to_le_bytes());
    out.extend_from_slice(&meta.checksum.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Decodes a stored item; any damage is [`StorageError::Corrupt`].
pub(crate) fn decode(key: &StorageKey, bytes: &[u8]) -> Result<(Vec<u8>, StorageMetadata)> {
    let corrupt = |reason: &str| StorageError::Corrupt {
        key: key.clone(),
        reason: reason.to_owned(),
    };
    if bytes.len() < HEADER {
        return Err(corrupt("shorter than its header"));
    }
    if bytes[0] != VERSION {
        return Err(corrupt("unknown item format version"));
    }
    let flags = bytes[1];
    if flags & !(ZSTD | NO_CACHE) != 0 {
        return Err(corrupt("unknown flags"));
    }
    let word = |i: usize| {
        let at = 2 + 8 * i;
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let (stored_at, expires_at, size, checksum) = (word(0), word(1), word(2), word(3));
    let body = &bytes[HEADER..];
    let value = match flags & ZSTD {
        0 => body.to_vec(),
        _ => {
            // The recorded size bounds the allocation.
            let cap = usize::try_from(size).map_err(|_| corrupt("size"))?;
            if cap > crate::MAX_VALUE_LEN {
                return Err(corrupt("recorded size beyond the value limit"));
            }
            zstd::bulk::decompress(body, cap).map_err(|_| corrupt("bad zstd payload"))?
        }
    };
    if value.len() as u64 != size || checksum_of(&value) != checksum {
        return Err(corrupt("size or checksum mismatch"));
    }
    Ok((
        value,
        StorageMetadata {
            key: key.clone(),
            size,
            stored_at: Timestamp(stored_at),
            expires_at: (expires_at != 0).then_some(Timestamp(expires_at)),
            checksum,
        },
    ))
}

/// Whether read caches may keep this stored item.
pub(crate) fn cacheable(bytes: &[u8]) -> bool {
    bytes.get(1).is_some_and(|f| f & NO_CACHE == 0)
}

/// The checksum the metadata carries.
pub(crate) fn checksum_of(value: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        let key = StorageKey::new("k");
        for (value, compress) in [
            (vec![7u8; 1000], true),
            (b"short".to_vec(), true),
            (vec![1, 2, 3], false),
        ] {
            let meta = StorageMetadata {
                key: key.clone(),
                size: value.len() as u64,
                stored_at: Timestamp(5),
                expires_at: Some(Timestamp(9)),
                checksum: checksum_of(&value),
            };
            let enc = encode(&value, &meta, compress);
            let (v, m) = decode(&key, &enc).unwrap();
            assert_eq!(v, value);
            assert_eq!(m, meta);
            for i in 0..enc.len() {
                let mut bad = enc.clone();
                bad[i] ^= 0x10;
                if let Ok((v, m)) = decode(&key, &bad) {
                    // Only the timestamps are not covered by the checksum.
                    assert_eq!(v, value);
                    assert_eq!((m.size, m.checksum), (meta.size, meta.checksum));
                }
            }
        }
        let big = vec![0u8; 100_000];
        let meta = StorageMetadata {
            key: key.clone(),
            size: 100_000,
            stored_at: Timestamp(1),
            expires_at: None,
            checksum: checksum_of(&big),
        };
        assert!(encode(&big, &meta, true).len() < 1000);
    }
}
