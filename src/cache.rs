//! The key-value provider's read cache: bounded by bytes, honouring TTLs,
//! and never serving a value a later commit replaced.
//!
//! A reader that misses reads the engine and then fills the cache; a writer
//! invalidates after its write is committed. To keep a slow reader from
//! filling in a value a writer has just replaced, each key hashes to a
//! stripe with a generation: the writer bumps it and removes the entry
//! under the stripe's lock, and the reader fills only if the generation is
//! still the one it saw before reading the engine, checked under the same
//! lock.

use std::sync::Arc;

use parking_lot::Mutex;
use quick_cache::sync::Cache;
use quick_cache::Weighter;
use strata_engine::Timestamp;

use crate::types::StorageMetadata;

const STRIPES: usize = 256;

/// A cached item.
#[derive(Debug, Clone)]
pub(crate) struct CachedItem {
    pub value: Arc<Vec<u8>>,
    pub metadata: StorageMetadata,
}

#[derive(Clone)]
struct ItemWeighter;

impl Weighter<Vec<u8>, CachedItem> for ItemWeighter {
    fn weight(&self, key: &Vec<u8>, item: &CachedItem) -> u64 {
        (key.len() + item.value.len() + 96) as u64
    }
}

/// A bounded cache of decoded items by key.
pub(crate) struct ReadCache {
    cache: Cache<Vec<u8>, CachedItem, ItemWeighter>,
    stripes: Vec<Mutex<u64>>,
}

impl std::fmt::Debug for ReadCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadCache")
            .field("items", &self.cache.len())
            .finish()
    }
}

fn stripe(key: &[u8]) -> usize {
    (xxhash_rust::xxh3::xxh3_64(key) as usize) % STRIPES
}

impl ReadCache {
    /// A cache holding about `capacity_bytes` of items.
    pub(crate) fn new(capacity_bytes: u64) -> Self {
        let items = (capacity_bytes / 512).clamp(16, 1 << 20) as usize;
        ReadCache {
            cache: Cache::with_weighter(items, capacity_bytes.max(1), ItemWeighter),
            stripes: (0..STRIPES).map(|_| Mutex::new(0)).collect(),
        }
    }

    /// The generation to pass to [`fill`](Self::fill) after reading `key`
    /// from the engine.
    pub(crate) fn generation(&self, key: &[u8]) -> u64 {
        *self.stripes[stripe(key)].lock()
    }

    /// The cached item, unless absent or expired by `now`.
    pub(crate) fn get(&self, key: &[u8], now: Timestamp) -> Option<CachedItem> {
        let item = self.cache.get(key)?;
        if item.metadata.expires_at.is_some_and(|e| e <= now) {
            self.cache.remove(key);
            return None;
        }
        Some(item)
    }

    /// Caches an item read from the engine, unless a write to the key (or
    /// its stripe) was committed since `generation` was taken.
    pub(crate) fn fill(&self, key: &[u8], generation: u64, item: CachedItem) {
        let s = self.stripes[stripe(key)].lock();
        if *s == generation {
            self.cache.insert(key.to_vec(), item);
        }
    }

    /// Drops the key after a committed write (or delete) of it.
    pub(crate) fn invalidate(&self, key: &[u8]) {
        let mut s = self.stripes[stripe(key)].lock();
        *s = s.wrapping_add(1);
        self.cache.remove(key);
    }

    /// Items held.
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }
}
