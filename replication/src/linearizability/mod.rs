//! A linearizability checker for client histories of registers: keys
//! whose values are read, written, deleted and compared-and-swapped.
//!
//! Fault tests record what their clients asked and what they were told
//! (with [`History`], or as [`Entry`] values built by hand), then ask
//! [`check`] whether some order of the operations, consistent with real
//! time, explains every answer a client received. An operation whose
//! client never learned the outcome (a timeout, a lost connection) may
//! have taken effect at any moment after it was called, or never.
//!
//! The search is Wing and Gong's, with Lowe's memoisation of (operations
//! linearized, register value) pairs, as in Knossos and Porcupine. Every
//! operation touches one key and linearizability is compositional, so each
//! key's history is checked on its own. Each search is bounded by
//! [`Config::max_steps`]; a history too hard to decide within it is
//! [`Outcome::Undecided`] rather than a hang.
//!
//! Registers start absent: a test that loads keys beforehand records the
//! loading writes too.
//!
//! Refuting a history means visiting every state before the violation,
//! and unanswered operations multiply those states, most of all when few
//! distinct values are written. Tests that write each value once keep
//! refutation cheap: values nobody reads are one state to the search.

#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::BTreeMap;

use parking_lot::Mutex;

use search::{search, Search};

mod report;
mod search;

/// An operation on one register, as a client invoked it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Op {
    /// Reads the value; answered with [`Output::Get`].
    Get {
        /// The register.
        key: Vec<u8>,
    },
    /// Writes the value, or deletes it (`None`); answered with
    /// [`Output::Put`].
    Put {
        /// The register.
        key: Vec<u8>,
        /// The value written; `None` deletes.
        value: Option<Vec<u8>>,
    },
    /// Writes `new` if the value is `expected` (`None`: absent); answered
    /// with [`Output::Cas`].
    Cas {
        /// The register.
        key: Vec<u8>,
        /// The value the register must hold for the swap.
        expected: Option<Vec<u8>>,
        /// The value written on a swap; `None` deletes.
        new: Option<Vec<u8>>,
    },
}

impl Op {
    /// The register the operation touches: histories split by it.
    pub fn key(&self) -> &[u8] {
        match self {
            Op::Get { key } | Op::Put { key, .. } | Op::Cas { key, .. } => key,
        }
    }

    fn accepts(&self, output: &Output) -> bool {
        matches!(
            (self, output),
            (Op::Get { .. }, Output::Get(_))
                | (Op::Put { .. }, Output::Put)
                | (Op::Cas { .. }, Output::Cas(_))
        )
    }
}

/// What a client was told an operation did.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Output {
    /// The value a [`Op::Get`] read (`None`: absent).
    Get(Option<Vec<u8>>),
    /// A [`Op::Put`] was acknowledged.
    Put,
    /// Whether a [`Op::Cas`] swapped; `false` means it read a value other
    /// than the expected one.
    Cas(bool),
}

/// One operation of a history: who called it, when, and what came back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Entry {
    /// The client that invoked it; only for reports, since the checker
    /// orders operations by time alone.
    pub client: u64,
    /// When it was invoked, in any monotonic unit shared by the history.
    pub call: u64,
    /// When its answer arrived (not before `call`); `None` if the client
    /// never learned the outcome, so it may take effect any time after
    /// `call`, or never. Operations are ordered only when one's `ret` is
    /// strictly below the other's `call`.
    pub ret: Option<u64>,
    /// What was asked.
    pub op: Op,
    /// The answer: `Some` exactly when `ret` is, of the kind `op` calls for.
    pub output: Option<Output>,
}

/// A history entry that does not make sense, so no verdict can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history entry {index}: {reason}")]
pub struct Malformed {
    /// Its index in the history given.
    pub index: usize,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Limits of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// The most search steps spent on one key before it is
    /// [`Outcome::Undecided`]. The search can be exponential on adversarial
    /// histories; this keeps a failing test from hanging. The memo grows
    /// by at most one entry a step, so this also bounds memory.
    pub max_steps: u64,
}

/// [`Config::max_steps`] by default: a second or two of a debug build,
/// where a history of 2,000 operations on one key from five clients
/// usually needs well under a million steps.
pub const DEFAULT_MAX_STEPS: u64 = 10_000_000;

impl Default for Config {
    fn default() -> Config {
        Config {
            max_steps: DEFAULT_MAX_STEPS,
        }
    }
}

/// The verdict on a history.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Outcome {
    /// Some order consistent with real time explains every answer.
    Linearizable,
    /// No order explains one key's answers; the report shows that key's
    /// history (its `Display` is meant for a failing test's output).
    Violation(Report),
    /// No key was found to violate, but the search for `key` ran out of
    /// steps, so nothing is proven about it.
    Undecided {
        /// The first key whose search ran out of steps.
        key: Vec<u8>,
    },
}

impl Outcome {
    /// Whether the history was proven linearizable; the shorthand tests
    /// assert, printing the outcome otherwise.
    pub fn is_linearizable(&self) -> bool {
        matches!(self, Outcome::Linearizable)
    }
}

/// Why one key's history is not linearizable, for a person to debug.
///
/// `Display` prints the longest linearizable prefix the search found and
/// the key's operations in call order around the point where it got
/// stuck; the alternate form (`{:#}`) prints all of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    key: Vec<u8>,
    history: Vec<Entry>,
    prefix: Vec<usize>,
}

impl Report {
    /// The key whose history is not linearizable.
    pub fn key(&self) -> &[u8] {
        &self.key
    }

    /// The key's operations in call order.
    pub fn history(&self) -> &[Entry] {
        &self.history
    }

    /// The longest order the search found that explains part of the
    /// history, as indices into [`Report::history`] in linearization
    /// order: where to start looking, as the violation is usually near the
    /// earliest-returning operation it leaves out.
    pub fn longest_prefix(&self) -> &[usize] {
        &self.prefix
    }
}

/// Checks a history with the default [`Config`].
pub fn check(history: &[Entry]) -> Result<Outcome, Malformed> {
    check_with(history, &Config::default())
}

/// Checks a history: each key on its own, in key order. A violation on
/// any key is reported even if another key is undecided.
pub fn check_with(history: &[Entry], config: &Config) -> Result<Outcome, Malformed> {
    let mut keys: BTreeMap<&[u8], Vec<&Entry>> = BTreeMap::new();
    for (index, entry) in history.iter().enumerate() {
        validate(entry).map_err(|reason| Malformed { index, reason })?;
        keys.entry(entry.op.key()).or_default().push(entry);
    }
    let mut undecided = None;
    for (key, mut entries) in keys {
        entries.sort_by_key(|e| (e.call, e.ret.unwrap_or(u64::MAX)));
        match search(&entries, config.max_steps) {
            Search::Linearizable => {}
            Search::OutOfSteps => {
                undecided.get_or_insert(key);
            }
            Search::Violation { prefix } => {
                return Ok(Outcome::Violation(Report {
                    key: key.to_vec(),
                    history: entries.into_iter().cloned().collect(),
                    prefix,
                }));
            }
        }
    }
    Ok(match undecided {
        Some(key) => Outcome::Undecided { key: key.to_vec() },
        None => Outcome::Linearizable,
    })
}

/// Why an entry makes no sense, if it does not.
fn validate(entry: &Entry) -> Result<(), &'static str> {
    match (entry.ret, &entry.output) {
        (Some(ret), _) if ret < entry.call => Err("it returned before it was called"),
        (Some(_), None) => Err("it returned without an output"),
        (None, Some(_)) => Err("it has an output but never returned"),
        (_, Some(output)) if !entry.op.accepts(output) => {
            Err("its output is not of the operation's kind")
        }
        _ => Ok(()),
    }
}

/// Records a history as clients run, taking the times itself so every
/// call precedes its return and real-time order is exact: times come from
/// one counter under the lock, so an operation that returned before
/// another was invoked has a smaller `ret` than the other's `call`.
/// Clients invoke before a request leaves and complete once its answer is
/// in. Shareable between threads and tasks.
#[derive(Debug, Default)]
pub struct History {
    inner: Mutex<Recording>,
}

#[derive(Debug, Default)]
struct Recording {
    clock: u64,
    entries: Vec<Entry>,
    /// Operations known not to have taken effect, left out of checks.
    discarded: std::collections::BTreeSet<usize>,
}

/// An invoked operation awaiting its outcome, for the history that gave
/// it; consumed by [`History::complete`], [`History::abandon`] or
/// [`History::discard`], so it ends once.
#[derive(Debug, PartialEq, Eq, Hash)]
#[must_use = "complete or abandon the operation"]
pub struct OpId(usize);

impl History {
    /// An empty history.
    pub fn new() -> History {
        History::default()
    }

    /// Records that `client` invoked `op`, now.
    pub fn invoke(&self, client: u64, op: Op) -> OpId {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let call = inner.clock;
        inner.entries.push(Entry {
            client,
            call,
            ret: None,
            op,
            output: None,
        });
        OpId(inner.entries.len() - 1)
    }

    /// Records that the operation returned `output`, now. An output of the
    /// wrong kind for the operation makes [`History::check`] report the
    /// history malformed.
    pub fn complete(&self, id: OpId, output: Output) {
        let mut inner = self.inner.lock();
        inner.clock += 1;
        let ret = inner.clock;
        if let Some(entry) = inner.entries.get_mut(id.0) {
            entry.ret = Some(ret);
            entry.output = Some(output);
        }
    }

    /// Records that the client will never learn the operation's outcome
    /// (it timed out, its connection was lost): the operation may take
    /// effect any time after its call, or never. Dropping the id does the
    /// same; this says so at the call site.
    pub fn abandon(&self, id: OpId) {
        let _ = id;
    }

    /// Records that the operation certainly did not take effect (it was
    /// refused before it ran, or never reached a server): it is left out
    /// of the history. Only sound when that is certain; otherwise
    /// [`abandon`](Self::abandon) it.
    pub fn discard(&self, id: OpId) {
        self.inner.lock().discarded.insert(id.0);
    }

    /// A copy of the operations recorded so far, in invocation order.
    pub fn entries(&self) -> Vec<Entry> {
        let inner = self.inner.lock();
        inner
            .entries
            .iter()
            .enumerate()
            .filter(|(i, _)| !inner.discarded.contains(i))
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Checks the operations recorded so far with the default [`Config`].
    pub fn check(&self) -> Result<Outcome, Malformed> {
        check(&self.entries())
    }

    /// Checks the operations recorded so far with `config`.
    pub fn check_with(&self, config: &Config) -> Result<Outcome, Malformed> {
        check_with(&self.entries(), config)
    }
}

#[cfg(test)]
mod tests;
