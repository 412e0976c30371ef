//! The log format shared by the write-ahead log and the manifest.
//!
//! A log file is a sequence of 32 KiB blocks. A record is split into
//! fragments that never cross a block boundary; each fragment is
//!
//! ```text
//! crc32c (u32 LE) ‖ length (u16 LE) ‖ type (u8) ‖ payload (length bytes)
//! ```
//!
//! where the crc covers the length, the type and the payload, and the type
//! is FULL (1), FIRST (2), MIDDLE (3) or LAST (4), or SYNC (5). When fewer than seven
//! bytes remain in a block they are zero-filled and the next fragment starts
//! in the next block, so every block boundary is a fragment boundary: a
//! reader can resynchronise after damage.
//!
//! A record's payload is a block-codec unit ([`crate::codec`]) bound to the
//! record's offset (the offset of its first fragment), so records can be
//! encrypted like SST blocks. The first record of every file is a
//! plaintext [`LogHeader`].
//!
//! A SYNC fragment (payload: u64 LE, then a u32 LE tag binding it to the
//! file's uid) is a sync marker, not a record: the writer states that the
//! first that-many bytes of the file were durable before the marker was
//! written. After a crash the unsynced tail of a log
//! may hold any mix of kept, lost, zeroed and garbled sectors, so damage is
//! a torn tail unless something proves the damaged bytes were durable: a
//! marker (before or after the damage) or the caller's durable length. Then
//! it is corruption.

mod reader;
mod writer;

pub use reader::{peek_header, LogEnd, LogReadOptions, LogReader};
pub use writer::LogWriter;

use crate::coding::Cursor;
use crate::error::{Error, Result};

/// Size of a log block.
pub const LOG_BLOCK_SIZE: usize = 32 * 1024;

/// Size of a fragment header.
pub const FRAGMENT_HEADER_LEN: usize = 7;

/// "STRATLOG" as a little-endian u64: the first field of every log header.
pub const LOG_MAGIC: u64 = u64::from_le_bytes(*b"STRATLOG");

/// The log format version this build writes and the newest it reads.
pub const LOG_FORMAT_VERSION: u32 = 1;

pub(crate) const FULL: u8 = 1;
pub(crate) const FIRST: u8 = 2;
pub(crate) const MIDDLE: u8 = 3;
pub(crate) const LAST: u8 = 4;
pub(crate) const SYNC: u8 = 5;
/// Payload length of a SYNC fragment.
pub(crate) const SYNC_LEN: usize = 12;

/// The tag that binds a sync marker to its file: without the file's random
/// uid nobody can make one, so bytes a user stores (which may contain
/// anything, a copy of a log included) never pass for a marker.
pub(crate) fn sync_tag(file_uid: &[u8; 16], durable: u64) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(file_uid), &durable.to_le_bytes())
}

/// Which log a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum LogKind {
    /// The write-ahead log.
    Wal = 1,
    /// The manifest.
    Manifest = 2,
}

impl LogKind {
    pub(crate) fn block_kind(self) -> crate::codec::BlockKind {
        match self {
            LogKind::Wal => crate::codec::BlockKind::WalRecord,
            LogKind::Manifest => crate::codec::BlockKind::ManifestRecord,
        }
    }
}

/// The first record of every log file, stored in the clear:
///
/// ```text
/// magic u64 LE ‖ version u32 LE ‖ kind u8 ‖ file_number u64 LE
/// ‖ file_uid [16] ‖ encrypted u8 (0/1) ‖ key_id u32 LE
/// ```
///
/// Every later record of the file is encrypted with `key_id` when
/// `encrypted` is 1, and plaintext otherwise; a record that disagrees is
/// refused, so encryption cannot be stripped record by record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogHeader {
    /// WAL or manifest.
    pub kind: LogKind,
    /// The file's number.
    pub file_number: u64,
    /// The file's random id, bound into every record's associated data.
    pub file_uid: [u8; 16],
    /// The key id of the file's records, `None` for plaintext.
    pub key_id: Option<u32>,
}

impl LogHeader {
    const LEN: usize = 8 + 4 + 1 + 8 + 16 + 1 + 4;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::LEN);
        out.extend_from_slice(&LOG_MAGIC.to_le_bytes());
        out.extend_from_slice(&LOG_FORMAT_VERSION.to_le_bytes());
        out.push(self.kind as u8);
        out.extend_from_slice(&self.file_number.to_le_bytes());
        out.extend_from_slice(&self.file_uid);
        out.push(u8::from(self.key_id.is_some()));
        out.extend_from_slice(&self.key_id.unwrap_or(0).to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<LogHeader> {
        let mut c = Cursor::new(bytes, 0, "log header");
        if c.u64_le()? != LOG_MAGIC {
            return Err(Error::corruption(
                "log header: bad magic, not a log file",
                0,
            ));
        }
        let version = c.u32_le()?;
        if version == 0 || version > LOG_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "log file".into(),
                found: version,
                supported: LOG_FORMAT_VERSION,
            });
        }
        let kind = match c.u8()? {
            1 => LogKind::Wal,
            2 => LogKind::Manifest,
            _ => return Err(c.error("unknown log kind")),
        };
        let file_number = c.u64_le()?;
        let file_uid = c.array::<16>()?;
        let encrypted = c.u8()?;
        let key_id = c.u32_le()?;
        let key_id = match (encrypted, key_id) {
            (0, 0) => None,
            (1, id) => Some(id),
            _ => return Err(c.error("bad encryption field")),
        };
        if !c.is_empty() {
            return Err(c.error("trailing bytes"));
        }
        Ok(LogHeader {
            kind,
            file_number,
            file_uid,
            key_id,
        })
    }
}

/// The crc of a fragment: over its length, type and payload.
pub(crate) fn fragment_crc(len_and_type: &[u8], payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(len_and_type), payload)
}
