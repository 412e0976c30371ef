//! How the storage system stores one item in its keyspace: a fixed header
//! before the value, so that the item's metadata comes back exactly and
//! compression is chosen per item.
//!
//! ```text
//! version u8 (1) ‖ flags u8 (bit 0: zstd; bit 1: not cacheable)
//! ‖ stored_at u64 LE ‖ expires_at u64 LE (0: none) ‖ size u64 LE
//! ‖ checksum u64 LE ‖ payload
//! ```
//!
//! `size` and `checksum` (xxh3-64) are those of the value as given; the
//! payload is the value, zstd-compressed when the flag says so (only when
//! that saves at least an eighth). The engine's block checksums (and, when
//! encrypted, authentication) protect the bytes at rest; the checksum here
//! also catches a wrong decompression.

use std::borrow::Cow;

use crate::error::{Error, Result};

const VERSION: u8 = 1;
const ZSTD: u8 = 1;
const NO_CACHE: u8 = 2;
/// Bytes of the header.
pub const ITEM_HEADER_LEN: usize = 2 + 8 * 4;

/// The header's fields as `(name, offset, size)`, in order; they tile
/// [`ITEM_HEADER_LEN`] bytes, and the payload follows. SPEC.md §16.1
/// tabulates this layout.
pub const ITEM_HEADER_LAYOUT: [(&str, usize, usize); 6] = [
    ("version", 0, 1),
    ("flags", 1, 1),
    ("stored_at", 2, 8),
    ("expires_at", 10, 8),
    ("size", 18, 8),
    ("checksum", 26, 8),
];

/// The header's version byte (the only version there is).
pub const ITEM_VERSION: u8 = VERSION;

/// The bits of the flags byte as `(name, mask)`; any other bit set is
/// refused.
pub const ITEM_FLAGS: [(&str, u8); 2] = [("zstd", ZSTD), ("not cacheable", NO_CACHE)];

/// Values shorter than this are never worth compressing.
const MIN_COMPRESS: usize = 64;

/// What the header of an item records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemHeader {
    /// When it was stored (a raw timestamp).
    pub stored_at: u64,
    /// When it expires (a raw timestamp), if it does.
    pub expires_at: Option<u64>,
    /// The value's size.
    pub size: u64,
    /// xxh3-64 of the value.
    pub checksum: u64,
    /// Whether read caches may keep it.
    pub cacheable: bool,
}

/// xxh3-64, the checksum an item header records.
pub fn item_checksum(value: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(value)
}

/// Encodes `value` under `header` (whose size and checksum must be the
/// value's), compressing when asked and worthwhile.
pub fn encode_item(value: &[u8], header: &ItemHeader, compress: bool) -> Vec<u8> {
    let mut flags = if header.cacheable { 0 } else { NO_CACHE };
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
    let mut out = Vec::with_capacity(ITEM_HEADER_LEN + body.len());
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&header.stored_at.to_le_bytes());
    out.extend_from_slice(&header.expires_at.unwrap_or(0).to_le_bytes());
    out.extend_from_slice(&header.size.to_le_bytes());
    out.extend_from_slice(&header.checksum.to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// True when read caches may keep the encoded item.
pub fn item_cacheable(bytes: &[u8]) -> bool {
    bytes.get(1).is_some_and(|f| f & NO_CACHE == 0)
}

/// The header of an encoded item, without reading its payload (the
/// payload's checksum is not verified: [`decode_item`] does that).
pub fn decode_item_header(bytes: &[u8]) -> Result<ItemHeader> {
    let corrupt = |what: &str| Error::corruption(format!("item: {what}"), 0);
    let header = bytes
        .get(..ITEM_HEADER_LEN)
        .ok_or_else(|| corrupt("shorter than its header"))?;
    if header[0] != VERSION {
        return Err(corrupt("unknown format version"));
    }
    let flags = header[1];
    if flags & !(ZSTD | NO_CACHE) != 0 {
        return Err(corrupt("unknown flags"));
    }
    let word = |i: usize| {
        let at = 2 + 8 * i;
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let expires_at = word(1);
    Ok(ItemHeader {
        stored_at: word(0),
        expires_at: (expires_at != 0).then_some(expires_at),
        size: word(2),
        checksum: word(3),
        cacheable: flags & NO_CACHE == 0,
    })
}

/// Decodes an item; a value larger than `max_len` is refused before any
/// allocation. Any damage is [`Error::Corruption`].
pub fn decode_item(bytes: &[u8], max_len: usize) -> Result<(Vec<u8>, ItemHeader)> {
    decode_item_cow(bytes, max_len).map(|(v, h)| (v.into_owned(), h))
}

/// [`decode_item`], borrowing the payload from `bytes` when it is stored
/// uncompressed.
pub fn decode_item_cow(bytes: &[u8], max_len: usize) -> Result<(Cow<'_, [u8]>, ItemHeader)> {
    let corrupt = |what: &str| Error::corruption(format!("item: {what}"), 0);
    let header = decode_item_header(bytes)?;
    let body = &bytes[ITEM_HEADER_LEN..];
    let value = if bytes[1] & ZSTD == 0 {
        Cow::Borrowed(body)
    } else {
        let cap = usize::try_from(header.size)
            .ok()
            .filter(|&n| n <= max_len)
            .ok_or_else(|| corrupt("recorded size beyond the value limit"))?;
        Cow::Owned(zstd::bulk::decompress(body, cap).map_err(|_| corrupt("bad zstd payload"))?)
    };
    if value.len() as u64 != header.size || item_checksum(&value) != header.checksum {
        return Err(corrupt("size or checksum mismatch"));
    }
    Ok((value, header))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_damage() {
        for (value, compress, cacheable) in [
            (vec![7u8; 1000], true, true),
            (b"short".to_vec(), true, false),
            (vec![1, 2, 3], false, true),
        ] {
            let header = ItemHeader {
                stored_at: 5,
                expires_at: Some(9),
                size: value.len() as u64,
                checksum: item_checksum(&value),
                cacheable,
            };
            let enc = encode_item(&value, &header, compress);
            assert_eq!(item_cacheable(&enc), cacheable);
            let (v, h) = decode_item(&enc, 1 << 20).unwrap();
            assert_eq!((v.as_slice(), h), (value.as_slice(), header));
            for i in 0..enc.len() {
                let mut bad = enc.clone();
                bad[i] ^= 0x10;
                if let Ok((v, h)) = decode_item(&bad, 1 << 20) {
                    // Only the timestamps and the cache flag are not covered
                    // by the checksum.
                    assert_eq!(v, value);
                    assert_eq!((h.size, h.checksum), (header.size, header.checksum));
                }
            }
        }
        let big = vec![0u8; 100_000];
        let header = ItemHeader {
            stored_at: 1,
            expires_at: None,
            size: 100_000,
            checksum: item_checksum(&big),
            cacheable: true,
        };
        let enc = encode_item(&big, &header, true);
        assert!(enc.len() < 1000);
        assert!(decode_item(&enc, 1000).is_err(), "the size bound holds");
    }
}
