//! Document schemas: the fields a document naming a schema must (or may)
//! have, and their types. Schemas are stored beside the documents, in the
//! storage type's keyspace, so they survive restarts.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use strata_engine::{Db, Keyspace, WriteOptions};

use super::keys;
use super::value::{check_path, lookup};
use crate::error::{Result, StorageError};
use crate::types::StorageKey;

/// The JSON type a schema field must have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    /// Any value, `null` included.
    Any,
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool,
    /// Any number.
    Number,
    /// A number without a fraction that fits in 64 bits.
    Integer,
    /// A string.
    String,
    /// An RFC 3339 time string (`2023-01-01T00:00:00Z`).
    Iso8601,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl FieldType {
    fn admits(self, v: &Value) -> bool {
        match self {
            FieldType::Any => true,
            FieldType::Null => v.is_null(),
            FieldType::Bool => v.is_boolean(),
            FieldType::Number => v.is_number(),
            FieldType::Integer => v.is_i64() || v.is_u64(),
            FieldType::String => v.is_string(),
            FieldType::Iso8601 => v
                .as_str()
                .is_some_and(|s| strata_engine::Timestamp::from_iso8601(s).is_ok()),
            FieldType::Array => v.is_array(),
            FieldType::Object => v.is_object(),
        }
    }
}

/// One field of a schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaField {
    /// Its path (`a.b.c`).
    pub path: String,
    /// Its type.
    pub field_type: FieldType,
    /// Whether a document must have it.
    pub required: bool,
}

/// A schema: documents stored with its id are validated against it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentSchema {
    /// The schema's id.
    pub id: String,
    /// Its fields.
    pub fields: Vec<SchemaField>,
}

impl DocumentSchema {
    /// A schema with no fields yet.
    pub fn new(id: impl Into<String>) -> Self {
        DocumentSchema {
            id: id.into(),
            fields: Vec::new(),
        }
    }

    /// A field every document must have, of type `t`.
    pub fn require(mut self, path: &str, t: FieldType) -> Self {
        self.fields.push(SchemaField {
            path: path.into(),
            field_type: t,
            required: true,
        });
        self
    }

    /// A field a document may have; when present, of type `t`.
    pub fn optional(mut self, path: &str, t: FieldType) -> Self {
        self.fields.push(SchemaField {
            path: path.into(),
            field_type: t,
            required: false,
        });
        self
    }

    /// Checks `doc`: the first field that is missing or of the wrong type
    /// is the error.
    pub fn validate(&self, doc: &Value) -> Result<()> {
        for f in &self.fields {
            let violation = |reason: String| StorageError::SchemaViolation {
                schema_id: self.id.clone(),
                field: f.path.clone(),
                reason,
            };
            match lookup(doc, &f.path) {
                None if f.required => return Err(violation("required field is missing".into())),
                None => {}
                Some(v) if !f.field_type.admits(v) => {
                    return Err(violation(format!(
                        "expected {:?}, found {}",
                        f.field_type,
                        json_type_name(v)
                    )))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    fn check(&self) -> Result<()> {
        if self.id.is_empty() || self.id.len() > 256 {
            return Err(StorageError::InvalidArgument(
                "a schema id must have 1 to 256 bytes".into(),
            ));
        }
        for f in &self.fields {
            check_path(&f.path).map_err(StorageError::InvalidArgument)?;
        }
        Ok(())
    }
}

fn json_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The schemas of one storage type, persisted and cached.
pub struct SchemaRegistry {
    db: Db,
    keyspace: Keyspace,
    sync: bool,
    cache: RwLock<HashMap<String, DocumentSchema>>,
    /// The keyspace's last commit when the cache was read (replicas).
    stamp: AtomicU64,
}

impl std::fmt::Debug for SchemaRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistry")
            .field("schemas", &self.cache.read().len())
            .finish()
    }
}

impl SchemaRegistry {
    /// Loads the schemas stored in `keyspace`.
    pub(crate) fn load(db: Db, keyspace: Keyspace, sync: bool) -> Result<Self> {
        let stamp = keyspace.last_commit_ts().as_u64();
        let cache = Self::read_all(&keyspace)?;
        Ok(SchemaRegistry {
            db,
            keyspace,
            sync,
            cache: RwLock::new(cache),
            stamp: AtomicU64::new(stamp),
        })
    }

    fn read_all(keyspace: &Keyspace) -> Result<HashMap<String, DocumentSchema>> {
        let mut cache = HashMap::new();
        for entry in keyspace.prefix(keys::SCHEMA)? {
            let (k, v) = entry?;
            let schema: DocumentSchema =
                serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt {
                    key: StorageKey::new(String::from_utf8_lossy(&k)),
                    reason: format!("schema: {e}"),
                })?;
            cache.insert(schema.id.clone(), schema);
        }
        Ok(cache)
    }

    /// On a replica, reloads the schemas when the keyspace changed: the
    /// log may have brought a schema another node registered.
    fn refresh(&self) -> Result<()> {
        if !self.db.is_replica() {
            return Ok(());
        }
        // Read before the schemas: a change between the two is seen again
        // at the next refresh.
        let now = self.keyspace.last_commit_ts().as_u64();
        if self.stamp.load(Ordering::Acquire) == now {
            return Ok(());
        }
        let all = Self::read_all(&self.keyspace)?;
        *self.cache.write() = all;
        self.stamp.store(now, Ordering::Release);
        Ok(())
    }

    /// Stores `schema`, replacing any schema with its id. Documents already
    /// stored are not checked again.
    pub(crate) fn register(&self, schema: DocumentSchema) -> Result<()> {
        schema.check()?;
        let bytes = serde_json::to_vec(&schema)
            .map_err(|e| StorageError::InvalidArgument(format!("schema: {e}")))?;
        let mut cache = self.cache.write();
        let mut b = self.db.batch();
        b.put(&self.keyspace, keys::schema(&schema.id), bytes)?;
        self.db.write(b, WriteOptions { sync: self.sync })?;
        cache.insert(schema.id.clone(), schema);
        Ok(())
    }

    /// The schema with this id.
    pub fn get(&self, id: &str) -> Option<DocumentSchema> {
        // A failed reload keeps the schemas last read; `validate` reports it.
        let _ = self.refresh();
        self.cache.read().get(id).cloned()
    }

    /// Every schema's id, sorted.
    pub fn ids(&self) -> Vec<String> {
        let _ = self.refresh();
        let mut ids: Vec<String> = self.cache.read().keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Validates `doc` against schema `id`.
    pub fn validate(&self, id: &str, doc: &Value) -> Result<()> {
        self.refresh()?;
        let cache = self.cache.read();
        let schema = cache
            .get(id)
            .ok_or_else(|| StorageError::InvalidArgument(format!("no schema {id:?}")))?;
        schema.validate(doc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_the_failing_field() {
        let s = DocumentSchema::new("user")
            .require("name", FieldType::String)
            .require("address.city", FieldType::String)
            .optional("age", FieldType::Integer)
            .optional("born", FieldType::Iso8601);
        let ok = json!({"name": "ada", "address": {"city": "london"}, "age": 36});
        s.validate(&ok).unwrap();
        let field_of = |doc: Value| match s.validate(&doc) {
            Err(StorageError::SchemaViolation { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field_of(json!({"address": {"city": "x"}})), "name");
        assert_eq!(
            field_of(json!({"name": "a", "address": {}})),
            "address.city"
        );
        assert_eq!(
            field_of(json!({"name": "a", "address": {"city": "x"}, "age": 1.5})),
            "age"
        );
        assert_eq!(
            field_of(json!({"name": "a", "address": {"city": "x"}, "born": "yesterday"})),
            "born"
        );
    }
}
