//! The real file system: `std::fs`, `memmap2`, positioned reads, and on
//! Linux `fallocate`.
//!
//! Appends to a preallocated file go through a shared memory mapping of
//! the preallocated space where the file system is known to keep that
//! space for them. The bytes land in the same page cache a `write` would
//! put them in, so they survive a crash of the process just the same and
//! `fdatasync` makes them durable just the same, but the append costs a
//! copy instead of a system call: for the WAL, one system call per commit
//! was a fifth of the time of an unsynced write.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use bytes::Bytes;

use super::{FileLock, FileSystem, RandomAccessFile, WritableFile};

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdFs;

/// A file being written.
struct StdFile {
    file: File,
    /// Where the next append goes: the end of what was appended, which
    /// after a preallocation is short of the file's size.
    pos: u64,
    /// The preallocated space from `pos` on (as `pos` was when mapped).
    map: Option<AppendMap>,
    /// Whether preallocated space is mapped for appends: asked for by the
    /// file's owner, and on a file system that needs no new allocation
    /// when a mapped page is first written (elsewhere a full disk would
    /// show as a SIGBUS at that write instead of an error from `write`).
    map_appends: bool,
}

/// A writable mapping of `[start, start + map.len())` of the file.
struct AppendMap {
    start: u64,
    map: memmap2::MmapMut,
}

impl StdFile {
    fn new(file: File) -> Self {
        StdFile {
            file,
            pos: 0,
            map: None,
            map_appends: false,
        }
    }

    /// Writes `data` at `pos` with a system call.
    fn write_at(&mut self, data: &[u8]) -> io::Result<()> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.write_all_at(data, self.pos)
        }
        #[cfg(not(unix))]
        {
            use std::io::{Seek, SeekFrom, Write};
            self.file.seek(SeekFrom::Start(self.pos))?;
            self.file.write_all(data)
        }
    }

    /// Maps the preallocated space `[pos, len)` (`memmap2` rounds the
    /// start down to a page boundary for the system call).
    #[cfg(target_os = "linux")]
    fn map_preallocated(&mut self, len: u64) -> io::Result<()> {
        self.map = None;
        let start = self.pos;
        if len <= start {
            return Ok(());
        }
        let size = usize::try_from(len - start)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mapping too large"))?;
        // SAFETY: the mapping covers `[start, len)`, which `fallocate` has
        // just made part of the file, so every mapped page is backed. Only
        // this handle writes the file (the directory lock keeps other
        // Strata instances out; SPEC.md forbids outside changes), and it
        // never shrinks the file while the mapping lives: `truncate` drops
        // the mapping first. Readers of the file use `read`, which sees
        // the same page cache.
        #[allow(unsafe_code)]
        let map = unsafe {
            memmap2::MmapOptions::new()
                .offset(start)
                .len(size)
                .map_mut(&self.file)?
        };
        self.map = Some(AppendMap { start, map });
        Ok(())
    }
}

/// Whether `file`'s file system keeps fallocated space for writes through
/// a mapping (ext4, XFS, tmpfs). Copy-on-write file systems (btrfs, ZFS)
/// allocate again when a page is written, and report a full disk then as
/// SIGBUS; on them, and on any file system not known here, appends use
/// `write`.
fn mapping_keeps_space(file: &File) -> bool {
    #[cfg(target_os = "linux")]
    {
        const EXT4: u64 = 0xEF53;
        const XFS: u64 = 0x5846_5342;
        const TMPFS: u64 = 0x0102_1994;
        match rustix::fs::fstatfs(file) {
            #[allow(clippy::unnecessary_cast)]
            Ok(st) => matches!(st.f_type as u64 & 0xFFFF_FFFF, EXT4 | XFS | TMPFS),
            Err(_) => false,
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        false
    }
}

impl WritableFile for StdFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if let Some(m) = &mut self.map {
            // `pos` never goes below the mapping's start: the mapping
            // starts at `pos`, and `pos` only grows.
            let from = (self.pos - m.start) as usize;
            if let Some(dst) = m.map.get_mut(from..from + data.len()) {
                dst.copy_from_slice(data);
                self.pos += data.len() as u64;
                return Ok(());
            }
        }
        self.write_at(data)?;
        self.pos += data.len() as u64;
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        // On Linux `fdatasync` writes back the pages dirtied through the
        // mapping too (a shared mapping's pages are the file's page cache).
        self.file.sync_data()
    }

    #[cfg(target_os = "linux")]
    fn preallocate(&mut self, len: u64) -> io::Result<bool> {
        // Mode 0: the file's size grows to `len`, its new blocks read as
        // zeros; appends still go to `pos`.
        rustix::fs::fallocate(&self.file, rustix::fs::FallocateFlags::empty(), 0, len)
            .map_err(io::Error::from)?;
        if self.map_appends && self.map_preallocated(len).is_err() {
            // Appends fall back to `write`; the space is allocated anyway.
            self.map_appends = false;
        }
        Ok(true)
    }

    #[cfg(target_os = "linux")]
    fn start_writeback(&mut self, offset: u64, len: u64) {
        // On Linux `POSIX_FADV_DONTNEED` starts asynchronous writeback of
        // the range's dirty pages (those dirtied through the mapping too)
        // and drops only pages already clean: the range was just written,
        // so none of it is dropped. What `sync_file_range` would do,
        // without an unsafe call.
        if let Some(len) = std::num::NonZeroU64::new(len) {
            let _ =
                rustix::fs::fadvise(&self.file, offset, Some(len), rustix::fs::Advice::DontNeed);
        }
    }

    fn map_appends(&mut self, on: bool) {
        // Asked once per WAL; other files never pay for the check.
        self.map_appends = on && mapping_keeps_space(&self.file);
        if !self.map_appends {
            self.map = None;
        }
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        // The mapping must not outlive the space it maps.
        self.map = None;
        self.file.set_len(len)
    }
}

/// A file opened for positioned reads.
#[derive(Debug)]
struct StdRandomAccess {
    file: File,
    size: u64,
}

impl RandomAccessFile for StdRandomAccess {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::FileExt;
            self.file.read_at(buf, offset)
        }
        #[cfg(windows)]
        {
            use std::os::windows::fs::FileExt;
            self.file.seek_read(buf, offset)
        }
    }

    fn size(&self) -> u64 {
        self.size
    }
}

#[derive(Debug)]
struct StdLock {
    _file: File,
}

impl FileLock for StdLock {}

impl FileSystem for StdFs {
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }

    fn create(&self, path: &Path) -> io::Result<Box<dyn WritableFile>> {
        // Read access too: a writable shared mapping needs it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Ok(Box::new(StdFile::new(file)))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn map(&self, path: &Path) -> io::Result<Bytes> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(Bytes::new());
        }
        // SAFETY: the engine maps only SSTs. An SST is created under its
        // final name and written once, by the flush or compaction that
        // numbered it, and nothing maps it while that job writes: the table
        // cache, recovery and `verify` map only tables a manifest record
        // names, and that record is made once the table is finished and
        // synced; `verify_dir`, which may map any SST in the directory,
        // runs on a closed database under the directory lock. A table is
        // never modified after it is finished (it is only unlinked, which
        // leaves the mapping valid). Another process truncating the file
        // would break this; the directory lock keeps other Strata instances
        // out, and SPEC.md states that the files must not be modified
        // externally.
        #[allow(unsafe_code)]
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Bytes::from_owner(map))
    }

    fn open_random_access(&self, path: &Path) -> io::Result<Box<dyn RandomAccessFile>> {
        let file = File::open(path)?;
        let size = file.metadata()?.len();
        Ok(Box::new(StdRandomAccess { file, size }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn hard_link(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::hard_link(from, to)
    }

    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            if let Ok(name) = entry?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn sync_file(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_data()
    }

    fn file_size(&self, path: &Path) -> io::Result<u64> {
        Ok(std::fs::metadata(path)?.len())
    }

    fn lock(&self, path: &Path) -> io::Result<Box<dyn FileLock>> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Box::new(StdLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Err(io::ErrorKind::WouldBlock.into()),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    fn free_space(&self, path: &Path) -> io::Result<Option<u64>> {
        #[cfg(target_os = "linux")]
        {
            let st = rustix::fs::statvfs(path)?;
            Ok(Some(st.f_bavail.saturating_mul(st.f_frsize)))
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = path;
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Appends through the mapping, past it (by `write`), across a second
    /// preallocation and a truncation read back exactly as appended.
    #[test]
    fn appends_read_back_through_and_past_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let mut f = StdFs.create(&path).unwrap();
        f.map_appends(true);
        let mut want = Vec::new();
        let mut next = 0u8;
        let mut append = |f: &mut Box<dyn WritableFile>, want: &mut Vec<u8>, n: usize| {
            let data: Vec<u8> = (0..n)
                .map(|_| {
                    next = next.wrapping_add(7);
                    next
                })
                .collect();
            f.append(&data).unwrap();
            want.extend_from_slice(&data);
        };
        append(&mut f, &mut want, 100);
        let preallocated = f.preallocate(10_000).unwrap();
        for _ in 0..90 {
            append(&mut f, &mut want, 97);
        }
        // Past the preallocated end: the rest goes by `write`.
        append(&mut f, &mut want, 3_000);
        f.preallocate(30_000).unwrap();
        append(&mut f, &mut want, 5_000);
        f.sync().unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(&got[..want.len()], &want[..]);
        if preallocated {
            assert_eq!(size, 30_000);
            assert!(got[want.len()..].iter().all(|&b| b == 0));
        }
        f.truncate(want.len() as u64).unwrap();
        append(&mut f, &mut want, 10);
        f.sync().unwrap();
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), want);
    }
}
