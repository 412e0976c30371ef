//! Data blocks: sorted entries with shared-prefix compression and restart
//! points.
//!
//! ```text
//! entry*  restart[0..n] (u32 LE each)  n (u32 LE)
//! entry = shared (varint) ‖ unshared (varint) ‖ value_len (varint)
//!         ‖ key[shared..] (unshared bytes) ‖ value
//! ```
//!
//! Each entry stores only the part of its key that differs from the previous
//! key. Every `restart_interval` entries, or sooner once the entries since
//! the last restart span [`RESTART_SPAN`] bytes, the prefix sharing starts
//! over (`shared = 0`) and the entry's offset goes into the restart array,
//! so a seek can binary-search the restart points and decode at most one
//! short interval of entries. The same layout serves data blocks (internal key → value) and
//! index blocks (separator key → block handle).

mod builder;
mod iter;

pub use builder::{BlockBuilder, RESTART_SPAN};
pub use iter::{Block, BlockIter};

/// Default number of entries between restart points.
pub const DEFAULT_RESTART_INTERVAL: usize = 16;

/// Default target size of a data block before the codec (4 KiB).
pub const DEFAULT_BLOCK_SIZE: usize = 4096;
