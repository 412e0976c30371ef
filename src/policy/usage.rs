//! Quota accounting: the bytes each quota scope holds, exactly.
//!
//! For every storage type with a quota, the manager keeps a mirror of the
//! size of each live item inside a quota scope (keyed by its engine key,
//! with the commit timestamp of its version and its expiry). A full
//! recount, from a snapshot, builds it at open and whenever the quotas of
//! a type change; afterwards every committed write, delete and expiry
//! updates it:
//!
//! - before a write commits, [`Usage::charge`] checks the scopes' limits
//!   against their usage plus what other writes have reserved, and
//!   reserves the growth (so concurrent writers cannot together pass a
//!   limit; a write that would is refused before anything is written);
//! - once committed at `ts`, [`Charge::commit`] applies it unless the
//!   recount already saw it (`ts` at or below the recount's snapshot) or a
//!   newer version of the key is already applied (commits may report out
//!   of order); dropped uncommitted, the reservation is released;
//! - an item whose TTL has run out on the engine's clock leaves the
//!   usage when the next charge or read of the usage looks.
//!
//! Compaction changes no item, so it changes no usage. After a crash the
//! recount at open is the usage, so it is exact across crashes too. The
//! mirror costs memory per item in a quota scope; types without a quota
//! have none.
//!
//! Every write of a type, with a quota or not, holds the type's gate (a
//! read lock) from its charge to its commit or abandonment. A recount
//! takes the gate for writing: it waits (within a bound) for the writes in
//! flight, so none commits between the recount's snapshot and the new
//! accounts, and none charged against accounts the recount replaces.
//! Reads of the gate are recursive (they pass a waiting recount while the
//! gate is held for reading), since a transaction's later writes must not
//! wait for a recount that waits for the transaction; a recount under a
//! steady stream of overlapping writes may therefore hit its bound and
//! report `Busy`.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RawRwLock, RwLock};
use strata_engine::Timestamp;

use crate::error::{Result, StorageError};
use crate::types::StorageType;

/// One quota scope of a type: a key prefix and its limit.
#[derive(Debug, Clone)]
struct Account {
    prefix: String,
    limit: u64,
    usage: u64,
    reserved: u64,
}

/// A live item inside at least one quota scope.
#[derive(Debug, Clone)]
struct Item {
    size: u64,
    version: u64,
    expires_at: Option<u64>,
    /// Indexes into the type's accounts.
    scopes: Vec<usize>,
}

/// One item found by a recount.
#[derive(Debug, Clone)]
pub(crate) struct Counted {
    /// Its engine key.
    pub ekey: Vec<u8>,
    /// The key its policy scopes match.
    pub user: String,
    /// The bytes it counts for.
    pub size: u64,
    /// Its expiry on the engine's clock.
    pub expires_at: Option<Timestamp>,
}

/// The accounts of one storage type.
#[derive(Debug, Default)]
struct TypeUsage {
    /// Changed by every recount; charges of an older epoch reserved in
    /// accounts that are gone.
    epoch: u64,
    /// Commits at or below this timestamp are in the recount already.
    floor: u64,
    accounts: Vec<Account>,
    items: HashMap<Vec<u8>, Item>,
    expiries: BTreeSet<(u64, Vec<u8>)>,
    /// Keys deleted at a timestamp a charge still in flight might commit
    /// below (its commit must not bring the key back).
    deleted: HashMap<Vec<u8>, u64>,
    /// Charges not yet committed or dropped, by the newest commit
    /// timestamp when they were made: each will commit above it.
    in_flight: std::collections::BTreeMap<u64, usize>,
}

impl TypeUsage {
    fn scopes_of(&self, user: &str) -> Vec<usize> {
        self.accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| user.starts_with(&a.prefix))
            .map(|(i, _)| i)
            .collect()
    }

    /// Takes the items expired by `now` out of the usage.
    fn expire(&mut self, now: u64) {
        while let Some((at, key)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.pop_first();
            if self
                .items
                .get(&key)
                .is_some_and(|i| i.expires_at == Some(at))
            {
                if let Some(item) = self.items.remove(&key) {
                    for &s in &item.scopes {
                        self.accounts[s].usage = self.accounts[s].usage.saturating_sub(item.size);
                    }
                }
            }
        }
    }

    /// A charge made when `made_at` was the newest commit has ended.
    fn ended(&mut self, made_at: u64) {
        if let Some(n) = self.in_flight.get_mut(&made_at) {
            *n -= 1;
            if *n == 0 {
                self.in_flight.remove(&made_at);
            }
        }
        // A delete older than every charge in flight cannot be overtaken.
        match self.in_flight.keys().next() {
            None => self.deleted.clear(),
            Some(&oldest) => self.deleted.retain(|_, at| *at >= oldest),
        }
    }

    fn insert(&mut self, ekey: Vec<u8>, item: Item) {
        for &s in &item.scopes {
            self.accounts[s].usage += item.size;
        }
        if let Some(at) = item.expires_at {
            self.expiries.insert((at, ekey.clone()));
        }
        self.items.insert(ekey, item);
    }

    fn remove(&mut self, ekey: &[u8]) {
        if let Some(item) = self.items.remove(ekey) {
            for &s in &item.scopes {
                self.accounts[s].usage = self.accounts[s].usage.saturating_sub(item.size);
            }
            if let Some(at) = item.expires_at {
                self.expiries.remove(&(at, ekey.to_vec()));
            }
        }
    }
}

/// The usage of one quota scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaStatus {
    /// The storage type.
    pub storage_type: StorageType,
    /// The key prefix (empty: the whole type).
    pub prefix: String,
    /// The quota in bytes.
    pub limit: u64,
    /// Bytes held now: key and value bytes of every live item.
    pub usage: u64,
}

/// A type's gate: held for reading by each write from its charge to its
/// end, for writing by a recount.
type Gate = Arc<RwLock<()>>;

/// Held by a write while it is in flight.
pub(crate) type GateGuard = parking_lot::ArcRwLockReadGuard<RawRwLock, ()>;

/// Held by a recount: no write of the type is in flight.
pub(crate) type RecountGuard = parking_lot::ArcRwLockWriteGuard<RawRwLock, ()>;

/// The accounts of every type with a quota.
#[derive(Debug, Default)]
pub(crate) struct Usage {
    types: Mutex<HashMap<StorageType, TypeUsage>>,
    gates: Mutex<HashMap<StorageType, Gate>>,
    /// Numbers the accounts each reset installs, across types and resets.
    epochs: AtomicU64,
}

impl Usage {
    fn gate(&self, t: StorageType) -> Gate {
        self.gates.lock().entry(t).or_default().clone()
    }

    /// Waits (at most `bound`) until no write of `t` is in flight and keeps
    /// new ones out until the guard is dropped; `None` after the bound.
    pub(crate) fn quiesce(&self, t: StorageType, bound: Duration) -> Option<RecountGuard> {
        self.gate(t).try_write_arc_for(bound)
    }

    /// Replaces the accounts of `t` with `quotas` (prefix, limit) holding
    /// the `items` a recount from the snapshot at `floor` found. The caller
    /// holds `t`'s gate (see [`quiesce`](Self::quiesce)).
    pub(crate) fn reset(
        &self,
        t: StorageType,
        quotas: Vec<(String, u64)>,
        floor: Timestamp,
        items: Vec<Counted>,
        now: Timestamp,
    ) {
        let epoch = self.epochs.fetch_add(1, Ordering::Relaxed) + 1;
        let mut types = self.types.lock();
        if quotas.is_empty() {
            types.remove(&t);
            return;
        }
        let mut u = TypeUsage {
            epoch,
            floor: floor.as_u64(),
            accounts: quotas
                .into_iter()
                .map(|(prefix, limit)| Account {
                    prefix,
                    limit,
                    usage: 0,
                    reserved: 0,
                })
                .collect(),
            ..TypeUsage::default()
        };
        for c in items {
            let scopes = u.scopes_of(&c.user);
            if scopes.is_empty() {
                continue;
            }
            u.insert(
                c.ekey,
                Item {
                    size: c.size,
                    version: floor.as_u64(),
                    expires_at: c.expires_at.map(Timestamp::as_u64),
                    scopes,
                },
            );
        }
        u.expire(now.as_u64());
        types.insert(t, u);
    }

    /// Reserves what a write of `new` (size, expiry) to `ekey` (`None`: a
    /// delete) adds to the scopes of `user`, or fails with
    /// [`StorageError::QuotaExceeded`]. `None` when no quota applies.
    /// `now` is the engine's clock; `visible` its newest commit (the write
    /// will commit above it).
    pub(crate) fn charge(
        self: &Arc<Self>,
        t: StorageType,
        user: &str,
        ekey: &[u8],
        new: Option<(u64, Option<Timestamp>)>,
        now: Timestamp,
        visible: Timestamp,
    ) -> Result<Charge> {
        // Recursive: a transaction holds the gate from its first write to
        // its end, and its next write (or one by the same thread outside
        // it) must not queue behind a recount that waits for that very
        // transaction.
        let gate = self.gate(t).read_arc_recursive();
        let bare = |gate| Charge {
            usage: self.clone(),
            t,
            epoch: 0,
            made_at: 0,
            user: String::new(),
            ekey: Vec::new(),
            new: None,
            reserved: 0,
            done: true,
            _gate: gate,
        };
        let mut types = self.types.lock();
        let Some(u) = types.get_mut(&t) else {
            return Ok(bare(gate));
        };
        let scopes = u.scopes_of(user);
        if scopes.is_empty() {
            return Ok(bare(gate));
        }
        u.expire(now.as_u64());
        let current = u.items.get(ekey).map_or(0, |i| i.size);
        let growth = new.map_or(0, |(size, _)| size).saturating_sub(current);
        for &s in &scopes {
            let a = &u.accounts[s];
            if growth > 0 && a.usage + a.reserved + growth > a.limit {
                return Err(StorageError::QuotaExceeded {
                    scope: scope_name(t, &a.prefix),
                    limit: a.limit,
                    usage: a.usage + a.reserved,
                    needed: growth,
                });
            }
        }
        for &s in &scopes {
            u.accounts[s].reserved += growth;
        }
        *u.in_flight.entry(visible.as_u64()).or_default() += 1;
        Ok(Charge {
            usage: self.clone(),
            t,
            epoch: u.epoch,
            made_at: visible.as_u64(),
            user: user.to_owned(),
            ekey: ekey.to_vec(),
            new: new.map(|(size, at)| (size, at.map(Timestamp::as_u64))),
            reserved: growth,
            done: false,
            _gate: gate,
        })
    }

    /// The quota scopes of every type, with their usage as of `now`.
    pub(crate) fn statuses(&self, now: Timestamp) -> Vec<QuotaStatus> {
        let mut types = self.types.lock();
        let mut out = Vec::new();
        for (t, u) in types.iter_mut() {
            u.expire(now.as_u64());
            for a in &u.accounts {
                out.push(QuotaStatus {
                    storage_type: *t,
                    prefix: a.prefix.clone(),
                    limit: a.limit,
                    usage: a.usage,
                });
            }
        }
        out.sort_by(|a, b| (a.storage_type, &a.prefix).cmp(&(b.storage_type, &b.prefix)));
        out
    }
}

/// How a quota scope is named in errors and metrics.
pub(crate) fn scope_name(t: StorageType, prefix: &str) -> String {
    if prefix.is_empty() {
        t.to_string()
    } else {
        format!("{t} {prefix:?}")
    }
}

/// A write's reservation against its quota scopes (none when no quota
/// holds its key), and its place in its type's gate:
/// [`commit`](Self::commit) it with the write's commit timestamp; dropped,
/// it is released.
pub(crate) struct Charge {
    usage: Arc<Usage>,
    t: StorageType,
    epoch: u64,
    made_at: u64,
    user: String,
    ekey: Vec<u8>,
    new: Option<(u64, Option<u64>)>,
    reserved: u64,
    /// Nothing left to apply or release (a charge without a quota is born
    /// done).
    done: bool,
    _gate: GateGuard,
}

impl std::fmt::Debug for Charge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Charge")
            .field("t", &self.t)
            .field("user", &self.user)
            .field("reserved", &self.reserved)
            .finish_non_exhaustive()
    }
}

impl Charge {
    /// The write committed at `ts`: its bytes replace the key's.
    pub(crate) fn commit(mut self, ts: Timestamp) {
        if self.done {
            return;
        }
        self.done = true;
        let mut types = self.usage.types.lock();
        // The gate kept recounts out, so the accounts are the ones charged.
        let Some(u) = types.get_mut(&self.t).filter(|u| u.epoch == self.epoch) else {
            return;
        };
        for s in u.scopes_of(&self.user) {
            u.accounts[s].reserved = u.accounts[s].reserved.saturating_sub(self.reserved);
        }
        u.ended(self.made_at);
        let ts = ts.as_u64();
        let overtaken = u.items.get(&self.ekey).is_some_and(|i| i.version > ts)
            || u.deleted.get(&self.ekey).is_some_and(|at| *at > ts);
        if ts <= u.floor || overtaken {
            return;
        }
        u.remove(&self.ekey);
        if self.new.is_none() && !u.in_flight.is_empty() {
            u.deleted.insert(self.ekey.clone(), ts);
        } else {
            u.deleted.remove(&self.ekey);
        }
        if let Some((size, expires_at)) = self.new {
            let scopes = u.scopes_of(&self.user);
            if !scopes.is_empty() {
                let ekey = std::mem::take(&mut self.ekey);
                u.insert(
                    ekey,
                    Item {
                        size,
                        version: ts,
                        expires_at,
                        scopes,
                    },
                );
            }
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let mut types = self.usage.types.lock();
        if let Some(u) = types.get_mut(&self.t).filter(|u| u.epoch == self.epoch) {
            for s in u.scopes_of(&self.user) {
                u.accounts[s].reserved = u.accounts[s].reserved.saturating_sub(self.reserved);
            }
            u.ended(self.made_at);
        }
    }
}
