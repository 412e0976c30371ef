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
//! An entry of a compound index concatenates the fields' encodings (each
//! prefix-free, so the order is field by field). A field holding an array
//! gives an entry for the whole array and one per distinct element, which
//! makes the index multikey: a marker records that, and the planner then
//! neither sorts by the index nor intersects ranges on that field. A unique
//! index leaves the id out of entries whose fields are all present, so two
//! documents with the same values write the same key.
//!
//! Life of an index: `Building` (writers maintain it, queries ignore it),
//! then `Ready` (queries use it), and when dropped `Dropping` (ignored by
//! both) until its entries are gone. A build interrupted by a crash is
//! dropped at the next start; no query ever reads a half-built index.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_engine::{Keyspace, Reader};

use super::keys;
use super::value::{encode, encode_to, lookup};
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
    /// The (first) indexed field path.
    pub field: String,
    /// The further fields of a compound index, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_fields: Vec<String>,
    /// No two documents may share an entry whose fields are all present.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unique: bool,
    /// How entries are made: 1 (definitions without the field) holds one
    /// entry of the whole value, which element-wise filters cannot use;
    /// 2 holds an entry per array element too (SPEC §17.2).
    #[serde(default = "format_one")]
    pub format: u32,
    /// A random id: entries of an index dropped and created again never
    /// mix.
    pub id: u64,
    /// Its state.
    pub state: IndexState,
}

fn format_one() -> u32 {
    1
}

/// The format new indexes are created in.
pub(crate) const FORMAT: u32 = 2;

/// What to index: one field or several (compound), and whether values
/// are unique. `IndexSpec::on("a").then("b").unique()`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexSpec {
    /// The field paths, in order: equality on a prefix of them plus a
    /// range or sort on the next one is what the index answers.
    pub fields: Vec<String>,
    /// Refuse a store that would give two documents the same values.
    #[serde(default)]
    pub unique: bool,
}

impl IndexSpec {
    /// An index on `field`.
    pub fn on(field: impl Into<String>) -> Self {
        IndexSpec {
            fields: vec![field.into()],
            unique: false,
        }
    }

    /// Adds `field` after the fields so far (a compound index).
    pub fn then(mut self, field: impl Into<String>) -> Self {
        self.fields.push(field.into());
        self
    }

    /// Makes the index unique.
    pub fn unique(mut self) -> Self {
        self.unique = true;
        self
    }

    /// The name of the definition's key: the fields joined by NUL (which a
    /// field path of an index may not hold), so a single field's name is
    /// the field itself.
    pub(crate) fn key_name(&self) -> String {
        self.fields.join("\0")
    }

    /// Checks the fields: 1 to 8 well-formed paths without NUL, none
    /// repeated.
    pub(crate) fn check(&self) -> std::result::Result<(), String> {
        if self.fields.is_empty() || self.fields.len() > MAX_INDEX_FIELDS {
            return Err(format!(
                "an index has 1 to {MAX_INDEX_FIELDS} fields, not {}",
                self.fields.len()
            ));
        }
        for (i, f) in self.fields.iter().enumerate() {
            super::value::check_path(f)?;
            if f.contains('\0') {
                return Err(format!("index field {f:?} holds NUL"));
            }
            if self.fields[..i].contains(f) {
                return Err(format!("index field {f:?} is repeated"));
            }
        }
        Ok(())
    }
}

/// The most fields a compound index has.
pub const MAX_INDEX_FIELDS: usize = 8;

impl IndexInfo {
    /// Whether writers maintain it.
    pub(crate) fn maintained(&self) -> bool {
        matches!(self.state, IndexState::Building | IndexState::Ready)
    }

    /// Every indexed field, in order.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.field.as_str()).chain(self.more_fields.iter().map(String::as_str))
    }

    /// The fields as one name, `a, b` (what explain shows).
    pub fn name(&self) -> String {
        self.fields().collect::<Vec<_>>().join(", ")
    }

    /// What the index was created from.
    pub fn spec(&self) -> IndexSpec {
        IndexSpec {
            fields: self.fields().map(str::to_owned).collect(),
            unique: self.unique,
        }
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
    // A struct of strings, numbers and a unit enum always serializes.
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

/// A document's entries in one index.
#[derive(Debug, Default)]
pub(crate) struct Entries {
    /// The entry keys, sorted, without repeats.
    pub(crate) keys: Vec<Vec<u8>>,
    /// The keys a unique index constrains: one document each.
    pub(crate) unique: Vec<Vec<u8>>,
    /// An indexed field held an array: the index is multikey from now on.
    pub(crate) multikey: bool,
}

/// The encodings a value gives an index of `format`: the value itself, and
/// in format 2 each distinct element of an array.
fn encodings(v: Option<&Value>, format: u32) -> Vec<Vec<u8>> {
    let mut out = vec![encode(v)];
    if format >= 2 {
        if let Some(Value::Array(a)) = v {
            out.extend(a.iter().map(|e| encode(Some(e))));
            out.sort();
            out.dedup();
        }
    }
    out
}

/// Whether `doc` (document `id`) has the entry `key` of index `info`, whose
/// entries start with `base_len` bytes of prefix: the check a query makes
/// of each entry it follows, so an entry a damaged write left behind is
/// skipped rather than trusted. It walks the key field by field as
/// [`entry_keys`] builds it, without building the document's other
/// entries: value encodings are prefix-free, so at most one of a field's
/// encodings (the value, or in format 2 an array's element) starts the
/// rest of the key.
pub(crate) fn holds_entry(
    info: &IndexInfo,
    base_len: usize,
    id: &str,
    doc: &Value,
    key: &[u8],
    scratch: &mut Vec<u8>,
) -> bool {
    let Some(mut rest) = key.get(base_len..) else {
        return false;
    };
    let mut complete = true;
    for field in info.fields() {
        let v = lookup(doc, field);
        complete &= v.is_some();
        let elements = match v {
            Some(Value::Array(a)) if info.format >= 2 => &a[..],
            _ => &[],
        };
        let mut matched = None;
        // Elements first: a multikey index's entries are mostly theirs,
        // and each encodes in a fraction of the whole array. Encodings are
        // prefix-free, so at most one candidate can start the key: the
        // order changes only how soon it is found.
        for e in elements.iter().map(Some).chain(std::iter::once(v)) {
            scratch.clear();
            encode_to(e, scratch);
            if let Some(r) = rest.strip_prefix(&scratch[..]) {
                matched = Some(r);
                break;
            }
        }
        match matched {
            Some(r) => rest = r,
            None => return false,
        }
    }
    if info.unique && complete {
        rest.is_empty()
    } else {
        rest == id.as_bytes()
    }
}

/// The entries of `doc` in index `info`, or an error when a value is too
/// long to index or two indexed fields hold arrays.
pub(crate) fn entry_keys(
    collection: &str,
    info: &IndexInfo,
    id: &str,
    doc: &Value,
) -> Result<Entries> {
    let base = keys::entries(collection, info.id);
    let base_len = base.len();
    let mut prefixes: Vec<(Vec<u8>, bool)> = vec![(base, true)];
    let mut array_field: Option<&str> = None;
    let mut multikey = false;
    for field in info.fields() {
        let v = lookup(doc, field);
        if info.format >= 2 && matches!(v, Some(Value::Array(_))) {
            if let Some(other) = array_field {
                return Err(StorageError::InvalidArgument(format!(
                    "document {collection}/{id}: fields {other:?} and {field:?} of one index both hold arrays"
                )));
            }
            array_field = Some(field);
            multikey = true;
        }
        let encs = encodings(v, info.format);
        let mut next = Vec::with_capacity(prefixes.len() * encs.len());
        for (p, complete) in &prefixes {
            for e in &encs {
                let mut k = p.clone();
                k.extend_from_slice(e);
                next.push((k, *complete && v.is_some()));
            }
        }
        prefixes = next;
    }
    let mut out = Entries {
        multikey,
        ..Entries::default()
    };
    for (mut k, complete) in prefixes {
        let len = k.len() - base_len;
        if len > MAX_INDEXED_VALUE_LEN {
            return Err(StorageError::InvalidArgument(format!(
                "fields {:?} of document {collection}/{id} encode to {len} bytes; an indexed value has at most {MAX_INDEXED_VALUE_LEN}",
                info.name()
            )));
        }
        if info.unique && complete {
            // One key per value: two documents writing it conflict, under
            // any isolation.
            out.unique.push(k.clone());
        } else {
            k.extend_from_slice(id.as_bytes());
        }
        out.keys.push(k);
    }
    out.keys.sort();
    out.keys.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn info(fields: &[&str], unique: bool, format: u32) -> IndexInfo {
        IndexInfo {
            field: fields[0].to_owned(),
            more_fields: fields[1..].iter().map(|f| (*f).to_owned()).collect(),
            unique,
            format,
            id: 7,
            state: IndexState::Ready,
        }
    }

    /// `holds_entry` answers exactly "is this key among `entry_keys`", for
    /// every document's keys asked of every document: single, compound,
    /// unique and multikey indexes, arrays, missing fields, values that
    /// are prefixes of others, and keys cut short or extended.
    #[test]
    fn holds_entry_agrees_with_entry_keys() {
        let docs = [
            ("a", json!({"x": 1, "y": "p"})),
            ("b", json!({"x": [1, 2, 2], "y": "p"})),
            ("c", json!({"x": [], "y": ["p", "q"]})),
            ("d", json!({"y": "pq"})),
            ("e", json!({"x": "1", "y": null})),
            ("f", json!({"x": [[1], 1], "y": {"z": 1}})),
            ("g", json!({"x": "a\u{0}b", "y": "p"})),
            ("ab", json!({"x": 1, "y": "p"})),
        ];
        let infos = [
            info(&["x"], false, 2),
            info(&["x"], false, 1),
            info(&["x"], true, 2),
            info(&["x", "y"], false, 2),
            info(&["y", "x"], true, 2),
            info(&["x", "y"], false, 1),
        ];
        let base_len = keys::entries("c", 7).len();
        let mut scratch = Vec::new();
        let mut checked = 0;
        for info in &infos {
            let all: Vec<(&str, Vec<Vec<u8>>)> = docs
                .iter()
                .filter_map(|(id, d)| entry_keys("c", info, id, d).ok().map(|e| (*id, e.keys)))
                .collect();
            for (id, doc) in &docs {
                let Ok(own) = entry_keys("c", info, id, doc) else {
                    continue;
                };
                for (_, keys) in &all {
                    for k in keys {
                        let mut variants = vec![k.clone(), k[..k.len() - 1].to_vec()];
                        variants.push([&k[..], b"x"].concat());
                        for v in variants {
                            assert_eq!(
                                holds_entry(info, base_len, id, doc, &v, &mut scratch),
                                own.keys.contains(&v),
                                "index {info:?}, document {id} {doc}, key {v:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 1000, "{checked}");
    }
}
