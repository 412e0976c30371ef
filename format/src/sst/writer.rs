//! Streaming sorted entries into an SST.

use std::io::Write;
use std::sync::Arc;

use crate::block::{BlockBuilder, DEFAULT_BLOCK_SIZE, DEFAULT_RESTART_INTERVAL};
use crate::bloom::{BloomBuilder, DEFAULT_BITS_PER_KEY};
use crate::codec::{
    BlockContext, BlockEncoder, BlockKind, Compression, EncryptionKey, MAX_BLOCK_LEN,
    MAX_NONCE_FIELD,
};
use crate::error::{Error, Result};
use crate::key::{compare_internal, separator, InternalKeyRef, ValueKind, MAX_USER_KEY_LEN};
use crate::range_del::RangeTombstones;

use super::{BlockHandle, Footer, Properties, SST_BASE_VERSION, SST_FORMAT_VERSION};

/// How a table is written.
#[derive(Debug, Clone)]
pub struct TableOptions {
    /// Target size of a data block before the codec.
    pub block_size: usize,
    /// Entries between restart points.
    pub restart_interval: usize,
    /// Bloom filter bits per distinct user key.
    pub bloom_bits_per_key: u32,
    /// Compression of every block.
    pub compression: Compression,
    /// The key every block is encrypted with, if any.
    pub key: Option<Arc<EncryptionKey>>,
    /// Creation time recorded in the properties (microseconds since the
    /// epoch); the caller supplies it, this crate reads no clock.
    pub created_at_micros: u64,
}

impl Default for TableOptions {
    fn default() -> Self {
        TableOptions {
            block_size: DEFAULT_BLOCK_SIZE,
            restart_interval: DEFAULT_RESTART_INTERVAL,
            bloom_bits_per_key: DEFAULT_BITS_PER_KEY,
            compression: Compression::None,
            key: None,
            created_at_micros: 0,
        }
    }
}

/// What a finished table is: enough for a manifest entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSummary {
    /// Total bytes written.
    pub size: u64,
    /// The file's random id as given to the writer.
    pub file_uid: [u8; 16],
    /// The key id the file is encrypted with.
    pub key_id: Option<u32>,
    /// The properties stored in the file.
    pub properties: Properties,
}

/// Streams entries, in strictly increasing internal-key order, into an SST
/// written to any [`Write`] (a file, or a `Vec<u8>`).
///
/// After an error the writer refuses further use: the caller discards the
/// partial output.
pub struct TableWriter<W: Write> {
    out: W,
    offset: u64,
    file_number: u64,
    file_uid: [u8; 16],
    opts: TableOptions,
    encoder: BlockEncoder,
    data_block: BlockBuilder,
    index_block: BlockBuilder,
    bloom: BloomBuilder,
    /// The handle of the last data block, whose index entry waits for the
    /// next key so that its separator can be short.
    pending_index: Option<BlockHandle>,
    last_key: Vec<u8>,
    props: Properties,
    /// The table's range tombstones, written in their own block at finish.
    range_dels: RangeTombstones,
    scratch: Vec<u8>,
    failed: bool,
}

impl<W: Write> std::fmt::Debug for TableWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TableWriter")
            .field("file_number", &self.file_number)
            .field("offset", &self.offset)
            .field("entries", &self.props.entries)
            .finish_non_exhaustive()
    }
}

impl<W: Write> TableWriter<W> {
    /// A writer of table `file_number`, whose random id is `file_uid`.
    pub fn new(out: W, file_number: u64, file_uid: [u8; 16], opts: TableOptions) -> Result<Self> {
        if file_number > MAX_NONCE_FIELD {
            return Err(Error::InvalidArgument(format!(
                "file number {file_number} exceeds 2^48 - 1"
            )));
        }
        if opts.block_size == 0 || opts.block_size > MAX_BLOCK_LEN {
            return Err(Error::InvalidArgument(format!(
                "block size {}",
                opts.block_size
            )));
        }
        let encoder = BlockEncoder::new(opts.compression, opts.key.clone())?;
        let props = Properties {
            compression: opts.compression.id(),
            compression_level: match opts.compression {
                Compression::Zstd { level } => level,
                Compression::None => 0,
            },
            bloom_bits_per_key: opts.bloom_bits_per_key,
            restart_interval: opts.restart_interval as u32,
            block_size: opts.block_size as u32,
            created_at_micros: opts.created_at_micros,
            min_ts: u64::MAX,
            ..Properties::default()
        };
        Ok(TableWriter {
            out,
            offset: 0,
            file_number,
            file_uid,
            data_block: BlockBuilder::new(opts.restart_interval),
            index_block: BlockBuilder::new(1),
            bloom: BloomBuilder::new(opts.bloom_bits_per_key),
            encoder,
            opts,
            pending_index: None,
            last_key: Vec::new(),
            props,
            range_dels: RangeTombstones::new(),
            scratch: Vec::new(),
            failed: false,
        })
    }

    /// Bytes written so far (the table's size if it were finished now,
    /// minus what is buffered).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Estimated size of the table if it were finished now.
    pub fn estimated_size(&self) -> u64 {
        self.offset + self.data_block.estimated_size() as u64
    }

    /// Number of entries added.
    pub fn entries(&self) -> u64 {
        self.props.entries
    }

    /// Sets the table's range tombstones (replacing any set before), written
    /// at [`finish`](Self::finish) in the range-deletion block. The table's
    /// key range then covers them too.
    pub fn set_range_tombstones(&mut self, tombstones: RangeTombstones) {
        self.range_dels = tombstones;
    }

    /// Adds an entry: `key` is an encoded internal key, greater than every
    /// key added before. Range deletes go through
    /// [`set_range_tombstones`](Self::set_range_tombstones) instead.
    pub fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        if self.failed {
            return Err(Error::InvalidArgument("table writer failed earlier".into()));
        }
        let parsed = InternalKeyRef::parse(key)
            .map_err(|e| Error::InvalidArgument(format!("not an internal key: {e}")))?;
        if parsed.kind == ValueKind::RangeDelete {
            return Err(Error::InvalidArgument(
                "a range delete among the data entries".into(),
            ));
        }
        if parsed.user_key.len() > MAX_USER_KEY_LEN {
            return Err(Error::InvalidArgument(format!(
                "user key of {} bytes",
                parsed.user_key.len()
            )));
        }
        if value.len() > MAX_BLOCK_LEN - key.len() - 64 {
            return Err(Error::InvalidArgument(format!(
                "value of {} bytes",
                value.len()
            )));
        }
        if self.props.entries > 0
            && compare_internal(&self.last_key, key) != std::cmp::Ordering::Less
        {
            return Err(Error::InvalidArgument("keys out of order".into()));
        }
        let result = self.add_sorted(parsed, key, value);
        self.failed = result.is_err();
        result
    }

    fn add_sorted(&mut self, parsed: InternalKeyRef<'_>, key: &[u8], value: &[u8]) -> Result<()> {
        // An entry that would push the block past the codec's limit starts a
        // block of its own.
        let entry_len = key.len() + value.len() + 3 * crate::coding::MAX_VARINT64_LEN;
        if self.data_block.estimated_size() + entry_len > MAX_BLOCK_LEN {
            self.flush_data_block()?;
        }
        if let Some(handle) = self.pending_index.take() {
            let sep = separator(&self.last_key, key);
            self.add_index_entry(&sep, handle);
        }
        let p = &mut self.props;
        if p.entries == 0 {
            p.smallest_key = key.to_vec();
        }
        if p.entries == 0 || crate::key::user_key(&self.last_key) != parsed.user_key {
            p.distinct_keys += 1;
        }
        p.entries += 1;
        p.tombstones += u64::from(parsed.kind.is_tombstone());
        p.min_ts = p.min_ts.min(parsed.ts);
        p.max_ts = p.max_ts.max(parsed.ts);
        p.raw_key_bytes += key.len() as u64;
        p.raw_value_bytes += value.len() as u64;
        self.bloom.add_key(parsed.user_key);
        self.data_block.add(key, value);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        if self.data_block.estimated_size() >= self.opts.block_size {
            self.flush_data_block()?;
        }
        Ok(())
    }

    fn add_index_entry(&mut self, key: &[u8], handle: BlockHandle) {
        let mut v = Vec::with_capacity(20);
        handle.encode_into(&mut v);
        self.index_block.add(key, &v);
    }

    fn flush_data_block(&mut self) -> Result<()> {
        if self.data_block.is_empty() {
            return Ok(());
        }
        let raw = self.data_block.finish();
        let handle = self.write_block(&raw, BlockKind::Data)?;
        self.props.data_blocks += 1;
        self.props.data_bytes += handle.size;
        self.pending_index = Some(handle);
        Ok(())
    }

    fn write_block(&mut self, raw: &[u8], kind: BlockKind) -> Result<BlockHandle> {
        let ctx = BlockContext {
            file_number: self.file_number,
            file_uid: self.file_uid,
            offset: self.offset,
            kind,
        };
        self.scratch.clear();
        self.encoder.encode(raw, &ctx, &mut self.scratch)?;
        self.out.write_all(&self.scratch)?;
        let handle = BlockHandle {
            offset: self.offset,
            size: self.scratch.len() as u64,
        };
        self.offset += handle.size;
        Ok(handle)
    }

    /// Writes the filter, properties, index and footer, flushes the writer
    /// and returns it with the table's summary.
    pub fn finish(mut self) -> Result<(W, TableSummary)> {
        if self.failed {
            return Err(Error::InvalidArgument("table writer failed earlier".into()));
        }
        self.flush_data_block()?;
        if let Some(handle) = self.pending_index.take() {
            let last = std::mem::take(&mut self.last_key);
            self.add_index_entry(&last, handle);
            self.props.largest_key = last;
        }
        let mut version = SST_BASE_VERSION;
        if !self.range_dels.is_empty() {
            let dels = std::mem::take(&mut self.range_dels);
            let raw = dels.encode();
            let handle = self.write_block(&raw, BlockKind::RangeDeletions)?;
            let p = &mut self.props;
            p.range_deletions = dels.entries();
            p.range_deletions_handle = Some(handle);
            if let Some((lo, hi)) = dels.ts_range() {
                p.min_ts = p.min_ts.min(lo);
                p.max_ts = p.max_ts.max(hi);
            }
            // The key range covers the tombstones, so that a reader looking
            // for a key they delete finds this table.
            if let Some(k) = dels.smallest_key() {
                if p.entries == 0 || compare_internal(&k, &p.smallest_key).is_lt() {
                    p.smallest_key = k;
                }
            }
            if let Some(k) = dels.largest_bound() {
                if p.entries == 0 || compare_internal(&k, &p.largest_key).is_gt() {
                    p.largest_key = k;
                }
            }
            version = SST_FORMAT_VERSION;
        } else if self.props.entries == 0 {
            self.props.min_ts = 0;
        }
        let filter = self.bloom.finish();
        let filter = self.write_block(&filter, BlockKind::Filter)?;
        let props = self.props.encode();
        let properties = self.write_block(&props, BlockKind::Properties)?;
        let index = self.index_block.finish();
        let index = self.write_block(&index, BlockKind::Index)?;
        let key = self.opts.key.clone();
        let footer = Footer {
            index,
            filter,
            properties,
            file_uid: self.file_uid,
            key_id: key.as_ref().map(|k| k.id()),
            version,
        };
        let bytes = footer.encode(self.file_number, self.offset, key.as_deref())?;
        self.out.write_all(&bytes)?;
        self.offset += bytes.len() as u64;
        self.out.flush()?;
        let summary = TableSummary {
            size: self.offset,
            file_uid: self.file_uid,
            key_id: footer.key_id,
            properties: self.props,
        };
        Ok((self.out, summary))
    }
}
