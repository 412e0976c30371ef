//! A file system wrapper that makes chosen calls fail, for I/O-error tests.
//!
//! A [`FaultPlan`] counts the calls of the kinds it targets and fails the
//! n-th one (then either only that one, or every later one too), with EIO,
//! ENOSPC or a short write. Tests sweep n from 1 upward, as SQLite's
//! I/O-error tests do, and check that nothing acknowledged is lost.

use std::io;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};

/// The error a fault produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An I/O error (EIO).
    Eio,
    /// No space left on the device (ENOSPC).
    NoSpace,
    /// An append writes only half its data, then fails with ENOSPC.
    ShortWrite,
}

/// Which calls a plan counts and may fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FaultTarget {
    /// `create` and `append`.
    pub writes: bool,
    /// `sync` of a file.
    pub syncs: bool,
    /// `rename`, `remove_file` and `sync_dir`.
    pub metadata: bool,
    /// `read`, `map`, `open_random_access` and each positioned read of a
    /// file it opened.
    pub reads: bool,
    /// Only calls on files whose name ends with this (e.g. `".sst"`).
    pub suffix: Option<&'static str>,
}

impl FaultTarget {
    /// Every kind of call.
    pub fn all() -> Self {
        FaultTarget {
            writes: true,
            syncs: true,
            metadata: true,
            reads: true,
            suffix: None,
        }
    }

    /// Every call that changes the disk.
    pub fn mutations() -> Self {
        FaultTarget {
            reads: false,
            ..Self::all()
        }
    }
}

#[derive(Debug, Default)]
struct PlanState {
    target: FaultTarget,
    kind: Option<FaultKind>,
    /// Fail the call with this count (1-based).
    fail_at: u64,
    /// Keep failing after the first fault.
    forever: bool,
    calls: u64,
    faults: u64,
    enabled: bool,
}

/// A shared, adjustable fault schedule. Clones share the schedule.
#[derive(Debug, Clone, Default)]
pub struct FaultPlan {
    state: Arc<Mutex<PlanState>>,
}

#[derive(Clone, Copy)]
enum Call {
    Write,
    Sync,
    Meta,
    Read,
}

impl FaultPlan {
    /// A plan that injects nothing until armed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the `n`-th targeted call from now (1-based) with `kind`, and
    /// every later one too when `forever`.
    pub fn arm(&self, target: FaultTarget, n: u64, kind: FaultKind, forever: bool) {
        let mut st = self.state.lock();
        *st = PlanState {
            target,
            kind: Some(kind),
            fail_at: n.max(1),
            forever,
            calls: 0,
            faults: 0,
            enabled: true,
        };
    }

    /// Stops injecting: the cause of the errors is gone.
    pub fn disarm(&self) {
        self.state.lock().enabled = false;
    }

    /// Faults injected since the plan was armed.
    pub fn faults(&self) -> u64 {
        self.state.lock().faults
    }

    /// Targeted calls counted since the plan was armed.
    pub fn calls(&self) -> u64 {
        self.state.lock().calls
    }

    /// Counts a call; returns the fault to inject, if any.
    fn hit(&self, call: Call, path: &Path) -> Option<FaultKind> {
        let mut st = self.state.lock();
        if !st.enabled {
            return None;
        }
        if let Some(suffix) = st.target.suffix {
            if !path.to_string_lossy().ends_with(suffix) {
                return None;
            }
        }
        let targeted = match call {
            Call::Write => st.target.writes,
            Call::Sync => st.target.syncs,
            Call::Meta => st.target.metadata,
            Call::Read => st.target.reads,
        };
        if !targeted {
            return None;
        }
        st.calls += 1;
        let fire = st.calls == st.fail_at || (st.forever && st.calls > st.fail_at);
        if fire {
            st.faults += 1;
            st.kind
        } else {
            None
        }
    }
}

fn error(kind: FaultKind) -> io::Error {
    match kind {
        FaultKind::Eio => io::Error::other("injected EIO"),
        FaultKind::NoSpace | FaultKind::ShortWrite => {
            io::Error::new(io::ErrorKind::StorageFull, "injected ENOSPC")
        }
    }
}

/// A [`FileSystem`] that fails calls according to a [`FaultPlan`].
#[derive(Debug, Clone)]
pub struct FaultFs<F> {
    inner: F,
    plan: FaultPlan,
}

impl<F: FileSystem> FaultFs<F> {
    /// Wraps `inner`; faults come from `plan`.
    pub fn new(inner: F, plan: FaultPlan) -> Self {
        FaultFs { inner, plan }
    }

    /// The wrapped file system.
    pub fn inner(&self) -> &F {
        &self.inner
    }

    fn check(&self, call: Call, path: &Path) -> io::Result<()> {
        match self.plan.hit(call, path) {
            Some(kind) => Err(error(kind)),
            None => Ok(()),
        }
    }
}

struct FaultFile {
    inner: Box<dyn WritableFile>,
    plan: FaultPlan,
    path: std::path::PathBuf,
}

impl WritableFile for FaultFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        match self.plan.hit(Call::Write, &self.path) {
            Some(FaultKind::ShortWrite) => {
                self.inner.append(&data[..data.len() / 2])?;
                Err(error(FaultKind::ShortWrite))
            }
            Some(kind) => Err(error(kind)),
            None => self.inner.append(data),
        }
    }

    fn start_writeback(&mut self, offset: u64, len: u64) {
        self.inner.start_writeback(offset, len);
    }

    fn sync(&mut self) -> io::Result<()> {
        match self.plan.hit(Call::Sync, &self.path) {
            Some(kind) => Err(error(kind)),
            None => self.inner.sync(),
        }
    }
}

/// A file opened for positioned reads; each read is a targeted call.
#[derive(Debug)]
struct FaultRandomAccess {
    inner: Box<dyn RandomAccessFile>,
    plan: FaultPlan,
    path: std::path::PathBuf,
}

impl RandomAccessFile for FaultRandomAccess {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        match self.plan.hit(Call::Read, &self.path) {
            Some(kind) => Err(error(kind)),
            None => self.inner.read_at(buf, offset),
        }
    }

    fn size(&self) -> u64 {
        self.inner.size()
    }
}

impl<F: FileSystem> FileSystem for FaultFs<F> {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        self.check(Call::Write, path)?;
        Ok(Box::new(FaultFile {
            inner: self.inner.create(path)?,
            plan: self.plan.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(Call::Read, path)?;
        self.inner.read(path)
    }

    fn map(&self, path: &Path) -> io::Result<Bytes> {
        self.check(Call::Read, path)?;
        self.inner.map(path)
    }

    fn open_random_access(&self, path: &Path) -> io::Result<Box<dyn RandomAccessFile>> {
        self.check(Call::Read, path)?;
        Ok(Box::new(FaultRandomAccess {
            inner: self.inner.open_random_access(path)?,
            plan: self.plan.clone(),
            path: path.to_path_buf(),
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(Call::Meta, to)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(Call::Meta, path)?;
        self.inner.remove_file(path)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        self.inner.list(dir)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(Call::Meta, dir)?;
        self.inner.sync_dir(dir)
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.check(Call::Sync, path)?;
        self.inner.sync_file(path)
    }

    fn file_size(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_size(path)
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        self.inner.lock(path)
    }
}
