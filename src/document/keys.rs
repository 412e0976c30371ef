//! Where documents, index entries, index definitions and schemas live in
//! a storage type's keyspace (SPEC §17.1). All of it sits under the
//! reserved prefix, so the key-value provider of the same type can neither
//! list nor overwrite it.

use crate::error::{Result, StorageError};

/// Documents: `DOC` + collection + `/` + id.
pub(crate) const DOC: &str = "\u{0}strata/doc/d/";
/// Index definitions: `META` + collection + `/` + field.
pub(crate) const META: &str = "\u{0}strata/doc/m/";
/// Index entries: `INDEX` + collection + `/` + index id (16 hex digits) +
/// `/` + encoded value + document id.
pub(crate) const INDEX: &str = "\u{0}strata/doc/x/";
/// Multikey markers: `MULTIKEY` + collection + `/` + index id (16 hex
/// digits); present once a document gave the index an array.
pub(crate) const MULTIKEY: &str = "\u{0}strata/doc/k/";
/// Index statistics: `STATISTICS` + collection + `/` + index id (16 hex
/// digits).
pub(crate) const STATISTICS: &str = "\u{0}strata/doc/t/";
/// Schemas: `SCHEMA` + schema id.
pub(crate) const SCHEMA: &str = "\u{0}strata/doc/s/";

/// Longest collection name.
pub const MAX_COLLECTION_LEN: usize = 128;
/// Longest document id.
pub const MAX_ID_LEN: usize = 1024;

/// Checks a collection name: 1 to 128 bytes, no `/` and no NUL.
pub(crate) fn check_collection(c: &str) -> Result<()> {
    if c.is_empty() || c.len() > MAX_COLLECTION_LEN || c.contains(['/', '\0']) {
        return Err(StorageError::InvalidArgument(format!(
            "collection {c:?}: a name has 1 to {MAX_COLLECTION_LEN} bytes, without '/' or NUL"
        )));
    }
    Ok(())
}

/// Checks a document id: 1 to 1024 bytes.
pub(crate) fn check_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN {
        return Err(StorageError::InvalidArgument(format!(
            "document id of {} bytes: ids have 1 to {MAX_ID_LEN}",
            id.len()
        )));
    }
    Ok(())
}

/// The prefix of a collection's documents.
pub(crate) fn docs(collection: &str) -> Vec<u8> {
    format!("{DOC}{collection}/").into_bytes()
}

/// The key of a document.
pub(crate) fn doc(collection: &str, id: &str) -> Vec<u8> {
    format!("{DOC}{collection}/{id}").into_bytes()
}

/// The prefix of a collection's index definitions.
pub(crate) fn metas(collection: &str) -> Vec<u8> {
    format!("{META}{collection}/").into_bytes()
}

/// The key of the definition of the index on `field`.
pub(crate) fn meta(collection: &str, field: &str) -> Vec<u8> {
    format!("{META}{collection}/{field}").into_bytes()
}

/// The prefix of every entry of index `index_id`.
pub(crate) fn entries(collection: &str, index_id: u64) -> Vec<u8> {
    format!("{INDEX}{collection}/{index_id:016x}/").into_bytes()
}

/// The key of index `index_id`'s multikey marker.
pub(crate) fn multikey(collection: &str, index_id: u64) -> Vec<u8> {
    format!("{MULTIKEY}{collection}/{index_id:016x}").into_bytes()
}

/// The key of index `index_id`'s statistics.
pub(crate) fn statistics(collection: &str, index_id: u64) -> Vec<u8> {
    format!("{STATISTICS}{collection}/{index_id:016x}").into_bytes()
}

/// The key of a schema.
pub(crate) fn schema(id: &str) -> Vec<u8> {
    format!("{SCHEMA}{id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SPEC §17.1's table names every key family the code writes.
    #[test]
    fn the_spec_table_lists_every_key_family() {
        let spec = include_str!("../../SPEC.md");
        let start = spec.find("### 17.1 Keys").unwrap();
        let end = spec[start..].find("### 17.2").unwrap() + start;
        let table = &spec[start..end];
        for family in [DOC, META, INDEX, MULTIKEY, STATISTICS, SCHEMA] {
            let shown = format!("NUL `{}", &family[1..]);
            assert!(table.contains(&shown), "{shown} missing from SPEC §17.1");
        }
        assert_eq!(
            table.matches("| NUL `strata/doc/").count(),
            6,
            "a family in SPEC §17.1 that the code does not have"
        );
    }
}
