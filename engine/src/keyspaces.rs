//! The live keyspaces: their names and ids, and each one's current
//! super-version (the memtables and levels a read searches).
//!
//! Locks: [`KeyspaceRegistry`] holds one `RwLock` over the name and id
//! maps; each [`KeyspaceState`] holds one `Mutex` over its super-version,
//! taken after the registry's lock when both are held, and held only long
//! enough to read or replace an `Arc`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::levels::Levels;
use crate::memtable::Memtable;
use crate::stats::KeyspaceCounters;
use crate::view::SuperVersion;

/// The state of one keyspace shared by its handles and the engine.
#[derive(Debug)]
pub(crate) struct KeyspaceState {
    id: u32,
    name: String,
    sv: Mutex<Arc<SuperVersion>>,
    counters: Arc<KeyspaceCounters>,
    dropped: AtomicBool,
    /// The newest commit timestamp written into it since the open.
    last_commit: AtomicU64,
}

impl KeyspaceState {
    /// A keyspace with an empty memtable (for `memtable_size` bytes) over
    /// `levels`.
    pub(crate) fn new(id: u32, name: String, levels: Arc<Levels>, memtable_size: usize) -> Self {
        KeyspaceState {
            id,
            name,
            sv: Mutex::new(Arc::new(SuperVersion::new(
                Arc::new(Memtable::new(memtable_size)),
                Vec::new(),
                levels,
            ))),
            counters: Arc::default(),
            dropped: AtomicBool::new(false),
            last_commit: AtomicU64::new(0),
        }
    }

    /// The keyspace's id (never reused).
    #[inline]
    pub(crate) fn id(&self) -> u32 {
        self.id
    }

    /// The keyspace's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Notes a commit at `ts` into the keyspace.
    pub(crate) fn note_commit(&self, ts: u64) {
        self.last_commit.fetch_max(ts, Ordering::Release);
    }

    /// The newest commit timestamp written into it since the open (0 for
    /// none).
    pub(crate) fn last_commit(&self) -> u64 {
        self.last_commit.load(Ordering::Acquire)
    }

    /// Its traffic counters.
    pub(crate) fn counters(&self) -> &Arc<KeyspaceCounters> {
        &self.counters
    }

    /// The current super-version.
    pub(crate) fn super_version(&self) -> Arc<SuperVersion> {
        self.sv.lock().clone()
    }

    /// The memtable writes go to now.
    pub(crate) fn active_memtable(&self) -> Arc<Memtable> {
        self.sv.lock().mem().clone()
    }

    /// Runs `f` with the super-version locked, so that what `f` reads
    /// (e.g. the visible timestamp) is consistent with the components it
    /// gets: no switch or install can come in between.
    pub(crate) fn with_super_version<T>(&self, f: impl FnOnce(&Arc<SuperVersion>) -> T) -> T {
        f(&self.sv.lock())
    }

    /// The one place a super-version is replaced: `next` derives the new one
    /// from the current one, or returns `None` to keep it.
    /// Returns the super-version replaced, for the caller to drop once it
    /// holds no lock: the last reference to it may free a flushed memtable
    /// or delete files, which takes time nobody should wait on.
    #[must_use = "drop the old super-version outside the caller's locks"]
    pub(crate) fn install(
        &self,
        next: impl FnOnce(&SuperVersion) -> Option<SuperVersion>,
    ) -> Option<Arc<SuperVersion>> {
        let mut sv = self.sv.lock();
        let n = next(&sv)?;
        Some(std::mem::replace(&mut *sv, Arc::new(n)))
    }

    /// Seals the active memtable (if it holds anything) behind a new empty
    /// one; returns the sealed memtable.
    pub(crate) fn seal_memtable(&self) -> Option<Arc<Memtable>> {
        let mut sealed = None;
        let old = self.install(|sv| {
            if sv.mem().is_empty() {
                return None;
            }
            sealed = Some(sv.mem().clone());
            Some(sv.sealed())
        });
        drop(old);
        sealed
    }

    /// True once the keyspace was dropped.
    pub(crate) fn is_dropped(&self) -> bool {
        self.dropped.load(Ordering::Acquire)
    }

    /// Marks the keyspace dropped and lets its memtables go (they go with
    /// the last handle otherwise).
    fn mark_dropped(&self, num_levels: usize) {
        self.dropped.store(true, Ordering::Release);
        *self.sv.lock() = Arc::new(SuperVersion::new(
            Arc::new(Memtable::new(0)),
            Vec::new(),
            Arc::new(Levels::new(num_levels)),
        ));
    }
}

/// Live keyspaces by name and by id.
#[derive(Debug, Default)]
pub(crate) struct KeyspaceRegistry {
    maps: RwLock<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    by_name: HashMap<String, Arc<KeyspaceState>>,
    by_id: BTreeMap<u32, Arc<KeyspaceState>>,
}

impl KeyspaceRegistry {
    /// The keyspace named `name`, if it is live.
    pub(crate) fn by_name(&self, name: &str) -> Option<Arc<KeyspaceState>> {
        self.maps.read().by_name.get(name).cloned()
    }

    /// The keyspace with id `id`, if it is live.
    pub(crate) fn by_id(&self, id: u32) -> Option<Arc<KeyspaceState>> {
        self.maps.read().by_id.get(&id).cloned()
    }

    /// True when `ks` is this registry's live keyspace of its id (not a
    /// handle of another database, nor a dropped one).
    pub(crate) fn owns(&self, ks: &Arc<KeyspaceState>) -> bool {
        self.maps
            .read()
            .by_id
            .get(&ks.id)
            .is_some_and(|k| Arc::ptr_eq(k, ks))
    }

    /// Every live keyspace, by id.
    pub(crate) fn all(&self) -> Vec<Arc<KeyspaceState>> {
        self.maps.read().by_id.values().cloned().collect()
    }

    /// The names, sorted.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.maps.read().by_name.keys().cloned().collect();
        names.sort();
        names
    }

    /// Returns the keyspace named `name`, or registers the one `create`
    /// makes (under the registry's write lock, so two callers cannot both
    /// create it). `create` may fail, leaving the registry unchanged.
    pub(crate) fn get_or_create<E>(
        &self,
        name: &str,
        create: impl FnOnce() -> Result<Arc<KeyspaceState>, E>,
    ) -> Result<Arc<KeyspaceState>, E> {
        let mut maps = self.maps.write();
        if let Some(ks) = maps.by_name.get(name) {
            return Ok(ks.clone());
        }
        let ks = create()?;
        maps.by_name.insert(ks.name.clone(), ks.clone());
        maps.by_id.insert(ks.id, ks.clone());
        Ok(ks)
    }

    /// Registers keyspaces found at open.
    pub(crate) fn insert(&self, ks: Arc<KeyspaceState>) {
        let mut maps = self.maps.write();
        maps.by_name.insert(ks.name.clone(), ks.clone());
        maps.by_id.insert(ks.id, ks);
    }

    /// Removes the keyspace named `name` once `remove` (the durable part of
    /// the drop) succeeded, under the registry's write lock.
    pub(crate) fn drop_with<E>(
        &self,
        name: &str,
        num_levels: usize,
        not_found: impl FnOnce() -> E,
        remove: impl FnOnce(&Arc<KeyspaceState>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut maps = self.maps.write();
        let ks = maps.by_name.get(name).cloned().ok_or_else(not_found)?;
        remove(&ks)?;
        maps.by_name.remove(name);
        maps.by_id.remove(&ks.id);
        ks.mark_dropped(num_levels);
        Ok(())
    }
}
