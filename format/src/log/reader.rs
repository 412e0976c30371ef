//! Reading a log: records in order, and an honest account of how the file
//! ends.

use std::sync::Arc;

use crate::codec::{BlockContext, BlockDecoder, EncryptionKey, Keyring, MAX_BLOCK_LEN};
use crate::error::{Error, Result};

use super::{
    fragment_crc, sync_tag, LogHeader, LogKind, FIRST, FRAGMENT_HEADER_LEN, FULL, LAST,
    LOG_BLOCK_SIZE, MIDDLE, SYNC, SYNC_LEN,
};

/// How a log ended, once [`LogReader::next_record`] has returned `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogEnd {
    /// Every byte belonged to a complete, valid record.
    Clean,
    /// The record starting at `offset` is incomplete or damaged and nothing
    /// valid follows it: the last write was cut off by a crash. The file's
    /// valid part ends at `offset`.
    TornTail {
        /// Where the cut-off record starts.
        offset: u64,
    },
}

/// What a reader expects of a log file besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct LogReadOptions<'a> {
    /// The file's number.
    pub file_number: u64,
    /// WAL or manifest.
    pub kind: LogKind,
    /// Keys for encrypted logs.
    pub keyring: Option<&'a Keyring>,
    /// How many bytes of the file are known to be durable; see [`LogReader`].
    pub durable_len: Option<u64>,
    /// The uid the file must carry, when the caller recorded it.
    pub expected_uid: Option<[u8; 16]>,
    /// The encryption the file must declare (`Some(None)`: plaintext;
    /// `Some(Some(id))`: encrypted with key `id`), so that a forged header
    /// cannot strip the encryption. `None` accepts what the header says.
    pub expected_key_id: Option<Option<u32>>,
}

impl<'a> LogReadOptions<'a> {
    /// Options that check only the file number and kind.
    pub fn new(file_number: u64, kind: LogKind) -> Self {
        LogReadOptions {
            file_number,
            kind,
            keyring: None,
            durable_len: None,
            expected_uid: None,
            expected_key_id: None,
        }
    }
}

/// Reads the records of one log file held in memory.
///
/// Damage (a bad fragment, an unfinished record, a record that fails to
/// decode) at an offset known to have been durable is
/// [`Error::Corruption`] at that offset; damage anywhere else is a torn
/// tail ([`LogEnd::TornTail`]), the normal trace of a crash, and nothing
/// after it is read. An offset is known durable when it lies below the
/// caller's `durable_len` or below what a sync marker anywhere in the file
/// (before or after the damage) states.
#[derive(Debug)]
pub struct LogReader<'a> {
    data: &'a [u8],
    pos: usize,
    kind: LogKind,
    file_number: u64,
    header: Option<LogHeader>,
    key: Option<Arc<EncryptionKey>>,
    durable_len: Option<u64>,
    /// The largest durable length the markers read so far state.
    marked: u64,
    /// The uid the caller expects, to check markers when the header itself
    /// is damaged.
    expected_uid: Option<[u8; 16]>,
    end: Option<LogEnd>,
    /// The corruption found, repeated to every later call.
    failed: Option<Error>,
    valid_len: u64,
    decoder: BlockDecoder,
}

/// One fragment as read, or the reason it is bad.
enum Fragment {
    /// A valid fragment starting at `at`.
    Ok {
        at: usize,
        kind: u8,
        payload: std::ops::Range<usize>,
    },
    /// A bad fragment at `at`.
    Bad {
        at: usize,
    },
    Eof,
}

impl<'a> LogReader<'a> {
    /// Opens a log held in `data` and reads its header. A file whose header
    /// record is itself torn (a crash right after the file was created) opens
    /// with no header and no records.
    pub fn new(data: &'a [u8], opts: &LogReadOptions<'_>) -> Result<Self> {
        let n = opts.file_number;
        let mut r = LogReader {
            data,
            pos: 0,
            kind: opts.kind,
            file_number: n,
            header: None,
            key: None,
            durable_len: opts.durable_len,
            marked: 0,
            expected_uid: opts.expected_uid,
            end: None,
            failed: None,
            valid_len: 0,
            decoder: BlockDecoder::new(),
        };
        let Some((_, bytes)) = r.read_record([0; 16])? else {
            return Ok(r);
        };
        let header = LogHeader::decode(&bytes)?;
        let kind = opts.kind;
        let mismatch = |what: &str| {
            Err(Error::corruption(
                format!("{kind:?} log {n}: header {what} differs from the expected one"),
                0,
            ))
        };
        if header.kind != kind || header.file_number != n {
            return mismatch("kind or file number");
        }
        if opts.expected_uid.is_some_and(|u| u != header.file_uid) {
            return mismatch("file uid");
        }
        if let Some(expected) = opts.expected_key_id {
            if expected != header.key_id {
                return Err(Error::Decrypt {
                    what: format!("{kind:?} log {n}: header declares another encryption"),
                    offset: 0,
                    key_id: expected.or(header.key_id).unwrap_or(0),
                });
            }
        }
        if let Some(id) = header.key_id {
            let key = opts
                .keyring
                .and_then(|k| k.get(id))
                .ok_or_else(|| Error::MissingKey {
                    what: format!("{kind:?} log {n}"),
                    offset: 0,
                    key_id: id,
                })?;
            r.key = Some(key.clone());
        }
        r.header = Some(header);
        Ok(r)
    }

    /// The file's header; `None` when even the header was cut off.
    pub fn header(&self) -> Option<&LogHeader> {
        self.header.as_ref()
    }

    /// How the log ended; `None` until every record has been read.
    pub fn end(&self) -> Option<LogEnd> {
        self.end
    }

    /// Bytes from the start of the file to the end of the last valid record:
    /// where a writer may resume after truncating the rest.
    pub fn valid_len(&self) -> u64 {
        self.valid_len
    }

    /// The next record: its offset and its decoded payload. `None` at the end
    /// of the valid records; see [`end`](Self::end) for how the file ended.
    pub fn next_record(&mut self) -> Result<Option<(u64, Vec<u8>)>> {
        match &self.header {
            Some(h) => {
                let uid = h.file_uid;
                self.read_record(uid)
            }
            None => Ok(None),
        }
    }

    fn read_record(&mut self, file_uid: [u8; 16]) -> Result<Option<(u64, Vec<u8>)>> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.end.is_some() {
            return Ok(None);
        }
        let mut record: Option<(usize, Vec<u8>)> = None;
        loop {
            match self.read_fragment() {
                Fragment::Eof => {
                    return match record {
                        None => self.finish_clean().map(|()| None),
                        Some((start, _)) => self.finish_bad(start).map(|()| None),
                    };
                }
                Fragment::Bad { at } => {
                    let start = record.map_or(at, |(s, _)| s);
                    return self.finish_bad(start).map(|()| None);
                }
                Fragment::Ok { at, kind, payload } => {
                    let bytes = &self.data[payload];
                    match (kind, record.as_mut()) {
                        (SYNC, None) => match sync_marker(bytes, at, &file_uid) {
                            Some(d) => {
                                self.marked = self.marked.max(d);
                                self.valid_len = self.pos as u64;
                                continue;
                            }
                            None => return self.finish_bad(at).map(|()| None),
                        },
                        (FULL | FIRST, None) => record = Some((at, bytes.to_vec())),
                        (MIDDLE | LAST, Some((_, buf))) => buf.extend_from_slice(bytes),
                        // A record started but never finished, or a
                        // continuation with no start: the fragment at `at`
                        // is itself valid data after the damage.
                        (_, r) => {
                            let start = r.map_or(at, |(s, _)| *s);
                            return self.finish_bad(start).map(|()| None);
                        }
                    }
                    if matches!(kind, FULL | LAST) {
                        let (start, stored) = record.take().unwrap_or_default();
                        let ctx = BlockContext {
                            file_number: self.file_number,
                            file_uid,
                            offset: start as u64,
                            kind: self.kind.block_kind(),
                        };
                        let decoded =
                            self.decoder
                                .decode(&stored, &ctx, self.key.as_deref(), MAX_BLOCK_LEN);
                        return match decoded {
                            Ok(plain) => {
                                self.valid_len = self.pos as u64;
                                Ok(Some((start as u64, plain.into_owned())))
                            }
                            Err(e) => {
                                self.failed = Some(e.clone());
                                Err(e)
                            }
                        };
                    }
                }
            }
        }
    }

    /// Reads the fragment at `self.pos`, skipping block padding (which must
    /// be zero), and advances past it when it is good.
    fn read_fragment(&mut self) -> Fragment {
        let len = self.data.len();
        let block_left = LOG_BLOCK_SIZE - self.pos % LOG_BLOCK_SIZE;
        if block_left < FRAGMENT_HEADER_LEN {
            let end = (self.pos + block_left).min(len);
            if self.data[self.pos..end].iter().any(|&b| b != 0) {
                return Fragment::Bad { at: self.pos };
            }
            self.pos = end;
        }
        let at = self.pos;
        if at == len {
            return Fragment::Eof;
        }
        match fragment_at(self.data, at) {
            Some((kind, payload)) => {
                self.pos = payload.end;
                Fragment::Ok { at, kind, payload }
            }
            None => Fragment::Bad { at },
        }
    }

    fn finish_clean(&mut self) -> Result<()> {
        if let Some(d) = self.durable_len {
            if (self.data.len() as u64) < d {
                let e = Error::corruption(
                    format!(
                        "{:?} log {}: file of {} bytes is shorter than its durable length {d}",
                        self.kind,
                        self.file_number,
                        self.data.len()
                    ),
                    self.data.len() as u64,
                );
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
        self.end = Some(LogEnd::Clean);
        Ok(())
    }

    /// True when the record at `offset` is known to have been durable: it
    /// lies below the caller's durable length or below what a sync marker
    /// anywhere in the file states. A caller that finds such a record
    /// wanting (a value it names is missing) has corruption; otherwise the
    /// record belongs to a torn tail.
    pub fn is_durable(&self, offset: u64) -> bool {
        if offset < self.durable_len.unwrap_or(0).max(self.marked) {
            return true;
        }
        let uid = self.header.map(|h| h.file_uid).or(self.expected_uid);
        let from = usize::try_from(offset.saturating_add(1)).unwrap_or(usize::MAX);
        let after = uid.map_or(0, |u| markers_after(self.data, from, &u));
        offset < self.durable_len.unwrap_or(0).max(self.marked).max(after)
    }

    /// Decides whether the record at `offset`, found damaged, is a torn tail
    /// or corruption.
    fn finish_bad(&mut self, offset: usize) -> Result<()> {
        let uid = self.header.map(|h| h.file_uid).or(self.expected_uid);
        let after = uid.map_or(0, |u| markers_after(self.data, offset + 1, &u));
        let durable = self.durable_len.unwrap_or(0).max(self.marked).max(after);
        let torn = offset as u64 >= durable;
        if !torn {
            let e = Error::corruption(
                format!(
                    "{:?} log {}: damaged record before the end of the log",
                    self.kind, self.file_number
                ),
                offset as u64,
            );
            self.failed = Some(e.clone());
            return Err(e);
        }
        self.end = Some(LogEnd::TornTail {
            offset: offset as u64,
        });
        Ok(())
    }
}

/// The header of the log in `data`, read without keys or expectations (the
/// header record is plaintext), so a caller can fetch the right key before
/// reading the records. `None` when the header record is cut off or damaged.
pub fn peek_header(data: &[u8]) -> Option<LogHeader> {
    let (kind, payload) = fragment_at(data, 0)?;
    if kind != FULL {
        return None;
    }
    let ctx = BlockContext {
        file_number: 0,
        file_uid: [0; 16],
        offset: 0,
        kind: crate::codec::BlockKind::WalRecord,
    };
    let plain = BlockDecoder::new()
        .decode(&data[payload], &ctx, None, MAX_BLOCK_LEN)
        .ok()?;
    LogHeader::decode(&plain).ok()
}

/// Parses and verifies the fragment header at `pos`: its type, its length
/// (inside the block and the file) and its crc. `None` when it is bad.
fn fragment_at(data: &[u8], pos: usize) -> Option<(u8, std::ops::Range<usize>)> {
    let block_end = pos - pos % LOG_BLOCK_SIZE + LOG_BLOCK_SIZE;
    let header = data.get(pos..pos + FRAGMENT_HEADER_LEN)?;
    let kind = header[6];
    let n = u16::from_le_bytes([header[4], header[5]]) as usize;
    let start = pos + FRAGMENT_HEADER_LEN;
    if !(FULL..=SYNC).contains(&kind) || start + n > block_end {
        return None;
    }
    if start + n > data.len() {
        // Cut off by the end of the file: a torn write.
        return None;
    }
    let stored = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    if fragment_crc(&header[4..7], &data[start..start + n]) == stored {
        Some((kind, start..start + n))
    } else {
        None
    }
}

/// The durable length a sync marker fragment found at `at` states, if its
/// tag binds it to this file and it claims no more than its own offset.
fn sync_marker(payload: &[u8], at: usize, file_uid: &[u8; 16]) -> Option<u64> {
    let d = u64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let tag = u32::from_le_bytes(payload.get(8..SYNC_LEN)?.try_into().ok()?);
    (payload.len() == SYNC_LEN && tag == sync_tag(file_uid, d) && d <= at as u64).then_some(d)
}

/// The largest durable length stated by any valid sync marker at or after
/// `from`. Damage may have broken the fragment chain, so every offset is
/// tried; a stored value cannot contain a false marker, whose tag needs the
/// file's random uid.
fn markers_after(data: &[u8], from: usize, file_uid: &[u8; 16]) -> u64 {
    let mut best = 0;
    let mut p = from;
    while p + FRAGMENT_HEADER_LEN + SYNC_LEN <= data.len() {
        let h = &data[p..p + FRAGMENT_HEADER_LEN];
        if h[6] == SYNC && h[4] == SYNC_LEN as u8 && h[5] == 0 {
            if let Some((SYNC, payload)) = fragment_at(data, p) {
                if let Some(d) = sync_marker(&data[payload], p, file_uid) {
                    best = best.max(d);
                }
            }
        }
        p += 1;
    }
    best
}
