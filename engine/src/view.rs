//! Read views: the memtables and files a read uses, pinned together with a
//! timestamp, so a read sees one consistent state however long it takes.

use std::sync::Arc;

use bytes::Bytes;
use strata_format::bloom::bloom_hash;
use strata_format::codec::BlockDecoder;
use strata_format::key::ValueKind;
use strata_format::sst::Lookup;

use crate::cache::TableCache;
use crate::cursor::{Cursor, LevelCursor, MemCursor, MergeCursor, TableCursor};
use crate::error::{Error, Result};
use crate::memtable::Memtable;
use crate::stats::{add, KeyspaceCounters};
use crate::version::Levels;

/// The components of one keyspace at one moment: what a read searches.
/// Replaced as a whole (never mutated) when a memtable is switched, a flush
/// or a compaction is installed.
#[derive(Debug)]
pub(crate) struct SuperVersion {
    pub mem: Arc<Memtable>,
    /// Immutable memtables, newest first.
    pub imm: Vec<Arc<Memtable>>,
    pub levels: Arc<Levels>,
}

/// A super-version pinned at a timestamp.
#[derive(Clone)]
pub(crate) struct ReadView {
    pub ts: u64,
    /// The time TTL entries are judged against: the view's timestamp for a
    /// read of the past or a snapshot (repeatable), the wall clock for a
    /// read of the present (an entry expires with no write to move the
    /// commit clock).
    pub expiry_ts: u64,
    pub sv: Arc<SuperVersion>,
    pub tables: Arc<TableCache>,
    pub counters: Arc<KeyspaceCounters>,
}

thread_local! {
    /// Each reading thread keeps one block decoder, so a point read that
    /// misses the block cache reuses its zstd context.
    static DECODER: std::cell::RefCell<BlockDecoder> = std::cell::RefCell::new(BlockDecoder::new());
}

/// The value a version shows a reader at `ts`: none for a tombstone or an
/// entry expired by then; a TTL entry's expiry prefix is stripped.
pub(crate) fn resolve(kind: ValueKind, value: Bytes, ts: u64) -> Option<Bytes> {
    match kind {
        ValueKind::Delete => None,
        // Reserved kinds never get here: every decoder refuses them.
        ValueKind::BlobPointer | ValueKind::RangeDelete => None,
        ValueKind::PutWithTtl => {
            let expiry = ttl_expiry(&value)?;
            (ts < expiry).then(|| value.slice(8..))
        }
        ValueKind::Put => Some(value),
    }
}

/// The expiry timestamp of a TTL entry's value (none if malformed).
pub(crate) fn ttl_expiry(value: &[u8]) -> Option<u64> {
    value
        .get(..8)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_be_bytes)
}

impl ReadView {
    /// The value of `key` at the view's timestamp.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>> {
        let ts = self.ts;
        for mem in std::iter::once(&self.sv.mem).chain(&self.sv.imm) {
            if let Some((_, kind, v)) = mem.get(key, ts) {
                return Ok(resolve(kind, v, self.expiry_ts));
            }
        }
        let h = bloom_hash(key);
        let levels = &self.sv.levels.levels;
        for (level, files) in levels.iter().enumerate() {
            let candidates: Vec<_> = if level == 0 {
                files.iter().filter(|f| f.overlaps(key, key)).collect()
            } else {
                let i = files.partition_point(|f| f.largest_user_key() < key);
                files
                    .get(i)
                    .filter(|f| f.smallest_user_key() <= key)
                    .into_iter()
                    .collect()
            };
            for f in candidates {
                let table = self.tables.get(f)?;
                add(&self.counters.bloom_checks, 1);
                let found = DECODER
                    .with(|d| table.lookup(key, h, ts, &mut d.borrow_mut()))
                    .map_err(|e| Error::format(f.path(), e))?;
                match found {
                    Lookup::Found(e) => return Ok(resolve(e.kind, e.value, self.expiry_ts)),
                    Lookup::NotFound => add(&self.counters.bloom_false_positives, 1),
                    Lookup::FilteredOut => {}
                }
            }
        }
        Ok(None)
    }

    /// A merged cursor over every component, unpositioned.
    pub fn merged_cursor(&self) -> Result<MergeCursor> {
        let mut children: Vec<Box<dyn Cursor>> = Vec::new();
        for mem in std::iter::once(&self.sv.mem).chain(&self.sv.imm) {
            if !mem.is_empty() {
                children.push(Box::new(MemCursor::new(mem.clone())));
            }
        }
        let levels = &self.sv.levels.levels;
        if let Some(l0) = levels.first() {
            for f in l0 {
                let table = self.tables.get(f)?;
                children.push(Box::new(TableCursor::new(
                    table.iter(),
                    f.path().to_path_buf(),
                )));
            }
        }
        for files in levels.iter().skip(1) {
            if !files.is_empty() {
                children.push(Box::new(LevelCursor::new(
                    files.clone(),
                    self.tables.clone(),
                )));
            }
        }
        Ok(MergeCursor::new(children))
    }
}
