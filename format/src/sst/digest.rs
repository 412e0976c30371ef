//! An in-memory search aid for a table's index block, built when the table
//! is opened: for each index entry, the eight bytes of its separator's user
//! key that follow the prefix every separator's user key shares, as a
//! big-endian `u64`. Internal keys order by user key first, bytewise, so
//! the digests never decrease along the block. A point lookup binary-searches this dense array, one cache line
//! per probe, instead of the block's restart array and entries (two or
//! three lines and a varint decode per probe), then compares whole keys
//! only among the few entries whose digests tie with the target's. Nothing
//! of it reaches disk.

use std::cmp::Ordering;

use crate::block::Block;
use crate::error::Result;
use crate::key::{compare_internal, user_key};

/// The digests of one index block.
#[derive(Debug, Default)]
pub(crate) struct IndexDigest {
    /// The prefix every separator shares.
    prefix: Vec<u8>,
    digests: Vec<u64>,
}

/// The eight bytes of `key` after `skip`, zero-padded: keys that share the
/// first `skip` bytes compare as their digests do, or tie.
fn digest(key: &[u8], skip: usize) -> u64 {
    let mut b = [0u8; 8];
    let rest = key.get(skip..).unwrap_or(&[]);
    let n = rest.len().min(8);
    b[..n].copy_from_slice(&rest[..n]);
    u64::from_be_bytes(b)
}

impl IndexDigest {
    /// The digests of `index`, or `None` when its entries are not each a
    /// restart point (the digest names entries by restart index) or it
    /// does not decode.
    pub(crate) fn build(index: &Block) -> Option<IndexDigest> {
        Self::try_build(index).ok().flatten()
    }

    fn try_build(index: &Block) -> Result<Option<IndexDigest>> {
        let mut it = index.iter(compare_internal);
        it.seek_to_last()?;
        if !it.valid() {
            return Ok(Some(IndexDigest::default()));
        }
        let last = user_key(it.key()).to_vec();
        it.seek_to_first()?;
        let first = user_key(it.key());
        let shared = first.iter().zip(&last).take_while(|(a, b)| a == b).count();
        let prefix = last[..shared].to_vec();
        let mut digests = Vec::with_capacity(index.restart_count());
        while it.valid() {
            digests.push(digest(user_key(it.key()), shared));
            it.next()?;
        }
        Ok((digests.len() == index.restart_count()).then_some(IndexDigest { prefix, digests }))
    }

    /// The index of the first entry whose internal key is `>= target` (the
    /// entry count when none is), where `key_at(i)` tells how entry `i`'s
    /// key compares with the target; it is asked only of the entries whose
    /// digests tie with the target's.
    pub(crate) fn first_at_or_after(
        &self,
        target: &[u8],
        mut cmp_at: impl FnMut(usize) -> Result<Ordering>,
    ) -> Result<usize> {
        let n = self.digests.len();
        let target = user_key(target);
        let head = &target[..self.prefix.len().min(target.len())];
        match head.cmp(&self.prefix[..]) {
            // Below every key, or above every key.
            Ordering::Less => return Ok(0),
            Ordering::Greater => return Ok(n),
            Ordering::Equal => {}
        }
        let d = digest(target, self.prefix.len());
        let lo = self.digests.partition_point(|&x| x < d);
        let hi = self.digests.partition_point(|&x| x <= d);
        // Entries in lo..hi tie with the target: their keys decide.
        let (mut a, mut b) = (lo, hi);
        while a < b {
            let mid = a + (b - a) / 2;
            if cmp_at(mid)? == Ordering::Less {
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
            keys.sort_by(|a, b| compare_internal(a, b));
            keys.dedup();
            let mut b = BlockBuilder::new(1);
            for k in &keys {
                b.add(k, b"v");
            }
            let block = Block::new(Bytes::from(b.finish()), 0).unwrap();
            let d = IndexDigest::build(&block).unwrap();
            for (u, t) in &targets {
                for user in [[b"pre".as_slice(), u].concat(), u.clone()] {
                    let target = ikey(&user, *t);
                    let want = keys.iter().position(|k| compare_internal(k, &target) != Ordering::Less).unwrap_or(keys.len());
                    let got = d.first_at_or_after(&target, |i| Ok(compare_internal(&keys[i], &target))).unwrap();
                    prop_assert_eq!(got, want);
                }
            }
        }
    }
}
