//! Appending records to a log.

use std::io::Write;
use std::sync::Arc;

use crate::codec::{BlockContext, BlockEncoder, Compression, EncryptionKey};
use crate::error::{Error, Result};

use super::{
    fragment_crc, sync_tag, LogHeader, FIRST, FRAGMENT_HEADER_LEN, FULL, LAST, LOG_BLOCK_SIZE,
    MIDDLE, SYNC, SYNC_LEN,
};

/// Writes records to any [`Write`], fragmenting them across 32 KiB blocks.
/// The writer does not sync: the engine decides when the bytes are durable.
pub struct LogWriter<W: Write> {
    out: W,
    header: LogHeader,
    encoder: BlockEncoder,
    offset: u64,
    scratch: Vec<u8>,
    frame: Vec<u8>,
}

impl<W: Write> std::fmt::Debug for LogWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogWriter")
            .field("header", &self.header)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl<W: Write> LogWriter<W> {
    /// Starts a new log file by writing its header record. `key` must match
    /// `header.key_id`.
    pub fn new(
        out: W,
        header: LogHeader,
        compression: Compression,
        key: Option<Arc<EncryptionKey>>,
    ) -> Result<Self> {
        let mut w = Self::resume(out, header, compression, key, 0)?;
        let plain = BlockEncoder::new(Compression::None, None)?;
        let encoder = std::mem::replace(&mut w.encoder, plain);
        let header_bytes = header.encode();
        let r = w.add_record(&header_bytes);
        w.encoder = encoder;
        r?;
        Ok(w)
    }

    /// Continues a log file that already holds `len` valid bytes (its header
    /// included), as found by a [`LogReader`](super::LogReader).
    pub fn resume(
        out: W,
        header: LogHeader,
        compression: Compression,
        key: Option<Arc<EncryptionKey>>,
        len: u64,
    ) -> Result<Self> {
        if header.file_number > crate::codec::MAX_NONCE_FIELD {
            return Err(Error::InvalidArgument(format!(
                "file number {} exceeds 2^48 - 1",
                header.file_number
            )));
        }
        if header.key_id != key.as_ref().map(|k| k.id()) {
            return Err(Error::InvalidArgument(
                "log header key id does not match the key".into(),
            ));
        }
        Ok(LogWriter {
            out,
            header,
            encoder: BlockEncoder::new(compression, key)?,
            offset: len,
            scratch: Vec::new(),
            frame: Vec::new(),
        })
    }

    /// The file's header.
    pub fn header(&self) -> &LogHeader {
        &self.header
    }

    /// Bytes written so far: the offset the next record will start at.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The underlying writer, e.g. to sync it.
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.out
    }

    /// The underlying writer.
    pub fn get_ref(&self) -> &W {
        &self.out
    }

    /// Returns the underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Appends one record whose payload is the concatenation of `parts`.
    pub fn add_record_parts(&mut self, parts: &[&[u8]]) -> Result<u64> {
        let payload = parts.concat();
        self.add_record(&payload)
    }

    /// Appends one record and returns the offset it starts at. The bytes
    /// reach the writer in one `write_all`, so a record is never interleaved
    /// with another.
    pub fn add_record(&mut self, payload: &[u8]) -> Result<u64> {
        let mut block_left = LOG_BLOCK_SIZE - (self.offset % LOG_BLOCK_SIZE as u64) as usize;
        // The record starts where its first fragment header will.
        let mut padding = 0;
        if block_left < FRAGMENT_HEADER_LEN {
            padding = block_left;
            block_left = LOG_BLOCK_SIZE;
        }
        let start = self.offset + padding as u64;
        let ctx = BlockContext {
            file_number: self.header.file_number,
            file_uid: self.header.file_uid,
            offset: start,
            kind: self.header.kind.block_kind(),
        };
        self.scratch.clear();
        self.encoder.encode(payload, &ctx, &mut self.scratch)?;

        self.frame.clear();
        self.frame.resize(padding, 0);
        let mut rest = &self.scratch[..];
        let mut first = true;
        loop {
            if block_left < FRAGMENT_HEADER_LEN {
                self.frame.resize(self.frame.len() + block_left, 0);
                block_left = LOG_BLOCK_SIZE;
            }
            let room = block_left - FRAGMENT_HEADER_LEN;
            let n = rest.len().min(room);
            let last = n == rest.len();
            let kind = match (first, last) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, false) => MIDDLE,
                (false, true) => LAST,
            };
            let mut len_and_type = [0u8; 3];
            len_and_type[..2].copy_from_slice(&(n as u16).to_le_bytes());
            len_and_type[2] = kind;
            let crc = fragment_crc(&len_and_type, &rest[..n]);
            self.frame.extend_from_slice(&crc.to_le_bytes());
            self.frame.extend_from_slice(&len_and_type);
            self.frame.extend_from_slice(&rest[..n]);
            block_left -= FRAGMENT_HEADER_LEN + n;
            rest = &rest[n..];
            first = false;
            if last {
                break;
            }
        }
        self.out.write_all(&self.frame)?;
        self.offset += self.frame.len() as u64;
        Ok(start)
    }

    /// Appends a sync marker stating that the first `durable` bytes of the
    /// file are durable (the caller synced them). It lets a reader tell
    /// damage to synced bytes (corruption) from a torn unsynced tail. A
    /// marker never spans blocks: when the current block has no room for it
    /// nothing is written and `false` is returned; the caller may try again
    /// with its next write.
    pub fn add_sync_marker(&mut self, durable: u64) -> Result<bool> {
        if durable > self.offset {
            return Err(Error::InvalidArgument(format!(
                "sync marker at {durable} beyond the end of the log ({})",
                self.offset
            )));
        }
        let block_left = LOG_BLOCK_SIZE - (self.offset % LOG_BLOCK_SIZE as u64) as usize;
        if block_left < FRAGMENT_HEADER_LEN + SYNC_LEN {
            return Ok(false);
        }
        let mut len_and_type = [0u8; 3];
        len_and_type[..2].copy_from_slice(&(SYNC_LEN as u16).to_le_bytes());
        len_and_type[2] = SYNC;
        let mut payload = [0u8; SYNC_LEN];
        payload[..8].copy_from_slice(&durable.to_le_bytes());
        payload[8..].copy_from_slice(&sync_tag(&self.header.file_uid, durable).to_le_bytes());
        let crc = fragment_crc(&len_and_type, &payload);
        self.frame.clear();
        self.frame.extend_from_slice(&crc.to_le_bytes());
        self.frame.extend_from_slice(&len_and_type);
        self.frame.extend_from_slice(&payload);
        self.out.write_all(&self.frame)?;
        self.offset += self.frame.len() as u64;
        Ok(true)
    }

    /// Flushes the underlying writer's buffers (not a sync).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
