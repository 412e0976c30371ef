//! The search for a linearization of one key's history.

use std::collections::HashMap;

use super::{Entry, Op, Output};

/// A value interned per key: [`ABSENT`], [`UNREAD`], or one that some
/// operation reads.
type Vid = u32;
/// No value.
const ABSENT: Vid = 0;
/// Every value that no operation reads: no answer is a read of it and no
/// swap expects it. No operation tells such values apart, so registers
/// holding them are in one state, and writes of them are alike.
const UNREAD: Vid = 1;

/// An operation as the search steps it, its values interned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Step {
    /// An answered read and the value it saw (unanswered reads are not
    /// searched).
    Get(Vid),
    Put(Vid),
    /// `swapped`: `None` if unanswered.
    Cas {
        expected: Vid,
        new: Vid,
        swapped: Option<bool>,
    },
}

impl Step {
    /// The value after the step from `value`, or `None` if its answer
    /// rules the step out there.
    fn next(self, value: Vid) -> Option<Vid> {
        match self {
            Step::Get(read) => (read == value).then_some(value),
            Step::Put(new) => Some(new),
            Step::Cas {
                expected,
                new,
                swapped,
            } => match (swapped, value == expected) {
                (None | Some(true), true) => Some(new),
                (None | Some(false), false) => Some(value),
                _ => None,
            },
        }
    }
}

pub(super) enum Search {
    Linearizable,
    /// `prefix`: the longest linearizable prefix found, as indices into the
    /// key's entries.
    Violation {
        prefix: Vec<usize>,
    },
    OutOfSteps,
}

/// A node of the event lists: an operation's call or return.
#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    call: bool,
    time: u64,
}

const NIL: usize = usize::MAX;
/// The head of the answered operations' calls and returns, in time order.
const ANSWERED: usize = 0;
/// The head of the unanswered operations' calls, in time order: kept apart
/// so the search tries them after the answered ones (see [`Memo`] for why).
const UNANSWERED: usize = 1;

/// The events still to linearize, as doubly linked lists over indices so
/// an operation is lifted out and put back in O(1).
struct Events {
    events: Vec<Event>,
    next: Vec<usize>,
    prev: Vec<usize>,
    /// Each operation's return event, if it returned.
    ret_of: Vec<Option<usize>>,
}

impl Events {
    /// The two lists: `answered` holds (time, is return, op) sorted, and
    /// `unanswered` (time, op) sorted.
    fn new(ops: usize, answered: &[(u64, bool, usize)], unanswered: &[(u64, usize)]) -> Events {
        let head = Event {
            op: NIL,
            call: false,
            time: 0,
        };
        let mut list = Events {
            events: vec![head, head],
            next: vec![NIL, NIL],
            prev: vec![NIL, NIL],
            ret_of: vec![None; ops],
        };
        let unanswered = unanswered.iter().map(|&(time, op)| (time, false, op));
        let lists: [Vec<_>; 2] = [answered.to_vec(), unanswered.collect()];
        for (head, events) in [ANSWERED, UNANSWERED].into_iter().zip(lists) {
            let mut last = head;
            for (time, is_ret, op) in events {
                let node = list.events.len();
                list.events.push(Event {
                    op,
                    call: !is_ret,
                    time,
                });
                list.next.push(NIL);
                list.prev.push(last);
                list.next[last] = node;
                if is_ret {
                    list.ret_of[op] = Some(node);
                }
                last = node;
            }
        }
        list
    }

    fn unlink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = q;
        if q != NIL {
            self.prev[q] = p;
        }
    }

    fn relink(&mut self, n: usize) {
        let (p, q) = (self.prev[n], self.next[n]);
        self.next[p] = n;
        if q != NIL {
            self.prev[q] = n;
        }
    }

    /// Takes the operation whose call is event `n` out of the lists.
    fn lift(&mut self, n: usize) {
        self.unlink(n);
        if let Some(r) = self.ret_of[self.events[n].op] {
            self.unlink(r);
        }
    }

    /// Undoes [`Events::lift`]; lifts are undone in reverse order.
    fn unlift(&mut self, n: usize) {
        if let Some(r) = self.ret_of[self.events[n].op] {
            self.relink(r);
        }
        self.relink(n);
    }
}

/// A set of operations, one bit each.
#[derive(Debug, Clone)]
struct Bits(Vec<u64>);

impl Bits {
    fn new(len: usize) -> Bits {
        Bits(vec![0; len.div_ceil(64)])
    }

    fn has(&self, i: usize) -> bool {
        self.0[i / 64] & 1 << (i % 64) != 0
    }

    fn flip(&mut self, i: usize) {
        self.0[i / 64] ^= 1 << (i % 64);
    }

    /// The set without trailing zero words: equal sets, equal slices.
    fn trimmed(&self) -> &[u64] {
        trim(&self.0)
    }
}

/// Words without the trailing zero ones.
fn trim(words: &[u64]) -> &[u64] {
    let len = words.iter().rposition(|&w| w != 0).map_or(0, |i| i + 1);
    &words[..len]
}

/// Whether `a` is a subset of `b`, both trimmed.
fn subset(a: &[u64], b: &[u64]) -> bool {
    a.len() <= b.len() && a.iter().zip(b).all(|(x, y)| x & !y == 0)
}

/// The states visited: the answered operations linearized (by index in
/// call order) and the value after them, each with the sets of unanswered
/// operations linearized with them.
///
/// Unanswered operations need never take effect, so a search that
/// linearized fewer of them can do all that one with more can: a state
/// whose unanswered set has a visited subset is pruned. Without this, each
/// unanswered operation doubles the states to visit to refute a violation
/// after its call.
#[derive(Default)]
struct Memo {
    /// By a hash of the answered set and value.
    buckets: HashMap<u64, Vec<Visited>>,
}

/// Searches linearize roughly in call order, so an answered set is kept
/// as its count of leading full words and the rest, trimmed: small and
/// exact.
struct Visited {
    full_words: usize,
    value: Vid,
    rest: Box<[u64]>,
    unanswered: Vec<Box<[u64]>>,
}

impl Memo {
    /// Records a state, unless it or one that can do all it can was
    /// visited: then it returns false.
    fn visit(&mut self, answered: &Bits, value: Vid, unanswered: &Bits) -> bool {
        let full = answered.0.iter().take_while(|&&w| w == u64::MAX).count();
        let rest = trim(&answered.0[full..]);
        let mut hash = (full as u64) << 32 | u64::from(value);
        for &w in rest {
            hash = (hash.rotate_left(5) ^ w).wrapping_mul(0x517c_c1b7_2722_0a95);
        }
        let bucket = self.buckets.entry(hash).or_default();
        let found = bucket
            .iter()
            .position(|v| v.full_words == full && v.value == value && *v.rest == *rest);
        let i = found.unwrap_or_else(|| {
            bucket.push(Visited {
                full_words: full,
                value,
                rest: rest.into(),
                unanswered: Vec::new(),
            });
            bucket.len() - 1
        });
        let sets = &mut bucket[i].unanswered;
        let set = unanswered.trimmed();
        if sets.iter().any(|s| subset(s, set)) {
            return false;
        }
        sets.retain(|s| !subset(set, s));
        sets.push(set.into());
        true
    }
}

/// A linearized operation: its call event, the value before it, and for
/// an unanswered one, the latest call time it was allowed.
struct Frame {
    node: usize,
    before: Vid,
    limit: Option<u64>,
}

/// Where the search looks for the next operation to linearize.
#[derive(Clone, Copy)]
enum Cursor {
    /// At an event of the answered list: calls before its first return
    /// are candidates.
    Answered(usize),
    /// At a call of the unanswered list; those called by `limit` (the
    /// first return left) are candidates.
    Unanswered(usize, u64),
    /// No candidate is left: undo the last one.
    Back,
}

/// Searches one key's entries (in call order) for a linearization.
pub(super) fn search(entries: &[&Entry], max_steps: u64) -> Search {
    let mut read: HashMap<&[u8], Vid> = HashMap::new();
    for entry in entries {
        let seen = match (&entry.op, &entry.output) {
            (Op::Get { .. }, Some(Output::Get(Some(v)))) => v,
            (
                Op::Cas {
                    expected: Some(v), ..
                },
                _,
            ) => v,
            _ => continue,
        };
        let next = Vid::try_from(read.len() + 2).unwrap_or(Vid::MAX);
        read.entry(seen.as_slice()).or_insert(next);
    }
    let intern = |v: &Option<Vec<u8>>| match v {
        None => ABSENT,
        Some(v) => read.get(v.as_slice()).copied().unwrap_or(UNREAD),
    };
    // The operations searched, in call order, their entries' indices and
    // their bits among the answered or the unanswered ones. Unanswered
    // reads, and unanswered swaps that write what they expect, change
    // nothing and constrain nothing: they are left out.
    let mut steps = Vec::new();
    let mut origin = Vec::new();
    let mut bit = Vec::new();
    let mut answered = Vec::new();
    let mut unanswered = Vec::new();
    // Unanswered operations that step alike are interchangeable: the
    // search takes them in call order. Each one's `twin` is the one before
    // it, by its index among the unanswered.
    let mut twin: Vec<Option<usize>> = Vec::new();
    let mut last_twin: HashMap<Step, usize> = HashMap::new();
    for (i, entry) in entries.iter().enumerate() {
        let step = match (&entry.op, &entry.output) {
            (Op::Get { .. }, None) => continue,
            (Op::Get { .. }, Some(Output::Get(read))) => Step::Get(intern(read)),
            (Op::Put { value, .. }, _) => Step::Put(intern(value)),
            (Op::Cas { expected, new, .. }, None) if expected == new => continue,
            (Op::Cas { expected, new, .. }, output) => Step::Cas {
                expected: intern(expected),
                new: intern(new),
                swapped: match output {
                    Some(Output::Cas(swapped)) => Some(*swapped),
                    _ => None,
                },
            },
            // Ruled out by `validate`.
            (Op::Get { .. }, Some(_)) => continue,
        };
        let op = steps.len();
        steps.push(step);
        origin.push(i);
        // Calls come before returns at the same time: such operations
        // overlap.
        match entry.ret {
            Some(ret) => {
                bit.push((true, answered.len() / 2));
                answered.push((entry.call, false, op));
                answered.push((ret, true, op));
            }
            None => {
                let b = unanswered.len();
                bit.push((false, b));
                unanswered.push((entry.call, op));
                twin.push(last_twin.insert(step, b));
            }
        }
    }
    answered.sort_unstable();
    let mut list = Events::new(steps.len(), &answered, &unanswered);
    let answered = answered.len() / 2;

    let mut done_bits = Bits::new(answered);
    let mut maybe_bits = Bits::new(unanswered.len());
    let mut memo = Memo::default();
    let mut stack: Vec<Frame> = Vec::new();
    let mut longest: Vec<usize> = Vec::new();
    let mut value = ABSENT;
    let mut done = 0;
    let mut cursor = Cursor::Answered(list.next[ANSWERED]);
    let mut spent = 0u64;
    while done < answered {
        spent += 1;
        if spent > max_steps {
            return Search::OutOfSteps;
        }
        // The candidate call to try, and where to look after it.
        let (node, limit) = match cursor {
            Cursor::Answered(node) => match list.events.get(node) {
                Some(event) if event.call => (node, None),
                // An answered operation not linearized returns here: the
                // unanswered ones called by then are the other candidates.
                // (`node` is never NIL: an answered operation is left.)
                Some(event) => {
                    cursor = Cursor::Unanswered(list.next[UNANSWERED], event.time);
                    continue;
                }
                None => {
                    cursor = Cursor::Back;
                    continue;
                }
            },
            Cursor::Unanswered(node, limit) => match list.events.get(node) {
                Some(event) if event.time <= limit => (node, Some(limit)),
                _ => {
                    cursor = Cursor::Back;
                    continue;
                }
            },
            Cursor::Back => {
                // Undo the last choice and try the next candidate after it.
                let Some(frame) = stack.pop() else {
                    return Search::Violation { prefix: longest };
                };
                let op = list.events[frame.node].op;
                match bit[op] {
                    (true, b) => {
                        done_bits.flip(b);
                        done -= 1;
                    }
                    (false, b) => maybe_bits.flip(b),
                }
                value = frame.before;
                list.unlift(frame.node);
                let next = list.next[frame.node];
                cursor = match frame.limit {
                    None => Cursor::Answered(next),
                    Some(limit) => Cursor::Unanswered(next, limit),
                };
                continue;
            }
        };
        let op = list.events[node].op;
        let (is_answered, b) = bit[op];
        // Two ways to prune: an unanswered operation whose effect a write
        // would erase is better left out (the search tries the write
        // without it too), and an unanswered operation is taken only after
        // its twin.
        let erased = matches!(steps[op], Step::Put(_))
            && stack.last().is_some_and(|f| !bit[list.events[f.node].op].0);
        let early = !is_answered && twin[b].is_some_and(|t| !maybe_bits.has(t));
        let after = match steps[op].next(value) {
            Some(after) if !erased && !early => after,
            _ => {
                cursor = next_cursor(&list, node, limit);
                continue;
            }
        };
        if is_answered {
            done_bits.flip(b);
        } else {
            maybe_bits.flip(b);
        }
        if !memo.visit(&done_bits, after, &maybe_bits) {
            if is_answered {
                done_bits.flip(b);
            } else {
                maybe_bits.flip(b);
            }
            cursor = next_cursor(&list, node, limit);
            continue;
        }
        stack.push(Frame {
            node,
            before: value,
            limit,
        });
        value = after;
        if is_answered {
            done += 1;
        }
        list.lift(node);
        if stack.len() > longest.len() {
            longest.clear();
            longest.extend(stack.iter().map(|f| origin[list.events[f.node].op]));
        }
        cursor = Cursor::Answered(list.next[ANSWERED]);
    }
    Search::Linearizable
}

/// The cursor after a candidate that was not taken.
fn next_cursor(list: &Events, node: usize, limit: Option<u64>) -> Cursor {
    let next = list.next[node];
    match limit {
        None => Cursor::Answered(next),
        Some(limit) => Cursor::Unanswered(next, limit),
    }
}
