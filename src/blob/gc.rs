//! Removing the chunks nothing references: those of replaced or deleted
//! blobs (recorded under `d/`) and those of writes that failed or were cut
//! short (a `p/` marker no metadata references and no running write
//! owns). Writes in progress are known in memory (one process holds the
//! directory), so `cleanup` may run beside them.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use strata_engine::WriteOptions;

use super::{chunk_key, chunk_prefix, BlobMetadata, BlobStorageProvider, MAX_CHUNKS};
use crate::error::Result;

/// Chunks deleted per batch: memory stays flat whatever the count.
const DELETE_GROUP: usize = 256;

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
        let mut doomed: Vec<(String, Option<u64>)> = Vec::new();
        for entry in ks.prefix("d/")? {
            let (k, v) = entry?;
            let id = String::from_utf8_lossy(&k[2..]).into_owned();
            let count = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes);
            doomed.push((id, count));
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
                    doomed.push((id, None));
                }
            }
        }
        let n = doomed.len() as u64;
        for (id, count) in doomed {
            self.remove_chunks(&id, count)?;
        }
        Ok(n)
    }

    /// Deletes every chunk of `id` (`count` of them when known, else found
    /// by scanning), then its `d/` and `p/` markers.
    pub(super) fn remove_chunks(&self, id: &str, count: Option<u64>) -> Result<()> {
        let mut group: Vec<Vec<u8>> = Vec::with_capacity(DELETE_GROUP);
        let flush = |group: &mut Vec<Vec<u8>>| -> Result<()> {
            if group.is_empty() {
                return Ok(());
            }
            let mut b = self.db().batch();
            for k in group.drain(..) {
                b.delete(self.ks(), k)?;
            }
            self.db().write(b, WriteOptions::default())?;
            Ok(())
        };
        match count.filter(|&n| n <= MAX_CHUNKS) {
            Some(n) => {
                for i in 0..n {
                    group.push(chunk_key(id, i));
                    if group.len() == DELETE_GROUP {
                        flush(&mut group)?;
                    }
                }
            }
            None => {
                let keys: Vec<Vec<u8>> = self
                    .ks()
                    .prefix(chunk_prefix(id))?
                    .map(|e| e.map(|(k, _)| k.to_vec()))
                    .collect::<std::result::Result<_, _>>()?;
                for k in keys {
                    group.push(k);
                    if group.len() == DELETE_GROUP {
                        flush(&mut group)?;
                    }
                }
            }
        }
        flush(&mut group)?;
        let mut b = self.db().batch();
        b.delete(self.ks(), format!("d/{id}"))?;
        b.delete(self.ks(), format!("p/{id}"))?;
        self.db().write(b, self.sync())?;
        Ok(())
    }

    /// Removes the chunks of a write that did not happen; a failure is
    /// counted (and reported in the metrics) and left to the next
    /// cleanup, which finds the write's `p/` marker.
    pub(super) fn discard(&self, id: &str, count: Option<u64>) {
        if self.remove_chunks(id, count).is_err() {
            self.garbage.failed();
        }
    }
}
