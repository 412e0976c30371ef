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
use crate::view::{resolve, shown_from, ReadView};

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

/// Where the value of the entry an end of an [`Iter`] last returned lies.
enum Held {
    /// In the front cursor's current entry, from this offset (past a TTL
    /// entry's expiry prefix): lent without a copy.
    InCursor(usize),
    /// Read out of the cursor: a separated value, or the back end's (its
    /// cursor has moved past the entry to know it was the visible version).
    Owned(Bytes),
}

/// One end of an [`Iter`]: its merged cursor, created on its first step,
/// and what it last passed.
struct End {
    cursor: Option<MergeCursor>,
    /// The user key this end last stood on (once a step returned, the key
    /// it returned): the ends stop when they meet. One buffer, reused, so a
    /// step allocates nothing of its own.
    key: Vec<u8>,
    /// The value of the entry last returned.
    value: Held,
    /// The front cursor still stands on the entry last returned: its older
    /// versions are skipped at the next step, so that entry can be lent.
    pending: bool,
}

impl End {
    fn new() -> End {
        End {
            cursor: None,
            key: Vec::new(),
            value: Held::Owned(Bytes::new()),
            pending: false,
        }
    }

    /// The value of the entry last returned, lent.
    fn value_ref(&self) -> &[u8] {
        match &self.value {
            Held::InCursor(at) => self
                .cursor
                .as_ref()
                .and_then(|c| c.value_ref().get(*at..))
                .unwrap_or_default(),
            Held::Owned(b) => b,
        }
    }

    /// The value of the entry last returned, as a shared handle.
    fn value(&mut self) -> Bytes {
        match &mut self.value {
            Held::InCursor(at) => {
                let v = self.cursor.as_ref().map(|c| c.value()).unwrap_or_default();
                if *at == 0 {
                    v
                } else {
                    v.slice((*at).min(v.len())..)
                }
            }
            Held::Owned(b) => std::mem::take(b),
        }
    }
}

/// A double-ended iterator over the user keys of one keyspace in a range,
/// as of one timestamp. Items are `Result`s: a damaged file ends the
/// iteration with an error.
///
/// Besides the owned items of [`Iterator`], [`next_ref`](Iter::next_ref)
/// and [`next_back_ref`](Iter::next_back_ref) lend each key and value
/// without allocating: the way to scan when the caller only looks.
pub struct Iter {
    view: ReadView,
    lower: Bound<Vec<u8>>,
    upper: Bound<Vec<u8>>,
    front: End,
    back: End,
    /// The view's range tombstones, gathered on the first step.
    dels: Option<TombstoneLookup>,
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

/// Moves `c` past every version of `user` (it stands on one).
fn skip_versions(c: &mut MergeCursor, user: &[u8]) -> Result<()> {
    c.next()?;
    while c.valid() && parse(c.key())?.user_key == user {
        c.next()?;
    }
    Ok(())
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
            front: End::new(),
            back: End::new(),
            dels: None,
            done: empty,
        }
    }

    /// The timestamp this iterator reads at.
    pub fn ts(&self) -> u64 {
        self.view.ts()
    }

    /// The next entry from the front, lent: its key and value stay valid
    /// until the iterator moves again. The same entries, in the same order,
    /// as [`Iterator::next`], without allocating: the value is lent from
    /// its block without touching the block's reference count, the key from
    /// a buffer the iterator reuses.
    pub fn next_ref(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        match self.finish(Self::step_front) {
            Some(Ok(())) => Some(Ok((&self.front.key, self.front.value_ref()))),
            Some(Err(e)) => Some(Err(e)),
            None => None,
        }
    }

    /// The next entry from the back, lent, as [`next_ref`](Self::next_ref)
    /// lends from the front (the back end holds a shared handle on each
    /// value it passes, since its cursor moves past the version it
    /// returns).
    pub fn next_back_ref(&mut self) -> Option<Result<(&[u8], &[u8])>> {
        match self.finish(Self::step_back) {
            Some(Ok(())) => Some(Ok((&self.back.key, self.back.value_ref()))),
            Some(Err(e)) => Some(Err(e)),
            None => None,
        }
    }

    /// Runs one end's step and stops the iterator when it ends, fails or
    /// meets the other end.
    fn finish(&mut self, step: fn(&mut Self) -> Result<bool>) -> Option<Result<()>> {
        if self.done {
            return None;
        }
        match step(self) {
            Ok(true) => {
                // An end with a cursor has returned an entry (one whose
                // step found none, or failed, ended the iterator).
                let (f, b) = (&self.front, &self.back);
                if f.cursor.is_some() && b.cursor.is_some() && f.key >= b.key {
                    self.done = true;
                    return None;
                }
                Some(Ok(()))
            }
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }

    /// True when a version of `user` is a tombstone or a range tombstone
    /// deletes it: decided before anything is copied out of the cursor.
    fn hidden(
        dels: &mut Option<TombstoneLookup>,
        view: &ReadView,
        user: &[u8],
        version: u64,
        kind: ValueKind,
    ) -> Result<bool> {
        if matches!(kind, ValueKind::Delete | ValueKind::RangeDelete) {
            return Ok(true);
        }
        let dels = match dels {
            Some(d) => d,
            None => dels.insert(view.range_tombstones()?),
        };
        dels.hides(user, version)
    }

    /// Moves the front to the next visible entry and holds it (false when
    /// there is none in range). The cursor is left on that entry.
    fn step_front(&mut self) -> Result<bool> {
        let ts = self.view.ts();
        let expiry = self.view.expiry_ts();
        let end = &mut self.front;
        if end.cursor.is_none() {
            let mut c = self.view.merged_cursor()?;
            match &self.lower {
                Bound::Included(l) => c.seek(&first_version(l))?,
                Bound::Excluded(l) => c.seek(&after_versions(l))?,
                Bound::Unbounded => c.seek_to_first()?,
            }
            end.cursor = Some(c);
        }
        let Some(c) = end.cursor.as_mut() else {
            return Ok(false);
        };
        if std::mem::take(&mut end.pending) {
            skip_versions(c, &end.key)?;
        }
        while c.valid() {
            let k = parse(c.key())?;
            if !below_upper(k.user_key, &self.upper) {
                return Ok(false);
            }
            if k.ts > ts {
                c.next()?;
                continue;
            }
            // The newest visible version of this user key.
            let (kind, version) = (k.kind, k.ts);
            end.key.clear();
            end.key.extend_from_slice(k.user_key);
            if !Self::hidden(&mut self.dels, &self.view, &end.key, version, kind)? {
                // A separated value is read only once it is known to be
                // visible.
                let held = if kind == ValueKind::BlobPointer {
                    let (kind, value) = self.view.load(kind, c.value())?;
                    resolve(kind, value, expiry).map(Held::Owned)
                } else {
                    shown_from(kind, c.value_ref(), expiry).map(Held::InCursor)
                };
                if let Some(held) = held {
                    end.value = held;
                    end.pending = true;
                    return Ok(true);
                }
            }
            skip_versions(c, &end.key)?;
        }
        Ok(false)
    }

    /// Moves the back to the previous visible entry and holds it (false
    /// when there is none in range).
    fn step_back(&mut self) -> Result<bool> {
        let ts = self.view.ts();
        let expiry = self.view.expiry_ts();
        let end = &mut self.back;
        if end.cursor.is_none() {
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
            end.cursor = Some(c);
        }
        let Some(c) = end.cursor.as_mut() else {
            return Ok(false);
        };
        while c.valid() {
            let user = parse(c.key())?.user_key;
            if !above_lower(user, &self.lower) {
                return Ok(false);
            }
            end.key.clear();
            end.key.extend_from_slice(user);
            // Versions of a user key arrive oldest first going backward; the
            // last one at or below `ts` is the visible one.
            let mut best: Option<(ValueKind, u64, Bytes)> = None;
            while c.valid() {
                let k = parse(c.key())?;
                if k.user_key != end.key.as_slice() {
                    break;
                }
                if k.ts <= ts {
                    best = Some((k.kind, k.ts, c.value()));
                }
                c.prev()?;
            }
            let Some((kind, version, value)) = best else {
                continue;
            };
            if Self::hidden(&mut self.dels, &self.view, &end.key, version, kind)? {
                continue;
            }
            let (kind, value) = self.view.load(kind, value)?;
            if let Some(v) = resolve(kind, value, expiry) {
                end.value = Held::Owned(v);
                return Ok(true);
            }
        }
        Ok(false)
    }
}

impl Iterator for Iter {
    type Item = Result<KvPair>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.finish(Self::step_front)? {
            Ok(()) => Some(Ok((
                Bytes::copy_from_slice(&self.front.key),
                self.front.value(),
            ))),
            Err(e) => Some(Err(e)),
        }
    }
}

impl DoubleEndedIterator for Iter {
    fn next_back(&mut self) -> Option<Self::Item> {
        match self.finish(Self::step_back)? {
            Ok(()) => Some(Ok((
                Bytes::copy_from_slice(&self.back.key),
                self.back.value(),
            ))),
            Err(e) => Some(Err(e)),
        }
    }
}
