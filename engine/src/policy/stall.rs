//! Write stalls: what a writer does before its commit group goes into the
//! memtable, so flushes and L0 compactions are not outrun.
//!
//! With too many L0 files each write is delayed a little, once (a
//! slowdown spreads the wait over many writes instead of stopping them).
//! While the active memtable has room the write proceeds. A full memtable
//! is switched for an empty one, unless flushes have fallen behind (too
//! many immutable memtables waiting) or L0 compactions have (L0 at its
//! stop trigger): then writes stop until background work catches up.

use crate::options::Options;

/// The options the stall policy reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StallLimits {
    /// L0 files at which each write is delayed once.
    pub l0_slowdown_trigger: usize,
    /// L0 files at which writes stop instead of switching the memtable.
    pub l0_stop_trigger: usize,
    /// Bytes at which the active memtable is full.
    pub memtable_size: usize,
    /// Immutable memtables waiting for a flush at which writes stop.
    pub max_immutable_memtables: usize,
}

impl StallLimits {
    /// The stall policy's part of a database's options.
    pub(crate) fn from_options(opts: &Options) -> Self {
        StallLimits {
            l0_slowdown_trigger: opts.l0_slowdown_trigger,
            l0_stop_trigger: opts.l0_stop_trigger,
            memtable_size: opts.memtable_size,
            max_immutable_memtables: opts.max_immutable_memtables,
        }
    }
}

/// The state a stall is decided on, read fresh before each decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StallInputs {
    /// L0 files of the keyspace that has the most.
    pub l0_files: usize,
    /// Bytes written to the active memtables.
    pub active_bytes: usize,
    /// Sealed memtables waiting for a flush.
    pub immutable_memtables: usize,
}

/// What the writer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StallDecision {
    /// Write into the active memtable now.
    Proceed,
    /// Sleep briefly (once per write), then decide again.
    Slowdown,
    /// Seal the full memtable and start an empty one, then decide again.
    Switch,
    /// Wait for flushes or compactions to catch up (or, without background
    /// threads, do them), then decide again.
    Stop,
}

/// Decides what a writer does next; `already_slowed` says this write was
/// delayed once already.
pub(crate) fn decide(
    limits: &StallLimits,
    inputs: &StallInputs,
    already_slowed: bool,
) -> StallDecision {
    if inputs.l0_files >= limits.l0_slowdown_trigger && !already_slowed {
        return StallDecision::Slowdown;
    }
    if inputs.active_bytes < limits.memtable_size {
        return StallDecision::Proceed;
    }
    if inputs.immutable_memtables >= limits.max_immutable_memtables
        || inputs.l0_files >= limits.l0_stop_trigger
    {
        return StallDecision::Stop;
    }
    StallDecision::Switch
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::datadriven::{self, Case};

    fn limits(c: &Case) -> StallLimits {
        StallLimits {
            l0_slowdown_trigger: c.get("slowdown"),
            l0_stop_trigger: c.get("stop"),
            memtable_size: c.get("memtable"),
            max_immutable_memtables: c.get("max_imm"),
        }
    }

    #[test]
    fn stall_testdata() {
        let mut lim: Option<StallLimits> = None;
        datadriven::run("stall.txt", |c| match c.cmd.as_str() {
            "limits" => {
                let l = limits(c);
                lim = Some(l);
                format!("{l:?}")
            }
            "decide" => {
                let l = lim.unwrap_or_else(|| c.fail("decide before limits"));
                let inputs = StallInputs {
                    l0_files: c.get("l0"),
                    active_bytes: c.get("active"),
                    immutable_memtables: c.get("imm"),
                };
                format!("{:?}", decide(&l, &inputs, c.has("slowed")))
            }
            _ => c.fail("unknown command"),
        });
    }

    /// `make_room`'s decisions as the engine had them inline: the
    /// reference the pure policy must agree with.
    fn old_make_room(l: &StallLimits, i: &StallInputs, slowed: bool) -> StallDecision {
        let l0 = i.l0_files;
        if l0 >= l.l0_slowdown_trigger && !slowed {
            return StallDecision::Slowdown;
        }
        if i.active_bytes < l.memtable_size {
            return StallDecision::Proceed;
        }
        if i.immutable_memtables >= l.max_immutable_memtables || l0 >= l.l0_stop_trigger {
            return StallDecision::Stop;
        }
        StallDecision::Switch
    }

    #[test]
    fn decide_matches_old_make_room() {
        let l = StallLimits::from_options(&Options {
            memtable_size: 10,
            max_immutable_memtables: 2,
            l0_slowdown_trigger: 3,
            l0_stop_trigger: 5,
            ..Options::default()
        });
        for l0_files in 0..7 {
            for active_bytes in 8..12 {
                for immutable_memtables in 0..4 {
                    for slowed in [false, true] {
                        let i = StallInputs {
                            l0_files,
                            active_bytes,
                            immutable_memtables,
                        };
                        assert_eq!(
                            decide(&l, &i, slowed),
                            old_make_room(&l, &i, slowed),
                            "{i:?} {slowed}"
                        );
                    }
                }
            }
        }
    }
}
