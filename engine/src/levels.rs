//! The files of a keyspace: one SST's metadata as the manifest knows it,
//! and the levels a version arranges them in.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use strata_format::key::{compare_internal, user_key};
use strata_format::manifest::{FileAdded, FileRemoved};

use crate::error::{Error, Result};
use crate::fs::{names, FileSystem};

/// One SST as the manifest knows it. When a compaction removes the file from
/// the current version it is marked obsolete, and the file is deleted when
/// the last version (and so the last reader) referring to it is dropped.
#[derive(Debug)]
pub struct FileMeta {
    /// File number.
    pub number: u64,
    /// Size in bytes.
    pub size: u64,
    /// Random uid, also in the footer.
    pub uid: [u8; 16],
    /// Encryption key id, if encrypted.
    pub key_id: Option<u32>,
    /// Smallest internal key.
    pub smallest: Vec<u8>,
    /// Largest internal key.
    pub largest: Vec<u8>,
    /// Smallest timestamp.
    pub min_ts: u64,
    /// Largest timestamp.
    pub max_ts: u64,
    /// The blob files its pointers point into, with the stored bytes of
    /// the records they name: kept on disk while the table can be read.
    blobs: Vec<(Arc<crate::blob::BlobFile>, u64)>,
    obsolete: AtomicBool,
    path: PathBuf,
    fs: Arc<dyn FileSystem>,
}

impl FileMeta {
    pub(crate) fn from_edit(
        f: &FileAdded,
        dir: &Path,
        fs: Arc<dyn FileSystem>,
        blobs: Vec<(Arc<crate::blob::BlobFile>, u64)>,
    ) -> Self {
        FileMeta {
            number: f.file_number,
            size: f.size,
            uid: f.file_uid,
            key_id: f.key_id,
            smallest: f.smallest.clone(),
            largest: f.largest.clone(),
            min_ts: f.min_ts,
            max_ts: f.max_ts,
            blobs,
            obsolete: AtomicBool::new(false),
            path: names::table(dir, f.file_number),
            fs,
        }
    }

    pub(crate) fn to_edit(&self, keyspace: u32, level: u8) -> FileAdded {
        FileAdded {
            keyspace,
            level,
            file_number: self.number,
            size: self.size,
            file_uid: self.uid,
            key_id: self.key_id,
            smallest: self.smallest.clone(),
            largest: self.largest.clone(),
            min_ts: self.min_ts,
            max_ts: self.max_ts,
            blob_refs: self.blob_refs().collect(),
        }
    }

    /// The blob files it points into: (number, stored bytes pointed to).
    pub(crate) fn blob_refs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.blobs.iter().map(|(f, bytes)| (f.number(), *bytes))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Smallest user key.
    pub fn smallest_user_key(&self) -> &[u8] {
        user_key(&self.smallest)
    }

    /// Largest user key.
    pub fn largest_user_key(&self) -> &[u8] {
        user_key(&self.largest)
    }

    /// True when the file's user-key range meets `[lo, hi]`.
    pub fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.smallest_user_key() <= hi && self.largest_user_key() >= lo
    }

    pub(crate) fn mark_obsolete(&self) {
        self.obsolete.store(true, Ordering::Release);
    }

    /// True once the file left the current version for good.
    pub(crate) fn is_obsolete(&self) -> bool {
        self.obsolete.load(Ordering::Acquire)
    }
}

impl Drop for FileMeta {
    fn drop(&mut self) {
        if self.obsolete.load(Ordering::Acquire) {
            // Best effort: a file left behind is removed at the next open.
            let _ = self.fs.remove_file(&self.path);
        }
    }
}

/// The files of one keyspace, level by level. L0 files may overlap and are
/// ordered newest first; deeper levels hold files with disjoint user-key
/// ranges, ordered by key.
#[derive(Debug, Clone, Default)]
pub struct Levels {
    /// Files per level.
    levels: Vec<Vec<Arc<FileMeta>>>,
}

impl Levels {
    pub(crate) fn new(num_levels: usize) -> Self {
        Levels {
            levels: vec![Vec::new(); num_levels],
        }
    }

    /// The files of `level` (none past the last level).
    #[inline]
    pub fn level(&self, level: usize) -> &[Arc<FileMeta>] {
        self.levels.get(level).map_or(&[], Vec::as_slice)
    }

    /// Number of levels.
    #[inline]
    pub fn num_levels(&self) -> usize {
        self.levels.len()
    }

    /// The levels, L0 first.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &[Arc<FileMeta>]> {
        self.levels.iter().map(Vec::as_slice)
    }

    /// Every file, in no particular order.
    pub fn all_files(&self) -> impl Iterator<Item = (usize, &Arc<FileMeta>)> {
        self.levels
            .iter()
            .enumerate()
            .flat_map(|(l, files)| files.iter().map(move |f| (l, f)))
    }

    /// Applies removals then additions for one keyspace.
    pub(crate) fn apply(
        &mut self,
        removed: &[FileRemoved],
        added: Vec<(u8, Arc<FileMeta>)>,
    ) -> Result<()> {
        for r in removed {
            let level = self
                .levels
                .get_mut(r.level as usize)
                .ok_or_else(|| Error::InvalidArgument(format!("level {} out of range", r.level)))?;
            level.retain(|f| f.number != r.file_number);
        }
        for (level, f) in added {
            let files = self
                .levels
                .get_mut(level as usize)
                .ok_or_else(|| Error::InvalidArgument(format!("level {level} out of range")))?;
            files.push(f);
        }
        // L0: newest (highest number) first. Deeper: by smallest key.
        if let Some(l0) = self.levels.first_mut() {
            l0.sort_by_key(|f| std::cmp::Reverse(f.number));
        }
        for files in self.levels.iter_mut().skip(1) {
            files.sort_by(|a, b| compare_internal(&a.smallest, &b.smallest));
        }
        Ok(())
    }
}

/// The files a level cursor walks: one level of a pinned [`Levels`]
/// (a reader's, shared without copying the list or touching each file's
/// count), or a list of its own (a compaction's inputs).
#[derive(Debug, Clone)]
pub(crate) enum LevelFiles {
    /// Level `.1` of `.0`.
    Pinned(Arc<Levels>, usize),
    /// These files, disjoint and sorted by key.
    Listed(Vec<Arc<FileMeta>>),
}

impl LevelFiles {
    /// The files, in key order.
    #[inline]
    pub(crate) fn files(&self) -> &[Arc<FileMeta>] {
        match self {
            LevelFiles::Pinned(levels, level) => levels.level(*level),
            LevelFiles::Listed(files) => files,
        }
    }
}
