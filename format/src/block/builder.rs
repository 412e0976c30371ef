//! Building a block from sorted entries.

use crate::coding::put_varint64;

/// Bytes of entries after which the next entry starts a restart point
/// even before `restart_interval` entries: a seek then decodes a few cache
/// lines past the restart it found, however large the values are, and
/// blocks of big values are binary-searched entry by entry.
pub const RESTART_SPAN: usize = 256;

/// Accumulates sorted entries into the block layout described in
/// [`crate::block`]. The caller guarantees the order (the table writer checks
/// it once for all blocks).
#[derive(Debug)]
pub struct BlockBuilder {
    buf: Vec<u8>,
    restarts: Vec<u32>,
    restart_interval: usize,
    counter: usize,
    /// Offset of the last restart point in `buf`.
    restart_at: usize,
    entries: usize,
    last_key: Vec<u8>,
}

impl BlockBuilder {
    /// A builder that starts a restart point every `restart_interval`
    /// entries (at least 1), or sooner once the entries since the last one
    /// span [`RESTART_SPAN`] bytes.
    pub fn new(restart_interval: usize) -> Self {
        BlockBuilder {
            buf: Vec::new(),
            restarts: vec![0],
            restart_interval: restart_interval.max(1),
            counter: 0,
            restart_at: 0,
            entries: 0,
            last_key: Vec::new(),
        }
    }

    /// Appends an entry. Keys must arrive in the block's order.
    pub fn add(&mut self, key: &[u8], value: &[u8]) {
        let span = self.buf.len() - self.restart_at;
        let shared = if self.counter < self.restart_interval && span < RESTART_SPAN {
            self.last_key
                .iter()
                .zip(key)
                .take_while(|(a, b)| a == b)
                .count()
        } else {
            self.restarts.push(self.buf.len() as u32);
            self.restart_at = self.buf.len();
            self.counter = 0;
            0
        };
        let unshared = key.len() - shared;
        put_varint64(&mut self.buf, shared as u64);
        put_varint64(&mut self.buf, unshared as u64);
        put_varint64(&mut self.buf, value.len() as u64);
        self.buf.extend_from_slice(&key[shared..]);
        self.buf.extend_from_slice(value);
        self.last_key.truncate(shared);
        self.last_key.extend_from_slice(&key[shared..]);
        self.counter += 1;
        self.entries += 1;
    }

    /// The size of the block if it were finished now.
    pub fn estimated_size(&self) -> usize {
        self.buf.len() + 4 * self.restarts.len() + 4
    }

    /// Number of entries added since the last reset.
    pub fn len(&self) -> usize {
        self.entries
    }

    /// True when no entry has been added since the last reset.
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The last key added.
    pub fn last_key(&self) -> &[u8] {
        &self.last_key
    }

    /// Appends the restart array and returns the finished block, leaving the
    /// builder empty and ready for the next block.
    pub fn finish(&mut self) -> Vec<u8> {
        let mut out = std::mem::take(&mut self.buf);
        out.reserve(4 * self.restarts.len() + 4);
        for r in &self.restarts {
            out.extend_from_slice(&r.to_le_bytes());
        }
        out.extend_from_slice(&(self.restarts.len() as u32).to_le_bytes());
        self.restarts.clear();
        self.restarts.push(0);
        self.counter = 0;
        self.restart_at = 0;
        self.entries = 0;
        self.last_key.clear();
        out
    }
}
