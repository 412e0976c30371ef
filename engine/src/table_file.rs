//! Opening an SST for reading: through a memory mapping or positioned
//! reads, as `Options::sst_reads` says.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use strata_format::error::IoError;
use strata_format::sst::{BlockCache, Table, TableReadOptions, TableSource};

use crate::error::{Error, Result};
use crate::fs::{read_full_at, FileSystem, RandomAccessFile};
use crate::options::SstReads;

/// The bytes of one SST, however they are read.
pub(crate) enum SstSource {
    /// A mapping of the whole file: block reads are slices of it.
    Mapped(Bytes),
    /// The file, read block by block.
    Positioned(FileSource),
}

impl SstSource {
    /// Opens the SST at `path` for reading as `reads` says.
    pub(crate) fn open(fs: &dyn FileSystem, path: &Path, reads: SstReads) -> Result<SstSource> {
        let io = |e| Error::io(path, e);
        Ok(match reads {
            SstReads::Mmap => SstSource::Mapped(fs.map(path).map_err(io)?),
            SstReads::Pread => SstSource::Positioned(FileSource {
                file: fs.open_random_access(path).map_err(io)?,
            }),
        })
    }
}

impl TableSource for SstSource {
    fn len(&self) -> u64 {
        match self {
            SstSource::Mapped(b) => b.len() as u64,
            SstSource::Positioned(f) => f.len(),
        }
    }

    fn read_at(&self, offset: u64, len: usize) -> strata_format::Result<Bytes> {
        match self {
            SstSource::Mapped(b) => b.read_at(offset, len),
            SstSource::Positioned(f) => f.read_at(offset, len),
        }
    }
}

/// An SST read with positioned reads, each into a buffer of its own.
/// Its errors name the offset; the engine's error around them names the
/// file.
pub(crate) struct FileSource {
    file: Box<dyn RandomAccessFile>,
}

impl TableSource for FileSource {
    fn len(&self) -> u64 {
        self.file.size()
    }

    fn read_at(&self, offset: u64, len: usize) -> strata_format::Result<Bytes> {
        // The reader asks only for ranges it checked against the size; a
        // buffer is never larger than what the file held at open.
        let left = self.file.size().saturating_sub(offset);
        let len = usize::try_from(left).map_or(len, |left| len.min(left));
        let mut buf = vec![0u8; len];
        let read = read_full_at(&*self.file, &mut buf, offset).map_err(|e| {
            strata_format::Error::Io(IoError {
                kind: e.kind(),
                message: format!("reading {len} bytes at offset {offset}: {e}"),
            })
        })?;
        buf.truncate(read);
        Ok(Bytes::from(buf))
    }
}

/// Opens the SST at `path` (reading it as `reads` says) and checks its
/// footer, index, filter and properties; data blocks are read through
/// `cache` when given.
pub(crate) fn open_table(
    fs: &dyn FileSystem,
    path: &Path,
    reads: SstReads,
    opts: &TableReadOptions<'_>,
    cache: Option<Arc<dyn BlockCache>>,
) -> Result<Table> {
    let source = SstSource::open(fs, path, reads)?;
    Table::open_source(source, opts, cache).map_err(|e| Error::format(path, e))
}
