//! Range iteration over a consistent view: the merged cursors of a read
//! view, resolved to the newest visible version of each user key at the
//! view's timestamp, tombstones (point and range) hidden, in both
//! directions.

use std::ops::Bound;

use bytes::Bytes;
use strata_format::key::{encode_internal_key, InternalKeyRef, ValueKind, MAX_TIMESTAMP};

use crate::bounds::{above_lower, below_upper};
use crate::cursor::{Cursor, MergeCursor};
use crate::error::{Error, Result};
use crate::range_del::TombstoneLookup;
use crate::view::{resolve, ReadView};

/// One key and its value.
pub type KvPair = (Bytes, Bytes);

/// The internal key that sorts first among the versions of `user`.
fn first_version(user: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 9);
    encode_internal_key(&mut k, user, MAX_TIMESTAMP, ValueKind::MAX);
    k
}

/// The internal key that sorts after every version of `user` (timestamp 0,
/// kind byte 0, which no entry uses).
fn after_versions(user: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(user.len() + 9);
    k.extend_from_slice(user);
    k.extend_from_slice(&[0u8; 9]);
    k
}

fn parse(key: &[u8]) -> Result<InternalKeyRef<'_>> {
    InternalKeyRef::parse(key).map_err(|e| Error::format("<merged view>", e))
}

/// A double-ended iterator over the user keys of one keyspace in a range,
/// as of one timestamp. Items are `Result`s: a damaged file ends the
/// iteration with an error.
pub struct Iter {
    view: ReadView,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    front: Option<MergeCursor>,
    back: Option<MergeCursor>,
    /// The view's range tombstones, gathered on the first step.
    dels: Option<TombstoneLookup>,
    /// The last key returned from each end: the ends stop when they meet.
    front_last: Option<Bytes>,
    back_last: Option<Bytes>,
    done: bool,
}

impl std::fmt::Debug for Iter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Iter")
            .field("ts", &self.view.ts())
            .field("lower", &self.lower)
            .field("upper", &self.upper)
            .finish_non_exhaustive()
    }
}

impl Iter {
    pub(crate) fn new(view: ReadView, lower: Bound<Vec<u8>>, upper: Bound<Vec<u8>>) -> Self {
        let empty = match (&lower, &upper) {
            (Bound::Included(l), Bound::Included(u)) => l > u,
            (Bound::Included(l) | Bound::Excluded(l), Bound::Excluded(u))
            | (Bound::Excluded(l), Bound::Included(u)) => l >= u,
            _ => false,
        };
        Iter {
            view,
            lower,
            upper,
            front: None,
            back: None,
            dels: None,
            front_last: None,
            back_last: None,
            done: empty,
        }
    }

    /// The timestamp this iterator reads at.
    pub fn ts(&self) -> u64 {
        self.view.ts()
    }

    /// The value a version shows, unless a range tombstone deletes it.
    fn visible(
        dels: &mut Option<TombstoneLookup>,
        view: &ReadView,
        user: &[u8],
        version: u64,
        kind: ValueKind,
        value: Bytes,
    ) -> Result<Option<Bytes>> {
        if matches!(kind, ValueKind::Delete | ValueKind::RangeDelete) {
            return Ok(None);
        }
        let dels = match dels {
            Some(d) => d,
            None => dels.insert(view.range_tombstones()?),
        };
        if dels.hides(user, version)? {
            return Ok(None);
        }
        // A separated value is read only once it is known to be visible.
        let (kind, value) = view.load(kind, value)?;
        Ok(resolve(kind, value, view.expiry_ts()))
    }

    fn next_front(&mut self) -> Result<Option<KvPair>> {
        let ts = self.view.ts();
        if self.front.is_none() {
            let mut c = self.view.merged_cursor()?;
            match &self.lower {
                Bound::Included(l) => c.seek(&first_version(l))?,
                Bound::Excluded(l) => c.seek(&after_versions(l))?,
                Bound::Unbounded => c.seek_to_first()?,
            }
            self.front = Some(c);
        }
        let Some(c) = self.front.as_mut() else {
            return Ok(None);
        };
        while c.valid() {
            let k = parse(c.key())?;
            if !below_upper(k.user_key, &self.upper) {
                return Ok(None);
            }
            if k.ts > ts {
                c.next()?;
                continue;
            }
            // The newest visible version of this user key.
            let user = Bytes::copy_from_slice(k.user_key);
            let (kind, version, value) = (k.kind, k.ts, c.value());
            // Step past its older versions (usually none).
            c.next()?;
            while c.valid() && parse(c.key())?.user_key == user.as_ref() {
                c.next()?;
            }
            if let Some(v) = Self::visible(&mut self.dels, &self.view, &user, version, kind, value)?
            {
                return Ok(Some((user, v)));
            }
        }
        Ok(None)
    }

    fn next_back_entry(&mut self) -> Result<Option<KvPair>> {
        let ts = self.view.ts();
        if self.back.is_none() {
            let mut c = self.view.merged_cursor()?;
            match &self.upper {
                Bound::Included(u) => c.seek_for_prev(&after_versions(u))?,
                Bound::Excluded(u) => {
                    c.seek_for_prev(&first_version(u))?;
                    while c.valid() && parse(c.key())?.user_key == u.as_slice() {
                        c.prev()?;
                    }
                }
                Bound::Unbounded => c.seek_to_last()?,
            }
            self.back = Some(c);
        }
        let Some(c) = self.back.as_mut() else {
            return Ok(None);
        };
        while c.valid() {
            let user = Bytes::copy_from_slice(parse(c.key())?.user_key);
            if !above_lower(&user, &self.lower) {
                return Ok(None);
            }
            // Versions of a user key arrive oldest first going backward; the
            // last one at or below `ts` is the visible one.
            let mut best: Option<(ValueKind, u64, Bytes)> = None;
            while c.valid() {
                let k = parse(c.key())?;
                if k.user_key != user.as_ref() {
                    break;
                }
                if k.ts <= ts {
                    best = Some((k.kind, k.ts, c.value()));
                }
                c.prev()?;
            }
            if let Some((kind, version, value)) = best {
                if let Some(v) =
                    Self::visible(&mut self.dels, &self.view, &user, version, kind, value)?
                {
                    return Ok(Some((user, v)));
                }
            }
        }
        Ok(None)
    }
}

impl Iterator for Iter {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_front() {
            Ok(Some((k, v))) => {
                if self.back_last.as_ref().is_some_and(|b| k >= *b) {
                    self.done = true;
                    return None;
                }
                self.front_last = Some(k.clone());
                Some(Ok((k, v)))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_back_entry() {
            Ok(Some((k, v))) => {
                if self.front_last.as_ref().is_some_and(|f| k <= *f) {
                    self.done = true;
                    return None;
                }
                self.back_last = Some(k.clone());
                Some(Ok((k, v)))
            }
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}
