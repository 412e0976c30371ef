//! The shared block cache and the table cache.

use std::path::PathBuf;
use std::sync::Arc;

use quick_cache::sync::Cache;
use quick_cache::Weighter;
use strata_format::block::Block;
use strata_format::sst::{BlockCache as FormatBlockCache, Table, TableReadOptions};

use crate::error::{Error, Result};
use crate::fs::FileSystem;
use crate::levels::FileMeta;
use crate::options::SstReads;
use crate::stats::Striped;

#[derive(Clone)]
struct BlockWeighter;

impl Weighter<(u64, u64), Block> for BlockWeighter {
    fn weight(&self, _key: &(u64, u64), block: &Block) -> u64 {
        block.size() as u64 + 64
    }
}

/// Decoded data blocks of every table, bounded in bytes.
pub struct BlockCache {
    cache: Cache<(u64, u64), Block, BlockWeighter>,
    hits: Striped,
    misses: Striped,
}

impl std::fmt::Debug for BlockCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockCache")
            .field("bytes", &self.cache.weight())
            .finish_non_exhaustive()
    }
}

impl BlockCache {
    /// A cache holding up to `capacity` bytes of blocks.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1) as u64;
        // Estimated 4 KiB per block for the item count hint.
        let items = (capacity / 4096).max(16) as usize;
        BlockCache {
            cache: Cache::with_weighter(items, capacity, BlockWeighter),
            hits: Striped::default(),
            misses: Striped::default(),
        }
    }

    /// Cache hits so far.
    pub fn hits(&self) -> u64 {
        self.hits.get()
    }

    /// Cache misses so far.
    pub fn misses(&self) -> u64 {
        self.misses.get()
    }

    /// Bytes held.
    pub fn used(&self) -> u64 {
        self.cache.weight()
    }
}

impl FormatBlockCache for BlockCache {
    fn get(&self, file_number: u64, offset: u64) -> Option<Block> {
        let b = self.cache.get(&(file_number, offset));
        let counter = if b.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.add(1);
        b
    }

    fn insert(&self, file_number: u64, offset: u64, block: Block) {
        self.cache.insert((file_number, offset), block);
    }
}

/// Open tables by file number (mapped, or with their file open for
/// positioned reads), bounded in count.
pub struct TableCache {
    cache: Cache<u64, Table>,
    fs: Arc<dyn FileSystem>,
    reads: SstReads,
    blocks: Arc<BlockCache>,
    ciphers: Arc<crate::encryption::Ciphers>,
    /// The blob files values stored apart are read from.
    blobs: Arc<crate::blob::BlobStore>,
}

impl std::fmt::Debug for TableCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableCache")
            .field("open", &self.cache.len())
            .finish_non_exhaustive()
    }
}

impl TableCache {
    /// A cache of up to `capacity` open tables.
    pub(crate) fn new(
        capacity: usize,
        fs: Arc<dyn FileSystem>,
        reads: SstReads,
        blocks: Arc<BlockCache>,
        ciphers: Arc<crate::encryption::Ciphers>,
        blobs: Arc<crate::blob::BlobStore>,
    ) -> Self {
        TableCache {
            cache: Cache::new(capacity.max(1)),
            fs,
            reads,
            blocks,
            ciphers,
            blobs,
        }
    }

    /// The blob files values stored apart are read from.
    #[inline]
    pub(crate) fn blobs(&self) -> &Arc<crate::blob::BlobStore> {
        &self.blobs
    }

    /// The open table for `file`, opening (mapping or opening the file,
    /// and verifying) it on a miss.
    pub fn get(&self, file: &FileMeta) -> Result<Table> {
        if let Some(t) = self.cache.get(&file.number) {
            return Ok(t);
        }
        let path: PathBuf = file.path().to_path_buf();
        let keyring = self.ciphers.keyring(file.key_id);
        let opts = TableReadOptions {
            file_number: file.number,
            expected_uid: Some(file.uid),
            keyring: Some(&keyring),
            expected_key_id: Some(file.key_id),
        };
        let blocks: Arc<dyn FormatBlockCache> = self.blocks.clone();
        let table =
            crate::table_file::open_table(&*self.fs, &path, self.reads, &opts, Some(blocks))?;
        if table.size() != file.size {
            return Err(Error::format(
                &path,
                strata_format::Error::corruption(
                    format!(
                        "file is {} bytes, the manifest says {}",
                        table.size(),
                        file.size
                    ),
                    table.size(),
                ),
            ));
        }
        // A file already removed from the current version is reopened only
        // for an old reader; caching it would keep its mapping or open file
        // (and its disk space) alive after the reader is gone.
        if !file.is_obsolete() {
            self.cache.insert(file.number, table.clone());
        }
        Ok(table)
    }

    /// Forgets a table (its file is going away).
    pub fn evict(&self, number: u64) {
        self.cache.remove(&number);
    }
}
