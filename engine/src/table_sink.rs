//! Writing the SSTs of a flush or a compaction: sorted entries in, synced
//! files and their manifest records out.

use std::io::{self, Write};
use std::path::PathBuf;

use strata_format::key::InternalKeyRef;
use strata_format::manifest::FileAdded;
use strata_format::sst::{TableOptions, TableWriter};

use crate::db::DbInner;
use crate::error::{Error, Result};
use crate::fs::{names, WritableFile};

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
}

/// Writes entries into one or more tables of `level`, starting a new table
/// when the current one reaches `target_size` (only between user keys, so
/// the versions of a key never straddle two files of a level).
pub(crate) struct TableSink<'a> {
    inner: &'a DbInner,
    keyspace: u32,
    level: usize,
    target_size: u64,
    current: Option<Current>,
    finished: Vec<FileAdded>,
    /// Files created so far (to remove if the job is abandoned).
    created: Vec<PathBuf>,
    last_user_key: Vec<u8>,
    bytes_written: u64,
}

impl<'a> TableSink<'a> {
    pub(crate) fn new(inner: &'a DbInner, keyspace: u32, level: usize, target_size: u64) -> Self {
        TableSink {
            inner,
            keyspace,
            level,
            target_size,
            current: None,
            finished: Vec::new(),
            created: Vec::new(),
            last_user_key: Vec::new(),
            bytes_written: 0,
        }
    }

    /// Adds an entry; `key` is an encoded internal key greater than the last.
    pub(crate) fn add(&mut self, key: &[u8], value: &[u8]) -> Result<()> {
        let user = InternalKeyRef::parse(key)
            .map_err(|e| Error::format("<compaction input>", e))?
            .user_key;
        let new_user_key = user != self.last_user_key.as_slice();
        if new_user_key {
            if self
                .current
                .as_ref()
                .is_some_and(|c| c.writer.estimated_size() >= self.target_size)
            {
                self.finish_current()?;
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
        }
        Ok(())
    }

    fn start(&mut self) -> Result<()> {
        let number = self.inner.versions.lock().new_file_number();
        let path = names::table(&self.inner.dir, number);
        let file = self
            .inner
            .fs
            .create(&path)
            .map_err(|e| Error::io(&path, e))?;
        self.created.push(path.clone());
        let opts = TableOptions {
            block_size: self.inner.opts.block_size,
            restart_interval: self.inner.opts.restart_interval,
            bloom_bits_per_key: self.inner.opts.bloom_bits_per_key,
            compression: self.inner.opts.compression_for(self.level),
            key: self.inner.table_key(self.keyspace)?,
            created_at_micros: self.inner.opts.clock.now().physical_micros(),
        };
        let sink = FileSink {
            file,
            buf: Vec::with_capacity(SINK_BUFFER),
        };
        let writer = TableWriter::new(sink, number, crate::random_uid(), opts)
            .map_err(|e| Error::format(&path, e))?;
        self.current = Some(Current {
            number,
            path,
            writer,
        });
        Ok(())
    }

    fn finish_current(&mut self) -> Result<()> {
        let Some(c) = self.current.take() else {
            return Ok(());
        };
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
        });
        Ok(())
    }

    /// Finishes the last table and makes the directory entries durable;
    /// returns the manifest records of every table written and their bytes.
    pub(crate) fn finish(mut self) -> Result<(Vec<FileAdded>, u64)> {
        self.finish_current()?;
        if !self.finished.is_empty() {
            self.inner
                .fs
                .sync_dir(&self.inner.dir)
                .map_err(|e| Error::io(&self.inner.dir, e))?;
        }
        self.created.clear();
        Ok((std::mem::take(&mut self.finished), self.bytes_written))
    }
}

impl Drop for TableSink<'_> {
    fn drop(&mut self) {
        // An abandoned job (error or shutdown) leaves no file behind.
        self.current = None;
        for p in &self.created {
            let _ = self.inner.fs.remove_file(p);
        }
    }
}
