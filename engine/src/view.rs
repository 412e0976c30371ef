//! Read views: the memtables and files a read uses, pinned together with a
//! timestamp, so a read sees one consistent state however long it takes.

use std::sync::Arc;

use bytes::Bytes;
use strata_format::bloom::bloom_hash;
use strata_format::key::ValueKind;
use strata_format::sst::Lookup;
use strata_format::sst::PointScratch;

use crate::cache::TableCache;
use crate::cursor::{Cursor, LevelCursor, MemCursor, MergeCursor, TableCursor};
use crate::error::{Error, Result};
use crate::levels::{LevelFiles, Levels};
use crate::memtable::Memtable;
use crate::range_del::TombstoneLookup;
use crate::stats::KeyspaceCounters;

/// The components of one keyspace at one moment: what a read searches.
/// Replaced as a whole (never mutated) when a memtable is switched, a flush
/// or a compaction is installed; the constructors below are the only ways
/// to derive one, and [`KeyspaceState::install`](crate::keyspaces::KeyspaceState::install)
/// the only place one is swapped in.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    mem: Arc<Memtable>,
    /// Immutable memtables, newest first.
    imm: Vec<Arc<Memtable>>,
    levels: Arc<Levels>,
}

impl SuperVersion {
    /// A super-version of these components.
    pub(crate) fn new(mem: Arc<Memtable>, imm: Vec<Arc<Memtable>>, levels: Arc<Levels>) -> Self {
        SuperVersion { mem, imm, levels }
    }

    /// The memtable being written.
    #[inline]
    pub(crate) fn mem(&self) -> &Arc<Memtable> {
        &self.mem
    }

    /// The sealed memtables not yet flushed, newest first.
    #[inline]
    pub(crate) fn imm(&self) -> &[Arc<Memtable>] {
        &self.imm
    }

    /// The files.
    #[inline]
    pub(crate) fn levels(&self) -> &Arc<Levels> {
        &self.levels
    }

    /// This one with the active memtable sealed behind a new empty one.
    pub(crate) fn sealed(&self) -> SuperVersion {
        let mut imm = Vec::with_capacity(self.imm.len() + 1);
        imm.push(self.mem.clone());
        imm.extend(self.imm.iter().cloned());
        SuperVersion::new(Arc::new(self.mem.successor()), imm, self.levels.clone())
    }

    /// This one over other levels, or `None` when they are the same.
    pub(crate) fn with_levels(&self, levels: &Arc<Levels>) -> Option<SuperVersion> {
        (!Arc::ptr_eq(&self.levels, levels))
            .then(|| SuperVersion::new(self.mem.clone(), self.imm.clone(), levels.clone()))
    }

    /// This one after `flushed` reached `levels`: the memtable leaves the
    /// sealed list in the same step as its table joins the levels.
    pub(crate) fn after_flush(
        &self,
        flushed: &Arc<Memtable>,
        levels: Option<&Arc<Levels>>,
    ) -> SuperVersion {
        SuperVersion::new(
            self.mem.clone(),
            self.imm
                .iter()
                .filter(|m| !Arc::ptr_eq(m, flushed))
                .cloned()
                .collect(),
            levels.unwrap_or(&self.levels).clone(),
        )
    }
}

/// A super-version pinned at a timestamp.
#[derive(Clone)]
pub(crate) struct ReadView {
    ts: u64,
    /// The time TTL entries are judged against: the view's timestamp for a
    /// read of the past or a snapshot (repeatable), the wall clock for a
    /// read of the present (an entry expires with no write to move the
    /// commit clock).
    expiry_ts: u64,
    sv: Arc<SuperVersion>,
    tables: Arc<TableCache>,
    counters: Arc<KeyspaceCounters>,
}

/// What a point read searches, borrowed: the super-version, the table
/// cache and the keyspace's counters. A [`ReadView`] owns handles to them
/// and lends this; a point read of the present pins only the
/// super-version and borrows the rest, whose reference counts every
/// reading core would otherwise write.
pub(crate) struct ViewRef<'a> {
    ts: u64,
    expiry_ts: u64,
    sv: &'a SuperVersion,
    tables: &'a TableCache,
    counters: &'a KeyspaceCounters,
}

thread_local! {
    /// Each reading thread keeps one lookup scratch: a point read that
    /// misses the block cache reuses its zstd context, and no read
    /// allocates key buffers.
    static SCRATCH: std::cell::RefCell<PointScratch> = std::cell::RefCell::new(PointScratch::default());
}

/// The value a version shows a reader at `ts`: none for a tombstone or an
/// entry expired by then; a TTL entry's expiry prefix is stripped.
pub(crate) fn resolve(kind: ValueKind, value: Bytes, ts: u64) -> Option<Bytes> {
    match shown_from(kind, &value, ts)? {
        0 => Some(value),
        at => Some(value.slice(at..)),
    }
}

/// Where the value a version shows a reader at `ts` starts in its stored
/// value (past a TTL entry's expiry prefix); none for a tombstone or an
/// entry expired by then. The one rule [`resolve`] and the lending
/// iterators apply.
#[inline]
pub(crate) fn shown_from(kind: ValueKind, value: &[u8], ts: u64) -> Option<usize> {
    match kind {
        ValueKind::Put => Some(0),
        ValueKind::PutWithTtl => (ts < ttl_expiry(value)?).then_some(8),
        ValueKind::Delete => None,
        // Blob pointers never get here (readers load the value first, see
        // `ViewRef::load`), nor do range deletes, which tables and
        // memtables keep apart.
        ValueKind::BlobPointer | ValueKind::RangeDelete => None,
    }
}

/// A visible version as [`ReadView::get_entry`] finds it: the value (TTL
/// prefix stripped), its commit timestamp and its expiry.
pub(crate) fn resolve_entry(
    kind: ValueKind,
    value: Bytes,
    version: u64,
    ts: u64,
) -> Option<crate::reader::Entry> {
    let expires_at = match kind {
        ValueKind::PutWithTtl => ttl_expiry(&value),
        _ => None,
    };
    resolve(kind, value, ts).map(|value| crate::reader::Entry {
        value,
        ts: Some(crate::Timestamp(version)),
        expires_at: expires_at.map(crate::Timestamp),
    })
}

/// The expiry timestamp of a TTL entry's value (none if malformed).
pub(crate) fn ttl_expiry(value: &[u8]) -> Option<u64> {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

impl ReadView {
    /// A view of `sv` at `ts`, judging TTL entries at `expiry_ts`.
    pub(crate) fn new(
        ts: u64,
        expiry_ts: u64,
        sv: Arc<SuperVersion>,
        tables: Arc<TableCache>,
        counters: Arc<KeyspaceCounters>,
    ) -> Self {
        ReadView {
            ts,
            expiry_ts,
            sv,
            tables,
            counters,
        }
    }

    /// The timestamp the view reads at.
    #[inline]
    pub(crate) fn ts(&self) -> u64 {
        self.ts
    }

    /// The time TTL entries are judged against.
    #[inline]
    pub(crate) fn expiry_ts(&self) -> u64 {
        self.expiry_ts
    }

    /// The view, borrowed, for point reads.
    #[inline]
    pub(crate) fn as_ref(&self) -> ViewRef<'_> {
        ViewRef {
            ts: self.ts,
            expiry_ts: self.expiry_ts,
            sv: &self.sv,
            tables: &self.tables,
            counters: &self.counters,
        }
    }

    /// The value of `key` at the view's timestamp.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        self.as_ref().get(key)
    }

    /// A version as a reader sees it: a blob pointer's value read from its
    /// blob file (as a put), any other version as it is.
    #[inline]
    pub(crate) fn load(&self, kind: ValueKind, value: Bytes) -> Result<(ValueKind, Bytes)> {
        self.as_ref().load(kind, value)
    }

    /// The version of `key` visible at the view's timestamp, with its
    /// commit timestamp and expiry.
    pub fn get_entry(&self, key: &[u8]) -> Result<Option<crate::reader::Entry>> {
        self.as_ref().get_entry(key)
    }

    /// The range tombstones this view reads through, for scans and
    /// histories.
    pub(crate) fn range_tombstones(&self) -> Result<TombstoneLookup> {
        let mems = std::iter::once(self.sv.mem())
            .chain(self.sv.imm())
            .filter(|m| m.has_range_tombstones())
            .map(|m| m.range_tombstones())
            .collect();
        let levels = self.sv.levels();
        let l0 = levels
            .level(0)
            .iter()
            .map(|f| self.tables.get(f))
            .collect::<Result<Vec<_>>>()?;
        // Empty levels are left out by the lookup itself.
        let deeper = (1..levels.num_levels())
            .map(|level| LevelFiles::Pinned(levels.clone(), level))
            .collect();
        Ok(TombstoneLookup::new(
            self.ts,
            mems,
            l0,
            deeper,
            self.tables.clone(),
        ))
    }

    /// A merged cursor over every component, unpositioned.
    pub fn merged_cursor(&self) -> Result<MergeCursor> {
        let mut children: Vec<Box<dyn Cursor>> = Vec::new();
        for mem in std::iter::once(self.sv.mem()).chain(self.sv.imm()) {
            if !mem.is_empty() {
                children.push(Box::new(MemCursor::new(mem.clone())));
            }
        }
        let levels = self.sv.levels();
        {
            let l0 = levels.level(0);
            for f in l0 {
                let table = self.tables.get(f)?;
                children.push(Box::new(TableCursor::new(
                    table.iter(),
                    f.path().to_path_buf(),
                )));
            }
        }
        for (level, files) in levels.iter().enumerate().skip(1) {
            if !files.is_empty() {
                children.push(Box::new(LevelCursor::new(
                    LevelFiles::Pinned(levels.clone(), level),
                    self.tables.clone(),
                )));
            }
        }
        Ok(MergeCursor::new(children))
    }
}

impl<'a> ViewRef<'a> {
    /// A borrowed view of `sv` at `ts`, judging TTL entries at `expiry_ts`.
    pub(crate) fn new(
        ts: u64,
        expiry_ts: u64,
        sv: &'a SuperVersion,
        tables: &'a TableCache,
        counters: &'a KeyspaceCounters,
    ) -> Self {
        ViewRef {
            ts,
            expiry_ts,
            sv,
            tables,
            counters,
        }
    }

    /// The value of `key` at the view's timestamp.
    #[inline]
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let Some((kind, v, _)) = self.find(key)? else {
            return Ok(None);
        };
        let (kind, v) = self.load(kind, v)?;
        Ok(resolve(kind, v, self.expiry_ts))
    }

    /// A version as a reader sees it: a blob pointer's value read from its
    /// blob file (as a put), any other version as it is.
    #[inline]
    pub(crate) fn load(&self, kind: ValueKind, value: Bytes) -> Result<(ValueKind, Bytes)> {
        self.tables.blobs().load(kind, value)
    }

    /// The version of `key` visible at the view's timestamp, with its
    /// commit timestamp and expiry.
    pub fn get_entry(&self, key: &[u8]) -> Result<Option<crate::reader::Entry>> {
        let Some((kind, v, version)) = self.find(key)? else {
            return Ok(None);
        };
        let (kind, v) = self.load(kind, v)?;
        Ok(resolve_entry(kind, v, version, self.expiry_ts))
    }

    /// The newest version of `key` at or below the view's timestamp, as
    /// stored: its kind, value and commit timestamp; `None` when there is
    /// none or a range tombstone deletes it.
    ///
    /// Components are searched newest first, and the first version found
    /// is the newest (every version of a key in a component is newer than
    /// those in the components after it). The range tombstones of each
    /// component searched are checked on the way, so one found in a newer
    /// component hides a version found in an older one, and a table all of
    /// whose contents are older than that tombstone is not read at all.
    fn find(&self, key: &[u8]) -> Result<Option<(ValueKind, Bytes, u64)>> {
        let ts = self.ts;
        // The newest covering range tombstone seen so far (0: none).
        let mut deleted_at = 0u64;
        let visible = |version: u64, deleted_at: u64| version >= deleted_at;
        let h = bloom_hash(key);
        for mem in std::iter::once(self.sv.mem()).chain(self.sv.imm()) {
            if mem.has_range_tombstones() {
                if let Some(t) = mem.range_tombstones().covering(key, ts) {
                    deleted_at = deleted_at.max(t);
                }
            }
            if let Some((version, kind, v)) = mem.get_hashed(key, h, ts) {
                return Ok(visible(version, deleted_at).then_some((kind, v, version)));
            }
        }
        for (level, files) in self.sv.levels().iter().enumerate() {
            // Level 0's tables overlap: each that spans the key, newest
            // first. A deeper level holds at most one.
            let candidates = if level == 0 {
                files
            } else {
                let i = files.partition_point(|f| f.largest_user_key() < key);
                files.get(i..=i).unwrap_or(&[])
            };
            for f in candidates.iter().filter(|f| f.overlaps(key, key)) {
                if f.max_ts < deleted_at {
                    // Everything in it is older than a tombstone covering
                    // the key.
                    continue;
                }
                let table = self.tables.get(f)?;
                if let Some(t) = table.range_tombstones().covering(key, ts) {
                    deleted_at = deleted_at.max(t);
                }
                let found = SCRATCH
                    .with(|d| table.lookup(key, h, ts, &mut d.borrow_mut()))
                    .map_err(|e| Error::format(f.path(), e))?;
                self.counters
                    .bloom_checked(matches!(found, Lookup::NotFound));
                if let Lookup::Found(e) = found {
                    return Ok(visible(e.ts, deleted_at).then_some((e.kind, e.value, e.ts)));
                }
            }
        }
        Ok(None)
    }
}
