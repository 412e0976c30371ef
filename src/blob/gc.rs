//! Removing the chunks nothing references: those of replaced or deleted
//! blobs (recorded under `d/`) and those of writes that failed or were cut
//! short (a `p/` marker no metadata references and no running write
//! owns). Writes in progress are known in memory (one process holds the
//! directory), so `cleanup` may run beside them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::{chunk_prefix, BlobMetadata, BlobStorageProvider};
use crate::error::Result;

/// What the provider's handles share about writes and their garbage.
#[derive(Debug, Default)]
pub(super) struct Garbage {
    /// Ids of blobs being written now (their `p/` markers are not orphans).
    writing: Mutex<HashSet<String>>,
    /// Removals that failed and are left for the next cleanup.
    failed: AtomicU64,
    /// The metrics' count of the same, when the storage system has one.
    metric: std::sync::OnceLock<std::sync::Arc<AtomicU64>>,
}

/// A blob id being written; dropped, it no longer is.
pub(super) struct Writing<'a> {
    garbage: &'a Garbage,
    id: String,
    /// Handed on to a transaction's hooks, which end it.
    kept: bool,
}

impl Writing<'_> {
    /// Keeps the id marked as being written past this guard, until
    /// [`Garbage::done`] (for a write whose transaction ends later).
    pub(super) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        if !self.kept {
            self.garbage.writing.lock().remove(&self.id);
        }
    }
}

impl Garbage {
    /// Marks `id` as being written until the guard is dropped.
    pub(super) fn writing(&self, id: &str) -> Writing<'_> {
        self.writing.lock().insert(id.to_owned());
        Writing {
            garbage: self,
            id: id.to_owned(),
            kept: false,
        }
    }

    /// `id` is no longer being written.
    pub(super) fn done(&self, id: &str) {
        self.writing.lock().remove(id);
    }

    fn is_writing(&self, id: &str) -> bool {
        self.writing.lock().contains(id)
    }

    /// Counts a removal that failed (it is retried by the next cleanup).
    pub(super) fn failed(&self) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = self.metric.get() {
            m.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts failures in `metric` too.
    pub(super) fn report_to(&self, metric: std::sync::Arc<AtomicU64>) {
        let _ = self.metric.set(metric);
    }

    /// Removals that failed since the provider was built.
    pub(super) fn failures(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

impl BlobStorageProvider {
    /// Removes the chunks of replaced or deleted blobs and of writes that
    /// failed or a crash cut short. Returns the blobs whose chunks went.
    pub(super) fn collect_garbage(&self) -> Result<u64> {
        let ks = self.ks();
        let mut doomed: Vec<String> = Vec::new();
        for entry in ks.prefix("d/")? {
            let (k, _) = entry?;
            doomed.push(String::from_utf8_lossy(&k[2..]).into_owned());
        }
        let mut pending = Vec::new();
        for entry in ks.prefix("p/")? {
            let (k, _) = entry?;
            pending.push(String::from_utf8_lossy(&k[2..]).into_owned());
        }
        // Taken after the markers were listed: a write that finished since
        // has committed its metadata, which the scan below sees.
        pending.retain(|id| !self.garbage.is_writing(id));
        if !pending.is_empty() {
            let mut referenced = HashSet::new();
            for entry in ks.prefix("m/")? {
                let (_, v) = entry?;
                if let Ok(m) = serde_json::from_slice::<BlobMetadata>(&v) {
                    referenced.insert(m.blob_id);
                }
            }
            for id in pending {
                if referenced.contains(&id) {
                    // Committed; only the marker's removal was cut short.
                    let mut b = self.db().batch();
                    b.delete(ks, format!("p/{id}"))?;
                    self.db().write(b, self.sync())?;
                } else {
                    doomed.push(id);
                }
            }
        }
        let n = doomed.len() as u64;
        for id in doomed {
            self.remove_chunks(&id)?;
        }
        Ok(n)
    }

    /// Deletes every chunk of `id` with one range delete, and its `d/` and
    /// `p/` markers, in one write: a small write however large the blob.
    pub(super) fn remove_chunks(&self, id: &str) -> Result<()> {
        let prefix = chunk_prefix(id);
        // Chunk keys are `c/<id>/<index>`: `c/<id>0` (`0` follows `/`)
        // is past all of them and before any other blob's.
        let mut end = prefix.clone();
        if let Some(last) = end.last_mut() {
            *last += 1;
        }
        let mut b = self.db().batch();
        b.delete_range(self.ks(), prefix..end)?;
        b.delete(self.ks(), format!("d/{id}"))?;
        b.delete(self.ks(), format!("p/{id}"))?;
        self.db().write(b, self.sync())?;
        Ok(())
    }

    /// Removes the chunks of a write that did not happen; a failure is
    /// counted (and reported in the metrics) and left to the next
    /// cleanup, which finds the write's `p/` marker.
    pub(super) fn discard(&self, id: &str) {
        if self.remove_chunks(id).is_err() {
            self.garbage.failed();
        }
    }
}
