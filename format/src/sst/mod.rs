//! SSTables: immutable sorted files of internal keys.
//!
//! ```text
//! data block 0 … data block n-1   (kind Data)
//! range-deletion block            (kind RangeDeletions; only when the table
//!                                  has range tombstones, version 2)
//! filter block                    (kind Filter: a bloom filter of user keys)
//! properties block                (kind Properties)
//! index block                     (kind Index: separator key → block handle)
//! footer                          (FOOTER_LEN bytes, fixed)
//! ```
//!
//! Every block is stored through the block codec ([`crate::codec`]), bound
//! to the file number, the file's random uid and the block's offset. The
//! footer locates the filter, properties and index blocks; a reader opens a
//! table from the footer inward, reading through a [`TableSource`] (bytes
//! in memory, or positioned reads the caller implements).

mod digest;
mod footer;
mod properties;
mod reader;
mod source;
mod writer;

pub use footer::{
    Footer, FOOTER_LAYOUT, FOOTER_LEN, SST_BASE_VERSION, SST_FORMAT_VERSION, SST_MAGIC,
};
pub use properties::{Properties, PROPERTY_TAGS};
pub use reader::{
    BlockCache, Lookup, PointScratch, Table, TableEntry, TableIter, TableReadOptions,
};
pub use source::TableSource;
pub use writer::{TableOptions, TableSummary, TableWriter};

use crate::coding::{put_varint64, Cursor};
use crate::error::Result;

/// Where a stored block lives in its file: offset and stored size (payload
/// and trailer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlockHandle {
    /// Offset of the block's first byte.
    pub offset: u64,
    /// Stored size, trailer included.
    pub size: u64,
}

impl BlockHandle {
    /// Appends the handle as two varints (index entries).
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        put_varint64(buf, self.offset);
        put_varint64(buf, self.size);
    }

    /// Decodes a handle written by [`encode_into`](Self::encode_into); the
    /// bytes must hold exactly the two varints.
    pub fn decode(bytes: &[u8], at: u64) -> Result<BlockHandle> {
        let mut c = Cursor::new(bytes, at, "block handle");
        let h = BlockHandle {
            offset: c.varint64()?,
            size: c.varint64()?,
        };
        if !c.is_empty() {
            return Err(c.error("trailing bytes"));
        }
        Ok(h)
    }

    /// One past the block's last byte.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.size)
    }
}

/// The encryption key id an SST's footer declares (`None` for a plaintext
/// table or an unreadable footer), so a reader without the manifest can
/// fetch the right key before opening the table.
pub fn peek_key_id(data: &[u8]) -> Option<u32> {
    let at = data.len().checked_sub(FOOTER_LEN)?;
    Footer::decode(&data[at..], 0, at as u64).ok()?.key_id
}

/// [`peek_key_id`] of a table read through `source` (only its footer is
/// read).
pub fn peek_source_key_id(source: &dyn TableSource) -> Option<u32> {
    let at = source.len().checked_sub(FOOTER_LEN as u64)?;
    let footer = source.read_at(at, FOOTER_LEN).ok()?;
    if footer.len() != FOOTER_LEN {
        return None;
    }
    Footer::decode(&footer, 0, at).ok()?.key_id
}
