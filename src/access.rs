//! Access control: identities, policies that allow or deny access types on
//! key patterns, and providers that check every call of an identity.
//!
//! Deny by default: with no applicable policy an access is denied, and a
//! deny beats any allow. Policies live in the Registry keyspace under a
//! reserved prefix, so they survive restarts; decisions are cached until
//! the policies change.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use strata_engine::{Db, Keyspace, WriteOptions};

use crate::error::{Result, StorageError};
use crate::provider::StorageProvider;
use crate::transaction::StorageTransaction;
use crate::types::{
    glob_match, DeleteOptions, KeyPattern, RetrieveOptions, StorageItem, StorageKey,
    StorageMetadata, StorageOptions, StorageType, VersionInfo, RESERVED_PREFIX,
};

/// What an access does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AccessType {
    /// Retrieve, check existence, read history.
    Read,
    /// Store.
    Write,
    /// Delete.
    Delete,
    /// List keys.
    List,
    /// Administer (reserved for management operations).
    Admin,
}

/// Who is asking: an id and attributes (role, tenant, ...).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct Identity {
    /// The identity's id.
    pub id: String,
    /// Its attributes.
    pub attributes: BTreeMap<String, String>,
}

impl Identity {
    /// An identity with no attributes.
    pub fn new(id: impl Into<String>) -> Self {
        Identity {
            id: id.into(),
            attributes: BTreeMap::new(),
        }
    }

    /// Adds an attribute.
    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }
}

/// Whom a policy applies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Principal {
    /// Every identity.
    Any,
    /// The identity with this id.
    Identity(String),
    /// Identities with this attribute value.
    Attribute {
        /// The attribute's name.
        name: String,
        /// Its value.
        value: String,
    },
}

impl Principal {
    fn matches(&self, who: &Identity) -> bool {
        match self {
            Principal::Any => true,
            Principal::Identity(id) => *id == who.id,
            Principal::Attribute { name, value } => who.attributes.get(name) == Some(value),
        }
    }
}

/// Allow or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Grants the access.
    Allow,
    /// Refuses it, whatever else allows it.
    Deny,
}

/// A rule: `effect` for `principals` doing `access` on keys matching
/// `key_pattern` (a glob) in `storage_types` (every type when empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessPolicy {
    /// Unique id; storing a policy with an existing id replaces it.
    pub id: String,
    /// Allow or deny.
    pub effect: Effect,
    /// Whom it applies to (anyone listed).
    pub principals: Vec<Principal>,
    /// Storage types it applies to; empty: all.
    pub storage_types: Vec<StorageType>,
    /// Glob over keys (`*`, `?`).
    pub key_pattern: String,
    /// Access types it covers.
    pub access: Vec<AccessType>,
}

impl AccessPolicy {
    /// True when the policy speaks about this access.
    pub fn applies(&self, who: &Identity, t: StorageType, key: &str, access: AccessType) -> bool {
        self.access.contains(&access)
            && (self.storage_types.is_empty() || self.storage_types.contains(&t))
            && self.principals.iter().any(|p| p.matches(who))
            && glob_match(&self.key_pattern, key)
    }
}

/// The outcome of an access check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessDecision {
    /// Granted by the named policy.
    Allow {
        /// The policy.
        policy: String,
    },
    /// Refused.
    Deny {
        /// Why.
        reason: String,
    },
}

impl AccessDecision {
    /// True when granted.
    pub fn is_allowed(&self) -> bool {
        matches!(self, AccessDecision::Allow { .. })
    }
}

/// Where policies come from.
pub trait AccessPolicyProvider: Send + Sync {
    /// Every policy.
    fn policies(&self) -> Result<Vec<AccessPolicy>>;
    /// Stores (or replaces) a policy.
    fn put_policy(&self, policy: AccessPolicy) -> Result<()>;
    /// Removes a policy; false when there was none.
    fn remove_policy(&self, id: &str) -> Result<bool>;
    /// Changes whenever the policies change, so decision caches know.
    fn epoch(&self) -> u64;
}

/// Policies kept durably in the Registry keyspace, with a copy in memory.
pub struct StoredPolicyProvider {
    db: Db,
    keyspace: Keyspace,
    policies: RwLock<(u64, BTreeMap<String, AccessPolicy>)>,
}

fn policy_key(id: &str) -> Vec<u8> {
    format!("{RESERVED_PREFIX}acl/{id}").into_bytes()
}

impl StoredPolicyProvider {
    /// Loads the policies stored in `keyspace`.
    pub(crate) fn load(db: Db, keyspace: Keyspace) -> Result<Self> {
        let prefix = policy_key("");
        let mut map = BTreeMap::new();
        for entry in keyspace.prefix(&prefix)? {
            let (k, v) = entry?;
            let policy: AccessPolicy =
                serde_json::from_slice(&v).map_err(|e| StorageError::Corrupt {
                    key: StorageKey::new(String::from_utf8_lossy(&k[1..])),
                    reason: format!("access policy: {e}"),
                })?;
            map.insert(policy.id.clone(), policy);
        }
        Ok(StoredPolicyProvider {
            db,
            keyspace,
            policies: RwLock::new((1, map)),
        })
    }
}

impl AccessPolicyProvider for StoredPolicyProvider {
    fn policies(&self) -> Result<Vec<AccessPolicy>> {
        Ok(self.policies.read().1.values().cloned().collect())
    }

    fn put_policy(&self, policy: AccessPolicy) -> Result<()> {
        if policy.id.is_empty() || policy.principals.is_empty() || policy.access.is_empty() {
            return Err(StorageError::InvalidArgument(
                "a policy needs an id, principals and access types".into(),
            ));
        }
        let bytes = serde_json::to_vec(&policy)
            .map_err(|e| StorageError::InvalidArgument(e.to_string()))?;
        let mut guard = self.policies.write();
        let mut b = self.db.batch();
        b.put(&self.keyspace, policy_key(&policy.id), bytes)?;
        self.db.write(b, WriteOptions { sync: true })?;
        guard.1.insert(policy.id.clone(), policy);
        guard.0 += 1;
        Ok(())
    }

    fn remove_policy(&self, id: &str) -> Result<bool> {
        let mut guard = self.policies.write();
        if !guard.1.contains_key(id) {
            return Ok(false);
        }
        let mut b = self.db.batch();
        b.delete(&self.keyspace, policy_key(id))?;
        self.db.write(b, WriteOptions { sync: true })?;
        guard.1.remove(id);
        guard.0 += 1;
        Ok(true)
    }

    fn epoch(&self) -> u64 {
        self.policies.read().0
    }
}

type DecisionKey = (Identity, StorageType, String, AccessType);

/// Decides accesses from the policies, caching decisions until the
/// policies change.
pub struct StorageAccessController {
    provider: Arc<dyn AccessPolicyProvider>,
    cache: Mutex<(u64, HashMap<DecisionKey, AccessDecision>)>,
}

impl std::fmt::Debug for StorageAccessController {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageAccessController")
            .finish_non_exhaustive()
    }
}

/// Decisions cached at most; the cache is cleared when full.
const MAX_CACHED_DECISIONS: usize = 100_000;

impl StorageAccessController {
    /// A controller over `provider`'s policies.
    pub fn new(provider: Arc<dyn AccessPolicyProvider>) -> Self {
        StorageAccessController {
            provider,
            cache: Mutex::new((0, HashMap::new())),
        }
    }

    /// The policy provider, to add or remove policies.
    pub fn policies(&self) -> &Arc<dyn AccessPolicyProvider> {
        &self.provider
    }

    /// Decides whether `who` may do `access` on `key` of type `t`.
    pub fn check_access(
        &self,
        who: &Identity,
        t: StorageType,
        key: &str,
        access: AccessType,
    ) -> Result<AccessDecision> {
        let epoch = self.provider.epoch();
        let ck = (who.clone(), t, key.to_owned(), access);
        {
            let mut c = self.cache.lock();
            if c.0 != epoch {
                *c = (epoch, HashMap::new());
            }
            if let Some(d) = c.1.get(&ck) {
                return Ok(d.clone());
            }
        }
        let mut allow: Option<String> = None;
        let mut decision = None;
        for p in self.provider.policies()? {
            if !p.applies(who, t, key, access) {
                continue;
            }
            match p.effect {
                Effect::Deny => {
                    decision = Some(AccessDecision::Deny {
                        reason: format!("denied by policy {}", p.id),
                    });
                    break;
                }
                Effect::Allow => {
                    allow.get_or_insert(p.id);
                }
            }
        }
        let decision = decision.unwrap_or_else(|| match allow {
            Some(policy) => AccessDecision::Allow { policy },
            None => AccessDecision::Deny {
                reason: "no policy allows it".into(),
            },
        });
        let mut c = self.cache.lock();
        if c.0 == epoch {
            if c.1.len() >= MAX_CACHED_DECISIONS {
                c.1.clear();
            }
            c.1.insert(ck, decision.clone());
        }
        Ok(decision)
    }

    /// `Ok` when allowed, else [`StorageError::AccessDenied`].
    pub fn require(
        &self,
        who: &Identity,
        t: StorageType,
        key: &str,
        access: AccessType,
    ) -> Result<()> {
        match self.check_access(who, t, key, access)? {
            AccessDecision::Allow { .. } => Ok(()),
            AccessDecision::Deny { reason } => Err(StorageError::AccessDenied {
                key: StorageKey::new(key),
                access,
                reason,
            }),
        }
    }
}

/// Whose calls a provider handle makes, when access control is on: the
/// one check the document and blob providers' scoped handles share.
#[derive(Clone)]
pub(crate) struct Caller {
    identity: Identity,
    controller: Arc<StorageAccessController>,
}

impl Caller {
    pub(crate) fn new(identity: Identity, controller: Arc<StorageAccessController>) -> Self {
        Caller {
            identity,
            controller,
        }
    }

    /// The identity.
    pub(crate) fn identity(&self) -> &Identity {
        &self.identity
    }

    /// `Ok` when the identity may do `access` on `key` of `t`.
    pub(crate) fn require(&self, t: StorageType, key: &str, access: AccessType) -> Result<()> {
        self.controller.require(&self.identity, t, key, access)
    }

    /// Whether the identity may do `access` on `key` of `t`.
    pub(crate) fn allowed(&self, t: StorageType, key: &str, access: AccessType) -> Result<bool> {
        Ok(self
            .controller
            .check_access(&self.identity, t, key, access)?
            .is_allowed())
    }

    /// `inner` with every call checked for this identity.
    pub(crate) fn wrap(&self, inner: Arc<dyn StorageProvider>) -> AccessControlledProvider {
        AccessControlledProvider::new(inner, self.identity.clone(), self.controller.clone())
    }
}

/// A provider seen through an identity: every call is checked first.
pub struct AccessControlledProvider {
    inner: Arc<dyn StorageProvider>,
    identity: Identity,
    controller: Arc<StorageAccessController>,
}

impl AccessControlledProvider {
    pub(crate) fn new(
        inner: Arc<dyn StorageProvider>,
        identity: Identity,
        controller: Arc<StorageAccessController>,
    ) -> Self {
        AccessControlledProvider {
            inner,
            identity,
            controller,
        }
    }

    fn require(&self, key: &str, access: AccessType) -> Result<()> {
        self.controller
            .require(&self.identity, self.inner.storage_type(), key, access)
    }
}

impl StorageProvider for AccessControlledProvider {
    fn storage_type(&self) -> StorageType {
        self.inner.storage_type()
    }

    fn store(
        &self,
        key: &StorageKey,
        value: &[u8],
        options: &StorageOptions,
    ) -> Result<StorageMetadata> {
        self.require(key.as_str(), AccessType::Write)?;
        self.inner.store(key, value, options)
    }

    fn retrieve(&self, key: &StorageKey, options: &RetrieveOptions) -> Result<StorageItem> {
        self.require(key.as_str(), AccessType::Read)?;
        self.inner.retrieve(key, options)
    }

    fn exists(&self, key: &StorageKey) -> Result<bool> {
        self.require(key.as_str(), AccessType::Read)?;
        self.inner.exists(key)
    }

    fn delete(&self, key: &StorageKey, options: &DeleteOptions) -> Result<()> {
        self.require(key.as_str(), AccessType::Delete)?;
        self.inner.delete(key, options)
    }

    /// Needs List on the pattern's prefix; leaves out the keys the identity
    /// may not list or read, and pages over what is left.
    fn list_keys(&self, pattern: &KeyPattern) -> Result<Vec<StorageKey>> {
        self.require(&pattern.prefix, AccessType::List)?;
        let limit = pattern.limit.unwrap_or(usize::MAX);
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut page = pattern.clone();
        page.limit = Some(limit.clamp(1, 1000));
        loop {
            let keys = self.inner.list_keys(&page)?;
            let done = keys.len() < page.limit.unwrap_or(0);
            for k in &keys {
                let visible = |access| {
                    self.controller
                        .check_access(&self.identity, self.storage_type(), k.as_str(), access)
                        .map(|d| d.is_allowed())
                };
                // Each key must be listable (a deny on a deeper pattern
                // still counts) and readable.
                if visible(AccessType::List)? && visible(AccessType::Read)? {
                    out.push(k.clone());
                    if out.len() >= limit {
                        return Ok(out);
                    }
                }
            }
            match keys.last() {
                Some(last) if !done => page.start_after = Some(last.clone()),
                _ => return Ok(out),
            }
        }
    }

    fn history(&self, key: &StorageKey) -> Result<Vec<VersionInfo>> {
        self.require(key.as_str(), AccessType::Read)?;
        self.inner.history(key)
    }

    fn begin_transaction(&self) -> Result<StorageTransaction> {
        self.inner.begin_transaction()
    }

    fn commit_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.inner.commit_transaction(transaction)
    }

    fn rollback_transaction(&self, transaction: &StorageTransaction) -> Result<()> {
        self.inner.rollback_transaction(transaction)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}
