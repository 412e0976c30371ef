//! Reading a blob: a stream over its chunks as of one snapshot, one chunk
//! in memory at a time.

use std::io::{Read, Seek, SeekFrom};

use strata_engine::{Keyspace, Snapshot};

use super::{chunk_key, BlobMetadata};
use crate::error::{Result, StorageError};

/// Fills `buf` as far as the reader allows; returns the bytes read.
pub(super) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match reader.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StorageError::Io(e.to_string())),
        }
    }
    Ok(n)
}

/// Reads a blob as of the moment it was opened, one chunk in memory at a
/// time.
pub struct BlobReader {
    snap: Snapshot,
    ks: Keyspace,
    meta: BlobMetadata,
    pos: u64,
    chunk: Option<(u64, bytes::Bytes)>,
}

impl std::fmt::Debug for BlobReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobReader")
            .field("meta", &self.meta)
            .field("pos", &self.pos)
            .finish()
    }
}

impl BlobReader {
    /// A reader over the chunks `meta` names, read through `snap`.
    pub(super) fn new(snap: Snapshot, ks: Keyspace, meta: BlobMetadata) -> Self {
        BlobReader {
            snap,
            ks,
            meta,
            pos: 0,
            chunk: None,
        }
    }

    /// The blob's metadata.
    pub fn metadata(&self) -> &BlobMetadata {
        &self.meta
    }

    fn load(&mut self, index: u64) -> std::io::Result<()> {
        if self.chunk.as_ref().is_some_and(|(i, _)| *i == index) {
            return Ok(());
        }
        let key = chunk_key(&self.meta.blob_id, index);
        let data = self
            .snap
            .get(&self.ks, key)
            .map_err(std::io::Error::other)?
            .ok_or_else(|| {
                std::io::Error::other(format!("blob {}: chunk {index} is missing", self.meta.key))
            })?;
        let expected = if index + 1 == self.meta.chunks {
            self.meta.size - index * self.meta.chunk_size
        } else {
            self.meta.chunk_size
        };
        if data.len() as u64 != expected {
            return Err(std::io::Error::other(format!(
                "blob {}: chunk {index} has {} bytes, expected {expected}",
                self.meta.key,
                data.len()
            )));
        }
        self.chunk = Some((index, data));
        Ok(())
    }

    /// Reads the whole blob again and checks its content hash.
    pub fn verify(&mut self) -> Result<bool> {
        let save = self.pos;
        self.pos = 0;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = self
                .read(&mut buf)
                .map_err(|e| StorageError::Io(e.to_string()))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        self.pos = save;
        Ok(format!("{:032x}", hasher.digest128()) == self.meta.content_hash)
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.pos >= self.meta.size || buf.is_empty() {
            return Ok(0);
        }
        let index = self.pos / self.meta.chunk_size;
        self.load(index)?;
        let Some((_, data)) = &self.chunk else {
            return Ok(0);
        };
        let off = (self.pos - index * self.meta.chunk_size) as usize;
        let n = buf.len().min(data.len() - off);
        buf[..n].copy_from_slice(&data[off..off + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for BlobReader {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.meta.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        match target {
            Some(t) => {
                self.pos = t;
                Ok(t)
            }
            None => Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start of the blob",
            )),
        }
    }
}
