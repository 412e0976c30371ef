//! Reading a block: validation of its restart array and a cursor with
//! `seek`, `next` and `prev`.

use std::cmp::Ordering;

use bytes::Bytes;

use crate::coding::get_varint64;
use crate::error::{Error, Result};

/// A decoded block (after the codec): its bytes and its validated restart
/// array. Cheap to clone; iterators hold a clone.
#[derive(Debug, Clone)]
pub struct Block {
    data: Bytes,
    restarts_offset: usize,
    num_restarts: usize,
    origin: u64,
}

impl Block {
    /// Validates the restart array of `data`. `origin` is the block's offset
    /// in its file, added to the offsets that errors report.
    pub fn new(data: Bytes, origin: u64) -> Result<Block> {
        let corrupt = |detail: &str, at: usize| {
            Error::corruption(format!("block: {detail}"), origin + at as u64)
        };
        if data.len() < 4 {
            return Err(corrupt("shorter than its restart count", 0));
        }
        let count_at = data.len() - 4;
        let num_restarts = read_u32(&data, count_at) as usize;
        let max_restarts = count_at / 4;
        if num_restarts == 0 || num_restarts > max_restarts {
            return Err(corrupt("impossible restart count", count_at));
        }
        let restarts_offset = count_at - 4 * num_restarts;
        let mut prev = None;
        for i in 0..num_restarts {
            let r = read_u32(&data, restarts_offset + 4 * i) as usize;
            let ok = match prev {
                None => r == 0,
                Some(p) => r > p && r < restarts_offset,
            };
            if !ok {
                return Err(corrupt(
                    "restart points out of order",
                    restarts_offset + 4 * i,
                ));
            }
            prev = Some(r);
        }
        Ok(Block {
            data,
            restarts_offset,
            num_restarts,
            origin,
        })
    }

    /// The block's bytes, restart array included.
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// Number of restart points.
    pub fn restart_count(&self) -> usize {
        self.num_restarts
    }

    /// Size of the decoded block in bytes (what a cache charges for it).
    pub fn size(&self) -> usize {
        self.data.len()
    }

    /// A cursor over the block's entries, ordered by `cmp`. It starts
    /// unpositioned.
    pub fn iter(&self, cmp: fn(&[u8], &[u8]) -> Ordering) -> BlockIter {
        self.iter_reusing(cmp, Vec::new())
    }

    /// [`iter`](Self::iter) building its keys in `key`, a buffer a point
    /// lookup keeps between calls ([`BlockIter::into_key`] hands it back),
    /// so positioning allocates nothing.
    pub fn iter_reusing(&self, cmp: fn(&[u8], &[u8]) -> Ordering, mut key: Vec<u8>) -> BlockIter {
        key.clear();
        BlockIter {
            block: self.clone(),
            cmp,
            current: self.restarts_offset,
            next_offset: self.restarts_offset,
            restart_index: 0,
            key,
            value: (0, 0),
            valid: false,
            behind: Vec::new(),
            behind_keys: Vec::new(),
        }
    }

    /// Reads the first byte of each restart entry of a block with few of
    /// them. The reads do not depend on one another, so a cold block's
    /// cache misses overlap, where a binary search's probes each wait for
    /// the one before; the search then finds its lines in the cache.
    #[inline]
    fn touch_restarts(&self) {
        if self.num_restarts > TOUCHED_RESTARTS {
            return;
        }
        let mut x = 0u8;
        for i in 0..self.num_restarts {
            // Restart points lie in the block: the first is 0, the others
            // were checked to lie before the array.
            x ^= self.data[self.restart_point(i)];
        }
        std::hint::black_box(x);
    }

    #[inline]
    fn restart_point(&self, i: usize) -> usize {
        read_u32(&self.data, self.restarts_offset + 4 * i) as usize
    }
}

/// The most restart points a seek reads ahead of its search: a data block
/// of large values has one per entry, a dozen or so in 4 KiB.
const TOUCHED_RESTARTS: usize = 32;

#[inline]
fn read_u32(data: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&data[at..at + 4]);
    u32::from_le_bytes(b)
}

/// A cursor over one block. Positioning methods return an error when an
/// entry does not decode; the cursor is then invalid.
#[derive(Debug, Clone)]
pub struct BlockIter {
    block: Block,
    cmp: fn(&[u8], &[u8]) -> Ordering,
    /// Offset of the current entry (`restarts_offset` when invalid).
    current: usize,
    /// Offset just past the current entry.
    next_offset: usize,
    /// Index of the restart interval holding the current entry.
    restart_index: usize,
    key: Vec<u8>,
    value: (usize, usize),
    valid: bool,
    /// The entries of one restart interval up to the current one, decoded
    /// by the last backward step, so the next `prev` pops one instead of
    /// decoding the interval again (keys are prefix-compressed: an entry
    /// can only be read forward from its restart point).
    behind: Vec<Behind>,
    /// The full keys of `behind`, end to end.
    behind_keys: Vec<u8>,
}

/// An entry a backward step decoded: where it lies and where its key is in
/// [`BlockIter::behind_keys`]. Its restart interval is the cursor's (the
/// entries kept are of one interval), and the next entry starts where its
/// value ends.
#[derive(Debug, Clone, Copy)]
struct Behind {
    offset: usize,
    value: (usize, usize),
    key_start: usize,
}

/// The most bytes the entries kept for backward steps may take. A block
/// as written keeps far less (a restart interval is at most 16 entries or
/// 256 bytes of them); a damaged or hostile block with one long interval
/// of long shared keys would otherwise ask for memory quadratic in its
/// size.
const BEHIND_BUDGET: usize = 256 << 10;

impl BlockIter {
    /// True when the cursor is on an entry.
    #[inline]
    pub fn valid(&self) -> bool {
        self.valid
    }

    /// The current entry's key. Only meaningful when [`valid`](Self::valid).
    #[inline]
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The current entry's value. Only meaningful when [`valid`](Self::valid).
    #[inline]
    pub fn value(&self) -> &[u8] {
        &self.block.data[self.value.0..self.value.1]
    }

    /// The current entry's value as a shared slice of the block, without a
    /// copy.
    #[inline]
    pub fn value_bytes(&self) -> Bytes {
        self.block.data.slice(self.value.0..self.value.1)
    }

    /// The cursor's key buffer, for the next
    /// [`iter_reusing`](Block::iter_reusing).
    pub fn into_key(self) -> Vec<u8> {
        self.key
    }

    /// Moves the cursor onto another block (unpositioned), keeping its
    /// buffers: a table cursor crossing blocks allocates nothing.
    pub fn reset(&mut self, block: Block) {
        self.block = block;
        self.behind.clear();
        self.behind_keys.clear();
        self.invalidate();
    }

    /// Positions on the first entry.
    pub fn seek_to_first(&mut self) -> Result<()> {
        self.seek_to_restart(0);
        self.parse_next()
    }

    /// Positions on the last entry.
    pub fn seek_to_last(&mut self) -> Result<()> {
        self.decode_behind(self.block.num_restarts - 1, self.block.restarts_offset)
    }

    /// Positions on the first entry whose key is `>= target`, or invalid if
    /// there is none.
    pub fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.block.touch_restarts();
        // Binary search for the last restart point whose key is < target.
        let (mut lo, mut hi) = (0usize, self.block.num_restarts - 1);
        while lo < hi {
            let mid = lo + (hi - lo).div_ceil(2);
            let key = match self.restart_key(mid) {
                Ok(k) => k,
                Err(e) => {
                    self.invalidate();
                    return Err(e);
                }
            };
            if (self.cmp)(key, target) == Ordering::Less {
                lo = mid;
            } else {
                hi = mid - 1;
            }
        }
        self.seek_to_restart(lo);
        loop {
            self.parse_next()?;
            if !self.valid || (self.cmp)(&self.key, target) != Ordering::Less {
                return Ok(());
            }
        }
    }

    /// Positions on the entry at restart point `index`; invalid when there
    /// is no such restart point.
    pub fn seek_to_restart_entry(&mut self, index: usize) -> Result<()> {
        if index >= self.block.num_restarts {
            self.invalidate();
            return Ok(());
        }
        self.seek_to_restart(index);
        self.parse_next()
    }

    /// The key of the entry at restart point `index`, read in place.
    pub fn restart_key_at(&self, index: usize) -> Result<&[u8]> {
        if index >= self.block.num_restarts {
            return Err(self.corrupt("no such restart point", self.block.restarts_offset));
        }
        self.restart_key(index)
    }

    /// Moves to the next entry; invalid past the last.
    // A cursor step that can fail, not an `Iterator`: the engine merges
    // cursors and needs seek and prev too.
    #[allow(clippy::should_implement_trait)]
    #[inline]
    pub fn next(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        self.parse_next()
    }

    /// Moves to the previous entry; invalid before the first.
    pub fn prev(&mut self) -> Result<()> {
        if !self.valid {
            return Ok(());
        }
        // The entries decoded by the last backward step end with this one
        // unless the cursor has moved since.
        if self.behind.last().is_some_and(|e| e.offset == self.current) {
            if let Some(e) = self.behind.pop() {
                self.behind_keys.truncate(e.key_start);
            }
            if let Some(&e) = self.behind.last() {
                self.current = e.offset;
                self.next_offset = e.value.1;
                self.value = e.value;
                self.key.clear();
                self.key.extend_from_slice(&self.behind_keys[e.key_start..]);
                return Ok(());
            }
        }
        let original = self.current;
        while self.block.restart_point(self.restart_index) >= original {
            if self.restart_index == 0 {
                self.invalidate();
                return Ok(());
            }
            self.restart_index -= 1;
        }
        self.decode_behind(self.restart_index, original)
    }

    /// Decodes the entries from restart point `index` to the last one
    /// before offset `until`, keeping them for the backward steps to come,
    /// and positions on that last one.
    fn decode_behind(&mut self, index: usize, until: usize) -> Result<()> {
        self.behind.clear();
        self.behind_keys.clear();
        self.seek_to_restart(index);
        loop {
            if let Err(e) = self.parse_next() {
                self.behind.clear();
                self.behind_keys.clear();
                return Err(e);
            }
            if !self.valid {
                return Ok(());
            }
            let kept = (self.behind.len() + 1) * std::mem::size_of::<Behind>()
                + self.behind_keys.len()
                + self.key.len();
            if kept > BEHIND_BUDGET {
                // Only the latest entries are kept: a step back past them
                // decodes the interval again.
                self.behind.clear();
                self.behind_keys.clear();
            }
            self.behind.push(Behind {
                offset: self.current,
                value: self.value,
                key_start: self.behind_keys.len(),
            });
            self.behind_keys.extend_from_slice(&self.key);
            if self.next_offset >= until {
                return Ok(());
            }
        }
    }

    fn invalidate(&mut self) {
        self.valid = false;
        // `value` may name bytes of a block the cursor was reset from.
        self.value = (0, 0);
        self.current = self.block.restarts_offset;
        self.next_offset = self.block.restarts_offset;
    }

    fn seek_to_restart(&mut self, index: usize) {
        self.key.clear();
        self.restart_index = index;
        self.next_offset = self.block.restart_point(index);
        self.valid = false;
    }

    /// The full key stored at restart point `index` (where nothing is shared).
    fn restart_key(&self, index: usize) -> Result<&[u8]> {
        let at = self.block.restart_point(index);
        let (shared, unshared, _vlen, key_at) = self.entry_header(at)?;
        if shared != 0 {
            return Err(self.corrupt("restart entry shares a prefix", at));
        }
        Ok(&self.block.data[key_at..key_at + unshared])
    }

    /// Decodes the three varints of the entry at `at` and checks that the key
    /// and value fit before the restart array. Returns (shared, unshared,
    /// value_len, offset of the key bytes).
    #[inline]
    fn entry_header(&self, at: usize) -> Result<(usize, usize, usize, usize)> {
        let limit = self.block.restarts_offset;
        let data = &self.block.data[..limit];
        // Fast path: three one-byte varints, the common case for short keys
        // and values.
        let (shared, unshared, vlen, pos) = match data.get(at..at + 3) {
            Some(&[a, b, c]) if (a | b | c) < 0x80 => {
                (usize::from(a), usize::from(b), usize::from(c), at + 3)
            }
            _ => self.entry_header_slow(data, at)?,
        };
        let fits = unshared
            .checked_add(vlen)
            .and_then(|n| n.checked_add(pos))
            .is_some_and(|end| end <= limit);
        if !fits {
            return Err(self.corrupt("entry runs past the restart array", at));
        }
        Ok((shared, unshared, vlen, pos))
    }

    #[cold]
    fn entry_header_slow(&self, data: &[u8], at: usize) -> Result<(usize, usize, usize, usize)> {
        let mut pos = at;
        let mut fields = [0usize; 3];
        for f in &mut fields {
            let (v, n) = data
                .get(pos..)
                .and_then(get_varint64)
                .ok_or_else(|| self.corrupt("bad entry header", at))?;
            pos += n;
            *f = usize::try_from(v).map_err(|_| self.corrupt("entry length overflows", at))?;
        }
        Ok((fields[0], fields[1], fields[2], pos))
    }

    #[inline]
    fn parse_next(&mut self) -> Result<()> {
        let at = self.next_offset;
        if at >= self.block.restarts_offset {
            self.invalidate();
            return Ok(());
        }
        let at_restart = self.block.restart_point(self.restart_index) == at
            || (self.restart_index + 1 < self.block.num_restarts
                && self.block.restart_point(self.restart_index + 1) == at);
        let decoded = self
            .entry_header(at)
            .and_then(|(shared, unshared, vlen, key_at)| {
                if shared > self.key.len() || (at_restart && shared != 0) {
                    return Err(self.corrupt("entry shares a prefix it cannot have", at));
                }
                Ok((shared, unshared, vlen, key_at))
            });
        let (shared, unshared, vlen, key_at) = match decoded {
            Ok(h) => h,
            Err(e) => {
                self.invalidate();
                return Err(e);
            }
        };
        self.key.truncate(shared);
        self.key
            .extend_from_slice(&self.block.data[key_at..key_at + unshared]);
        let value_at = key_at + unshared;
        self.value = (value_at, value_at + vlen);
        self.current = at;
        self.next_offset = value_at + vlen;
        while self.restart_index + 1 < self.block.num_restarts
            && self.block.restart_point(self.restart_index + 1) <= at
        {
            self.restart_index += 1;
        }
        self.valid = true;
        Ok(())
    }

    fn corrupt(&self, detail: &str, at: usize) -> Error {
        Error::corruption(
            format!("block entry: {detail}"),
            self.block.origin + at as u64,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockBuilder;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn bytewise(a: &[u8], b: &[u8]) -> Ordering {
        a.cmp(b)
    }

    fn build(entries: &BTreeMap<Vec<u8>, Vec<u8>>, interval: usize) -> Block {
        let mut b = BlockBuilder::new(interval);
        for (k, v) in entries {
            b.add(k, v);
        }
        Block::new(Bytes::from(b.finish()), 0).unwrap()
    }

    fn collect_forward(block: &Block) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut it = block.iter(bytewise);
        it.seek_to_first().unwrap();
        let mut out = Vec::new();
        while it.valid() {
            out.push((it.key().to_vec(), it.value().to_vec()));
            it.next().unwrap();
        }
        out
    }

    #[test]
    fn a_long_interval_of_shared_keys_keeps_bounded_memory_behind() {
        // One restart point; a first key of `L` bytes, then entries that
        // share all of it and add nothing: each decodes to the whole key.
        const L: usize = 2048;
        const N: usize = 20_000;
        let mut data = vec![0u8, 0x80 | (L & 0x7f) as u8, (L >> 7) as u8, 0];
        data.extend(std::iter::repeat_n(b'k', L));
        for _ in 0..N {
            data.extend_from_slice(&[0x80 | (L & 0x7f) as u8, (L >> 7) as u8, 0, 0]);
        }
        data.extend_from_slice(&0u32.to_le_bytes());
        data.extend_from_slice(&1u32.to_le_bytes());
        let block = Block::new(Bytes::from(data), 0).unwrap();
        let mut it = block.iter(bytewise);
        it.seek_to_last().unwrap();
        let held = |it: &BlockIter| {
            it.behind.capacity() * std::mem::size_of::<Behind>() + it.behind_keys.capacity()
        };
        assert!(held(&it) <= 2 * BEHIND_BUDGET + L, "{} bytes", held(&it));
        // Every entry is still reached stepping back, the budget kept.
        let mut steps = 1;
        while {
            it.prev().unwrap();
            it.valid()
        } {
            assert_eq!(it.key().len(), L);
            assert!(held(&it) <= 2 * BEHIND_BUDGET + L, "{} bytes", held(&it));
            steps += 1;
        }
        assert_eq!(steps, N + 1);
    }

    proptest! {
        #[test]
        fn block_round_trips_with_seek_next_prev(
            entries in proptest::collection::btree_map(
                proptest::collection::vec(0u8..4, 0..8),
                proptest::collection::vec(any::<u8>(), 0..20), 0..60),
            interval in 1usize..20,
            probes in proptest::collection::vec(proptest::collection::vec(0u8..4, 0..8), 1..10),
        ) {
            let block = build(&entries, interval);
            let model: Vec<_> = entries.clone().into_iter().collect();
            prop_assert_eq!(collect_forward(&block), model.clone());

            // Backward from the last entry.
            let mut it = block.iter(bytewise);
            it.seek_to_last().unwrap();
            let mut back = Vec::new();
            while it.valid() {
                back.push((it.key().to_vec(), it.value().to_vec()));
                it.prev().unwrap();
            }
            back.reverse();
            prop_assert_eq!(back, model.clone());

            for probe in probes {
                let mut it = block.iter(bytewise);
                it.seek(&probe).unwrap();
                let expected = entries.range(probe.clone()..).next();
                match expected {
                    Some((k, v)) => {
                        prop_assert!(it.valid());
                        prop_assert_eq!(it.key(), &k[..]);
                        prop_assert_eq!(it.value(), &v[..]);
                        // prev from a seek lands on the predecessor.
                        it.prev().unwrap();
                        let before = entries.range(..probe.clone()).next_back();
                        prop_assert_eq!(it.valid(), before.is_some());
                        if let Some((k, _)) = before { prop_assert_eq!(it.key(), &k[..]); }
                    }
                    None => prop_assert!(!it.valid()),
                }
            }
        }

        #[test]
        fn random_walks_match_the_model(
            entries in proptest::collection::btree_map(
                proptest::collection::vec(0u8..4, 0..6),
                proptest::collection::vec(any::<u8>(), 0..8), 1..50),
            interval in 1usize..6,
            // 0: next, 1: prev, 2: seek, 3: seek_to_last, 4: seek_to_first.
            walk in proptest::collection::vec((0u8..5, proptest::collection::vec(0u8..4, 0..6)), 1..80),
        ) {
            let block = build(&entries, interval);
            let model: Vec<_> = entries.into_iter().collect();
            let mut it = block.iter(bytewise);
            // The model's position: None when the cursor is invalid.
            let mut at: Option<usize> = None;
            for (op, probe) in walk {
                match op {
                    0 => {
                        it.next().unwrap();
                        at = at.and_then(|i| (i + 1 < model.len()).then_some(i + 1));
                    }
                    1 => {
                        it.prev().unwrap();
                        at = at.and_then(|i| i.checked_sub(1));
                    }
                    2 => {
                        it.seek(&probe).unwrap();
                        at = model.iter().position(|(k, _)| *k >= probe);
                    }
                    3 => {
                        it.seek_to_last().unwrap();
                        at = Some(model.len() - 1);
                    }
                    _ => {
                        it.seek_to_first().unwrap();
                        at = Some(0);
                    }
                }
                prop_assert_eq!(it.valid(), at.is_some());
                if let Some(i) = at {
                    prop_assert_eq!(it.key(), &model[i].0[..]);
                    prop_assert_eq!(it.value(), &model[i].1[..]);
                }
            }
        }

        #[test]
        fn block_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200), probe in proptest::collection::vec(any::<u8>(), 0..4)) {
            if let Ok(block) = Block::new(Bytes::from(bytes), 7) {
                let mut it = block.iter(bytewise);
                let mut steps = 0;
                if it.seek_to_first().is_ok() {
                    while it.valid() && steps < 1000 {
                        if it.next().is_err() { break; }
                        steps += 1;
                    }
                }
                prop_assert!(steps < 1000);
                let _ = it.seek(&probe);
                let _ = it.seek_to_last();
                let _ = it.prev();
            }
        }
    }

    #[test]
    fn empty_block_has_no_entries() {
        let block = build(&BTreeMap::new(), 16);
        let mut it = block.iter(bytewise);
        it.seek_to_first().unwrap();
        assert!(!it.valid());
        it.seek_to_last().unwrap();
        assert!(!it.valid());
        it.seek(b"x").unwrap();
        assert!(!it.valid());
    }

    #[test]
    fn bad_restart_arrays_are_refused() {
        assert!(Block::new(Bytes::from_static(&[0, 0, 0]), 0).is_err());
        // Zero restarts.
        assert!(Block::new(Bytes::from_static(&[0, 0, 0, 0]), 0).is_err());
        // A restart pointing past the entries.
        let err = Block::new(
            Bytes::from_static(&[1, 1, 1, 0, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0]),
            100,
        )
        .unwrap_err();
        assert!(err.is_corruption(), "{err}");
    }
}
