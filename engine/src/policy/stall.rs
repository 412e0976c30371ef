//! When writers must wait (provisional).

/// The options the stall policy reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StallOptions {
    memtable_size: usize,
    max_immutable_memtables: usize,
    l0_slowdown_trigger: usize,
    l0_stop_trigger: usize,
}

impl From<&crate::options::Options> for StallOptions {
    fn from(o: &crate::options::Options) -> Self {
        StallOptions {
            memtable_size: o.memtable_size,
            max_immutable_memtables: o.max_immutable_memtables,
            l0_slowdown_trigger: o.l0_slowdown_trigger,
            l0_stop_trigger: o.l0_stop_trigger,
        }
    }
}

/// The state the stall policy decides on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StallInputs {
    /// The highest L0 file count of any keyspace.
    pub l0_files: usize,
    /// Sealed memtables waiting for a flush.
    pub immutable_memtables: usize,
    /// Bytes in the active memtables.
    pub active_bytes: usize,
}

/// What a writer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StallDecision {
    /// Write now.
    Proceed,
    /// Sleep a little once, then decide again.
    Slowdown,
    /// Switch the memtables, then decide again.
    Switch,
    /// Wait for background work.
    Stop,
}

/// The decision for a writer that already slowed down (`slowed`) or not.
pub(crate) fn decide(o: &StallOptions, s: &StallInputs, slowed: bool) -> StallDecision {
    if s.l0_files >= o.l0_slowdown_trigger && !slowed {
        return StallDecision::Slowdown;
    }
    if s.active_bytes < o.memtable_size {
        return StallDecision::Proceed;
    }
    if s.immutable_memtables >= o.max_immutable_memtables || s.l0_files >= o.l0_stop_trigger {
        return StallDecision::Stop;
    }
    StallDecision::Switch
}
