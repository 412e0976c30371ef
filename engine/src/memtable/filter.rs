//! A memtable's filter of user keys: a cache-local Bloom filter of atomic
//! words, set as keys are inserted and read concurrently, probed as an
//! SST's filter is (`strata_format::bloom`, scheme 2). It lives in memory
//! only; nothing of it reaches disk.

use std::sync::atomic::{AtomicU64, Ordering};

use strata_format::bloom::{blocked_bits, blocked_line, LINE_BITS};

/// Bits per key the filter is sized for, as SSTs' default.
const BITS_PER_KEY: usize = 10;
/// Probes per key: `round(10 × ln 2)`.
const PROBES: u8 = 7;
/// The smallest entry the sizing assumes (a list node with a short key
/// and value): a memtable of smaller entries fills its filter faster, and
/// answers "maybe" more often, never wrongly.
const MIN_ENTRY_BYTES: usize = 64;
/// Words of one line.
const LINE_WORDS: usize = (LINE_BITS / 64) as usize;

/// The filter.
#[derive(Debug)]
pub(super) struct KeyFilter {
    words: Box<[AtomicU64]>,
    lines: u64,
}

impl KeyFilter {
    /// A filter for a memtable of `expected_bytes`.
    pub(super) fn new(expected_bytes: usize) -> Self {
        let keys = expected_bytes / MIN_ENTRY_BYTES;
        let lines = (keys * BITS_PER_KEY).div_ceil(LINE_BITS as usize).max(1);
        KeyFilter {
            words: (0..lines * LINE_WORDS).map(|_| AtomicU64::new(0)).collect(),
            lines: lines as u64,
        }
    }

    /// Adds a key's hash. Relaxed: a reader that may see the key learned
    /// of its commit through the commit clock's release and acquire,
    /// which orders these writes before its reads.
    pub(super) fn insert(&self, hash: u64) {
        // The probes' bits gathered per word of the line: one atomic
        // read-modify-write per word that lacks one of them, not one per
        // probe.
        let base = blocked_line(hash, self.lines) as usize * LINE_WORDS;
        let mut masks = [0u64; LINE_WORDS];
        for b in blocked_bits(hash, PROBES) {
            masks[(b / 64) as usize] |= 1u64 << (b % 64);
        }
        for (word, mask) in self.words[base..base + LINE_WORDS].iter().zip(masks) {
            if mask != 0 && word.load(Ordering::Relaxed) & mask != mask {
                word.fetch_or(mask, Ordering::Relaxed);
            }
        }
    }

    /// False when no key with this hash was inserted.
    pub(super) fn may_contain(&self, hash: u64) -> bool {
        let base = blocked_line(hash, self.lines) as usize * LINE_WORDS;
        blocked_bits(hash, PROBES).all(|b| {
            self.words[base + (b / 64) as usize].load(Ordering::Relaxed) & (1u64 << (b % 64)) != 0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_format::bloom::bloom_hash;

    #[test]
    fn holds_every_key_and_few_others() {
        let f = KeyFilter::new(64 * 10_000);
        for i in 0..10_000u32 {
            f.insert(bloom_hash(&i.to_be_bytes()));
        }
        assert!((0..10_000u32).all(|i| f.may_contain(bloom_hash(&i.to_be_bytes()))));
        let fp = (10_000..110_000u32)
            .filter(|i| f.may_contain(bloom_hash(&i.to_be_bytes())))
            .count();
        assert!(fp < 2_000, "{fp} of 100000 absent keys passed");
        // Overfilled, it still never says no to a key it holds.
        let small = KeyFilter::new(0);
        for i in 0..10_000u32 {
            small.insert(bloom_hash(&i.to_be_bytes()));
        }
        assert!((0..10_000u32).all(|i| small.may_contain(bloom_hash(&i.to_be_bytes()))));
    }
}
