//! An in-memory search aid for a table's index block, built when the table
//! is opened: for each index entry, the eight bytes of its separator's user
//! key that follow the prefix every separator's user key shares, as a
//! big-endian `u64`. Internal keys order by user key first, bytewise, so
//! the digests never decrease along the block. A point lookup binary-searches this dense array, one cache line
//! per probe, instead of the block's restart array and entries (two or
//! three lines and a varint decode per probe), then compares whole keys
//! only among the few entries whose digests tie with the target's. A long
//! run of ties (a table holding documents and index entries, each family
//! under its own prefix, ties on one digest per family) gets a digest of
//! its own past the longer prefix its separators share, nested as deep as
//! the prefixes go. The digest also keeps each entry's decoded block
//! handle, so a lookup goes from it to the data block without reading the
//! index block. Nothing of it reaches disk.

use std::cmp::Ordering;

use crate::block::Block;
use crate::error::Result;
use crate::key::{compare_internal, user_key};
use crate::sst::BlockHandle;

/// The digests of one index block, or of one run of its entries.
#[derive(Debug, Default)]
pub(crate) struct IndexDigest {
    /// The prefix every separator shares.
    prefix: Vec<u8>,
    digests: Vec<u64>,
    /// The data block of each entry, decoded once (top level only): a
    /// point lookup goes from the digest to the block without reading the
    /// index block's entry.
    handles: Vec<BlockHandle>,
    /// Runs of at least [`MIN_RUN`] entries whose digests tie (a table
    /// holding several key families, each under its own long prefix), by
    /// first entry: each with a digest past the longer prefix its entries
    /// share, so a lookup does not binary-search their keys in the block.
    runs: Vec<(usize, IndexDigest)>,
}

/// The fewest tying entries that get a digest of their own: fewer are
/// told apart by a few key comparisons.
const MIN_RUN: usize = 8;

/// How deep runs nest: each level's prefix is longer than its parent's,
/// so this bounds only pathological blocks.
const MAX_DEPTH: usize = 8;

/// The eight bytes of `key` after `skip`, zero-padded: keys that share the
/// first `skip` bytes compare as their digests do, or tie.
fn digest(key: &[u8], skip: usize) -> u64 {
    let mut b = [0u8; 8];
    let rest = key.get(skip..).unwrap_or(&[]);
    let n = rest.len().min(8);
    b[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(b)
}

/// How many of `digests` (sorted, none below `d`) equal `d`, found by
/// galloping from the front: ties are usually none or one, whose probes
/// stay in the cache line the search ended in, where a binary search of
/// the rest would touch a dozen new ones.
fn tie_len(digests: &[u64], d: u64) -> usize {
    let mut end = 1;
    while end <= digests.len() && digests[end - 1] == d {
        end *= 2;
    }
    // The first `end / 2` tie; the answer lies below `end`.
    let from = end / 2;
    let upto = end.min(digests.len());
    from + digests[from..upto].partition_point(|&x| x == d)
}

impl IndexDigest {
    /// The digests of `index`, or `None` when its entries are not each a
    /// restart point (the digest names entries by restart index) or it
    /// does not decode (a bad block handle included: lookups then read
    /// the block, and report it where they meet it).
    pub(crate) fn build(index: &Block) -> Option<IndexDigest> {
        Self::try_build(index, MIN_RUN).ok().flatten()
    }

    fn try_build(index: &Block, min_run: usize) -> Result<Option<IndexDigest>> {
        let n = index.restart_count();
        let it = index.iter(compare_internal);
        // Every entry must be a restart point: the digest names entries by
        // restart index, and reads their keys in place.
        let mut users = Vec::with_capacity(n);
        for i in 0..n {
            users.push(user_key(it.restart_key_at(i)?));
        }
        let mut walk = index.iter(compare_internal);
        walk.seek_to_first()?;
        let mut entries = 0;
        while walk.valid() {
            entries += 1;
            walk.next()?;
        }
        if entries != n {
            return Ok(None);
        }
        // Each handle from the entry at its restart point, as a cursor
        // positioned there reads it.
        let mut handles = Vec::with_capacity(n);
        for i in 0..n {
            walk.seek_to_restart_entry(i)?;
            if !walk.valid() {
                return Ok(None);
            }
            handles.push(BlockHandle::decode(walk.value(), 0)?);
        }
        let mut d = Self::of(&users, min_run, 0);
        d.handles = handles;
        Ok(Some(d))
    }

    /// The digest of the sorted user keys `users`, `depth` runs deep.
    fn of(users: &[&[u8]], min_run: usize, depth: usize) -> IndexDigest {
        let (Some(first), Some(last)) = (users.first(), users.last()) else {
            return IndexDigest::default();
        };
        let common = first
            .iter()
            .zip(last.iter())
            .take_while(|(a, b)| a == b)
            .count();
        let prefix = last[..common].to_vec();
        let digests: Vec<u64> = users.iter().map(|u| digest(u, common)).collect();
        let mut runs = Vec::new();
        let mut start = 0;
        while start < digests.len() {
            // At least one step even on the unsorted digests of a corrupt
            // block.
            let end = start + 1 + digests[start + 1..].partition_point(|&d| d == digests[start]);
            let run = &users[start..end];
            // A run gets its own digest only where its keys share more
            // than this level's prefix; else a deeper one ties the same way.
            if end - start >= min_run && depth < MAX_DEPTH {
                let (a, b) = (run[0], run[run.len() - 1]);
                let deeper = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
                if deeper > common {
                    runs.push((start, Self::of(run, min_run, depth + 1)));
                }
            }
            start = end;
        }
        IndexDigest {
            prefix,
            digests,
            handles: Vec::new(),
            runs,
        }
    }

    /// The data block of entry `i`; `None` past the last.
    pub(crate) fn handle(&self, i: usize) -> Option<BlockHandle> {
        self.handles.get(i).copied()
    }

    /// The index of the first entry whose internal key is `>= target` (the
    /// entry count when none is), where `cmp_at(i)` tells how entry `i`'s
    /// key compares with the target; it is asked only of the entries whose
    /// digests tie with the target's at the deepest level of runs.
    pub(crate) fn first_at_or_after(
        &self,
        target: &[u8],
        mut cmp_at: impl FnMut(usize) -> Result<Ordering>,
    ) -> Result<usize> {
        self.find(user_key(target), &mut cmp_at, 0)
    }

    /// [`first_at_or_after`](Self::first_at_or_after) over entries
    /// `base..` of the block, for the target's user key.
    fn find(
        &self,
        target: &[u8],
        cmp_at: &mut impl FnMut(usize) -> Result<Ordering>,
        base: usize,
    ) -> Result<usize> {
        let n = self.digests.len();
        let head = &target[..self.prefix.len().min(target.len())];
        match head.cmp(&self.prefix[..]) {
            // Below every key, or above every key.
            Ordering::Less => return Ok(0),
            Ordering::Greater => return Ok(n),
            Ordering::Equal => {}
        }
        let d = digest(target, self.prefix.len());
        let lo = self.digests.partition_point(|&x| x < d);
        let hi = lo + tie_len(&self.digests[lo..], d);
        // Entries in lo..hi tie with the target: a run's own digest, or
        // their keys, decide.
        if hi > lo {
            // A run spans exactly the entries lo..hi that tie.
            if let Ok(r) = self.runs.binary_search_by_key(&lo, |(start, _)| *start) {
                return Ok(lo + self.runs[r].1.find(target, cmp_at, base + lo)?);
            }
        }
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if cmp_at(base + mid)? == Ordering::Less {
                a = mid + 1;
            } else {
                b = mid;
            }
        }
        Ok(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::BlockBuilder;
    use crate::key::{encode_internal_key, ValueKind};
    use bytes::Bytes;
    use proptest::prelude::*;

    /// The encoded handle index entry `i` points to.
    fn handle_of(i: usize) -> Vec<u8> {
        let mut v = Vec::new();
        BlockHandle {
            offset: 4096 * i as u64,
            size: 4096,
        }
        .encode_into(&mut v);
        v
    }

    /// An index block of `keys` (sorted and deduplicated in place), entry
    /// `i` pointing to [`handle_of`]`(i)`.
    fn index_block(keys: &mut Vec<Vec<u8>>) -> Block {
        keys.sort_by(|a, b| compare_internal(a, b));
        keys.dedup();
        let mut b = BlockBuilder::new(1);
        for (i, k) in keys.iter().enumerate() {
            b.add(k, &handle_of(i));
        }
        Block::new(Bytes::from(b.finish()), 0).unwrap()
    }

    fn ikey(user: &[u8], ts: u64) -> Vec<u8> {
        let mut k = Vec::new();
        encode_internal_key(&mut k, user, ts, ValueKind::Put);
        k
    }

    proptest! {
        /// The digest search finds what a scan of the sorted keys finds,
        /// for user keys that are prefixes of one another, versions of one
        /// key, and targets inside, before and after the block.
        #[test]
        fn finds_the_first_key_at_or_after_any_target(
            users in proptest::collection::vec(proptest::collection::vec(0u8..3, 0..12), 1..40),
            tss in proptest::collection::vec(0u64..4, 1..40),
            targets in proptest::collection::vec((proptest::collection::vec(0u8..3, 0..12), 0u64..5), 1..20),
        ) {
            let mut keys: Vec<Vec<u8>> = users.iter().zip(tss.iter().cycle())
                .map(|(u, &t)| ikey(&[b"pre".as_slice(), u].concat(), t))
                .collect();
            let block = index_block(&mut keys);
            // Runs of two already get their own digest: nesting is
            // exercised on these small blocks.
            let d = IndexDigest::try_build(&block, 2).unwrap().unwrap();
            for (u, t) in &targets {
                for user in [[b"pre".as_slice(), u].concat(), u.clone()] {
                    let target = ikey(&user, *t);
                    let want = keys.iter().position(|k| compare_internal(k, &target) != Ordering::Less).unwrap_or(keys.len());
                    let got = d.first_at_or_after(&target, |i| Ok(compare_internal(&keys[i], &target))).unwrap();
                    prop_assert_eq!(got, want);
                    prop_assert_eq!(d.handle(got).map(|h| h.offset), (got < keys.len()).then_some(4096 * got as u64));
                }
            }
        }

        /// Key families under long shared prefixes (a table holding
        /// documents and several indexes' entries), where whole families
        /// tie on the block's digest and runs nest: the search still finds
        /// what a scan finds.
        #[test]
        fn finds_keys_in_families_under_long_prefixes(
            picks in proptest::collection::vec((0usize..4, 0u32..3000, 0u64..3), 1..300),
            targets in proptest::collection::vec((0usize..5, 0u32..3100, 0u64..4), 1..40),
            min_run in 1usize..10,
        ) {
            let families: [&[u8]; 5] = [
                b"\x00strata/doc/d/docs/d00",
                b"\x00strata/doc/x/docs/223605afd4de18ff/Pk",
                b"\x00strata/doc/x/docs/223605afd4de18ff/Pk8\x00\x01",
                b"\x00strata/doc/x/docs/572ac7f73c976231/Pt",
                b"\x00strata/doc/",
            ];
            let user = |f: usize, n: u32| [families[f], format!("{n:06}").as_bytes()].concat();
            let mut keys: Vec<Vec<u8>> = picks.iter().map(|&(f, n, t)| ikey(&user(f, n), t)).collect();
            let block = index_block(&mut keys);
            let d = IndexDigest::try_build(&block, min_run).unwrap().unwrap();
            let mut probes = targets.iter().map(|&(f, n, t)| ikey(&user(f, n), t)).collect::<Vec<_>>();
            probes.extend(keys.iter().cloned());
            for target in &probes {
                let want = keys.iter().position(|k| compare_internal(k, target) != Ordering::Less).unwrap_or(keys.len());
                let got = d.first_at_or_after(target, |i| Ok(compare_internal(&keys[i], target))).unwrap();
                prop_assert_eq!(got, want);
            }
        }
    }
    /// A family of keys that ties on the block's digest (documents in a
    /// table that also holds index entries) is searched by its run's own
    /// digest: a lookup compares at most a couple of whole keys, where a
    /// binary search of the family's keys would compare a dozen.
    #[test]
    fn a_family_that_ties_on_the_block_digest_is_searched_by_its_own() {
        let mut keys: Vec<Vec<u8>> = (0..2000u32)
            .map(|n| ikey(format!("\x00strata/doc/d/docs/d{n:08}").as_bytes(), 1))
            .chain((0..2000u32).map(|n| {
                ikey(
                    format!("\x00strata/doc/x/docs/572ac7f73c976231/Pt{n:06}").as_bytes(),
                    1,
                )
            }))
            .collect();
        let block = index_block(&mut keys);
        let most = |min_run: usize| {
            let d = IndexDigest::try_build(&block, min_run).unwrap().unwrap();
            let mut most = 0;
            for (want, target) in keys.iter().enumerate() {
                let mut compared = 0;
                let got = d
                    .first_at_or_after(target, |i| {
                        compared += 1;
                        Ok(compare_internal(&keys[i], target))
                    })
                    .unwrap();
                assert_eq!(got, want);
                most = most.max(compared);
            }
            most
        };
        assert!(most(MIN_RUN) <= 2, "{}", most(MIN_RUN));
        assert!(most(usize::MAX) >= 10, "{}", most(usize::MAX));
    }
    /// Galloping counts every run of ties, from none to the whole slice.
    #[test]
    fn tie_len_counts_the_leading_ties() {
        for len in 0..70 {
            for ties in 0..=len {
                let v: Vec<u64> = (0..len)
                    .map(|i| if i < ties { 5 } else { 6 + i as u64 })
                    .collect();
                assert_eq!(tie_len(&v, 5), ties, "{len} {ties}");
            }
        }
    }
}
