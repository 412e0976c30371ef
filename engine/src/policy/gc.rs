//! What a flush or compaction keeps: the read points versions are
//! striped by (provisional).

/// The read points a flush or compaction must preserve: every timestamp
/// from `window` on (the history window, or the present), and each live
/// snapshot below it.
#[derive(Debug, Clone)]
pub(crate) struct GcPoints {
    window: u64,
    /// Snapshot timestamps below `window`, newest first.
    snapshots: Vec<u64>,
}

impl GcPoints {
    /// Read points: the window's start and the snapshots below it, newest
    /// first.
    pub(crate) fn new(window: u64, snapshots: Vec<u64>) -> Self {
        GcPoints { window, snapshots }
    }

    /// The start of the history window.
    pub(crate) fn window(&self) -> u64 {
        self.window
    }

    /// The stripe of a version at `ts`: the smallest read point at or above
    /// it (`None` above the window, where every version is kept). Within a
    /// stripe only the newest version can be read.
    pub(crate) fn stripe(&self, ts: u64) -> Option<u64> {
        if ts > self.window {
            return None;
        }
        Some(
            self.snapshots
                .iter()
                .copied()
                .rfind(|&s| s >= ts)
                .unwrap_or(self.window),
        )
    }

    /// True when no read point lies below `stripe`.
    pub(crate) fn is_lowest(&self, stripe: u64) -> bool {
        self.snapshots.last().is_none_or(|&s| s >= stripe)
    }
}
