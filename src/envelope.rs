//! Items as the key-value provider stores them: the format crate's item
//! encoding ([`strata_format::item`]), with the storage system's types.

use strata_engine::Timestamp;
use strata_format::item::{decode_item, decode_item_cow, encode_item, ItemHeader};

use crate::error::{Result, StorageError};
use crate::types::{StorageItem, StorageKey, StorageMetadata, VersionInfo};

/// Encodes `value` with its metadata.
pub(crate) fn encode_with(
    value: &[u8],
    meta: &StorageMetadata,
    compress: bool,
    cacheable: bool,
) -> Vec<u8> {
    let header = ItemHeader {
        stored_at: meta.stored_at.as_u64(),
        expires_at: meta.expires_at.map(Timestamp::as_u64),
        size: meta.size,
        checksum: meta.checksum,
        cacheable,
    };
    encode_item(value, &header, compress)
}

/// The payload and header of a stored item, borrowed from `bytes` when it
/// is not compressed; the reason it does not decode otherwise. For readers
/// of many items that name the key only on failure.
pub(crate) fn decode_payload(
    bytes: &[u8],
) -> std::result::Result<(std::borrow::Cow<'_, [u8]>, ItemHeader), String> {
    decode_item_cow(bytes, crate::MAX_VALUE_LEN).map_err(|e| e.to_string())
}

/// Decodes a stored item; any damage is [`StorageError::Corrupt`]. The
/// metadata's times are the header's: [`stored_item`] replaces them with
/// the version's, which the engine knows.
pub(crate) fn decode(key: &StorageKey, bytes: &[u8]) -> Result<(Vec<u8>, StorageMetadata)> {
    let (value, h) =
        decode_item(bytes, crate::MAX_VALUE_LEN).map_err(|e| StorageError::Corrupt {
            key: key.clone(),
            reason: e.to_string(),
        })?;
    Ok((
        value,
        StorageMetadata {
            key: key.clone(),
            size: h.size,
            stored_at: Timestamp(h.stored_at),
            expires_at: h.expires_at.map(Timestamp),
            checksum: h.checksum,
            version: None,
        },
    ))
}

/// A stored item as callers see it, read from the engine: its times are
/// the version's (commit timestamp, engine expiry).
pub(crate) fn stored_item(key: &StorageKey, entry: &strata_engine::Entry) -> Result<StorageItem> {
    let (value, mut metadata) = decode(key, &entry.value)?;
    if let Some(ts) = entry.ts {
        metadata = metadata.committed(ts);
    }
    if entry.expires_at.is_some() {
        metadata.expires_at = entry.expires_at;
    }
    Ok(StorageItem {
        key: key.clone(),
        value,
        metadata,
        from_cache: false,
    })
}

/// The versions of a key (newest first, as the engine lists them), each
/// decoded; a deletion is a version without an item, and so is a version
/// expired by `now` (marked `expired`).
pub(crate) fn decode_history(
    key: &StorageKey,
    versions: Vec<strata_engine::Version>,
    now: Timestamp,
) -> Result<Vec<VersionInfo>> {
    versions
        .into_iter()
        .map(|v| {
            let expired = v.expires_at.is_some_and(|e| e <= now);
            let item = match v.value {
                Some(value) if !expired => Some(stored_item(
                    key,
                    &strata_engine::Entry {
                        value,
                        ts: Some(v.ts),
                        expires_at: v.expires_at,
                    },
                )?),
                _ => None,
            };
            Ok(VersionInfo {
                ts: v.ts,
                item,
                expired,
            })
        })
        .collect()
}

/// Whether read caches may keep this stored item.
pub(crate) fn cacheable(bytes: &[u8]) -> bool {
    strata_format::item::item_cacheable(bytes)
}

/// The checksum the metadata carries.
pub(crate) fn checksum_of(value: &[u8]) -> u64 {
    strata_format::item::item_checksum(value)
}
