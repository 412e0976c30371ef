//! Incremental backups: a backup directory holding any number of backups of
//! one database, each a catalog of files with checksums (SPEC §13.7).
//!
//! ```text
//! BACKUPS/LOCK                      held while a backup is made or purged
//! BACKUPS/shared/NNNNNN-<uid>.sst   SSTs, shared by every backup that has them
//! BACKUPS/backups/NNNNNN/           a backup's own files: WALs, manifest, CURRENT
//! BACKUPS/backups/NNNNNN.catalog    its catalog, written last
//! ```
//!
//! SSTs never change, so one that an earlier backup holds (same number and
//! uid) is not copied again: a backup after a few changes costs the new
//! SSTs and the WALs. A backup becomes one when its catalog is renamed into
//! place; until then (a crash, SIGKILL) it is incomplete: `list` shows it,
//! `purge` removes it, and the backups before it are untouched, since
//! nothing a catalog lists is ever written again. `verify` reads every
//! file against its catalog without opening a database; `restore` copies a
//! backup into a new directory, checking every byte on the way, and can
//! restore the state as of an earlier time the backup's history keeps.

mod restore;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_format::backup::{private_dir, Catalog, CatalogFile};

pub use restore::RestoreInfo;

use crate::checkpoint::LiveFileKind;
use crate::db::Db;
use crate::error::{Error, Result};
use crate::fs::{read_full_at, FileLock, FileSystem, StdFs};
use crate::timestamp::Timestamp;

/// The bytes read per step while checking or copying a stored file.
const CHUNK: usize = 1 << 20;

/// A directory of backups of one database.
#[derive(Debug)]
pub struct BackupEngine {
    dir: PathBuf,
    fs: Arc<dyn FileSystem>,
}

/// One finished backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    /// Its id: 1, 2, … in the order backups were made.
    pub id: u64,
    /// When it was made, in milliseconds since the Unix epoch.
    pub created_ms: u64,
    /// The commit timestamp it holds everything up to.
    pub ts: Timestamp,
    /// Files in it.
    pub files: usize,
    /// Bytes it holds in all (shared files included).
    pub bytes: u64,
}

/// What `create` made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedBackup {
    /// The backup.
    pub info: BackupInfo,
    /// Bytes this backup copied (new SSTs, WALs, manifest); the rest it
    /// shares with earlier backups.
    pub bytes_copied: u64,
}

/// A backup as `list` finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupListing {
    /// Finished: its catalog reads.
    Complete(BackupInfo),
    /// Started but never finished (no catalog): `purge` removes it.
    Incomplete {
        /// Its id.
        id: u64,
    },
    /// Its catalog does not decode.
    Damaged {
        /// Its id.
        id: u64,
        /// Why.
        error: String,
    },
}

impl BackupListing {
    /// The backup's id.
    pub fn id(&self) -> u64 {
        match self {
            BackupListing::Complete(i) => i.id,
            BackupListing::Incomplete { id } | BackupListing::Damaged { id, .. } => *id,
        }
    }
}

/// A stored file that does not match its catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupProblem {
    /// The backup whose catalog lists it.
    pub backup: u64,
    /// The file, relative to the backup directory.
    pub file: String,
    /// What is wrong with it.
    pub problem: String,
}

impl std::fmt::Display for BackupProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "backup {}: {}: {}", self.backup, self.file, self.problem)
    }
}

/// What `purge` removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PurgeInfo {
    /// Finished backups removed (the oldest).
    pub backups: Vec<u64>,
    /// Incomplete backups removed.
    pub incomplete: Vec<u64>,
    /// Shared files no remaining backup uses, removed.
    pub shared_files: usize,
}

impl BackupEngine {
    /// The backups in `dir` (created if missing), on the real file system.
    pub fn open(dir: impl AsRef<Path>) -> Result<BackupEngine> {
        Self::open_with(dir, Arc::new(StdFs))
    }

    /// The backups in `dir` on file system `fs`.
    pub fn open_with(dir: impl AsRef<Path>, fs: Arc<dyn FileSystem>) -> Result<BackupEngine> {
        let dir = dir.as_ref().to_path_buf();
        for sub in ["shared", "backups"] {
            let p = dir.join(sub);
            fs.create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
        Ok(BackupEngine { dir, fs })
    }

    /// The backup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Takes the directory's lock: one process makes or purges backups at
    /// a time.
    fn lock(&self) -> Result<Box<dyn FileLock>> {
        let p = self.dir.join("LOCK");
        self.fs.lock(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::WouldBlock {
                Error::InvalidArgument(format!(
                    "{}: another process is making or purging a backup here",
                    self.dir.display()
                ))
            } else {
                Error::io(&p, e)
            }
        })
    }

    fn catalog_path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{}.catalog", private_dir(id)))
    }

    /// Reads backup `id`'s catalog.
    pub fn catalog(&self, id: u64) -> Result<Catalog> {
        let p = self.catalog_path(id);
        let bytes = self.fs.read(&p).map_err(|e| Error::io(&p, e))?;
        let c =
            Catalog::decode(&bytes, &p.display().to_string()).map_err(|e| Error::format(&p, e))?;
        if c.id != id {
            return Err(Error::InvalidArgument(format!(
                "{} holds backup {}, not {id}",
                p.display(),
                c.id
            )));
        }
        Ok(c)
    }

    /// Every backup, finished or not, by id.
    pub fn list(&self) -> Result<Vec<BackupListing>> {
        let backups = self.dir.join("backups");
        let names = self.fs.list(&backups).map_err(|e| Error::io(&backups, e))?;
        let mut ids: BTreeMap<u64, bool> = BTreeMap::new();
        for n in names {
            if let Some(id) = n.strip_suffix(".catalog").and_then(parse_id) {
                ids.insert(id, true);
            } else if let Some(id) = parse_id(&n) {
                ids.entry(id).or_insert(false);
            }
        }
        Ok(ids
            .into_iter()
            .map(|(id, has_catalog)| {
                if !has_catalog {
                    return BackupListing::Incomplete { id };
                }
                match self.catalog(id) {
                    Ok(c) => BackupListing::Complete(info_of(&c)),
                    Err(e) => BackupListing::Damaged {
                        id,
                        error: e.to_string(),
                    },
                }
            })
            .collect())
    }

    /// Backs up `db` as of its newest commit, while writes go on: SSTs an
    /// earlier backup holds are shared, the rest copied with the WALs'
    /// acknowledged prefixes and a manifest. `progress` hears the bytes done
    /// and the total.
    pub fn create(&self, db: &Db, progress: &mut dyn FnMut(u64, u64)) -> Result<CreatedBackup> {
        let _lock = self.lock()?;
        let listing = self.list()?;
        let id = listing.last().map_or(1, |b| b.id() + 1);
        // What earlier backups hold, with their checksums.
        let mut known: BTreeMap<String, (u64, u32)> = BTreeMap::new();
        for b in listing {
            if let BackupListing::Complete(i) = b {
                for f in self.catalog(i.id)?.files {
                    known.insert(f.stored_as, (f.size, f.crc32c));
                }
            }
        }
        let live = db.live_files()?;
        let own = self.dir.join(private_dir(id));
        self.fs
            .create_dir_all(&own)
            .map_err(|e| Error::io(&own, e))?;
        let files = live.files();
        let total: u64 = files.iter().map(|f| f.size).sum();
        let mut done = 0u64;
        let mut copied = 0u64;
        let mut catalog = Catalog {
            id,
            created_ms: now_ms(),
            ts: live.ts().as_u64(),
            files: Vec::new(),
        };
        for (i, f) in files.iter().enumerate() {
            let stored_as = match f.kind {
                LiveFileKind::Table { uid } | LiveFileKind::Blob { uid } => {
                    format!("shared/{}", shared_name(&f.name, uid))
                }
                _ => format!("{}/{}", private_dir(id), f.name),
            };
            let present = |p: &str| self.fs.file_size(&self.dir.join(p)).ok();
            let crc32c = match known.get(&stored_as) {
                // Listed by a finished backup, and still there whole.
                Some(&(size, crc)) if size == f.size && present(&stored_as) == Some(size) => crc,
                _ => {
                    let to = self.dir.join(&stored_as);
                    let tmp = self.dir.join(format!("{stored_as}.tmp"));
                    let mut w = self.fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
                    let mut crc = 0u32;
                    let mut sofar = 0u64;
                    live.read_file(i, &mut |chunk| {
                        crc = crc32c::crc32c_append(crc, chunk);
                        w.append(chunk).map_err(|e| Error::io(&tmp, e))?;
                        sofar += chunk.len() as u64;
                        progress(done + sofar, total);
                        Ok(())
                    })?;
                    w.sync().map_err(|e| Error::io(&tmp, e))?;
                    drop(w);
                    self.fs.rename(&tmp, &to).map_err(|e| Error::io(&to, e))?;
                    copied += f.size;
                    crc
                }
            };
            done += f.size;
            progress(done, total);
            catalog.files.push(CatalogFile {
                name: f.name.clone(),
                size: f.size,
                crc32c,
                stored_as,
            });
        }
        drop(live);
        for d in [self.dir.join("shared"), own] {
            self.fs.sync_dir(&d).map_err(|e| Error::io(&d, e))?;
        }
        let path = self.catalog_path(id);
        let tmp = path.with_extension("catalog.tmp");
        let mut w = self.fs.create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        w.append(&catalog.encode())
            .map_err(|e| Error::io(&tmp, e))?;
        w.sync().map_err(|e| Error::io(&tmp, e))?;
        drop(w);
        self.fs
            .rename(&tmp, &path)
            .map_err(|e| Error::io(&path, e))?;
        let backups = self.dir.join("backups");
        self.fs
            .sync_dir(&backups)
            .map_err(|e| Error::io(&backups, e))?;
        Ok(CreatedBackup {
            info: info_of(&catalog),
            bytes_copied: copied,
        })
    }

    /// Reads every file of backup `id` (of every finished backup when
    /// `None`) against its catalog: size and CRC-32C. No database is
    /// opened. Returns what does not match (nothing: all is well); a
    /// backup whose catalog does not decode is one problem, an incomplete
    /// one none unless asked for by id.
    pub fn verify(
        &self,
        id: Option<u64>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Vec<BackupProblem>> {
        let listing = self.list()?;
        let chosen: Vec<&BackupListing> = match id {
            Some(id) => {
                let b = listing
                    .iter()
                    .find(|b| b.id() == id)
                    .ok_or_else(|| Error::InvalidArgument(format!("no backup {id}")))?;
                vec![b]
            }
            None => listing.iter().collect(),
        };
        let mut problems = Vec::new();
        let mut catalogs = Vec::new();
        for b in chosen {
            match b {
                BackupListing::Complete(i) => catalogs.push(self.catalog(i.id)?),
                BackupListing::Damaged { id, error } => problems.push(BackupProblem {
                    backup: *id,
                    file: format!("{}.catalog", private_dir(*id)),
                    problem: error.clone(),
                }),
                BackupListing::Incomplete { id: b } if id.is_some() => {
                    problems.push(BackupProblem {
                        backup: *b,
                        file: private_dir(*b),
                        problem: "incomplete: no catalog (interrupted); purge removes it".into(),
                    })
                }
                BackupListing::Incomplete { .. } => {}
            }
        }
        let total: u64 = catalogs
            .iter()
            .flat_map(|c| c.files.iter().map(|f| f.size))
            .sum();
        let mut done = 0;
        // A shared file is read once however many backups list it.
        let mut checked: BTreeMap<String, Option<String>> = BTreeMap::new();
        for c in &catalogs {
            for f in &c.files {
                let outcome = match checked.get(&f.stored_as) {
                    Some(o) => o.clone(),
                    None => {
                        let o = self.check_file(f).err();
                        checked.insert(f.stored_as.clone(), o.clone());
                        o
                    }
                };
                if let Some(problem) = outcome {
                    problems.push(BackupProblem {
                        backup: c.id,
                        file: f.stored_as.clone(),
                        problem,
                    });
                }
                done += f.size;
                progress(done, total);
            }
        }
        Ok(problems)
    }

    /// Checks one stored file's size and checksum; `Err` says what is
    /// wrong.
    fn check_file(&self, f: &CatalogFile) -> std::result::Result<(), String> {
        let mut crc = 0u32;
        let n = self
            .read_stored(f, &mut |chunk| {
                crc = crc32c::crc32c_append(crc, chunk);
                Ok(())
            })
            .map_err(|e| e.to_string())?;
        if n != f.size {
            return Err(format!("{n} bytes, the catalog says {}", f.size));
        }
        if crc != f.crc32c {
            return Err(format!(
                "checksum {crc:08x}, the catalog says {:08x}",
                f.crc32c
            ));
        }
        Ok(())
    }

    /// Streams a stored file to `out`; returns its length.
    fn read_stored(
        &self,
        f: &CatalogFile,
        out: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<u64> {
        let p = self.dir.join(&f.stored_as);
        let file = self
            .fs
            .open_random_access(&p)
            .map_err(|e| Error::io(&p, e))?;
        let mut buf = vec![0u8; CHUNK];
        let mut at = 0u64;
        loop {
            let n = read_full_at(&*file, &mut buf, at).map_err(|e| Error::io(&p, e))?;
            if n == 0 {
                return Ok(at);
            }
            out(&buf[..n])?;
            at += n as u64;
        }
    }

    /// Removes every finished backup but the newest `keep`, every
    /// incomplete one, and the shared files no remaining backup lists.
    /// Only files whose names a backup writes are removed.
    pub fn purge(&self, keep: usize) -> Result<PurgeInfo> {
        let _lock = self.lock()?;
        let listing = self.list()?;
        let finished: Vec<u64> = listing
            .iter()
            .filter(|b| matches!(b, BackupListing::Complete(_)))
            .map(BackupListing::id)
            .collect();
        let drop_from = finished.len().saturating_sub(keep);
        let mut out = PurgeInfo::default();
        for &id in &finished[..drop_from] {
            // The catalog goes first: from then on the backup is
            // incomplete, whatever happens to the rest.
            let c = self.catalog_path(id);
            self.fs.remove_file(&c).map_err(|e| Error::io(&c, e))?;
            self.remove_private(id)?;
            out.backups.push(id);
        }
        // The removed catalogs are durably gone before any shared file
        // goes: a catalog that came back after a crash would list files no
        // longer there.
        let backups = self.dir.join("backups");
        self.fs
            .sync_dir(&backups)
            .map_err(|e| Error::io(&backups, e))?;
        for b in &listing {
            if let BackupListing::Incomplete { id } = b {
                self.remove_private(*id)?;
                out.incomplete.push(*id);
            }
        }
        let mut used = BTreeSet::new();
        for b in self.list()? {
            match b {
                BackupListing::Complete(i) => {
                    used.extend(self.catalog(i.id)?.files.into_iter().map(|f| f.stored_as))
                }
                // A damaged catalog's files cannot be told: keep everything.
                BackupListing::Damaged { .. } => return Ok(out),
                BackupListing::Incomplete { .. } => {}
            }
        }
        let shared = self.dir.join("shared");
        for name in self.fs.list(&shared).map_err(|e| Error::io(&shared, e))? {
            let ours =
                is_shared_name(&name) || name.strip_suffix(".tmp").is_some_and(is_shared_name);
            if ours && !used.contains(&format!("shared/{name}")) {
                let p = shared.join(&name);
                self.fs.remove_file(&p).map_err(|e| Error::io(&p, e))?;
                out.shared_files += 1;
            }
        }
        self.fs
            .sync_dir(&shared)
            .map_err(|e| Error::io(&shared, e))?;
        Ok(out)
    }

    /// Removes backup `id`'s own directory and the files a backup writes
    /// there (a file of another name, and so the directory, stays).
    fn remove_private(&self, id: u64) -> Result<()> {
        let own = self.dir.join(private_dir(id));
        let names = match self.fs.list(&own) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(Error::io(&own, e)),
        };
        for name in names {
            let base = name.strip_suffix(".tmp").unwrap_or(&name);
            if base == "CURRENT" || crate::fs::names::parse(base).is_some() {
                let p = own.join(&name);
                self.fs.remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        let _ = std::fs::remove_dir(&own);
        let tmp = self.catalog_path(id).with_extension("catalog.tmp");
        let _ = self.fs.remove_file(&tmp);
        Ok(())
    }
}

fn info_of(c: &Catalog) -> BackupInfo {
    BackupInfo {
        id: c.id,
        created_ms: c.created_ms,
        ts: Timestamp(c.ts),
        files: c.files.len(),
        bytes: c.files.iter().map(|f| f.size).sum(),
    }
}

/// `NNNNNN` (six digits or more, as `private_dir` prints ids).
fn parse_id(s: &str) -> Option<u64> {
    if s.len() < 6 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let id: u64 = s.parse().ok()?;
    (private_dir(id) == format!("backups/{s}")).then_some(id)
}

/// The shared name of SST `name` (`NNNNNN.sst`) with uid `uid`.
fn shared_name(name: &str, uid: [u8; 16]) -> String {
    let (stem, ext) = name.rsplit_once('.').unwrap_or((name, "sst"));
    let hex: String = uid.iter().map(|b| format!("{b:02x}")).collect();
    format!("{stem}-{hex}.{ext}")
}

/// Whether `name` is one `shared_name` writes.
fn is_shared_name(name: &str) -> bool {
    let Some((stem, ext)) = name.rsplit_once('.') else {
        return false;
    };
    let Some((number, uid)) = stem.split_once('-') else {
        return false;
    };
    matches!(
        crate::fs::names::parse(&format!("{number}.{ext}")),
        Some(crate::fs::names::FileKind::Table(_) | crate::fs::names::FileKind::Blob(_))
    ) && uid.len() == 32
        && uid
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
