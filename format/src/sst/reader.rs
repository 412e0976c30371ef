//! Reading an SST through a [`TableSource`] (bytes in memory, a mapping
//! wrapped in [`Bytes`], or positioned reads of a file): open from the
//! footer, point lookups behind the bloom filter, and a cursor over every
//! entry.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;

use crate::block::{Block, BlockIter};
use crate::bloom::{bloom_hash, BloomFilter};
use crate::codec::{
    BlockContext, BlockDecoder, BlockKind, EncryptionKey, Keyring, MAX_BLOCK_LEN, TRAILER_LEN,
};
use crate::error::{Error, Result};
use crate::key::{compare_internal, InternalKeyRef, ValueKind};
use crate::range_del::RangeTombstones;

use super::digest::IndexDigest;
use super::{BlockHandle, Footer, Properties, TableSource, FOOTER_LEN};

/// What a reader needs besides the bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct TableReadOptions<'a> {
    /// The table's file number (its blocks are bound to it).
    pub file_number: u64,
    /// The uid the manifest recorded for the file; when given, a file with
    /// another uid (an older file with the same number) is refused.
    pub expected_uid: Option<[u8; 16]>,
    /// Keys for encrypted tables.
    pub keyring: Option<&'a Keyring>,
    /// The encryption the manifest recorded for the file (`Some(None)`:
    /// plaintext; `Some(Some(id))`: encrypted with key `id`). When given, a
    /// footer that declares anything else is refused, so a forged plaintext
    /// table cannot replace an encrypted one. `None` accepts the footer's word.
    pub expected_key_id: Option<Option<u32>>,
}

/// A cache of decoded data blocks shared by tables, keyed by file number
/// and block offset. The engine implements it; a table consults it before
/// reading a data block and fills it after.
pub trait BlockCache: Send + Sync {
    /// The cached block at `offset` of file `file_number`.
    fn get(&self, file_number: u64, offset: u64) -> Option<Block>;
    /// Caches a block just read.
    fn insert(&self, file_number: u64, offset: u64, block: Block);
}

/// What [`Table::lookup`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The bloom filter says the key is absent.
    FilteredOut,
    /// The filter let the key through but the table has no visible version
    /// (a false positive, or only newer versions).
    NotFound,
    /// The newest version at or below the timestamp.
    Found(TableEntry),
}

/// What [`Table::lookup`] keeps between calls: the block decoder (its
/// zstd context) and the buffers of the target and the keys it decodes.
/// One per thread serves every table.
#[derive(Debug, Default)]
pub struct PointScratch {
    decoder: BlockDecoder,
    target: Vec<u8>,
    index_key: Vec<u8>,
    data_key: Vec<u8>,
}

/// One entry found by [`Table::get`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableEntry {
    /// The entry's timestamp.
    pub ts: u64,
    /// The entry's kind.
    pub kind: ValueKind,
    /// The entry's value (empty for a tombstone).
    pub value: Bytes,
}

struct Inner {
    source: Box<dyn TableSource>,
    /// The source's length, read once at open.
    len: u64,
    file_number: u64,
    footer: Footer,
    key: Option<Arc<EncryptionKey>>,
    index: Block,
    filter: Bytes,
    properties: Properties,
    /// The range tombstones, decoded at open (empty for most tables).
    range_dels: RangeTombstones,
    /// The index block's search aid (`None` for an index it cannot serve).
    digest: Option<IndexDigest>,
    /// Where the footer starts: no block may reach past it.
    blocks_end: u64,
    cache: Option<Arc<dyn BlockCache>>,
}

/// An open SST. Cheap to clone; iterators hold a clone.
#[derive(Clone)]
pub struct Table {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("file_number", &self.inner.file_number)
            .field("size", &self.inner.len)
            .field("entries", &self.inner.properties.entries)
            .finish_non_exhaustive()
    }
}

impl Table {
    /// Opens a table held in memory: checks the footer (magic, version,
    /// checksum, MAC), then decodes the index, filter and properties blocks.
    pub fn open(data: Bytes, opts: &TableReadOptions<'_>) -> Result<Table> {
        Self::open_source(data, opts, None)
    }

    /// [`open`](Self::open), with data blocks read through `cache`.
    pub fn open_cached(
        data: Bytes,
        opts: &TableReadOptions<'_>,
        cache: Option<Arc<dyn BlockCache>>,
    ) -> Result<Table> {
        Self::open_source(data, opts, cache)
    }

    /// Opens a table whose bytes are read through `source`, with data blocks
    /// read through `cache` when given. The footer, index, filter and
    /// properties blocks are read and checked now; data blocks on demand.
    pub fn open_source(
        source: impl TableSource + 'static,
        opts: &TableReadOptions<'_>,
        cache: Option<Arc<dyn BlockCache>>,
    ) -> Result<Table> {
        let n = opts.file_number;
        let len = source.len();
        let footer_at = len.checked_sub(FOOTER_LEN as u64).ok_or_else(|| {
            Error::corruption(
                format!("sst {n}: file of {len} bytes is shorter than a footer"),
                0,
            )
        })?;
        let footer_bytes = read_exact(&source, n, footer_at, FOOTER_LEN, "footer")?;
        let footer = Footer::decode(&footer_bytes, n, footer_at)?;
        if let Some(uid) = opts.expected_uid {
            if uid != footer.file_uid {
                return Err(Error::corruption(
                    format!("sst {n}: file uid differs from the manifest's"),
                    footer_at + 48,
                ));
            }
        }
        if let Some(expected) = opts.expected_key_id {
            if expected != footer.key_id {
                return Err(Error::Decrypt {
                    what: format!("sst {n}: footer declares another encryption than the manifest"),
                    offset: footer_at + 64,
                    key_id: expected.or(footer.key_id).unwrap_or(0),
                });
            }
        }
        let key = match footer.key_id {
            None => None,
            Some(id) => {
                let key = opts
                    .keyring
                    .and_then(|k| k.get(id))
                    .ok_or_else(|| Error::MissingKey {
                        what: format!("sst {n}"),
                        offset: footer_at,
                        key_id: id,
                    })?
                    .clone();
                Footer::verify(&footer_bytes, n, footer_at, &key)?;
                Some(key)
            }
        };
        let mut inner = Inner {
            source: Box::new(source),
            len,
            file_number: n,
            footer,
            key,
            index: Block::new(Bytes::from_static(&[0, 0, 0, 0, 1, 0, 0, 0]), 0)?,
            filter: Bytes::new(),
            properties: Properties::default(),
            range_dels: RangeTombstones::new(),
            digest: None,
            blocks_end: footer_at,
            cache,
        };
        let d = &mut BlockDecoder::new();
        inner.index = Block::new(
            inner.load(d, footer.index, BlockKind::Index)?,
            footer.index.offset,
        )?;
        inner.digest = IndexDigest::build(&inner.index);
        let filter = inner.load(d, footer.filter, BlockKind::Filter)?;
        BloomFilter::new(&filter).map_err(|_| {
            Error::corruption(format!("sst {n}: bloom filter"), footer.filter.offset)
        })?;
        inner.filter = filter;
        let props = inner.load(d, footer.properties, BlockKind::Properties)?;
        inner.properties = Properties::decode(&props, footer.properties.offset)?;
        if let Some(h) = inner.properties.range_deletions_handle {
            if footer.version < super::SST_FORMAT_VERSION {
                return Err(Error::corruption(
                    format!(
                        "sst {n}: a version-{} table with range deletions",
                        footer.version
                    ),
                    footer.properties.offset,
                ));
            }
            let block = inner.load(d, h, BlockKind::RangeDeletions)?;
            inner.range_dels = RangeTombstones::decode(block, h.offset)?;
        }
        Ok(Table {
            inner: Arc::new(inner),
        })
    }

    /// The table's file number.
    pub fn file_number(&self) -> u64 {
        self.inner.file_number
    }

    /// The footer, with the file's uid and key id.
    pub fn footer(&self) -> &Footer {
        &self.inner.footer
    }

    /// The table's properties.
    pub fn properties(&self) -> &Properties {
        &self.inner.properties
    }

    /// The table's range tombstones (none for most tables), decoded at
    /// open: a point read checks them without reading a block.
    pub fn range_tombstones(&self) -> &RangeTombstones {
        &self.inner.range_dels
    }

    /// The table's size in bytes.
    pub fn size(&self) -> u64 {
        self.inner.len
    }

    /// False when `user_key` is certainly not in the table.
    pub fn may_contain(&self, user_key: &[u8]) -> bool {
        self.may_contain_hash(crate::bloom::bloom_hash(user_key))
    }

    /// False when the key with this bloom hash is certainly not in the table.
    pub fn may_contain_hash(&self, h: u64) -> bool {
        // Validated at open; a failure here cannot happen, and answering
        // "maybe" is always safe.
        BloomFilter::new(&self.inner.filter).map_or(true, |f| f.may_contain_hash(h))
    }

    /// Reads and decodes the data block at `handle` (as found in the index).
    /// The engine's block cache calls this on a miss.
    pub fn read_block(&self, handle: BlockHandle) -> Result<Block> {
        self.read_block_with(&mut BlockDecoder::new(), handle)
    }

    /// [`read_block`](Self::read_block) with a decoder the caller keeps, so
    /// its zstd context is reused.
    pub fn read_block_with(
        &self,
        decoder: &mut BlockDecoder,
        handle: BlockHandle,
    ) -> Result<Block> {
        self.read_block_filling(decoder, handle, true)
    }

    /// The newest version of `user_key` with a timestamp `<= ts`, tombstones
    /// included; `None` when the table has no such version. The bloom filter
    /// is checked first.
    pub fn get(&self, user_key: &[u8], ts: u64) -> Result<Option<TableEntry>> {
        match self.lookup(
            user_key,
            bloom_hash(user_key),
            ts,
            &mut PointScratch::default(),
        )? {
            Lookup::Found(e) => Ok(Some(e)),
            Lookup::FilteredOut | Lookup::NotFound => Ok(None),
        }
    }

    /// [`get`](Self::get) for callers that hash the key once for many tables
    /// ([`bloom_hash`]) and keep their buffers ([`PointScratch`]); says
    /// whether the filter answered. It walks the index and data blocks
    /// directly, without a [`TableIter`], so a lookup allocates nothing.
    pub fn lookup(
        &self,
        user_key: &[u8],
        hash: u64,
        ts: u64,
        scratch: &mut PointScratch,
    ) -> Result<Lookup> {
        if !self.may_contain_hash(hash) {
            return Ok(Lookup::FilteredOut);
        }
        let PointScratch {
            decoder,
            target,
            index_key,
            data_key,
        } = scratch;
        target.clear();
        crate::key::encode_internal_key(target, user_key, ts, ValueKind::MAX);
        let index_origin = self.inner.footer.index.offset;
        let mut index = self
            .inner
            .index
            .iter_reusing(compare_internal, std::mem::take(index_key));
        // The first key >= target is in the block of the first separator
        // >= target (a block's separator is >= its keys and < the next
        // block's) or, when that block holds none, first in the next one.
        let found = (|| {
            if let Some(d) = &self.inner.digest {
                let at = d.first_at_or_after(target, |i| {
                    index.restart_key_at(i).map(|k| compare_internal(k, target))
                })?;
                let mut i = at;
                while let Some(handle) = d.handle(i) {
                    if let Some(answer) =
                        self.search_block(decoder, handle, target, user_key, data_key)?
                    {
                        return Ok(answer);
                    }
                    i += 1;
                }
                return Ok(Lookup::NotFound);
            }
            index.seek(target)?;
            while index.valid() {
                let handle = BlockHandle::decode(index.value(), index_origin)?;
                match self.search_block(decoder, handle, target, user_key, data_key)? {
                    Some(answer) => return Ok(answer),
                    None => index.next()?,
                }
            }
            Ok(Lookup::NotFound)
        })();
        *index_key = index.into_key();
        found
    }

    /// The answer of the data block at `handle` for a lookup of `target`
    /// (the encoded internal key of `user_key`): found or not when the
    /// block holds a key `>= target`, `None` when the next block decides.
    fn search_block(
        &self,
        decoder: &mut BlockDecoder,
        handle: BlockHandle,
        target: &[u8],
        user_key: &[u8],
        data_key: &mut Vec<u8>,
    ) -> Result<Option<Lookup>> {
        let block = self.read_block_filling(decoder, handle, true)?;
        let mut data = block.iter_reusing(compare_internal, std::mem::take(data_key));
        let found = data.seek(target).and_then(|()| {
            if !data.valid() {
                return Ok(None);
            }
            let k = InternalKeyRef::parse(data.key()).map_err(|_| {
                Error::corruption(
                    format!("sst {}: malformed internal key", self.inner.file_number),
                    handle.offset,
                )
            })?;
            Ok(Some(if k.user_key == user_key {
                Lookup::Found(TableEntry {
                    ts: k.ts,
                    kind: k.kind,
                    value: data.value_bytes(),
                })
            } else {
                Lookup::NotFound
            }))
        });
        *data_key = data.into_key();
        found
    }

    /// Positions `index`, a cursor over this table's index block, on the
    /// first separator `>= target`: through the digest when the table has
    /// one (a dense array, one cache line per probe), else by the block's
    /// own search.
    #[inline]
    fn seek_index(&self, index: &mut BlockIter, target: &[u8]) -> Result<()> {
        match &self.inner.digest {
            Some(d) => {
                let at = d.first_at_or_after(target, |i| {
                    index.restart_key_at(i).map(|k| compare_internal(k, target))
                })?;
                index.seek_to_restart_entry(at)
            }
            None => index.seek(target),
        }
    }

    /// A cursor over the index block: separator keys and encoded
    /// [`BlockHandle`]s of the data blocks.
    pub fn index_iter(&self) -> BlockIter {
        self.inner.index.iter(compare_internal)
    }

    /// A cursor over every entry, in internal-key order. It starts
    /// unpositioned.
    pub fn iter(&self) -> TableIter {
        TableIter {
            index: self.inner.index.iter(compare_internal),
            table: self.clone(),
            data: None,
            block_offset: 0,
            decoder: BlockDecoder::new(),
            fill_cache: true,
        }
    }

    /// A cursor that reads blocks the cache does not hold without adding
    /// them: for compactions, whose inputs are about to be deleted and would
    /// only push useful blocks out.
    pub fn iter_without_fill(&self) -> TableIter {
        TableIter {
            fill_cache: false,
            ..self.iter()
        }
    }

    fn read_block_filling(
        &self,
        decoder: &mut BlockDecoder,
        handle: BlockHandle,
        fill: bool,
    ) -> Result<Block> {
        let n = self.inner.file_number;
        let cache = self.inner.cache.as_ref();
        if let Some(block) = cache.and_then(|c| c.get(n, handle.offset)) {
            return Ok(block);
        }
        let block = Block::new(
            self.inner.load(decoder, handle, BlockKind::Data)?,
            handle.offset,
        )?;
        if let Some(c) = cache.filter(|_| fill) {
            c.insert(n, handle.offset, block.clone());
        }
        Ok(block)
    }
}

impl Inner {
    /// Checks that `handle` lies inside the block area and decodes the block.
    fn load(
        &self,
        decoder: &mut BlockDecoder,
        handle: BlockHandle,
        kind: BlockKind,
    ) -> Result<Bytes> {
        let n = self.file_number;
        let in_bounds = handle
            .end()
            .is_some_and(|end| end <= self.blocks_end && handle.size >= TRAILER_LEN as u64);
        if !in_bounds {
            return Err(Error::corruption(
                format!(
                    "sst {n}: {kind:?} block handle ({}, {}) out of bounds",
                    handle.offset, handle.size
                ),
                handle.offset,
            ));
        }
        // In bounds of the source, so no larger than the file.
        let size = usize::try_from(handle.size).map_err(|_| {
            Error::corruption(
                format!("sst {n}: {kind:?} block of {} bytes", handle.size),
                handle.offset,
            )
        })?;
        let stored = read_exact(&*self.source, n, handle.offset, size, kind_name(kind))?;
        let ctx = BlockContext {
            file_number: n,
            file_uid: self.footer.file_uid,
            offset: handle.offset,
            kind,
        };
        match decoder.decode(&stored, &ctx, self.key.as_deref(), MAX_BLOCK_LEN)? {
            // A plaintext block: a slice of what was read (of the mapping,
            // for a table in memory), not a copy.
            Cow::Borrowed(plain) => Ok(stored.slice_ref(plain)),
            Cow::Owned(plain) => Ok(Bytes::from(plain)),
        }
    }
}

fn kind_name(kind: BlockKind) -> &'static str {
    match kind {
        BlockKind::Data => "data block",
        BlockKind::Index => "index block",
        BlockKind::Filter => "filter block",
        BlockKind::Properties => "properties block",
        BlockKind::RangeDeletions => "range-deletion block",
        _ => "block",
    }
}

/// Reads `len` bytes at `offset` of table `n` from `source`; the range was
/// checked against the source's length. Fewer bytes than asked (a file cut
/// short since it was opened) is corruption at `offset`.
fn read_exact(
    source: &dyn TableSource,
    n: u64,
    offset: u64,
    len: usize,
    what: &str,
) -> Result<Bytes> {
    let bytes = source.read_at(offset, len)?;
    if bytes.len() != len {
        return Err(Error::corruption(
            format!(
                "sst {n}: {what}: {len} bytes asked, {} read (the file ends sooner than it did at open)",
                bytes.len()
            ),
            offset,
        ));
    }
    Ok(bytes)
}

/// A cursor over a table's entries: a two-level iterator, index block then
/// data block. Positioning methods return errors for damaged blocks; the
/// cursor is then invalid.
#[derive(Debug)]
pub struct TableIter {
    table: Table,
    index: BlockIter,
    data: Option<BlockIter>,
    /// Offset of the current data block, for errors.
    block_offset: u64,
    decoder: BlockDecoder,
    /// Whether blocks read go into the table's block cache.
    fill_cache: bool,
}

impl TableIter {
    /// True when the cursor is on an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.data.as_ref().is_some_and(|d| d.valid())
    }

    /// The current entry's encoded internal key.
    #[inline]
    pub fn key(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.key())
    }

    /// The current entry's value.
    #[inline]
    pub fn value(&self) -> &[u8] {
        self.data.as_ref().map_or(&[], |d| d.value())
    }

    /// The current entry's value without a copy.
    #[inline]
    pub fn value_bytes(&self) -> Bytes {
        self.data
            .as_ref()
            .map_or_else(Bytes::new, |d| d.value_bytes())
    }

    /// Positions on the first entry.
    pub fn seek_to_first(&mut self) -> Result<()> {
        self.guard(|it| {
            it.index.seek_to_first()?;
            it.load_data()?;
            if let Some(d) = it.data.as_mut() {
                d.seek_to_first()?;
            }
            it.skip_forward()
        })
    }

    /// Positions on the last entry.
    pub fn seek_to_last(&mut self) -> Result<()> {
        self.guard(|it| {
            it.index.seek_to_last()?;
            it.load_data()?;
            if let Some(d) = it.data.as_mut() {
                d.seek_to_last()?;
            }
            it.skip_backward()
        })
    }

    /// Positions on the first entry `>= target` (an encoded internal key).
    pub fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.guard(|it| {
            it.table.seek_index(&mut it.index, target)?;
            it.load_data()?;
            if let Some(d) = it.data.as_mut() {
                d.seek(target)?;
            }
            it.skip_forward()
        })
    }

    /// Moves to the next entry.
    // A cursor step that can fail, not an `Iterator`: the engine merges
    // cursors and needs seek and prev too.
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> Result<()> {
        self.guard(|it| {
            if let Some(d) = it.data.as_mut() {
                d.next()?;
            }
            it.skip_forward()
        })
    }

    /// Moves to the previous entry.
    #[inline]
    pub fn prev(&mut self) -> Result<()> {
        self.guard(|it| {
            if let Some(d) = it.data.as_mut() {
                d.prev()?;
            }
            it.skip_backward()
        })
    }

    /// Runs a positioning step; on error the cursor becomes invalid.
    #[inline]
    fn guard(&mut self, step: impl FnOnce(&mut Self) -> Result<()>) -> Result<()> {
        let r = step(self);
        if r.is_err() {
            self.data = None;
        }
        r
    }

    /// Loads the data block the index cursor points at (none past the end).
    fn load_data(&mut self) -> Result<()> {
        if !self.index.valid() {
            self.data = None;
            return Ok(());
        }
        let handle = BlockHandle::decode(self.index.value(), self.table.inner.footer.index.offset)?;
        let block = self
            .table
            .read_block_filling(&mut self.decoder, handle, self.fill_cache)?;
        // The cursor of the block before keeps its buffers.
        match self.data.as_mut() {
            Some(d) => d.reset(block),
            None => self.data = Some(block.iter(compare_internal)),
        }
        self.block_offset = handle.offset;
        Ok(())
    }

    /// While the data cursor is exhausted, moves to the next block.
    fn skip_forward(&mut self) -> Result<()> {
        while self.data.as_ref().is_some_and(|d| !d.valid()) {
            self.index.next()?;
            self.load_data()?;
            if let Some(d) = self.data.as_mut() {
                d.seek_to_first()?;
            }
        }
        Ok(())
    }

    /// While the data cursor is exhausted, moves to the previous block.
    fn skip_backward(&mut self) -> Result<()> {
        while self.data.as_ref().is_some_and(|d| !d.valid()) {
            self.index.prev()?;
            self.load_data()?;
            if let Some(d) = self.data.as_mut() {
                d.seek_to_last()?;
            }
        }
        Ok(())
    }
}
