//! The storage policy manager: rules per storage type (and per key prefix)
//! that every write obeys: a default TTL, a maximum item size, a quota in
//! bytes, a history window, and required encryption or compression.
//!
//! Policies are durable in the Registry keyspace (under the reserved
//! prefix, so no caller's key can reach them), can come from the
//! configuration, and change at run time through
//! [`StoragePolicyManager::set_policy`]; a change applies to the next
//! write. For a key, each setting comes from the most specific policy
//! that sets it (the longest matching prefix); every quota whose scope
//! holds the key applies. [`StoragePolicyManager::effective`] shows what
//! applies to a key and where each setting comes from.

mod usage;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use strata_engine::{Db, Keyspace, Timestamp, WriteOptions};

use crate::error::{EncryptionError, Result, StorageError};
use crate::types::{StorageOptions, StorageType, RESERVED_PREFIX};
pub(crate) use usage::Charge;
pub use usage::QuotaStatus;
use usage::{scope_name, Counted, Usage};

/// Where policies are kept in the Registry keyspace.
const POLICY_PREFIX: &str = "\u{0}strata/policy/";

/// Rules for the writes to one storage type, or to the keys of a type
/// that start with `prefix`. Every setting is optional: one left unset
/// comes from a less specific policy, or does not apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoragePolicy {
    /// The storage type.
    pub storage_type: StorageType,
    /// Keys starting with this (empty: every key of the type). Document
    /// keys are `collection/id`.
    #[serde(default)]
    pub prefix: String,
    /// The TTL of a write that gives none, in seconds.
    #[serde(default)]
    pub default_ttl_secs: Option<u64>,
    /// The largest value a write may store, in bytes (a blob's whole size).
    #[serde(default)]
    pub max_item_bytes: Option<u64>,
    /// The bytes (keys and values of live items) the scope may hold; a
    /// write beyond fails with [`StorageError::QuotaExceeded`].
    #[serde(default)]
    pub quota_bytes: Option<u64>,
    /// How far back reads of the past may go for the type, in seconds
    /// (type-wide policies only). Compaction keeps what the longest window
    /// of any type needs.
    #[serde(default)]
    pub history_retention_secs: Option<u64>,
    /// Writes must be encrypted at rest: refused where the type is not.
    #[serde(default)]
    pub require_encryption: Option<bool>,
    /// Items are stored compressed whatever the write asks (blobs are
    /// compressed by the engine's blocks, so not for the Blob type).
    #[serde(default)]
    pub require_compression: Option<bool>,
}

impl StoragePolicy {
    /// A policy for every key of `t`, setting nothing yet.
    pub fn new(t: StorageType) -> Self {
        Self::for_prefix(t, "")
    }

    /// A policy for the keys of `t` starting with `prefix`.
    pub fn for_prefix(t: StorageType, prefix: impl Into<String>) -> Self {
        StoragePolicy {
            storage_type: t,
            prefix: prefix.into(),
            default_ttl_secs: None,
            max_item_bytes: None,
            quota_bytes: None,
            history_retention_secs: None,
            require_encryption: None,
            require_compression: None,
        }
    }

    /// With a default TTL.
    pub fn with_default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl_secs = Some(ttl.as_secs().max(1));
        self
    }

    /// With a maximum item size.
    pub fn with_max_item_bytes(mut self, n: u64) -> Self {
        self.max_item_bytes = Some(n);
        self
    }

    /// With a quota.
    pub fn with_quota_bytes(mut self, n: u64) -> Self {
        self.quota_bytes = Some(n);
        self
    }

    /// With a history window.
    pub fn with_history_retention(mut self, d: Duration) -> Self {
        self.history_retention_secs = Some(d.as_secs());
        self
    }

    /// Requiring encryption at rest (or not).
    pub fn with_required_encryption(mut self, on: bool) -> Self {
        self.require_encryption = Some(on);
        self
    }

    /// Requiring compression (or not).
    pub fn with_required_compression(mut self, on: bool) -> Self {
        self.require_compression = Some(on);
        self
    }

    fn scope(&self) -> String {
        scope_name(self.storage_type, &self.prefix)
    }

    fn check(&self, layout: Layout) -> Result<()> {
        let bad = |why: &str| {
            Err(StorageError::Configuration(format!(
                "storage policy of {}: {why}",
                self.scope()
            )))
        };
        if self.prefix.starts_with(RESERVED_PREFIX) || self.prefix.len() > crate::MAX_KEY_LEN {
            return bad("the prefix is reserved or too long");
        }
        if self.default_ttl_secs == Some(0) {
            return bad("a default TTL must be positive");
        }
        if self.history_retention_secs.is_some() && !self.prefix.is_empty() {
            return bad("a history window applies to a whole storage type, not a prefix");
        }
        if self.quota_bytes.is_some() && layout == Layout::Custom {
            return bad("quotas need the key-value or blob provider, which this type does not use");
        }
        if self.require_compression == Some(true) && layout == Layout::Blobs {
            return bad("blob chunks are compressed by the engine's blocks; item compression does not apply");
        }
        Ok(())
    }
}

/// A stored policy: fields this version does not know (written by a newer
/// one) are ignored rather than refused, so stored data never stops an
/// open; the configuration's policies are checked strictly.
fn stored_policy(bytes: &[u8]) -> serde_json::Result<StoragePolicy> {
    const KNOWN: [&str; 8] = [
        "storage_type",
        "prefix",
        "default_ttl_secs",
        "max_item_bytes",
        "quota_bytes",
        "history_retention_secs",
        "require_encryption",
        "require_compression",
    ];
    let mut m: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)?;
    m.retain(|k, _| KNOWN.contains(&k.as_str()));
    serde_json::from_value(serde_json::Value::Object(m))
}

/// How a storage type's keyspace is laid out, which decides how its items
/// are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Key-value items, and documents beside them.
    Items,
    /// Blobs: metadata under `m/`, chunks under `c/`.
    Blobs,
    /// A provider from a factory: its layout is its own.
    Custom,
}

/// What applies to one key: each setting from the most specific policy
/// that sets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EffectivePolicy {
    /// The storage type.
    pub storage_type: StorageType,
    /// The key.
    pub key: String,
    /// The TTL of a write that gives none.
    pub default_ttl: Option<Duration>,
    /// The largest value a write may store.
    pub max_item_bytes: Option<u64>,
    /// The type's history window, when a policy sets one.
    pub history_retention: Option<Duration>,
    /// Writes must be encrypted at rest.
    pub require_encryption: bool,
    /// Items are stored compressed.
    pub require_compression: bool,
    /// Every quota whose scope holds the key, with its usage.
    pub quotas: Vec<QuotaStatus>,
    /// For each setting that applies, the scope of the policy it comes
    /// from.
    pub sources: BTreeMap<String, String>,
}

impl fmt::Display for EffectivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "policy for {} key {:?}:", self.storage_type, self.key)?;
        let from = |s: &str| {
            self.sources
                .get(s)
                .map_or(String::new(), |p| format!(" (from {p})"))
        };
        if let Some(t) = self.default_ttl {
            writeln!(f, "  default TTL {} s{}", t.as_secs(), from("default_ttl"))?;
        }
        if let Some(n) = self.max_item_bytes {
            writeln!(f, "  items up to {n} bytes{}", from("max_item_bytes"))?;
        }
        if let Some(h) = self.history_retention {
            writeln!(
                f,
                "  history kept {} s{}",
                h.as_secs(),
                from("history_retention")
            )?;
        }
        if self.require_encryption {
            writeln!(
                f,
                "  encryption at rest required{}",
                from("require_encryption")
            )?;
        }
        if self.require_compression {
            writeln!(f, "  compression required{}", from("require_compression"))?;
        }
        for q in &self.quotas {
            writeln!(
                f,
                "  quota of {}: {} of {} bytes used",
                scope_name(q.storage_type, &q.prefix),
                q.usage,
                q.limit
            )?;
        }
        Ok(())
    }
}

/// The storage policies of a storage system, and the quota usage they
/// track. Get it from [`StorageSystem::policies`](crate::StorageSystem::policies).
pub struct StoragePolicyManager {
    db: Db,
    registry: Keyspace,
    keyspaces: BTreeMap<StorageType, (Keyspace, Layout)>,
    /// The configuration's history window, which policies may lengthen.
    base_history: Duration,
    sync: bool,
    /// How long a recount waits for the writes in flight.
    wait: Duration,
    policies: RwLock<BTreeMap<(StorageType, String), StoragePolicy>>,
    /// One policy change at a time, so recounts install in order.
    changes: Mutex<()>,
    usage: Arc<Usage>,
}

impl fmt::Debug for StoragePolicyManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoragePolicyManager")
            .field("policies", &self.policies.read().len())
            .finish_non_exhaustive()
    }
}

fn policy_key(t: StorageType, prefix: &str) -> Vec<u8> {
    format!("{POLICY_PREFIX}{}/{prefix}", t.name()).into_bytes()
}

/// The outcome of storing configured state at open: on a follower of a
/// cluster the write is refused (the leader makes it), which is no failure.
pub(crate) fn seed(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_leader() => Ok(()),
        r => r,
    }
}

impl StoragePolicyManager {
    /// Loads the stored policies, applies `configured` ones on top
    /// (durably), counts the usage of every quota scope and sets the
    /// engine's history window.
    pub(crate) fn open(
        db: Db,
        registry: Keyspace,
        keyspaces: BTreeMap<StorageType, (Keyspace, Layout)>,
        base_history: Duration,
        sync: bool,
        wait: Duration,
        configured: &[StoragePolicy],
    ) -> Result<Self> {
        let mut policies = BTreeMap::new();
        for entry in registry.prefix(POLICY_PREFIX)? {
            let (k, v) = entry?;
            let p = stored_policy(&v).map_err(|e| StorageError::Corrupt {
                key: crate::StorageKey::new(String::from_utf8_lossy(&k)),
                reason: format!("storage policy: {e}"),
            })?;
            policies.insert((p.storage_type, p.prefix.clone()), p);
        }
        let m = StoragePolicyManager {
            db,
            registry,
            keyspaces,
            base_history,
            sync,
            wait,
            policies: RwLock::new(policies),
            changes: Mutex::new(()),
            usage: Arc::default(),
        };
        for p in configured {
            // Stored only when it changed: reopening writes nothing, and a
            // follower of a cluster, where the leader stores it, is not
            // asked to.
            let stored = m.policies.read().get(&(p.storage_type, p.prefix.clone())) == Some(p);
            if !stored {
                seed(m.store(p))?;
            }
        }
        for t in StorageType::ALL {
            let _quiet = m.quiesce(t)?;
            m.recount_into_usage(t)?;
        }
        m.apply_history();
        Ok(m)
    }

    fn layout(&self, t: StorageType) -> Layout {
        self.keyspaces.get(&t).map_or(Layout::Custom, |(_, l)| *l)
    }

    fn store(&self, p: &StoragePolicy) -> Result<()> {
        p.check(self.layout(p.storage_type))?;
        let bytes = serde_json::to_vec(p)
            .map_err(|e| StorageError::Serialization(format!("storage policy: {e}")))?;
        let mut b = self.db.batch();
        b.put(&self.registry, policy_key(p.storage_type, &p.prefix), bytes)?;
        self.db.write(b, WriteOptions { sync: self.sync })?;
        self.policies
            .write()
            .insert((p.storage_type, p.prefix.clone()), p.clone());
        Ok(())
    }

    /// Stores `policy` durably, replacing the one with its type and
    /// prefix; the next write obeys it. Setting a quota counts the type's
    /// usage first (a scan of the type).
    /// A new quota waits (within `transactions.index_build_wait_secs`)
    /// for the type's writes in flight, and fails with `Busy` if a
    /// transaction holding one stays open longer.
    pub fn set_policy(&self, policy: StoragePolicy) -> Result<()> {
        let _one = self.changes.lock();
        let t = policy.storage_type;
        policy.check(self.layout(t))?;
        let before = self
            .policies
            .read()
            .get(&(t, policy.prefix.clone()))
            .cloned();
        let recount = before.and_then(|p| p.quota_bytes) != policy.quota_bytes;
        // Writes are held off first, so the stored quotas and the counted
        // usage change together.
        let _quiet = if recount {
            Some(self.quiesce(t)?)
        } else {
            None
        };
        self.store(&policy)?;
        if recount {
            self.recount_into_usage(t)?;
        }
        self.apply_history();
        Ok(())
    }

    /// Removes the policy of `t` for `prefix`; true when there was one.
    pub fn remove_policy(&self, t: StorageType, prefix: &str) -> Result<bool> {
        let _one = self.changes.lock();
        let Some(before) = self.policies.read().get(&(t, prefix.to_owned())).cloned() else {
            return Ok(false);
        };
        let recount = before.quota_bytes.is_some();
        let _quiet = if recount {
            Some(self.quiesce(t)?)
        } else {
            None
        };
        let mut b = self.db.batch();
        b.delete(&self.registry, policy_key(t, prefix))?;
        self.db.write(b, WriteOptions { sync: self.sync })?;
        self.policies.write().remove(&(t, prefix.to_owned()));
        if recount {
            self.recount_into_usage(t)?;
        }
        self.apply_history();
        Ok(true)
    }

    /// Every policy, by type and prefix.
    pub fn policies(&self) -> Vec<StoragePolicy> {
        self.policies.read().values().cloned().collect()
    }

    /// What applies to `key` of `t`, and where each setting comes from,
    /// with the usage of every quota that holds it.
    pub fn effective(&self, t: StorageType, key: &str) -> EffectivePolicy {
        let mut e = self.rules(t, key);
        e.quotas = self
            .usage
            .statuses(self.db.now())
            .into_iter()
            .filter(|q| q.storage_type == t && key.starts_with(&q.prefix))
            .collect();
        e
    }

    /// The settings for `key` of `t`, without the quotas' usage.
    fn rules(&self, t: StorageType, key: &str) -> EffectivePolicy {
        let policies = self.policies.read();
        // Most specific first.
        let mut matching: Vec<&StoragePolicy> = policies
            .range((t, String::new())..)
            .take_while(|((pt, _), _)| *pt == t)
            .map(|(_, p)| p)
            .filter(|p| key.starts_with(&p.prefix))
            .collect();
        matching.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
        let mut sources = BTreeMap::new();
        let mut pick = |name: &str, get: &dyn Fn(&StoragePolicy) -> Option<u64>| {
            matching.iter().find_map(|p| {
                let v = get(p)?;
                sources.insert(name.to_owned(), p.scope());
                Some(v)
            })
        };
        let default_ttl = pick("default_ttl", &|p| p.default_ttl_secs).map(Duration::from_secs);
        let max_item_bytes = pick("max_item_bytes", &|p| p.max_item_bytes);
        let history_retention =
            pick("history_retention", &|p| p.history_retention_secs).map(Duration::from_secs);
        let require_encryption = pick("require_encryption", &|p| {
            p.require_encryption.map(u64::from)
        }) == Some(1);
        let require_compression = pick("require_compression", &|p| {
            p.require_compression.map(u64::from)
        }) == Some(1);
        EffectivePolicy {
            storage_type: t,
            key: key.to_owned(),
            default_ttl,
            max_item_bytes,
            history_retention,
            require_encryption,
            require_compression,
            quotas: Vec::new(),
            sources,
        }
    }

    /// Every quota scope with its usage now.
    pub fn quotas(&self) -> Vec<QuotaStatus> {
        self.usage.statuses(self.db.now())
    }

    /// The usage of the quota scope of `t` and `prefix`, if it has one.
    pub fn usage(&self, t: StorageType, prefix: &str) -> Option<u64> {
        self.quotas()
            .into_iter()
            .find(|q| q.storage_type == t && q.prefix == prefix)
            .map(|q| q.usage)
    }

    /// Counts the usage of every quota scope of `t` from the data, without
    /// touching the tracked usage: what [`quotas`](Self::quotas) must
    /// agree with.
    pub fn recount(&self, t: StorageType) -> Result<Vec<QuotaStatus>> {
        let quotas = self.quotas_of(t);
        let (_, items) = self.count(t)?;
        Ok(quotas
            .into_iter()
            .map(|(prefix, limit)| QuotaStatus {
                storage_type: t,
                usage: items
                    .iter()
                    .filter(|c| c.user.starts_with(&prefix))
                    .map(|c| c.size)
                    .sum(),
                prefix,
                limit,
            })
            .collect())
    }

    /// The quota scopes of `t`: (prefix, limit).
    fn quotas_of(&self, t: StorageType) -> Vec<(String, u64)> {
        self.policies
            .read()
            .range((t, String::new())..)
            .take_while(|((pt, _), _)| *pt == t)
            .filter_map(|((_, prefix), p)| Some((prefix.clone(), p.quota_bytes?)))
            .collect()
    }

    /// Holds off the writes of `t` (waiting for those in flight, within
    /// the bound) until the guard is dropped.
    fn quiesce(&self, t: StorageType) -> Result<usage::RecountGuard> {
        self.usage.quiesce(t, self.wait).ok_or_else(|| {
            StorageError::Busy(format!(
                "writes to {t} stayed in flight for {} s (an open transaction?); the quota cannot be counted meanwhile",
                self.wait.as_secs()
            ))
        })
    }

    /// Recounts the usage of `t`'s quota scopes and installs it. The caller
    /// holds `t`'s writes off (see [`quiesce`](Self::quiesce)), so none
    /// commits between the snapshot and the new accounts, and none was
    /// charged against the accounts replaced.
    fn recount_into_usage(&self, t: StorageType) -> Result<()> {
        let quotas = self.quotas_of(t);
        if quotas.is_empty() {
            self.usage
                .reset(t, quotas, Timestamp::ZERO, Vec::new(), self.db.now());
            return Ok(());
        }
        let (floor, items) = self.count(t)?;
        self.usage.reset(t, quotas, floor, items, self.db.now());
        Ok(())
    }

    /// Every live item of `t` inside a quota scope, from one snapshot: its
    /// timestamp and the items with their sizes and expiries. A damaged
    /// item counts by its stored length (its key is named in the error a
    /// read of it gives).
    fn count(&self, t: StorageType) -> Result<(Timestamp, Vec<Counted>)> {
        let Some((ks, layout)) = self.keyspaces.get(&t) else {
            return Ok((Timestamp::ZERO, Vec::new()));
        };
        // The quota prefixes, without those inside a shorter one.
        let mut prefixes: Vec<String> = self.quotas_of(t).into_iter().map(|(p, _)| p).collect();
        prefixes.sort();
        prefixes.dedup_by(|longer, shorter| longer.starts_with(shorter.as_str()));
        let snap = self.db.snapshot()?;
        let mut out = Vec::new();
        let scan = |base: &[u8], prefix: &str, out: &mut Vec<Counted>| -> Result<()> {
            let start = [base, prefix.as_bytes()].concat();
            for entry in snap.prefix(ks, &start)? {
                let (k, v) = entry?;
                let user = String::from_utf8_lossy(&k[base.len()..]).into_owned();
                if base.is_empty() && k.starts_with(RESERVED_PREFIX.as_bytes()) {
                    continue;
                }
                let (size, expires_at) = match layout {
                    Layout::Blobs => {
                        match serde_json::from_slice::<crate::blob::BlobMetadata>(&v) {
                            Ok(m) => (m.size, m.expires_at),
                            Err(_) => (v.len() as u64, None),
                        }
                    }
                    _ => match strata_format::item::decode_item_header(&v) {
                        Ok(h) => (h.size, h.expires_at),
                        Err(_) => (v.len() as u64, None),
                    },
                };
                out.push(Counted {
                    size: user.len() as u64 + size,
                    ekey: k.to_vec(),
                    user,
                    expires_at: expires_at.map(Timestamp),
                });
            }
            Ok(())
        };
        for p in &prefixes {
            match layout {
                Layout::Custom => {}
                Layout::Blobs => scan(b"m/", p, &mut out)?,
                Layout::Items => {
                    scan(b"", p, &mut out)?;
                    scan(crate::document::DOC_PREFIX.as_bytes(), p, &mut out)?;
                }
            }
        }
        Ok((snap.ts(), out))
    }

    /// Sets the engine's history window to the longest any type needs.
    fn apply_history(&self) {
        let longest = self
            .policies
            .read()
            .values()
            .filter_map(|p| p.history_retention_secs)
            .map(Duration::from_secs)
            .max()
            .map_or(self.base_history, |d| d.max(self.base_history));
        self.db.set_history_retention(longest);
    }

    /// The options a write of `size` value bytes to `key` of `t` runs
    /// with: the policy's default TTL when it gives none, compression when
    /// required; refused (changing nothing) when it breaks the policy.
    pub(crate) fn prepare(
        &self,
        t: StorageType,
        key: &str,
        size: u64,
        options: &StorageOptions,
        encrypted: bool,
    ) -> Result<StorageOptions> {
        let e = self.rules(t, key);
        if let Some(max) = e.max_item_bytes {
            check_size(t, key, size, max, &e)?;
        }
        if e.require_encryption && !encrypted {
            return Err(EncryptionError::NotEncrypted(t).into());
        }
        let mut o = options.clone();
        if o.ttl.is_none() {
            o.ttl = e.default_ttl;
        }
        if e.require_compression {
            o.compression = true;
        }
        Ok(o)
    }

    /// The largest item `key` of `t` may hold, if a policy limits it.
    pub(crate) fn max_item_bytes(&self, t: StorageType, key: &str) -> Option<u64> {
        self.rules(t, key).max_item_bytes
    }

    /// Reserves the quota a write of `size` bytes (`None`: a delete) to
    /// `ekey` (user key `key`) of `t` needs; `None` when no quota applies.
    pub(crate) fn charge(
        &self,
        t: StorageType,
        key: &str,
        ekey: &[u8],
        new: Option<(u64, Option<Timestamp>)>,
    ) -> Result<Charge> {
        let new = new.map(|(size, at)| (size + key.len() as u64, at));
        self.usage
            .charge(t, key, ekey, new, self.db.now(), self.db.last_timestamp())
    }

    /// Refuses a read of `t` at `ts` older than the type's own history
    /// window, as the engine refuses one older than its window.
    pub(crate) fn check_readable(&self, t: StorageType, ts: Timestamp) -> Result<()> {
        // A type without a window of its own keeps the configuration's,
        // whatever longer window another type makes the engine keep.
        let w = self
            .policies
            .read()
            .get(&(t, String::new()))
            .and_then(|p| p.history_retention_secs)
            .map_or(self.base_history, Duration::from_secs);
        {
            let oldest = self
                .db
                .now()
                .saturating_sub(w)
                .min(self.db.last_timestamp())
                .max(self.db.oldest_readable());
            if ts < oldest {
                return Err(strata_engine::Error::HistoryUnavailable {
                    requested: ts,
                    oldest,
                }
                .into());
            }
        }
        Ok(())
    }

    /// The quota gauges in the Prometheus text format.
    pub(crate) fn render_prometheus(&self) -> String {
        let quotas = self.quotas();
        let mut out = String::new();
        if quotas.is_empty() {
            return out;
        }
        let esc = |s: &str| {
            s.replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n")
        };
        for (name, help, limit) in [
            (
                "strata_storage_quota_usage_bytes",
                "Bytes held in each quota scope.",
                false,
            ),
            (
                "strata_storage_quota_limit_bytes",
                "The quota of each scope.",
                true,
            ),
        ] {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for q in &quotas {
                let v = if limit { q.limit } else { q.usage };
                out.push_str(&format!(
                    "{name}{{type=\"{}\",prefix=\"{}\"}} {v}\n",
                    q.storage_type.name(),
                    esc(&q.prefix)
                ));
            }
        }
        out
    }
}

fn check_size(t: StorageType, key: &str, size: u64, max: u64, e: &EffectivePolicy) -> Result<()> {
    if size > max {
        let scope = e
            .sources
            .get("max_item_bytes")
            .cloned()
            .unwrap_or_else(|| t.to_string());
        return Err(StorageError::PolicyViolation {
            scope,
            reason: format!("{key:?} would hold {size} bytes; items hold at most {max}"),
        });
    }
    Ok(())
}

/// The error a blob stream gives once it passes the maximum item size.
pub(crate) fn too_large(t: StorageType, key: &str, max: u64) -> StorageError {
    StorageError::PolicyViolation {
        scope: t.to_string(),
        reason: format!("{key:?} would hold more than {max} bytes; items hold at most {max}"),
    }
}
