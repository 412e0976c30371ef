//! Writing the SSTs of a flush or a compaction: sorted entries in, synced
//! files and their manifest records out.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use std::sync::Arc;

use strata_format::blob::BlobPointer;
use strata_format::key::{InternalKeyRef, ValueKind};
use strata_format::manifest::FileAdded;
use strata_format::range_del::RangeTombstones;
use strata_format::sst::{TableOptions, TableWriter};

use crate::blob::relocate::Relocation;
use crate::blob::BlobFile;
use crate::error::{Error, Result};
use crate::fs::{names, FileSystem, WritableFile};

/// What a flush or compaction needs to create tables: where, through which
/// file system, with which file numbers and table options.
pub(crate) struct TableFactory<'a> {
    dir: &'a Path,
    fs: &'a dyn FileSystem,
    // Sync: the ranges of a compaction cut into parts share one factory.
    numbers: &'a (dyn Fn() -> Result<u64> + Sync + 'a),
    options: TableOptions,
}

impl<'a> TableFactory<'a> {
    /// Tables in `dir` written with `options`, numbered by `numbers`.
    pub(crate) fn new(
        dir: &'a Path,
        fs: &'a dyn FileSystem,
        numbers: &'a (dyn Fn() -> Result<u64> + Sync + 'a),
        options: TableOptions,
    ) -> Self {
        TableFactory {
            dir,
            fs,
            numbers,
            options,
        }
    }
}

/// The tables a job (a flush of several keyspaces, a compaction) has
/// finished: deleted when the guard is dropped unless the job installed
/// them, so a failed job leaves no table behind. Blob files relocated
/// values went to are held (marked obsolete) until the same moment.
pub(crate) struct JobOutputs<'a> {
    fs: &'a dyn FileSystem,
    paths: Vec<PathBuf>,
    blobs: Vec<Arc<BlobFile>>,
}

impl<'a> JobOutputs<'a> {
    /// No outputs yet.
    pub(crate) fn new(fs: &'a dyn FileSystem) -> Self {
        JobOutputs {
            fs,
            paths: Vec::new(),
            blobs: Vec::new(),
        }
    }

    /// Adds finished tables of `dir`.
    pub(crate) fn add(&mut self, dir: &Path, files: &[FileAdded]) {
        self.paths
            .extend(files.iter().map(|f| names::table(dir, f.file_number)));
    }

    /// Adds blob files written.
    pub(crate) fn add_blobs(&mut self, blobs: Vec<Arc<BlobFile>>) {
        self.blobs.extend(blobs);
    }

    /// The outputs are the manifest's now (or may be: a manifest write
    /// that failed may still have reached the disk, and the next open
    /// decides): they are not deleted.
    pub(crate) fn keep(mut self) {
        self.paths.clear();
        for b in self.blobs.drain(..) {
            b.keep();
        }
    }
}

impl Drop for JobOutputs<'_> {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = self.fs.remove_file(p);
        }
    }
}

/// What a [`TableSink`] wrote.
pub(crate) struct SinkOutput {
    /// The manifest records of its tables.
    pub files: Vec<FileAdded>,
    /// The blob files it relocated values to (marked obsolete until the
    /// job's edit is logged).
    pub blobs: Vec<Arc<BlobFile>>,
    /// Bytes written, tables and blob files.
    pub bytes: u64,
}

/// Adapts a [`WritableFile`] to `io::Write` with a buffer, so a table's
/// blocks reach the file in large appends.
struct FileSink {
    file: Box<dyn WritableFile>,
    buf: Vec<u8>,
}

const SINK_BUFFER: usize = 256 * 1024;

impl Write for FileSink {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= SINK_BUFFER {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.append(&self.buf)?;
            self.buf.clear();
        }
        Ok(())
    }
}

struct Current {
    number: u64,
    path: PathBuf,
    writer: TableWriter<FileSink>,
    /// The blob files its pointers point into, with the stored bytes of
    /// the records they name.
    blob_refs: Vec<(u64, u64)>,
}

/// Writes entries into one or more tables of `level`, starting a new table
/// when the current one reaches `target_size` (only between user keys, so
/// the versions of a key never straddle two files of a level).
///
/// The job's range tombstones are cut at the same places: a table whose
/// last user key is `p` takes the pieces below `p ‖ 0x00` (the key right
/// after `p`), the next table those from there on, the last table the
/// rest. A table's key range covers its pieces (SPEC §7), so the tables
/// of a level keep disjoint key ranges and a reader finds the pieces
/// covering a key in the table whose range holds it.
pub(crate) struct TableSink<'a> {
    factory: &'a TableFactory<'a>,
    keyspace: u32,
    level: usize,
    target_size: u64,
    current: Option<Current>,
    finished: Vec<FileAdded>,
    /// Files created so far (to remove if the job is abandoned).
    created: Vec<PathBuf>,
    last_user_key: Vec<u8>,
    bytes_written: u64,
    /// The job's range tombstones not yet given to a table.
    dels: RangeTombstones,
    /// Where the next table's pieces start (`None`: from the beginning).
    dels_from: Option<Vec<u8>>,
    /// The compaction's relocation of values out of mostly-dead blob files.
    relocation: Option<Relocation<'a>>,
}

impl<'a> TableSink<'a> {
    pub(crate) fn new(
        factory: &'a TableFactory<'a>,
        keyspace: u32,
        level: usize,
        target_size: u64,
    ) -> Self {
        TableSink {
            factory,
            keyspace,
            level,
            target_size,
            current: None,
            finished: Vec::new(),
            created: Vec::new(),
            last_user_key: Vec::new(),
            bytes_written: 0,
            dels: RangeTombstones::new(),
            dels_from: None,
            relocation: None,
        }
    }

    /// Relocates values as `relocation` says while copying entries.
    pub(crate) fn set_relocation(&mut self, relocation: Relocation<'a>) {
        self.relocation = Some(relocation);
    }

    /// Sets the job's range tombstones, to be shared out among its tables.
    pub(crate) fn set_range_tombstones(&mut self, dels: RangeTombstones) {
        self.dels = dels;
    }

    /// Adds an entry; `key` is an encoded internal key greater than the last.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let parsed =
            InternalKeyRef::parse(key).map_err(|e| Error::format("<compaction input>", e))?;
        let user = parsed.user_key;
        let mut relocated = Vec::new();
        let mut value = value;
        if parsed.kind == ValueKind::BlobPointer {
            if let Some(r) = self.relocation.as_mut() {
                if r.relocate(value, &mut relocated)? {
                    value = &relocated;
                }
            }
        }
        let new_user_key = user != self.last_user_key.as_slice();
        if new_user_key {
            let full = self
                .current
                .as_ref()
                .is_some_and(|c| c.writer.estimated_size() >= self.target_size);
            if full && !self.cut_waits(user) {
                self.finish_current(false)?;
            }
            self.last_user_key.clear();
            self.last_user_key.extend_from_slice(user);
        }
        if self.current.is_none() {
            self.start()?;
        }
        if let Some(c) = self.current.as_mut() {
            c.writer
                .add(key, value)
                .map_err(|e| Error::format(&c.path, e))?;
            if parsed.kind == ValueKind::BlobPointer {
                let p = BlobPointer::decode(value, 0).map_err(|e| Error::format(&c.path, e))?;
                match c.blob_refs.iter_mut().find(|(n, _)| *n == p.file_number) {
                    Some((_, bytes)) => *bytes += p.stored_len,
                    None => c.blob_refs.push((p.file_number, p.stored_len)),
                }
            }
        }
        Ok(())
    }

    /// True when the table may not end before `next`: its tombstones
    /// reach the successor of its last key (the last key and a 0), so when
    /// `next` is that successor the table's range would reach a key the
    /// next table holds, and a point read looks in only one table of a
    /// level.
    fn cut_waits(&self, next: &[u8]) -> bool {
        !self.dels.is_empty()
            && next.len() == self.last_user_key.len() + 1
            && next.starts_with(&self.last_user_key)
            && next.last() == Some(&0)
    }

    fn start(&mut self) -> Result<()> {
        let f = self.factory;
        let number = (f.numbers)()?;
        let path = names::table(f.dir, number);
        let file = f.fs.create(&path).map_err(|e| Error::io(&path, e))?;
        self.created.push(path.clone());
        let opts = f.options.clone();
        let sink = FileSink {
            file,
            buf: Vec::with_capacity(SINK_BUFFER),
        };
        let writer = TableWriter::new(sink, number, crate::random::uid(), opts)
            .map_err(|e| Error::format(&path, e))?;
        self.current = Some(Current {
            number,
            path,
            writer,
            blob_refs: Vec::new(),
        });
        Ok(())
    }

    /// Finishes the current table, giving it its share of the range
    /// tombstones: all that remain when it is the `last`.
    fn finish_current(&mut self, last: bool) -> Result<()> {
        let Some(mut c) = self.current.take() else {
            return Ok(());
        };
        if !self.dels.is_empty() {
            let to = (!last).then(|| crate::bounds::successor(&self.last_user_key));
            let share = self.dels.clip(self.dels_from.as_deref(), to.as_deref());
            c.writer.set_range_tombstones(share);
            self.dels_from = to;
        }
        let (mut sink, summary) = c.writer.finish().map_err(|e| Error::format(&c.path, e))?;
        sink.flush().map_err(|e| Error::io(&c.path, e))?;
        sink.file.sync().map_err(|e| Error::io(&c.path, e))?;
        self.bytes_written += summary.size;
        let p = &summary.properties;
        self.finished.push(FileAdded {
            keyspace: self.keyspace,
            level: self.level as u8,
            file_number: c.number,
            size: summary.size,
            file_uid: summary.file_uid,
            key_id: summary.key_id,
            smallest: p.smallest_key.clone(),
            largest: p.largest_key.clone(),
            min_ts: p.min_ts,
            max_ts: p.max_ts,
            blob_refs: {
                let mut refs = std::mem::take(&mut c.blob_refs);
                refs.sort_unstable();
                refs
            },
        });
        Ok(())
    }

    /// Finishes the last table and makes the directory entries durable;
    /// returns the manifest records of every table written, the blob files
    /// relocated values were written to, and the bytes of both.
    pub(crate) fn finish(mut self) -> Result<SinkOutput> {
        let rest_of_dels = !self.dels.clip(self.dels_from.as_deref(), None).is_empty();
        if self.current.is_none() && rest_of_dels {
            // Range tombstones past every entry (or with no entry at all)
            // get a table of their own.
            self.start()?;
        }
        self.finish_current(true)?;
        if !self.finished.is_empty() {
            let f = self.factory;
            f.fs.sync_dir(f.dir).map_err(|e| Error::io(f.dir, e))?;
        }
        let blobs = match self.relocation.take() {
            Some(r) => r.finish()?,
            None => Vec::new(),
        };
        self.created.clear();
        let blob_bytes: u64 = blobs.iter().map(|b| b.size()).sum();
        Ok(SinkOutput {
            files: std::mem::take(&mut self.finished),
            blobs,
            bytes: self.bytes_written + blob_bytes,
        })
    }
}

impl Drop for TableSink<'_> {
    fn drop(&mut self) {
        // An abandoned job (error or shutdown) leaves no file behind.
        self.current = None;
        for p in &self.created {
            let _ = self.factory.fs.remove_file(p);
        }
    }
}
