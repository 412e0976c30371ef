//! A description of a closed database's files, read without opening it:
//! what `strata inspect DIR` prints.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use strata_format::key::InternalKeyRef;

use crate::encryption::Ciphers;
use crate::error::{Error, Result};
use crate::fs::names::{self, FileKind};
use crate::options::Options;
use crate::version::VersionSet;

/// One SST as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDescription {
    /// File number.
    pub number: u64,
    /// The file.
    pub path: PathBuf,
    /// Bytes.
    pub size: u64,
    /// Smallest and largest user key.
    pub smallest: Vec<u8>,
    /// Largest user key.
    pub largest: Vec<u8>,
    /// Oldest and newest commit timestamp in it.
    pub min_ts: u64,
    /// Newest commit timestamp.
    pub max_ts: u64,
    /// Encryption key id (`None`: plaintext).
    pub key_id: Option<u32>,
}

/// One keyspace: its tables, level by level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyspaceDescription {
    /// Its id.
    pub id: u32,
    /// Its name.
    pub name: String,
    /// Tables per level (L0 newest first).
    pub levels: Vec<Vec<TableDescription>>,
}

/// What [`Db::describe_dir`](crate::Db::describe_dir) finds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirDescription {
    /// The manifest in use and its size.
    pub manifest: Option<(PathBuf, u64)>,
    /// WAL files and their sizes, oldest first.
    pub wals: Vec<(PathBuf, u64)>,
    /// Keyspaces, by id.
    pub keyspaces: Vec<KeyspaceDescription>,
    /// SST bytes per encryption key id.
    pub bytes_by_key_id: BTreeMap<Option<u32>, u64>,
    /// WALs numbered below this are flushed.
    pub log_number: u64,
    /// The largest commit timestamp the manifest records.
    pub last_timestamp: u64,
    /// Versions older than this may have been collected.
    pub history_horizon: u64,
    /// The database's own files that the manifest no longer references
    /// (old manifests, flushed WALs, tables a crash left, `CURRENT.tmp`):
    /// the next open removes them.
    pub unreferenced: Vec<String>,
    /// Files that are not the database's (SPEC.md §13.5): names the engine
    /// does not write, and its names with numbers the manifest never handed
    /// out. The next open leaves them alone.
    pub foreign: Vec<String>,
}

fn user_key(internal: &[u8]) -> Vec<u8> {
    InternalKeyRef::parse(internal).map_or_else(|_| internal.to_vec(), |k| k.user_key.to_vec())
}

/// Describes the closed database in `dir` from its manifest.
pub(crate) fn describe_dir(dir: &Path, opts: &Options) -> Result<DirDescription> {
    let fs = opts.fs.clone();
    let listing = fs.list(dir).map_err(|e| Error::io(dir, e))?;
    let _lock = crate::recovery::lock_for_reading(&*fs, dir)?;
    let ciphers = std::sync::Arc::new(Ciphers::new(opts.key_provider.clone()));
    let mut vs = VersionSet::new(dir, opts, u64::MAX, ciphers.clone());
    let manifest = crate::recovery::replay_manifest(dir, &mut vs, &ciphers)?;
    let size = |p: &Path| fs.file_size(p).map_err(|e| Error::io(p, e));
    let manifest = match manifest {
        Some(n) => {
            let p = names::manifest(dir, n);
            let s = size(&p)?;
            Some((p, s))
        }
        None => None,
    };
    let mut wals = Vec::new();
    let mut live = std::collections::HashSet::new();
    let mut keyspaces = Vec::new();
    let mut bytes_by_key_id = BTreeMap::new();
    for (id, (name, levels)) in vs.keyspaces() {
        let mut out = Vec::new();
        for files in levels.iter() {
            let mut level = Vec::new();
            for f in files {
                live.insert(f.number);
                *bytes_by_key_id.entry(f.key_id).or_insert(0) += f.size;
                level.push(TableDescription {
                    number: f.number,
                    path: f.path().to_path_buf(),
                    size: f.size,
                    smallest: user_key(&f.smallest),
                    largest: user_key(&f.largest),
                    min_ts: f.min_ts,
                    max_ts: f.max_ts,
                    key_id: f.key_id,
                });
            }
            out.push(level);
        }
        keyspaces.push(KeyspaceDescription {
            id: *id,
            name: name.clone(),
            levels: out,
        });
    }
    // The files the next open takes for its own (SPEC.md §13.5): names the
    // engine writes, with numbers the manifest handed out.
    let mut unreferenced = Vec::new();
    let mut foreign = Vec::new();
    let mut sorted = listing.clone();
    sorted.sort();
    for name in sorted {
        match names::parse(&name) {
            Some(FileKind::Wal(n) | FileKind::Table(n) | FileKind::Manifest(n))
                if !vs.handed_out(n) =>
            {
                foreign.push(name)
            }
            Some(FileKind::Wal(n)) if n >= vs.log_number() => {
                let p = dir.join(&name);
                let s = size(&p)?;
                wals.push((p, s));
            }
            Some(FileKind::Table(n)) if live.contains(&n) => {}
            Some(FileKind::Manifest(_))
                if manifest.as_ref().is_some_and(|(p, _)| p.ends_with(&name)) => {}
            Some(_) => unreferenced.push(name),
            None if name == names::LOCK || name == names::CURRENT => {}
            None => foreign.push(name),
        }
    }
    Ok(DirDescription {
        manifest,
        wals,
        keyspaces,
        bytes_by_key_id,
        log_number: vs.log_number(),
        last_timestamp: vs.last_timestamp(),
        history_horizon: vs.history_horizon(),
        unreferenced,
        foreign,
    })
}
