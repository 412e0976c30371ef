//! The memtable's skiplist: one writer at a time, any number of readers
//! that never lock, nodes carved out of an arena.
//!
//! The engine inserts into a memtable from one thread at a time (the
//! commit-group leader, or recovery), so unlike a general concurrent map
//! the list needs no compare-and-swap, no deletion and no epoch-based
//! reclamation: a node is linked bottom level first with release stores
//! after it is fully written, readers follow links with acquire loads, and
//! nothing is freed before the list is dropped. A node is laid out as
//! `[tower (height links, top first)] [header] [key bytes]`: the links a
//! search follows sit just before the 16-byte key prefix it compares, so a
//! step of a search at the bottom levels touches one cache line, and the
//! key needs no allocation of its own.
//!
//! Each link also carries, for the writer alone, the prefix of the node it
//! points to: an insert decides most steps from the link it already holds
//! instead of loading the next node, which halves the cache misses of the
//! search that dominates a random insert (with one node in two reaching
//! each next level, a search step is one forward move or one stop, and
//! only the moves load a node).
//!
//! Profiles of random loads put 30% of the time in the skiplist search of
//! the general-purpose map this replaces, whose nodes keep the links after
//! key and value, two cache lines a step.

#![allow(unsafe_code)]

use std::cmp::Ordering;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicUsize, Ordering as AtomicOrdering};

use bytes::Bytes;
use parking_lot::Mutex;
use strata_format::key::{compare_internal, write_internal_key, ValueKind, TRAILER_LEN};

/// The tallest tower. With one node in two reaching each next level, 20
/// levels index 2^20 (1M) entries at full speed, and more still work.
const MAX_HEIGHT: usize = 20;

/// The fixed part of a node; the key bytes follow it, the tower precedes it.
#[repr(C)]
struct Header {
    /// The first sixteen bytes of the user key, zero-padded, as two
    /// big-endian integers (two, not one `u128`, to need 8-byte alignment
    /// only: the tower before the header is a run of 8-byte links).
    prefix: [u64; 2],
    value: Bytes,
    key_len: u32,
}

/// One level of a tower.
#[repr(C)]
struct Link {
    next: AtomicPtr<Header>,
    /// The prefix of `next`'s key. Only the writer, under the writer lock,
    /// reads or writes it (readers compare the node itself), so it always
    /// agrees with `next` for whoever reads it.
    hint: [AtomicU64; 2],
}

impl Link {
    fn empty() -> Self {
        Link {
            next: AtomicPtr::new(ptr::null_mut()),
            hint: [AtomicU64::new(0), AtomicU64::new(0)],
        }
    }

    fn hint(&self) -> [u64; 2] {
        [
            self.hint[0].load(AtomicOrdering::Relaxed),
            self.hint[1].load(AtomicOrdering::Relaxed),
        ]
    }

    fn set_hint(&self, h: [u64; 2]) {
        self.hint[0].store(h[0], AtomicOrdering::Relaxed);
        self.hint[1].store(h[1], AtomicOrdering::Relaxed);
    }
}

const LINK: usize = std::mem::size_of::<Link>();

/// An encoded internal key with its comparison prefix, to search with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Probe<'a> {
    prefix: [u64; 2],
    bytes: &'a [u8],
}

impl<'a> Probe<'a> {
    /// The probe for encoded internal-key bytes.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Probe {
            prefix: prefix_of(strata_format::key::user_key(bytes)),
            bytes,
        }
    }
}

/// The first sixteen bytes of `user`, zero-padded, as big-endian integers.
///
/// Zero padding keeps the integer order consistent with bytewise order:
/// when the padded prefixes differ, so do the keys, in the same direction.
#[inline]
pub(crate) fn prefix_of(user: &[u8]) -> [u64; 2] {
    let mut p = [0u8; 16];
    let n = user.len().min(16);
    p[..n].copy_from_slice(&user[..n]);
    let v = u128::from_be_bytes(p);
    [(v >> 64) as u64, v as u64]
}

/// A node of a list, valid for as long as the list is borrowed.
#[derive(Clone, Copy)]
pub(crate) struct Node<'a> {
    ptr: NonNull<Header>,
    _list: std::marker::PhantomData<&'a SkipList>,
}

/// A node's address, for a cursor that owns (an `Arc` of) its list and so
/// cannot hold a borrow of it. Only [`SkipList::at`] of the same list turns
/// it back into a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct NodePos(NonNull<Header>);

// SAFETY: a `NodePos` is an address; it is only dereferenced through
// `SkipList::at`, whose contract requires the list it came from, and a
// list is `Sync`.
unsafe impl Send for NodePos {}
// SAFETY: as for `Send`.
unsafe impl Sync for NodePos {}

impl<'a> Node<'a> {
    fn header(&self) -> &'a Header {
        // SAFETY: nodes are written in full before they are linked and are
        // never changed (except their links, which are atomics) or freed
        // while the list lives; `'a` borrows the list.
        unsafe { self.ptr.as_ref() }
    }

    /// The node's encoded internal key.
    pub(crate) fn key(&self) -> &'a [u8] {
        let h = self.header();
        // SAFETY: `key_len` bytes were written right after the header when
        // the node was made, inside its allocation.
        unsafe {
            std::slice::from_raw_parts(
                self.ptr.as_ptr().cast::<u8>().add(size_of::<Header>()),
                h.key_len as usize,
            )
        }
    }

    /// The node's value.
    pub(crate) fn value(&self) -> &'a Bytes {
        &self.header().value
    }

    /// The next node at the bottom level.
    pub(crate) fn next(&self) -> Option<Node<'a>> {
        let p = link(self.ptr, 0).next.load(AtomicOrdering::Acquire);
        NonNull::new(p).map(|ptr| Node {
            ptr,
            _list: std::marker::PhantomData,
        })
    }

    /// The node's address, for [`SkipList::at`].
    pub(crate) fn pos(&self) -> NodePos {
        NodePos(self.ptr)
    }

    fn cmp_probe(&self, probe: &Probe<'_>) -> Ordering {
        self.header()
            .prefix
            .cmp(&probe.prefix)
            .then_with(|| compare_internal(self.key(), probe.bytes))
    }
}

/// The link of `node` at `level` (below `node`'s height).
fn link<'a>(node: NonNull<Header>, level: usize) -> &'a Link {
    // SAFETY: the tower of a node of height h is the h links right before
    // its header, top level first, so level `l` is `l + 1` links back;
    // callers only ask for levels below the node's height, and the links
    // are initialised before the node is linked.
    unsafe { &*node.as_ptr().cast::<Link>().sub(level + 1) }
}

/// Where a search stands: the head, or a node.
type At = Option<NonNull<Header>>;

/// The skiplist.
pub(crate) struct SkipList {
    head: [Link; MAX_HEIGHT],
    /// The tallest tower linked so far.
    height: AtomicUsize,
    len: AtomicUsize,
    /// Bytes taken from the arena.
    bytes: AtomicUsize,
    writer: Mutex<Writer>,
}

impl std::fmt::Debug for SkipList {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SkipList")
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

/// What only the writer touches.
struct Writer {
    arena: Arena,
    rng: crate::random::SplitMix64,
}

impl Default for SkipList {
    fn default() -> Self {
        Self::new()
    }
}

impl SkipList {
    /// An empty list.
    pub(crate) fn new() -> Self {
        SkipList {
            head: std::array::from_fn(|_| Link::empty()),
            height: AtomicUsize::new(1),
            len: AtomicUsize::new(0),
            bytes: AtomicUsize::new(0),
            writer: Mutex::new(Writer {
                arena: Arena::default(),
                rng: crate::random::SplitMix64::new(0x2545_f491_4f6c_dd1d),
            }),
        }
    }

    /// Entries inserted.
    pub(crate) fn len(&self) -> usize {
        self.len.load(AtomicOrdering::Relaxed)
    }

    /// Arena bytes the nodes take (keys included, values not).
    pub(crate) fn node_bytes(&self) -> usize {
        self.bytes.load(AtomicOrdering::Relaxed)
    }

    fn link_at(&self, at: At, level: usize) -> &Link {
        match at {
            None => &self.head[level],
            Some(n) => link(n, level),
        }
    }

    fn node(&self, p: NonNull<Header>) -> Node<'_> {
        Node {
            ptr: p,
            _list: std::marker::PhantomData,
        }
    }

    /// The node at `pos`.
    ///
    /// # Safety
    /// `pos` must come from a node of this list.
    pub(crate) unsafe fn at(&self, pos: NodePos) -> Node<'_> {
        self.node(pos.0)
    }

    /// The last place at the bottom level whose successor does not satisfy
    /// `go_on`.
    fn descend(&self, mut go_on: impl FnMut(Node<'_>) -> bool) -> At {
        let mut at: At = None;
        let top = self.height.load(AtomicOrdering::Acquire);
        for level in (0..top).rev() {
            loop {
                let next = self.link_at(at, level).next.load(AtomicOrdering::Acquire);
                match NonNull::new(next) {
                    Some(n) if go_on(self.node(n)) => at = Some(n),
                    _ => break,
                }
            }
        }
        at
    }

    /// The writer's search: the last node `< probe` at every level, into
    /// `prev`, deciding from the links' hints where they differ from the
    /// probe's prefix. Runs under the writer lock, which orders it after
    /// every earlier insert, so relaxed loads see every link and hint.
    fn descend_to_insert(&self, probe: &Probe<'_>, prev: &mut [At; MAX_HEIGHT]) {
        let mut at: At = None;
        let top = self.height.load(AtomicOrdering::Relaxed);
        for level in (0..top).rev() {
            loop {
                let l = self.link_at(at, level);
                let Some(n) = NonNull::new(l.next.load(AtomicOrdering::Relaxed)) else {
                    break;
                };
                let less = match l.hint().cmp(&probe.prefix) {
                    Ordering::Less => true,
                    Ordering::Greater => false,
                    Ordering::Equal => self.node(n).cmp_probe(probe) == Ordering::Less,
                };
                if !less {
                    break;
                }
                at = Some(n);
            }
            prev[level] = at;
        }
    }

    /// Inserts the internal key (`user_key`, `ts`, `kind`) with `value`.
    /// An insert of a key already present puts the new node before the
    /// old one, so searches find the newer; the engine never does this
    /// (every commit has its own timestamp).
    pub(crate) fn insert(&self, user_key: &[u8], ts: u64, kind: ValueKind, value: Bytes) {
        let key_len = user_key.len() + TRAILER_LEN;
        let mut w = self.writer.lock();
        let height = w.random_height();
        let size = height * LINK + size_of::<Header>() + key_len;
        let base = w.arena.alloc(size);
        self.bytes.fetch_add(size, AtomicOrdering::Relaxed);
        // SAFETY: `base` is `size` fresh bytes, aligned for `Header` (and
        // so for links); the tower, header and key are written within it
        // before the node is linked anywhere.
        let node = unsafe {
            let tower = base.cast::<Link>();
            for i in 0..height {
                tower.add(i).write(Link::empty());
            }
            let header = base.add(height * LINK).cast::<Header>();
            header.write(Header {
                prefix: prefix_of(user_key),
                value,
                key_len: key_len as u32,
            });
            let key = std::slice::from_raw_parts_mut(
                header.cast::<u8>().add(size_of::<Header>()),
                key_len,
            );
            write_internal_key(key, user_key, ts, kind);
            NonNull::new_unchecked(header)
        };
        let new = self.node(node);
        let probe = Probe {
            prefix: new.header().prefix,
            bytes: new.key(),
        };
        let mut prev = [None; MAX_HEIGHT];
        self.descend_to_insert(&probe, &mut prev);
        if height > self.height.load(AtomicOrdering::Relaxed) {
            // The levels above the old top start at the head (`prev` is
            // `None` there already).
            self.height.store(height, AtomicOrdering::Release);
        }
        for (level, at) in prev.iter().enumerate().take(height) {
            let before = self.link_at(*at, level);
            let mine = link(node, level);
            mine.next.store(
                before.next.load(AtomicOrdering::Relaxed),
                AtomicOrdering::Relaxed,
            );
            mine.set_hint(before.hint());
            before.set_hint(probe.prefix);
            // Release: a reader that finds the node sees it whole.
            before.next.store(node.as_ptr(), AtomicOrdering::Release);
        }
        self.len.fetch_add(1, AtomicOrdering::Relaxed);
    }

    /// The first node.
    pub(crate) fn first(&self) -> Option<Node<'_>> {
        NonNull::new(self.head[0].next.load(AtomicOrdering::Acquire)).map(|p| self.node(p))
    }

    /// The last node.
    pub(crate) fn last(&self) -> Option<Node<'_>> {
        self.descend(|_| true).map(|p| self.node(p))
    }

    /// The first node with a key `>= probe`.
    pub(crate) fn lower_bound(&self, probe: &Probe<'_>) -> Option<Node<'_>> {
        let at = self.descend(|n| n.cmp_probe(probe) == Ordering::Less);
        NonNull::new(self.link_at(at, 0).next.load(AtomicOrdering::Acquire)).map(|p| self.node(p))
    }

    /// The last node with a key `< probe`, or `<= probe` when `inclusive`.
    pub(crate) fn last_before(&self, probe: &Probe<'_>, inclusive: bool) -> Option<Node<'_>> {
        self.descend(|n| match n.cmp_probe(probe) {
            Ordering::Less => true,
            Ordering::Equal => inclusive,
            Ordering::Greater => false,
        })
        .map(|p| self.node(p))
    }
}

impl Drop for SkipList {
    fn drop(&mut self) {
        // Every node is linked at the bottom level; drop their values, then
        // the arena frees the memory.
        let mut p = self.head[0].next.load(AtomicOrdering::Acquire);
        while let Some(n) = NonNull::new(p) {
            p = link(n, 0).next.load(AtomicOrdering::Acquire);
            // SAFETY: `&mut self`: no reader is left, and each node's value
            // is dropped once, after which the node is never read again.
            unsafe { ptr::drop_in_place(ptr::addr_of_mut!((*n.as_ptr()).value)) };
        }
    }
}

impl Writer {
    /// A height with P(h >= k) = 2^-(k-1).
    fn random_height(&mut self) -> usize {
        let mut bits = self.rng.next_u64();
        let mut h = 1;
        while h < MAX_HEIGHT && bits & 1 == 0 {
            h += 1;
            bits >>= 1;
        }
        h
    }
}

/// Bump allocation from blocks that live as long as the list.
///
/// Blocks are anonymous mappings rather than heap allocations: a large
/// `malloc` consolidates the allocator's free lists, which profiles showed
/// costing the writer 5% when the blocks came from the heap.
struct Arena {
    blocks: Vec<memmap2::MmapMut>,
    /// The free part of the newest block: where it starts, how long it is.
    next: *mut u8,
    left: usize,
    /// The size of the next block: blocks double from 4 KiB to 4 MiB, so
    /// a small memtable stays small.
    block_size: usize,
}

// SAFETY: `next` points into a block the arena owns; nothing else about
// the arena is tied to a thread.
unsafe impl Send for Arena {}

const ALIGN: usize = std::mem::align_of::<Header>();

impl Default for Arena {
    fn default() -> Self {
        Arena {
            blocks: Vec::new(),
            next: ptr::null_mut(),
            left: 0,
            block_size: 4096,
        }
    }
}

impl Arena {
    /// `size` bytes aligned for a header. Aborts, as `Box` does, when
    /// memory runs out.
    fn alloc(&mut self, size: usize) -> *mut u8 {
        let size = size.next_multiple_of(ALIGN);
        if self.left < size {
            if size > self.block_size / 4 {
                // A big node gets a block of its own; the current block
                // stays in use.
                return self.new_block(size);
            }
            let want = self.block_size;
            self.next = self.new_block(want);
            self.left = want;
            self.block_size = (self.block_size * 2).min(4 << 20);
        }
        let p = self.next;
        // SAFETY: `size <= left`, so this stays inside the block (or one
        // past its end).
        self.next = unsafe { self.next.add(size) };
        self.left -= size;
        p
    }

    fn new_block(&mut self, size: usize) -> *mut u8 {
        let mut block = match memmap2::MmapMut::map_anon(size) {
            Ok(b) => b,
            Err(_) => std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(size, ALIGN)
                    .unwrap_or(std::alloc::Layout::new::<Header>()),
            ),
        };
        // Page-aligned, so aligned for a header; the mapping does not move
        // when the handle moves into the vector.
        let p = block.as_mut_ptr();
        self.blocks.push(block);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use strata_format::key::encode_internal_key;

    fn encoded(user: &[u8], ts: u64, kind: ValueKind) -> Vec<u8> {
        let mut k = Vec::new();
        encode_internal_key(&mut k, user, ts, kind);
        k
    }

    /// Orders encoded keys like the comparator, for the model.
    #[derive(PartialEq, Eq, Clone, Debug)]
    struct Ordered(Vec<u8>);
    impl Ord for Ordered {
        fn cmp(&self, o: &Self) -> Ordering {
            compare_internal(&self.0, &o.0)
        }
    }
    impl PartialOrd for Ordered {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }

    fn arb_key() -> impl Strategy<Value = Vec<u8>> {
        // Few distinct bytes and lengths around the 16-byte prefix, so that
        // prefixes tie, keys are prefixes of each other, and some are long.
        prop_oneof![
            prop::collection::vec(prop_oneof![Just(0u8), Just(1u8), Just(255u8)], 0..20),
            prop::collection::vec(any::<u8>(), 14..40),
            prop::collection::vec(Just(7u8), 0..if cfg!(miri) { 100 } else { 5000 }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(if cfg!(miri) { 2 } else { 300 }))]

        /// Every search and the full walks agree with a `BTreeMap` in the
        /// comparator's order.
        #[test]
        fn searches_agree_with_an_ordered_model(
            entries in prop::collection::vec(
                (arb_key(), 0u64..4, 0usize..3),
                0..if cfg!(miri) { 40 } else { 300 },
            ),
            probes in prop::collection::vec((arb_key(), 0u64..5), 0..if cfg!(miri) { 8 } else { 50 }),
        ) {
            let kinds = [ValueKind::Put, ValueKind::Delete, ValueKind::PutWithTtl];
            let list = SkipList::new();
            let mut model = BTreeMap::new();
            for (i, (k, ts, kind)) in entries.iter().enumerate() {
                let enc = encoded(k, *ts, kinds[*kind]);
                if model.contains_key(&Ordered(enc.clone())) {
                    continue; // the engine never inserts a key twice
                }
                let v = Bytes::from(i.to_be_bytes().to_vec());
                list.insert(k, *ts, kinds[*kind], v.clone());
                model.insert(Ordered(enc), v);
            }
            prop_assert_eq!(list.len(), model.len());
            let mut walked = Vec::new();
            let mut n = list.first();
            while let Some(node) = n {
                walked.push((node.key().to_vec(), node.value().clone()));
                n = node.next();
            }
            let want: Vec<_> = model.iter().map(|(k, v)| (k.0.clone(), v.clone())).collect();
            prop_assert_eq!(&walked, &want);
            prop_assert_eq!(list.last().map(|n| n.key().to_vec()), want.last().map(|e| e.0.clone()));
            for (k, ts) in probes {
                let p = encoded(&k, ts, ValueKind::MAX);
                let probe = Probe::new(&p);
                let o = Ordered(p.clone());
                let ge = model.range(o.clone()..).next().map(|e| e.0 .0.clone());
                prop_assert_eq!(list.lower_bound(&probe).map(|n| n.key().to_vec()), ge);
                let lt = model.range(..o.clone()).next_back().map(|e| e.0 .0.clone());
                prop_assert_eq!(list.last_before(&probe, false).map(|n| n.key().to_vec()), lt);
                let le = model.range(..=o).next_back().map(|e| e.0 .0.clone());
                prop_assert_eq!(list.last_before(&probe, true).map(|n| n.key().to_vec()), le);
            }
        }
    }

    /// Readers running beside the writer only ever see sorted, whole
    /// entries, and a key once found stays found.
    #[test]
    fn readers_beside_the_writer_see_whole_sorted_entries() {
        let list = std::sync::Arc::new(SkipList::new());
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..2)
            .map(|r| {
                let (list, done) = (list.clone(), done.clone());
                std::thread::spawn(move || {
                    let mut rounds = 0u64;
                    while !done.load(AtomicOrdering::Acquire) || rounds == 0 {
                        rounds += 1;
                        let mut prev: Option<Vec<u8>> = None;
                        let mut n = list.first();
                        while let Some(node) = n {
                            let k = node.key();
                            let user = strata_format::key::user_key(k);
                            // The value is the user key's number.
                            assert_eq!(node.value().as_ref(), user);
                            if let Some(p) = &prev {
                                assert_eq!(compare_internal(p, k), Ordering::Less);
                            }
                            prev = Some(k.to_vec());
                            n = node.next();
                        }
                        let probe_key = encoded(&(rounds * 7 + r).to_be_bytes(), 0, ValueKind::MAX);
                        if let Some(n) = list.lower_bound(&Probe::new(&probe_key)) {
                            assert_ne!(compare_internal(n.key(), &probe_key), Ordering::Less);
                        }
                    }
                })
            })
            .collect();
        // Miri checks the unsafe code; a shorter run is enough there.
        let inserts = if cfg!(miri) { 300 } else { 20_000 };
        let mut x = 88172645463325252u64;
        for _ in 0..inserts {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = (x % 100_000).to_be_bytes();
            list.insert(&k, x, ValueKind::Put, Bytes::copy_from_slice(&k));
        }
        done.store(true, AtomicOrdering::Release);
        for r in readers {
            r.join().unwrap();
        }
        assert_eq!(list.len(), inserts);
    }
}
