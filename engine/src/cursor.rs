//! Cursors over the components of a read view (memtables, tables, levels)
//! and the merge of them: one sorted stream of internal keys.
//!
//! A merged cursor is used in one direction only: positioned with `seek`
//! and moved with `next`, or positioned with `seek_for_prev` and moved with
//! `prev`. Double-ended iteration runs one of each (see `iter.rs`), which
//! keeps direction switches out of the merge.

use std::sync::Arc;

use bytes::Bytes;
use strata_format::key::compare_internal;
use strata_format::sst::TableIter;

use crate::cache::TableCache;
use crate::error::{Error, Result};
use crate::levels::LevelFiles;
use crate::memtable::{Memtable, Node, NodePos, Probe};

/// A positioned stream of internal keys.
pub(crate) trait Cursor: Send {
    /// True when on an entry.
    fn valid(&self) -> bool;
    /// The current internal key.
    fn key(&self) -> &[u8];
    /// The current value.
    fn value(&self) -> Bytes;
    /// The current value, borrowed: flushes and compactions copy values
    /// into new tables, and a shared handle per entry (a reference count
    /// touched in another cache line) is a cost they need not pay.
    fn value_ref(&self) -> &[u8];
    /// Positions on the first entry `>= target`.
    fn seek(&mut self, target: &[u8]) -> Result<()>;
    /// Positions on the last entry `<= target`.
    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()>;
    /// Positions on the first entry. (`seek(&[])` is not the same: the
    /// empty target sorts after every version of the empty user key.)
    fn seek_to_first(&mut self) -> Result<()>;
    /// Positions on the last entry.
    fn seek_to_last(&mut self) -> Result<()>;
    /// Moves forward (after `seek`).
    fn next(&mut self) -> Result<()>;
    /// Moves backward (after `seek_for_prev`).
    fn prev(&mut self) -> Result<()>;
}

/// A cursor over a memtable: a position in its skiplist.
pub(crate) struct MemCursor {
    mem: Arc<Memtable>,
    pos: Option<NodePos>,
}

impl MemCursor {
    pub(crate) fn new(mem: Arc<Memtable>) -> Self {
        MemCursor { mem, pos: None }
    }

    fn node(&self) -> Option<Node<'_>> {
        // SAFETY: `pos` was taken from a node of `self.mem`, which the
        // cursor keeps alive.
        #[allow(unsafe_code)]
        self.pos.map(|p| unsafe { self.mem.at(p) })
    }
}

impl Cursor for MemCursor {
    fn valid(&self) -> bool {
        self.pos.is_some()
    }

    fn key(&self) -> &[u8] {
        self.node().map_or(&[][..], |n| n.key())
    }

    fn value(&self) -> Bytes {
        self.node().map(|n| n.value().clone()).unwrap_or_default()
    }

    fn value_ref(&self) -> &[u8] {
        self.node().map_or(&[][..], |n| n.value())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.pos = self.mem.lower_bound(&Probe::new(target)).map(|n| n.pos());
        Ok(())
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.pos = self
            .mem
            .last_before(&Probe::new(target), true)
            .map(|n| n.pos());
        Ok(())
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.pos = self.mem.first().map(|n| n.pos());
        Ok(())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.pos = self.mem.last().map(|n| n.pos());
        Ok(())
    }

    fn next(&mut self) -> Result<()> {
        self.pos = self.node().and_then(|n| n.next()).map(|n| n.pos());
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        // No back links: the last entry before this one is a search.
        self.pos = self
            .node()
            .and_then(|n| self.mem.last_before(&Probe::new(n.key()), false))
            .map(|n| n.pos());
        Ok(())
    }
}

/// A cursor over one table.
pub(crate) struct TableCursor {
    it: TableIter,
    path: std::path::PathBuf,
}

impl TableCursor {
    pub(crate) fn new(it: TableIter, path: std::path::PathBuf) -> Self {
        TableCursor { it, path }
    }

    fn wrap(&self, r: strata_format::Result<()>) -> Result<()> {
        r.map_err(|e| Error::format(&self.path, e))
    }
}

impl Cursor for TableCursor {
    fn valid(&self) -> bool {
        self.it.valid()
    }

    fn key(&self) -> &[u8] {
        self.it.key()
    }

    fn value(&self) -> Bytes {
        self.it.value_bytes()
    }

    fn value_ref(&self) -> &[u8] {
        self.it.value()
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        let r = self.it.seek(target);
        self.wrap(r)
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        let r = self.it.seek(target);
        self.wrap(r)?;
        let r = if !self.it.valid() {
            self.it.seek_to_last()
        } else if compare_internal(self.it.key(), target) == std::cmp::Ordering::Greater {
            self.it.prev()
        } else {
            Ok(())
        };
        self.wrap(r)
    }

    fn seek_to_first(&mut self) -> Result<()> {
        let r = self.it.seek_to_first();
        self.wrap(r)
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let r = self.it.seek_to_last();
        self.wrap(r)
    }

    fn next(&mut self) -> Result<()> {
        let r = self.it.next();
        self.wrap(r)
    }

    fn prev(&mut self) -> Result<()> {
        let r = self.it.prev();
        self.wrap(r)
    }
}

/// A cursor over a level of disjoint, sorted tables, opening each table
/// only when the cursor reaches it.
pub(crate) struct LevelCursor {
    files: LevelFiles,
    tables: Arc<TableCache>,
    index: usize,
    current: Option<TableCursor>,
    /// Whether blocks read go into the block cache (not for compactions).
    fill_cache: bool,
}

impl LevelCursor {
    pub(crate) fn new(files: LevelFiles, tables: Arc<TableCache>) -> Self {
        LevelCursor {
            files,
            tables,
            index: 0,
            current: None,
            fill_cache: true,
        }
    }

    /// A cursor whose reads do not fill the block cache.
    pub(crate) fn without_fill(mut self) -> Self {
        self.fill_cache = false;
        self
    }

    fn open(&mut self, index: usize) -> Result<()> {
        self.index = index;
        self.current = None;
        if let Some(f) = self.files.files().get(index) {
            let table = self.tables.get(f)?;
            let it = if self.fill_cache {
                table.iter()
            } else {
                table.iter_without_fill()
            };
            self.current = Some(TableCursor::new(it, f.path().to_path_buf()));
        }
        Ok(())
    }

    fn skip_forward(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            self.open(self.index + 1)?;
            if let Some(c) = self.current.as_mut() {
                let r = c.it.seek_to_first();
                c.wrap(r)?;
            }
        }
        Ok(())
    }

    fn skip_backward(&mut self) -> Result<()> {
        while self.current.as_ref().is_some_and(|c| !c.valid()) {
            if self.index == 0 {
                self.current = None;
                return Ok(());
            }
            self.open(self.index - 1)?;
            if let Some(c) = self.current.as_mut() {
                let r = c.it.seek_to_last();
                c.wrap(r)?;
            }
        }
        Ok(())
    }
}

impl Cursor for LevelCursor {
    fn valid(&self) -> bool {
        self.current.as_ref().is_some_and(|c| c.valid())
    }

    fn key(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.key())
    }

    fn value(&self) -> Bytes {
        self.current.as_ref().map_or_else(Bytes::new, |c| c.value())
    }

    fn value_ref(&self) -> &[u8] {
        self.current.as_ref().map_or(&[], |c| c.value_ref())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        // The first file whose largest key is >= target.
        let i = self
            .files
            .files()
            .partition_point(|f| compare_internal(&f.largest, target) == std::cmp::Ordering::Less);
        self.open(i)?;
        if let Some(c) = self.current.as_mut() {
            c.seek(target)?;
        }
        self.skip_forward()
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        // The last file whose smallest key is <= target.
        let i = self.files.files().partition_point(|f| {
            compare_internal(&f.smallest, target) != std::cmp::Ordering::Greater
        });
        if i == 0 {
            self.current = None;
            return Ok(());
        }
        self.open(i - 1)?;
        if let Some(c) = self.current.as_mut() {
            c.seek_for_prev(target)?;
        }
        self.skip_backward()
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.open(0)?;
        if let Some(c) = self.current.as_mut() {
            c.seek_to_first()?;
        }
        self.skip_forward()
    }

    fn seek_to_last(&mut self) -> Result<()> {
        let count = self.files.files().len();
        if count == 0 {
            self.current = None;
            return Ok(());
        }
        self.open(count - 1)?;
        if let Some(c) = self.current.as_mut() {
            c.seek_to_last()?;
        }
        self.skip_backward()
    }

    fn next(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.next()?;
        }
        self.skip_forward()
    }

    fn prev(&mut self) -> Result<()> {
        if let Some(c) = self.current.as_mut() {
            c.prev()?;
        }
        self.skip_backward()
    }
}

/// The merge of several cursors: the smallest current key when moving
/// forward, the largest when moving backward.
///
/// The child standing on the current entry is kept apart from a binary
/// heap of the other valid children (the best at its top): a step moves
/// that child and compares it with the heap's top once, so a merge whose
/// next entries come from one child (a scan within one level) costs one
/// comparison a step, and a switch `log k`. Equal keys go to the lower
/// child index, the newer component.
pub(crate) struct MergeCursor {
    children: Vec<Box<dyn Cursor>>,
    current: Option<usize>,
    /// The other valid children.
    heap: Vec<usize>,
    forward: bool,
}

impl MergeCursor {
    pub(crate) fn new(children: Vec<Box<dyn Cursor>>) -> Self {
        MergeCursor {
            heap: Vec::with_capacity(children.len()),
            children,
            current: None,
            forward: true,
        }
    }

    /// True when child `a` comes before child `b` in the merge's direction.
    #[inline]
    fn before(&self, a: usize, b: usize) -> bool {
        match compare_internal(self.children[a].key(), self.children[b].key()) {
            std::cmp::Ordering::Less => self.forward,
            std::cmp::Ordering::Greater => !self.forward,
            std::cmp::Ordering::Equal => a < b,
        }
    }

    fn sift_down(&mut self, mut i: usize) {
        let n = self.heap.len();
        loop {
            let (l, r) = (2 * i + 1, 2 * i + 2);
            let mut best = i;
            if l < n && self.before(self.heap[l], self.heap[best]) {
                best = l;
            }
            if r < n && self.before(self.heap[r], self.heap[best]) {
                best = r;
            }
            if best == i {
                return;
            }
            self.heap.swap(i, best);
            i = best;
        }
    }

    /// Takes the heap's top out, or `None` when it is empty.
    fn pop(&mut self) -> Option<usize> {
        let last = self.heap.pop()?;
        if self.heap.is_empty() {
            return Some(last);
        }
        let top = std::mem::replace(&mut self.heap[0], last);
        self.sift_down(0);
        Some(top)
    }

    /// Rebuilds the heap from every valid child after they were all
    /// positioned, and takes the best as the current one.
    fn rebuild(&mut self) {
        self.heap.clear();
        self.heap
            .extend((0..self.children.len()).filter(|&i| self.children[i].valid()));
        for i in (0..self.heap.len() / 2).rev() {
            self.sift_down(i);
        }
        self.current = self.pop();
    }

    /// Positions every child with `place` for a walk forward or backward,
    /// then rebuilds the heap.
    fn reposition(
        &mut self,
        forward: bool,
        mut place: impl FnMut(&mut Box<dyn Cursor>) -> Result<()>,
    ) -> Result<()> {
        self.forward = forward;
        self.current = None;
        for c in &mut self.children {
            place(c)?;
        }
        self.rebuild();
        Ok(())
    }

    /// After the current child moved: it stays current unless it ran out
    /// or the heap's top now comes first.
    fn settle(&mut self, moved: usize) {
        if !self.children[moved].valid() {
            self.current = self.pop();
            return;
        }
        match self.heap.first() {
            Some(&top) if self.before(top, moved) => {
                self.heap[0] = moved;
                self.sift_down(0);
                self.current = Some(top);
            }
            _ => self.current = Some(moved),
        }
    }
}

impl Cursor for MergeCursor {
    fn valid(&self) -> bool {
        self.current.is_some()
    }

    fn key(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].key())
    }

    fn value(&self) -> Bytes {
        self.current
            .map_or_else(Bytes::new, |i| self.children[i].value())
    }

    fn value_ref(&self) -> &[u8] {
        self.current.map_or(&[], |i| self.children[i].value_ref())
    }

    fn seek(&mut self, target: &[u8]) -> Result<()> {
        self.reposition(true, |c| c.seek(target))
    }

    fn seek_for_prev(&mut self, target: &[u8]) -> Result<()> {
        self.reposition(false, |c| c.seek_for_prev(target))
    }

    fn seek_to_first(&mut self) -> Result<()> {
        self.reposition(true, |c| c.seek_to_first())
    }

    fn seek_to_last(&mut self) -> Result<()> {
        self.reposition(false, |c| c.seek_to_last())
    }

    fn next(&mut self) -> Result<()> {
        debug_assert!(self.forward, "merge cursor moved against its direction");
        if let Some(i) = self.current {
            if let Err(e) = self.children[i].next() {
                self.current = None;
                self.heap.clear();
                return Err(e);
            }
            self.settle(i);
        }
        Ok(())
    }

    fn prev(&mut self) -> Result<()> {
        debug_assert!(!self.forward, "merge cursor moved against its direction");
        if let Some(i) = self.current {
            if let Err(e) = self.children[i].prev() {
                self.current = None;
                self.heap.clear();
                return Err(e);
            }
            self.settle(i);
        }
        Ok(())
    }
}
