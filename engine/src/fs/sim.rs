//! An in-memory file system that tracks durability, for crash tests.
//!
//! Every file records how much of it was made durable by `sync`; every
//! directory records which of its entries were made durable by `sync_dir`
//! and the entry operations (creates, renames, removes) since. A power loss
//! at any instant is then [`SimFs::crash_image`]: a new file system holding
//! only what the disk would: each file cut back to its synced prefix, each
//! directory back to its last synced state, and, in [`CrashMode::Torn`],
//! whatever mix of the unsynced data and entry operations a real disk and
//! kernel could have persisted (sectors kept, lost, zeroed or garbled;
//! entry operations applied or not).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};

/// What a simulated power loss keeps of the data that was never synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashMode {
    /// Nothing unsynced survives: every file is cut to its synced length and
    /// every directory returns to its last synced state (LevelDB's
    /// "drop unsynced data").
    DropUnsynced,
    /// Unsynced data survives partly and out of order: a random length of
    /// each file's unsynced tail persists, and each 512-byte sector of it is
    /// kept, zero-filled or filled with garbage; each unsynced directory
    /// operation persists or not, independently.
    Torn,
}

/// Sector size for torn writes.
const SECTOR: usize = 512;

#[derive(Debug, Clone, Default)]
struct Inode {
    data: Vec<u8>,
    /// Bytes made durable by the last sync.
    synced: usize,
}

#[derive(Debug, Clone)]
enum DirOp {
    Link { name: String, inode: u64 },
    Unlink { name: String },
}

#[derive(Debug, Clone, Default)]
struct Dir {
    /// Entries as the running system sees them.
    entries: BTreeMap<String, u64>,
    /// Entries as of the last `sync_dir`.
    durable: BTreeMap<String, u64>,
    /// Entry operations since the last `sync_dir`, in order.
    pending: Vec<DirOp>,
}

#[derive(Debug, Default)]
struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    dirs: BTreeMap<PathBuf, Dir>,
    locks: HashSet<PathBuf>,
    /// Mutating calls so far.
    ops: u64,
    /// Simulate a power loss just before this mutating call.
    crash_at: Option<(u64, CrashMode, u64)>,
    /// The image taken at the crash point.
    image: Option<SimFs>,
    /// After a crash every call fails.
    dead: bool,
}

/// An in-memory [`FileSystem`] that can simulate a power loss. Clones share
/// the same files.
#[derive(Debug, Clone, Default)]
pub struct SimFs {
    state: Arc<Mutex<State>>,
}

fn split(path: &Path) -> io::Result<(PathBuf, String)> {
    let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "bad file name"))?;
    Ok((parent, name.to_owned()))
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{} not found", path.display()),
    )
}

fn dead() -> io::Error {
    io::Error::other("simulated power loss: the machine is off")
}

/// The deterministic generator crash images are drawn from.
type Rng = crate::random::SplitMix64;

impl State {
    /// Counts a mutating call, taking the crash image first when this call
    /// is the crash point.
    fn step(&mut self) -> io::Result<()> {
        if self.dead {
            return Err(dead());
        }
        self.ops += 1;
        if let Some((at, mode, seed)) = self.crash_at {
            if self.ops >= at {
                self.image = Some(self.image(mode, seed));
                self.dead = true;
                return Err(dead());
            }
        }
        Ok(())
    }

    fn check(&self) -> io::Result<()> {
        if self.dead {
            Err(dead())
        } else {
            Ok(())
        }
    }

    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (parent, name) = split(path)?;
        self.dirs
            .get(&parent)
            .and_then(|d| d.entries.get(&name))
            .copied()
            .ok_or_else(|| not_found(path))
    }

    fn dir_mut(&mut self, dir: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(dir).ok_or_else(|| not_found(dir))
    }

    fn image(&self, mode: CrashMode, seed: u64) -> SimFs {
        let mut rng = Rng::new(seed);
        let mut out = State {
            next_inode: self.next_inode,
            ..State::default()
        };
        for (path, dir) in &self.dirs {
            let mut entries = dir.durable.clone();
            if mode == CrashMode::Torn {
                for op in &dir.pending {
                    if rng.below(2) == 0 {
                        continue;
                    }
                    match op {
                        DirOp::Link { name, inode } => {
                            entries.insert(name.clone(), *inode);
                        }
                        DirOp::Unlink { name } => {
                            entries.remove(name);
                        }
                    }
                }
            }
            for inode in entries.values() {
                if out.inodes.contains_key(inode) {
                    continue;
                }
                let Some(node) = self.inodes.get(inode) else {
                    continue;
                };
                let mut data = node.data[..node.synced].to_vec();
                if mode == CrashMode::Torn && node.data.len() > node.synced {
                    let unsynced = (node.data.len() - node.synced) as u64;
                    let keep = rng.below(unsynced + 1) as usize;
                    let tail = &node.data[node.synced..node.synced + keep];
                    for sector in tail.chunks(SECTOR) {
                        match rng.below(4) {
                            0 | 1 => data.extend_from_slice(sector),
                            2 => data.extend(std::iter::repeat_n(0u8, sector.len())),
                            _ => data.extend((0..sector.len()).map(|_| rng.next_u64() as u8)),
                        }
                    }
                }
                let synced = data.len();
                out.inodes.insert(*inode, Inode { data, synced });
            }
            out.dirs.insert(
                path.clone(),
                Dir {
                    durable: entries.clone(),
                    entries,
                    pending: Vec::new(),
                },
            );
        }
        SimFs {
            state: Arc::new(Mutex::new(out)),
        }
    }
}

impl SimFs {
    /// An empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Mutating calls (create, append, sync, rename, remove, sync_dir) made
    /// so far: the space a crash point is chosen from.
    pub fn ops(&self) -> u64 {
        self.state.lock().ops
    }

    /// Arranges a power loss just before mutating call number `at` (counted
    /// from the start, see [`ops`](Self::ops)): the image is taken then and
    /// every later call fails. [`crashed_image`](Self::crashed_image) returns
    /// it.
    pub fn crash_at(&self, at: u64, mode: CrashMode, seed: u64) {
        self.state.lock().crash_at = Some((at, mode, seed));
    }

    /// The image the arranged power loss left, once it has happened.
    pub fn crashed_image(&self) -> Option<SimFs> {
        self.state.lock().image.clone()
    }

    /// Simulates a power loss now: returns the image the disk would hold,
    /// and makes every later call of this file system fail.
    pub fn crash(&self, mode: CrashMode, seed: u64) -> SimFs {
        let mut st = self.state.lock();
        let image = st.image(mode, seed);
        st.dead = true;
        image
    }

    /// The image a power loss would leave now, without stopping this file
    /// system.
    pub fn durable_image(&self, mode: CrashMode, seed: u64) -> SimFs {
        self.state.lock().image(mode, seed)
    }

    /// A full copy of the current contents (synced or not), as a separate
    /// file system: a clean shutdown's image.
    pub fn snapshot(&self) -> SimFs {
        let st = self.state.lock();
        let mut inodes = st.inodes.clone();
        for node in inodes.values_mut() {
            node.synced = node.data.len();
        }
        let dirs = st
            .dirs
            .iter()
            .map(|(p, d)| {
                (
                    p.clone(),
                    Dir {
                        entries: d.entries.clone(),
                        durable: d.entries.clone(),
                        pending: Vec::new(),
                    },
                )
            })
            .collect();
        SimFs {
            state: Arc::new(Mutex::new(State {
                inodes,
                next_inode: st.next_inode,
                dirs,
                ..State::default()
            })),
        }
    }

    /// Replaces a file's contents (synced), for corruption tests.
    pub fn overwrite(&self, path: &Path, data: Vec<u8>) -> io::Result<()> {
        let mut st = self.state.lock();
        let inode = st.lookup(path)?;
        let synced = data.len();
        st.inodes.insert(inode, Inode { data, synced });
        Ok(())
    }
}

struct SimFile {
    state: Arc<Mutex<State>>,
    inode: u64,
}

impl WritableFile for SimFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut st = self.state.lock();
        st.step()?;
        let node = st.inodes.entry(self.inode).or_default();
        node.data.extend_from_slice(data);
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        let mut st = self.state.lock();
        st.step()?;
        let node = st.inodes.entry(self.inode).or_default();
        node.synced = node.data.len();
        Ok(())
    }
}

/// A file opened for positioned reads: reads its inode, which outlives
/// the file's name as an open file does on a real file system.
struct SimRandomAccess {
    state: Arc<Mutex<State>>,
    inode: u64,
    size: u64,
}

impl std::fmt::Debug for SimRandomAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimRandomAccess")
            .field("inode", &self.inode)
            .field("size", &self.size)
            .finish()
    }
}

impl RandomAccessFile for SimRandomAccess {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let st = self.state.lock();
        st.check()?;
        let data = st.inodes.get(&self.inode).map_or(&[][..], |n| &n.data[..]);
        let start = usize::try_from(offset).map_or(data.len(), |o| o.min(data.len()));
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn size(&self) -> u64 {
        self.size
    }
}

#[derive(Debug)]
struct SimLock {
    state: Arc<Mutex<State>>,
    path: PathBuf,
}

impl FileLock for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        self.state.lock().locks.remove(&self.path);
    }
}

impl FileSystem for SimFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.check()?;
        // Directories themselves are taken as durable at once: the engine
        // creates its directory before anything else and a lost directory
        // would only mean an empty database.
        let mut p = Some(path);
        while let Some(dir) = p {
            st.dirs.entry(dir.to_path_buf()).or_default();
            p = dir.parent().filter(|q| !q.as_os_str().is_empty());
        }
        Ok(())
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        let mut st = self.state.lock();
        st.step()?;
        let (parent, name) = split(path)?;
        let inode = st.next_inode;
        st.next_inode += 1;
        st.inodes.insert(inode, Inode::default());
        let dir = st.dir_mut(&parent)?;
        dir.entries.insert(name.clone(), inode);
        dir.pending.push(DirOp::Link { name, inode });
        Ok(Box::new(SimFile {
            state: self.state.clone(),
            inode,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let st = self.state.lock();
        st.check()?;
        let inode = st.lookup(path)?;
        Ok(st
            .inodes
            .get(&inode)
            .map(|n| n.data.clone())
            .unwrap_or_default())
    }

    fn map(&self, path: &Path) -> io::Result<Bytes> {
        self.read(path).map(Bytes::from)
    }

    fn open_random_access(&self, path: &Path) -> io::Result<Box<dyn RandomAccessFile>> {
        let st = self.state.lock();
        st.check()?;
        let inode = st.lookup(path)?;
        let size = st.inodes.get(&inode).map_or(0, |n| n.data.len() as u64);
        Ok(Box::new(SimRandomAccess {
            state: self.state.clone(),
            inode,
            size,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.step()?;
        let inode = st.lookup(from)?;
        let (from_dir, from_name) = split(from)?;
        let (to_dir, to_name) = split(to)?;
        let d = st.dir_mut(&from_dir)?;
        d.entries.remove(&from_name);
        d.pending.push(DirOp::Unlink { name: from_name });
        let d = st.dir_mut(&to_dir)?;
        d.entries.insert(to_name.clone(), inode);
        d.pending.push(DirOp::Link {
            name: to_name,
            inode,
        });
        Ok(())
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.step()?;
        st.lookup(path)?;
        let (parent, name) = split(path)?;
        let d = st.dir_mut(&parent)?;
        d.entries.remove(&name);
        d.pending.push(DirOp::Unlink { name });
        Ok(())
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.state.lock();
        st.check()?;
        st.dirs
            .get(dir)
            .map(|d| d.entries.keys().cloned().collect())
            .ok_or_else(|| not_found(dir))
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.step()?;
        let d = st.dir_mut(dir)?;
        d.durable = d.entries.clone();
        d.pending.clear();
        Ok(())
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        let mut st = self.state.lock();
        st.step()?;
        let inode = st.lookup(path)?;
        let node = st.inodes.entry(inode).or_default();
        node.synced = node.data.len();
        Ok(())
    }

    fn file_size(&self, path: &Path) -> io::Result<u64> {
        let st = self.state.lock();
        st.check()?;
        let inode = st.lookup(path)?;
        Ok(st.inodes.get(&inode).map_or(0, |n| n.data.len() as u64))
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let mut st = self.state.lock();
        st.check()?;
        if !st.locks.insert(path.to_path_buf()) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(Box::new(SimLock {
            state: self.state.clone(),
            path: path.to_path_buf(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> PathBuf {
        PathBuf::from(s)
    }

    #[test]
    fn unsynced_data_and_entries_are_lost() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/db")).unwrap();
        let mut a = fs.create(&p("/db/a")).unwrap();
        a.append(b"hello").unwrap();
        a.sync().unwrap();
        a.append(b" world").unwrap();
        // The entry of `a` is not durable yet.
        let img = fs.durable_image(CrashMode::DropUnsynced, 1);
        assert!(img.read(&p("/db/a")).is_err());
        fs.sync_dir(&p("/db")).unwrap();
        let img = fs.durable_image(CrashMode::DropUnsynced, 1);
        assert_eq!(img.read(&p("/db/a")).unwrap(), b"hello");
        // An unsynced rename and remove are undone.
        fs.rename(&p("/db/a"), &p("/db/b")).unwrap();
        let img = fs.durable_image(CrashMode::DropUnsynced, 1);
        assert!(img.read(&p("/db/a")).is_ok());
        assert!(img.read(&p("/db/b")).is_err());
        fs.sync_dir(&p("/db")).unwrap();
        fs.remove_file(&p("/db/b")).unwrap();
        let img = fs.durable_image(CrashMode::DropUnsynced, 1);
        assert_eq!(img.read(&p("/db/b")).unwrap(), b"hello");
    }

    #[test]
    fn torn_images_vary_but_keep_the_synced_prefix() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/db")).unwrap();
        let mut a = fs.create(&p("/db/a")).unwrap();
        fs.sync_dir(&p("/db")).unwrap();
        a.append(&[7u8; 100]).unwrap();
        a.sync().unwrap();
        a.append(&[9u8; 5000]).unwrap();
        let mut lens = HashSet::new();
        for seed in 0..32 {
            let img = fs.durable_image(CrashMode::Torn, seed);
            let data = img.read(&p("/db/a")).unwrap();
            assert!(data.len() >= 100 && data.len() <= 5100);
            assert_eq!(&data[..100], &[7u8; 100][..]);
            lens.insert(data.len());
        }
        assert!(lens.len() > 8, "torn images should differ: {lens:?}");
    }

    #[test]
    fn crash_point_freezes_the_image() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/db")).unwrap();
        fs.crash_at(4, CrashMode::DropUnsynced, 0);
        let mut a = fs.create(&p("/db/a")).unwrap(); // 1
        a.append(b"x").unwrap(); // 2
        a.sync().unwrap(); // 3
        assert!(fs.sync_dir(&p("/db")).is_err()); // 4: the crash
        assert!(a.append(b"y").is_err());
        let img = fs.crashed_image().unwrap();
        assert!(img.read(&p("/db/a")).is_err(), "entry never synced");
    }

    #[test]
    fn locks_are_exclusive_until_dropped() {
        let fs = SimFs::new();
        fs.create_dir_all(&p("/db")).unwrap();
        let l = fs.lock(&p("/db/LOCK")).unwrap();
        assert!(fs.lock(&p("/db/LOCK")).is_err());
        drop(l);
        assert!(fs.lock(&p("/db/LOCK")).is_ok());
    }
}
