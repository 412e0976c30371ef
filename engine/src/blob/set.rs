//! The blob files of the current state, as the manifest describes them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use strata_format::manifest::{BlobFileAdded, VersionEdit};

use super::{BlobFile, BlobStore};
use crate::error::{Error, Result};
use crate::levels::Levels;

/// The blob files SSTs of the current state point into, by number.
#[derive(Debug, Default)]
pub(crate) struct BlobSet {
    files: BTreeMap<u64, Arc<BlobFile>>,
}

impl BlobSet {
    /// Adds the blob files `added` (from a replayed or logged edit).
    pub(crate) fn add(&mut self, store: &BlobStore, added: &[BlobFileAdded]) {
        for b in added {
            let f = store.register(b);
            // A job's output, marked obsolete until now, is the state's.
            f.keep();
            self.files.insert(b.file_number, f);
        }
    }

    /// Removes blob files: no SST of the state points into them any more.
    /// Nothing is deleted here (a replay of the manifest applies removals
    /// too): the caller that logged the removal marks the files obsolete
    /// ([`get`](Self::get) them first).
    pub(crate) fn remove(&mut self, removed: &[u64]) {
        for n in removed {
            self.files.remove(n);
        }
    }

    /// Blob file `n` of the state.
    pub(crate) fn get(&self, n: u64) -> Option<Arc<BlobFile>> {
        self.files.get(&n).cloned()
    }

    /// True when the state holds blob file `n`.
    pub(crate) fn contains(&self, n: u64) -> bool {
        self.files.contains_key(&n)
    }

    /// The blob files of the state.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Arc<BlobFile>> + '_ {
        self.files.values()
    }

    /// The files an SST's references (number, bytes) name; a reference to
    /// a file the state does not hold is refused (the manifest lost the
    /// record adding it).
    pub(crate) fn resolve(&self, refs: &[(u64, u64)]) -> Result<Vec<(Arc<BlobFile>, u64)>> {
        refs.iter()
            .map(|&(n, bytes)| {
                self.files
                    .get(&n)
                    .map(|f| (f.clone(), bytes))
                    .ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "an SST points into blob file {n}, which the state does not hold"
                        ))
                    })
            })
            .collect()
    }

    /// The blob files whose records are sealed with another key than
    /// `current` (a retired one, or none when a key is now in use).
    pub(crate) fn under_other_key(&self, current: Option<u32>) -> impl Iterator<Item = u64> + '_ {
        self.files
            .values()
            .filter(move |f| f.key_id() != current)
            .map(|f| f.number())
    }

    /// What a snapshot of the state records of its blob files.
    pub(crate) fn to_edits(&self) -> Vec<BlobFileAdded> {
        self.files.values().map(|f| f.to_edit()).collect()
    }

    /// The blob files no SST points into once `edit` is applied to the
    /// state whose keyspaces are `keyspaces`: they leave the state in the
    /// same edit.
    pub(crate) fn unreferenced_after(
        &self,
        keyspaces: &BTreeMap<u32, (String, Arc<Levels>)>,
        edit: &VersionEdit,
    ) -> Vec<u64> {
        // Only an edit that removes tables, drops a keyspace or adds blob
        // files can leave one without a pointer; the rest (a memtable
        // switch's, on the writer's path) skip the scan of every table.
        let may_unreference = !edit.files_removed.is_empty()
            || !edit.keyspaces_dropped.is_empty()
            || !edit.blob_files_added.is_empty();
        if !may_unreference || (self.files.is_empty() && edit.blob_files_added.is_empty()) {
            return Vec::new();
        }
        let removed: BTreeSet<(u32, u64)> = edit
            .files_removed
            .iter()
            .map(|r| (r.keyspace, r.file_number))
            .collect();
        let mut live: BTreeSet<u64> = BTreeSet::new();
        for (id, (_, levels)) in keyspaces {
            if edit.keyspaces_dropped.contains(id) {
                continue;
            }
            for (_, f) in levels.all_files() {
                if !removed.contains(&(*id, f.number)) {
                    live.extend(f.blob_refs().map(|(n, _)| n));
                }
            }
        }
        for f in &edit.files_added {
            if !edit.keyspaces_dropped.contains(&f.keyspace) {
                live.extend(f.blob_refs.iter().map(|&(n, _)| n));
            }
        }
        self.files
            .keys()
            .copied()
            .chain(edit.blob_files_added.iter().map(|b| b.file_number))
            .filter(|n| !live.contains(n))
            .collect::<BTreeSet<u64>>()
            .into_iter()
            .collect()
    }

    /// Each blob file's size and the bytes SSTs of `keyspaces` point to in
    /// it: (number, size, live bytes).
    pub(crate) fn usage(
        &self,
        keyspaces: &BTreeMap<u32, (String, Arc<Levels>)>,
    ) -> Vec<(u64, u64, u64)> {
        if self.files.is_empty() {
            return Vec::new();
        }
        let mut live: BTreeMap<u64, u64> = BTreeMap::new();
        for (_, levels) in keyspaces.values() {
            for (_, f) in levels.all_files() {
                for (n, bytes) in f.blob_refs() {
                    *live.entry(n).or_default() += bytes;
                }
            }
        }
        self.files
            .values()
            .map(|f| {
                (
                    f.number(),
                    f.size(),
                    live.get(&f.number()).copied().unwrap_or(0),
                )
            })
            .collect()
    }
}
