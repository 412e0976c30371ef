//! Secondary indexes: their definitions, their entries, and how an index
//! is built over existing documents and dropped (SPEC §17.2).
//!
//! An index on a field holds one entry per document of the collection,
//! `prefix ‖ encode(field value) ‖ id` (a missing field included, so that
//! the index also orders documents without it), written in the same
//! engine transaction as the document. Entries are versioned like every
//! key, which is what lets a query as of a past time use the index as it
//! was then.
//!
//! Life of an index: `Building` (writers maintain it, queries ignore it),
//! then `Ready` (queries use it), and when dropped `Dropping` (ignored by
//! both) until its entries are gone. A build interrupted by a crash is
//! dropped at the next start; no query ever reads a half-built index.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_engine::{Keyspace, Reader};

use super::keys;
use super::value::{encode, lookup};
use crate::error::{Result, StorageError};
use crate::types::StorageKey;

/// Longest encoded field value an index takes (a longer value makes the
/// store fail with an error naming the field).
pub const MAX_INDEXED_VALUE_LEN: usize = 4096;

/// Where an index is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IndexState {
    /// Being built over existing documents; not used by queries yet.
    Building,
    /// Complete; used by queries.
    Ready,
    /// Being removed.
    Dropping,
}

/// An index definition as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexInfo {
    /// The indexed field path.
    pub field: String,
    /// A random id: entries of an index dropped and created again never
    /// mix.
    pub id: u64,
    /// Its state.
    pub state: IndexState,
}

impl IndexInfo {
    /// Whether writers maintain it.
    pub(crate) fn maintained(&self) -> bool {
        matches!(self.state, IndexState::Building | IndexState::Ready)
    }
}

/// Decodes a stored definition.
pub(crate) fn decode_info(key: &[u8], bytes: &[u8]) -> Result<IndexInfo> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        key: StorageKey::new(String::from_utf8_lossy(key)),
        reason: format!("index definition: {e}"),
    })
}

/// Encodes a definition.
pub(crate) fn encode_info(info: &IndexInfo) -> Vec<u8> {
    // A struct of a string, a number and a unit enum always serializes.
    serde_json::to_vec(info).unwrap_or_default()
}

/// The index definitions of `collection` as `src` sees them.
pub(crate) fn read_infos(
    src: &mut dyn Reader,
    ks: &Keyspace,
    collection: &str,
) -> Result<Vec<IndexInfo>> {
    let prefix = keys::metas(collection);
    let mut out = Vec::new();
    for entry in src.prefix(ks, &prefix)? {
        let (k, v) = entry?;
        out.push(decode_info(&k, &v)?);
    }
    Ok(out)
}

/// The entry key of `doc` (absent: none) in index `info`, or an error when
/// the value is too long to index.
pub(crate) fn entry_key(
    collection: &str,
    info: &IndexInfo,
    id: &str,
    doc: &Value,
) -> Result<Vec<u8>> {
    let enc = encode(lookup(doc, &info.field));
    if enc.len() > MAX_INDEXED_VALUE_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "field {:?} of document {collection}/{id} encodes to {} bytes; an indexed value has at most {MAX_INDEXED_VALUE_LEN}",
            info.field,
            enc.len()
        )));
    }
    let mut k = keys::entries(collection, info.id);
    k.extend_from_slice(&enc);
    k.extend_from_slice(id.as_bytes());
    Ok(k)
}
