//! Appending records to a log.

use std::io::Write;
use std::sync::Arc;

use crate::codec::{BlockContext, BlockEncoder, Compression, EncryptionKey, TRAILER_LEN};
use crate::error::{Error, Result};

use super::{
    fragment_crc, sync_tag, LogHeader, FIRST, FRAGMENT_HEADER_LEN, FULL, LAST, LOG_BLOCK_SIZE,
    MIDDLE, SYNC, SYNC_LEN,
};

/// The zero bytes that pad the end of a block too short for a fragment.
const ZEROS: [u8; FRAGMENT_HEADER_LEN] = [0; FRAGMENT_HEADER_LEN];

/// Writes records to any [`Write`], fragmenting them across 32 KiB blocks.
/// The writer does not sync: the engine decides when the bytes are durable.
pub struct LogWriter<W: Write> {
    out: W,
    header: LogHeader,
    encoder: BlockEncoder,
    offset: u64,
    /// The parts of a record joined, when the codec needs them in one piece.
    joined: Vec<u8>,
    /// A record's stored block, when the codec compresses or encrypts.
    scratch: Vec<u8>,
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
            joined: Vec::new(),
            scratch: Vec::new(),
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

    /// Where the next record goes: after `padding` zeros when the current
    /// block has no room for a fragment header, then `block_left` bytes in
    /// its block from `start`, the offset its block context is bound to.
    fn placement(&self) -> Placement {
        let mut block_left = LOG_BLOCK_SIZE - (self.offset % LOG_BLOCK_SIZE as u64) as usize;
        let mut padding = 0;
        if block_left < FRAGMENT_HEADER_LEN {
            padding = block_left;
            block_left = LOG_BLOCK_SIZE;
        }
        let start = self.offset + padding as u64;
        Placement {
            padding,
            block_left,
            start,
            ctx: BlockContext {
                file_number: self.header.file_number,
                file_uid: self.header.file_uid,
                offset: start,
                kind: self.header.kind.block_kind(),
            },
        }
    }

    /// Appends one record and returns the offset it starts at; see
    /// [`add_record_parts`](Self::add_record_parts).
    pub fn add_record(&mut self, payload: &[u8]) -> Result<u64> {
        self.add_record_parts(&[payload])
    }

    /// Appends one record whose payload is the concatenation of `parts` and
    /// returns the offset it starts at. The bytes are those of one record of
    /// the concatenated payload; the parts need not be joined first.
    ///
    /// When the codec neither compresses nor encrypts, the parts go from
    /// where they lie to the writer, each fragment header and each piece
    /// of data in its own `write_all` (for a `Vec<u8>`, one copy in all).
    /// Otherwise they are joined and encoded in a scratch buffer first.
    ///
    /// A record thus reaches the writer in several writes; it cannot be
    /// interleaved with another, since appending takes the writer by
    /// `&mut`, but the writer must not be shared with anything else that
    /// writes. On an error the offset does not move and the bytes already
    /// written are the start of a record that was never completed (a torn
    /// tail to a reader).
    pub fn add_record_parts(&mut self, parts: &[&[u8]]) -> Result<u64> {
        let Placement {
            padding,
            mut block_left,
            start,
            ctx,
        } = self.placement();
        // The stored block, as the pieces it is made of.
        let trailer;
        let stored: [&[u8]; 1];
        let mut rest = if self.encoder.is_plain() {
            trailer = self.encoder.plain_trailer(parts, &ctx)?;
            Pieces::new(parts, &trailer)
        } else {
            let raw = match parts {
                [one] => one,
                _ => {
                    self.joined.clear();
                    for p in parts {
                        self.joined.extend_from_slice(p);
                    }
                    &self.joined[..]
                }
            };
            self.scratch.clear();
            self.encoder.encode(raw, &ctx, &mut self.scratch)?;
            stored = [&self.scratch[..]];
            Pieces::new(&stored, &[])
        };

        if padding > 0 {
            self.out.write_all(&ZEROS[..padding])?;
        }
        let mut written = padding;
        let mut first = true;
        loop {
            if block_left < FRAGMENT_HEADER_LEN {
                if block_left > 0 {
                    self.out.write_all(&ZEROS[..block_left])?;
                }
                written += block_left;
                block_left = LOG_BLOCK_SIZE;
            }
            let room = block_left - FRAGMENT_HEADER_LEN;
            let n = rest.len.min(room);
            let last = n == rest.len;
            let kind = match (first, last) {
                (true, true) => FULL,
                (true, false) => FIRST,
                (false, false) => MIDDLE,
                (false, true) => LAST,
            };
            let mut header = [0u8; FRAGMENT_HEADER_LEN];
            header[4..6].copy_from_slice(&(n as u16).to_le_bytes());
            header[6] = kind;
            let mut crc = crc32c::crc32c(&header[4..]);
            let mut ahead = rest;
            ahead.take(n, |piece| {
                crc = crc32c::crc32c_append(crc, piece);
                Ok(())
            })?;
            header[..4].copy_from_slice(&crc.to_le_bytes());
            self.out.write_all(&header)?;
            rest.take(n, |piece| Ok(self.out.write_all(piece)?))?;
            written += FRAGMENT_HEADER_LEN + n;
            block_left -= FRAGMENT_HEADER_LEN + n;
            first = false;
            if last {
                break;
            }
        }
        self.offset += written as u64;
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
        let mut frame = [0u8; FRAGMENT_HEADER_LEN + SYNC_LEN];
        frame[..4].copy_from_slice(&crc.to_le_bytes());
        frame[4..FRAGMENT_HEADER_LEN].copy_from_slice(&len_and_type);
        frame[FRAGMENT_HEADER_LEN..].copy_from_slice(&payload);
        self.out.write_all(&frame)?;
        self.offset += frame.len() as u64;
        Ok(true)
    }

    /// Flushes the underlying writer's buffers (not a sync).
    pub fn flush(&mut self) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}

impl LogWriter<Vec<u8>> {
    /// [`add_record_parts`](LogWriter::add_record_parts) for a writer into
    /// memory, producing the same bytes. A record that fits in what is left
    /// of the current block, from a plain encoder (no compression, no
    /// encryption: the WAL's common case), is built where it will lie: the
    /// parts are copied once into the output, and each checksum is one pass
    /// over contiguous bytes. Any other record goes through
    /// `add_record_parts`.
    pub fn add_record_parts_in_place(&mut self, parts: &[&[u8]]) -> Result<u64> {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        let Placement {
            padding,
            block_left,
            start,
            ctx,
        } = self.placement();
        if !self.encoder.is_plain() || FRAGMENT_HEADER_LEN + len + TRAILER_LEN > block_left {
            return self.add_record_parts(parts);
        }
        let out = &mut self.out;
        let rollback = out.len();
        out.extend_from_slice(&ZEROS[..padding]);
        let fragment = out.len();
        out.extend_from_slice(&ZEROS);
        let payload = out.len();
        for p in parts {
            out.extend_from_slice(p);
        }
        if let Err(e) = self.encoder.seal_plain_in_place(out, payload, &ctx) {
            out.truncate(rollback);
            return Err(e);
        }
        let n = out.len() - payload;
        out[fragment + 4..fragment + 6].copy_from_slice(&(n as u16).to_le_bytes());
        out[fragment + 6] = FULL;
        let crc = crc32c::crc32c(&out[fragment + 4..]);
        out[fragment..fragment + 4].copy_from_slice(&crc.to_le_bytes());
        self.offset += (out.len() - rollback) as u64;
        Ok(start)
    }
}

/// Where the next record of a log goes (see `LogWriter::placement`).
struct Placement {
    padding: usize,
    block_left: usize,
    start: u64,
    ctx: BlockContext,
}

/// A byte sequence held in pieces: the parts of a payload, then a tail.
#[derive(Clone, Copy)]
struct Pieces<'a> {
    /// What is left of the part being read.
    head: &'a [u8],
    /// The parts after it.
    parts: &'a [&'a [u8]],
    /// What follows the parts.
    tail: &'a [u8],
    /// Bytes left in all.
    len: usize,
}

impl<'a> Pieces<'a> {
    fn new(parts: &'a [&'a [u8]], tail: &'a [u8]) -> Self {
        Pieces {
            head: &[],
            parts,
            tail,
            len: parts.iter().map(|p| p.len()).sum::<usize>() + tail.len(),
        }
    }

    /// Passes the next `n` bytes (at most what is left) to `f`, piece by
    /// piece, and moves past them.
    fn take(&mut self, n: usize, mut f: impl FnMut(&'a [u8]) -> Result<()>) -> Result<()> {
        let mut n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            if self.head.is_empty() {
                match self.parts.split_first() {
                    Some((&part, parts)) => {
                        self.head = part;
                        self.parts = parts;
                    }
                    None => self.head = std::mem::take(&mut self.tail),
                }
                continue;
            }
            let (piece, head) = self.head.split_at(n.min(self.head.len()));
            f(piece)?;
            self.head = head;
            n -= piece.len();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::{LogKind, LogReadOptions, LogReader};
    use proptest::prelude::*;

    const UID: [u8; 16] = *b"a log file's uid";

    /// The writer as it was before records could be given in parts: the
    /// payload encoded into a scratch buffer, the fragments framed in
    /// another, and the frame written at once. Kept as the reference the
    /// writer must match byte for byte.
    struct Reference {
        out: Vec<u8>,
        header: LogHeader,
        encoder: BlockEncoder,
        offset: u64,
        scratch: Vec<u8>,
        frame: Vec<u8>,
    }

    impl Reference {
        fn add_record(&mut self, payload: &[u8]) -> Result<u64> {
            let mut block_left = LOG_BLOCK_SIZE - (self.offset % LOG_BLOCK_SIZE as u64) as usize;
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

        fn add_sync_marker(&mut self, durable: u64) -> bool {
            let block_left = LOG_BLOCK_SIZE - (self.offset % LOG_BLOCK_SIZE as u64) as usize;
            if block_left < FRAGMENT_HEADER_LEN + SYNC_LEN {
                return false;
            }
            let mut len_and_type = [0u8; 3];
            len_and_type[..2].copy_from_slice(&(SYNC_LEN as u16).to_le_bytes());
            len_and_type[2] = SYNC;
            let mut payload = [0u8; SYNC_LEN];
            payload[..8].copy_from_slice(&durable.to_le_bytes());
            payload[8..].copy_from_slice(&sync_tag(&self.header.file_uid, durable).to_le_bytes());
            let crc = fragment_crc(&len_and_type, &payload);
            self.out.extend_from_slice(&crc.to_le_bytes());
            self.out.extend_from_slice(&len_and_type);
            self.out.extend_from_slice(&payload);
            self.offset += (FRAGMENT_HEADER_LEN + SYNC_LEN) as u64;
            true
        }
    }

    /// `len` bytes from `seed`: random, or drawn from a small alphabet so
    /// that zstd finds something to compress.
    fn bytes(seed: u64, len: usize, compressible: bool) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if compressible {
                    b'a' + (x % 3) as u8
                } else {
                    (x >> 24) as u8
                }
            })
            .collect()
    }

    /// Splits `payload` at `cuts` (taken modulo its length plus one; empty
    /// parts included).
    fn split<'a>(payload: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut at: Vec<usize> = cuts.iter().map(|c| c % (payload.len() + 1)).collect();
        at.sort_unstable();
        let mut parts = Vec::new();
        let mut from = 0;
        for a in at.into_iter().chain([payload.len()]) {
            parts.push(&payload[from..a]);
            from = a;
        }
        parts
    }

    #[derive(Debug, Clone)]
    enum Step {
        /// A record of `len` bytes from `seed`, given in parts cut at `cuts`.
        Record {
            seed: u64,
            len: usize,
            compressible: bool,
            cuts: Vec<usize>,
        },
        /// A sync marker for everything written so far.
        Marker,
    }

    fn step() -> impl Strategy<Value = Step> {
        let len = prop_oneof![
            0usize..64,
            0usize..3000,
            // Around one block, and across two or three.
            LOG_BLOCK_SIZE - 40..LOG_BLOCK_SIZE + 40,
            2 * LOG_BLOCK_SIZE - 20..3 * LOG_BLOCK_SIZE + 20,
        ];
        prop_oneof![
            4 => (any::<u64>(), len, any::<bool>(), proptest::collection::vec(any::<usize>(), 0..6))
                .prop_map(|(seed, len, compressible, cuts)| Step::Record { seed, len, compressible, cuts }),
            1 => Just(Step::Marker),
        ]
    }

    fn codec() -> impl Strategy<Value = (Compression, bool)> {
        (
            prop_oneof![
                Just(Compression::None),
                (1i32..4).prop_map(|level| Compression::Zstd { level })
            ],
            any::<bool>(),
        )
    }

    /// Where the log starts: at its beginning, or resumed close to a block
    /// boundary, so the first record meets the padding cases (fewer than a
    /// fragment header's bytes left in the block) and the exact fits.
    fn start() -> impl Strategy<Value = u64> {
        prop_oneof![
            Just(0u64),
            (
                1u64..4,
                0u64..=2 * FRAGMENT_HEADER_LEN as u64 + SYNC_LEN as u64
            )
                .prop_map(|(block, back)| block * LOG_BLOCK_SIZE as u64 - back),
            1u64..200_000,
        ]
    }

    proptest! {
        #[test]
        fn parts_write_the_bytes_the_whole_payload_did(
            steps in proptest::collection::vec(step(), 1..8),
            (compression, encrypted) in codec(),
            start in start(),
            in_place in any::<bool>(),
        ) {
            let key = encrypted.then(|| std::sync::Arc::new(EncryptionKey::new(7, [0x5c; 32])));
            let header = LogHeader {
                kind: LogKind::Wal,
                file_number: 42,
                file_uid: UID,
                key_id: key.as_ref().map(|k| k.id()),
            };
            let mut w = LogWriter::resume(Vec::new(), header, compression, key.clone(), start).unwrap();
            let mut r = Reference {
                out: Vec::new(),
                header,
                encoder: BlockEncoder::new(compression, key).unwrap(),
                offset: start,
                scratch: Vec::new(),
                frame: Vec::new(),
            };
            for step in &steps {
                match step {
                    Step::Record { seed, len, compressible, cuts } => {
                        let payload = bytes(*seed, *len, *compressible);
                        let parts = split(&payload, cuts);
                        let at = if in_place {
                            w.add_record_parts_in_place(&parts).unwrap()
                        } else {
                            w.add_record_parts(&parts).unwrap()
                        };
                        prop_assert_eq!(at, r.add_record(&payload).unwrap());
                    }
                    Step::Marker => {
                        let durable = w.offset();
                        prop_assert_eq!(w.add_sync_marker(durable).unwrap(), r.add_sync_marker(durable));
                    }
                }
                prop_assert_eq!(w.offset(), r.offset);
                prop_assert_eq!(w.get_ref().len(), r.out.len());
            }
            prop_assert!(w.get_ref() == &r.out, "the bytes differ");
        }
    }

    #[test]
    fn a_log_of_records_in_parts_reads_back() {
        let header = LogHeader {
            kind: LogKind::Manifest,
            file_number: 3,
            file_uid: UID,
            key_id: None,
        };
        let mut w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
        let big = bytes(9, 3 * LOG_BLOCK_SIZE, false);
        let records: Vec<Vec<&[u8]>> = vec![
            vec![],
            vec![&b""[..], &b""[..]],
            vec![&b"one "[..], &b"record "[..], &b"in parts"[..]],
            split(&big, &[5, LOG_BLOCK_SIZE, 2 * LOG_BLOCK_SIZE + 3]),
        ];
        for parts in &records {
            w.add_record_parts(parts).unwrap();
        }
        let bytes = w.into_inner();
        let mut reader = LogReader::new(
            &bytes,
            &LogReadOptions {
                durable_len: Some(bytes.len() as u64),
                ..LogReadOptions::new(3, LogKind::Manifest)
            },
        )
        .unwrap();
        for parts in &records {
            let (_, got) = reader.next_record().unwrap().unwrap();
            assert_eq!(got, parts.concat());
        }
        assert!(reader.next_record().unwrap().is_none());
    }

    #[test]
    fn the_header_record_is_what_it_was() {
        for key in [
            None,
            Some(std::sync::Arc::new(EncryptionKey::new(2, [1; 32]))),
        ] {
            let header = LogHeader {
                kind: LogKind::Wal,
                file_number: 8,
                file_uid: UID,
                key_id: key.as_ref().map(|k| k.id()),
            };
            let w =
                LogWriter::new(Vec::new(), header, Compression::Zstd { level: 1 }, key).unwrap();
            let mut r = Reference {
                out: Vec::new(),
                header,
                encoder: BlockEncoder::new(Compression::None, None).unwrap(),
                offset: 0,
                scratch: Vec::new(),
                frame: Vec::new(),
            };
            r.add_record(&header.encode()).unwrap();
            assert_eq!(w.get_ref(), &r.out);
        }
    }
}
