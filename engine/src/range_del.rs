//! The range tombstones a read consults: which tombstone, if any, hides a
//! version a read found.
//!
//! A tombstone at `T` hides the versions below `T` of the keys it covers,
//! wherever they are: timestamps order versions across memtables and
//! levels, so a read compares the version's timestamp with the newest
//! covering tombstone at or below the read's timestamp. The tombstones of
//! memtables and L0 tables (which overlap) are all consulted; in a deeper
//! level only the one table whose key range holds the key can have
//! tombstones covering it (a table's key range covers its tombstones,
//! SPEC §7), and the lookup remembers that table, or the gap between two
//! tables, while a scan stays in it.

use std::sync::Arc;

use strata_format::range_del::RangeTombstones;
use strata_format::sst::Table;

use crate::cache::TableCache;
use crate::error::Result;
use crate::levels::LevelFiles;

/// The tables of one level ≥ 1, and where the last key consulted fell.
struct LevelDels {
    files: LevelFiles,
    /// Where the last key consulted fell: in file `i` (with its table,
    /// `None` when it has no tombstones), or in the gap before file `i`
    /// (`i` = the file count: after the last).
    cached: Option<Place>,
}

/// Where a key falls in a level.
enum Place {
    In(usize, Option<Table>),
    Before(usize),
}

impl LevelDels {
    /// The tombstones of the file whose key range holds `key`.
    fn for_key(&mut self, tables: &TableCache, key: &[u8]) -> Result<Option<&RangeTombstones>> {
        let files = self.files.files();
        // Files are sorted and disjoint: the first condition of each arm
        // implies the key is past every earlier file.
        let same = match &self.cached {
            Some(Place::In(i, _)) => files.get(*i).is_some_and(|f| f.overlaps(key, key)),
            Some(Place::Before(i)) => {
                i.checked_sub(1)
                    .is_none_or(|p| files.get(p).is_some_and(|f| f.largest_user_key() < key))
                    && files.get(*i).is_none_or(|f| key < f.smallest_user_key())
            }
            None => false,
        };
        if !same {
            let i = files.partition_point(|f| f.largest_user_key() < key);
            self.cached = Some(match files.get(i) {
                Some(f) if f.smallest_user_key() <= key => {
                    let t = tables.get(f)?;
                    Place::In(i, (!t.range_tombstones().is_empty()).then_some(t))
                }
                _ => Place::Before(i),
            });
        }
        Ok(match &self.cached {
            Some(Place::In(_, Some(t))) => Some(t.range_tombstones()),
            _ => None,
        })
    }
}

/// The range tombstones of a read view, at its timestamp.
pub(crate) struct TombstoneLookup {
    ts: u64,
    /// Memtables' and L0 tables' tombstones (only the non-empty ones).
    flat: Vec<FlatDels>,
    levels: Vec<LevelDels>,
    tables: Arc<TableCache>,
}

/// Tombstones consulted whatever the key.
enum FlatDels {
    Mem(Arc<RangeTombstones>),
    Table(Table),
}

impl FlatDels {
    fn get(&self) -> &RangeTombstones {
        match self {
            FlatDels::Mem(m) => m,
            FlatDels::Table(t) => t.range_tombstones(),
        }
    }
}

impl TombstoneLookup {
    /// The lookup of a view at `ts` over memtables `mems`, L0 tables `l0`
    /// and deeper levels `levels`.
    pub(crate) fn new(
        ts: u64,
        mems: Vec<Arc<RangeTombstones>>,
        l0: Vec<Table>,
        levels: Vec<LevelFiles>,
        tables: Arc<TableCache>,
    ) -> Self {
        let mut flat: Vec<FlatDels> = mems
            .into_iter()
            .filter(|m| !m.is_empty())
            .map(FlatDels::Mem)
            .collect();
        flat.extend(
            l0.into_iter()
                .filter(|t| !t.range_tombstones().is_empty())
                .map(FlatDels::Table),
        );
        TombstoneLookup {
            ts,
            flat,
            levels: levels
                .into_iter()
                .filter(|l| !l.files().is_empty())
                .map(|files| LevelDels {
                    files,
                    cached: None,
                })
                .collect(),
            tables,
        }
    }

    /// The timestamp of the newest tombstone at or below the view's
    /// timestamp covering `key`: a version of `key` below it is deleted.
    pub(crate) fn covering(&mut self, key: &[u8]) -> Result<Option<u64>> {
        let ts = self.ts;
        let mut best = self
            .flat
            .iter()
            .filter_map(|d| d.get().covering(key, ts))
            .max();
        for level in &mut self.levels {
            if let Some(t) = level
                .for_key(&self.tables, key)?
                .and_then(|d| d.covering(key, ts))
            {
                best = best.max(Some(t));
            }
        }
        Ok(best)
    }

    /// True when a version of `key` at `version` is deleted by a range
    /// tombstone for this view.
    pub(crate) fn hides(&mut self, key: &[u8], version: u64) -> Result<bool> {
        Ok(self.covering(key)?.is_some_and(|t| t > version))
    }

    /// The timestamps of every tombstone at or below the view's timestamp
    /// covering `key`, newest first, each once (for a key's history).
    pub(crate) fn all_covering(&mut self, key: &[u8]) -> Result<Vec<u64>> {
        let ts = self.ts;
        let mut out: Vec<u64> = Vec::new();
        let mut add = |d: &RangeTombstones| {
            if let Some(f) = d.fragment_of(key) {
                out.extend(f.timestamps.iter().copied().filter(|&t| t <= ts));
            }
        };
        for d in &self.flat {
            add(d.get());
        }
        for level in &mut self.levels {
            if let Some(d) = level.for_key(&self.tables, key)? {
                add(d);
            }
        }
        out.sort_unstable_by(|a, b| b.cmp(a));
        out.dedup();
        Ok(out)
    }
}
