//! Blob files: values stored outside the tree (key-value separation).
//!
//! A value of at least the engine's threshold is written once, when it is
//! committed, to the blob file that goes with the WAL in use; the WAL
//! record, the memtable and every SST then hold a [`BlobPointer`] to it
//! under value kind [`BlobPointer`](crate::key::ValueKind::BlobPointer).
//! Compactions copy pointers, not values, so a large value is not written
//! again at every level.
//!
//! ```text
//! blob file = header ‖ value record*
//! header    = magic "STRATBLB" (8) ‖ version (u32 = 1) ‖ file number (u64)
//!             ‖ file uid (16) ‖ encrypted (u8: 0/1) ‖ key id (u32, 0 when not)
//!             ‖ crc32c (u32, over the 41 bytes before it)
//! value record = a stored block (§5) of kind 8 (`Blob`), bound to the file's
//!             number, its uid and the record's offset
//! pointer   = file number (varint) ‖ offset (varint) ‖ stored length (varint)
//!             ‖ value length (varint)
//! ```
//!
//! All integers are little-endian. A pointer names the record's offset and
//! stored length, so a read is one positioned read of exactly the record;
//! the value length lets a reader bound the decoded size before decoding.

use std::borrow::Cow;

use crate::codec::{
    BlockContext, BlockDecoder, BlockEncoder, BlockKind, EncryptionKey, MAX_BLOCK_LEN, TRAILER_LEN,
};
use crate::coding::{put_varint64, Cursor};
use crate::error::{Error, Result};

/// The magic number a blob file starts with.
pub const BLOB_MAGIC: &[u8; 8] = b"STRATBLB";

/// The blob file format version this build writes and reads.
pub const BLOB_VERSION: u32 = 1;

/// Bytes of a blob file's header; the first value record starts here.
pub const BLOB_HEADER_LEN: usize = 45;

/// The most bytes encryption adds to a record's payload (its tag).
const MAX_SEAL_OVERHEAD: usize = 16;

/// The longest stored record a pointer may name: the largest block the
/// codec decodes, its trailer and an encryption tag.
pub const MAX_STORED_LEN: u64 = (MAX_BLOCK_LEN + TRAILER_LEN + MAX_SEAL_OVERHEAD) as u64;

/// The header of a blob file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobFileHeader {
    /// The file's number (it shares it with the WAL it was written beside,
    /// or has its own when a compaction wrote it).
    pub file_number: u64,
    /// The file's random uid, also recorded in the manifest.
    pub file_uid: [u8; 16],
    /// The key the records are encrypted with, `None` for plaintext.
    pub key_id: Option<u32>,
}

impl BlobFileHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; BLOB_HEADER_LEN] {
        let mut h = [0u8; BLOB_HEADER_LEN];
        h[..8].copy_from_slice(BLOB_MAGIC);
        h[8..12].copy_from_slice(&BLOB_VERSION.to_le_bytes());
        h[12..20].copy_from_slice(&self.file_number.to_le_bytes());
        h[20..36].copy_from_slice(&self.file_uid);
        h[36] = u8::from(self.key_id.is_some());
        h[37..41].copy_from_slice(&self.key_id.unwrap_or(0).to_le_bytes());
        let crc = crc32c::crc32c(&h[..41]);
        h[41..45].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// Decodes a header from the first bytes of a file (at least
    /// [`BLOB_HEADER_LEN`] of them): the magic first, then the version,
    /// then the checksum.
    pub fn decode(bytes: &[u8]) -> Result<BlobFileHeader> {
        let Some(h) = bytes.get(..BLOB_HEADER_LEN) else {
            return Err(Error::corruption(
                format!(
                    "blob file header: {} bytes, expected {BLOB_HEADER_LEN}",
                    bytes.len()
                ),
                0,
            ));
        };
        if &h[..8] != BLOB_MAGIC {
            return Err(Error::corruption("blob file header: bad magic", 0));
        }
        let mut c = Cursor::new(&h[8..], 8, "blob file header");
        let version = c.u32_le()?;
        if version == 0 || version > BLOB_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "blob file".into(),
                found: version,
                supported: BLOB_VERSION,
            });
        }
        let stored = u32::from_le_bytes([h[41], h[42], h[43], h[44]]);
        let computed = crc32c::crc32c(&h[..41]);
        if stored != computed {
            return Err(Error::Checksum {
                what: "blob file header".into(),
                offset: 0,
                stored,
                computed,
            });
        }
        let file_number = c.u64_le()?;
        let file_uid = c.array::<16>()?;
        let encrypted = c.u8()?;
        let key_id = c.u32_le()?;
        let key_id = match encrypted {
            0 if key_id == 0 => None,
            1 => Some(key_id),
            _ => {
                return Err(Error::corruption(
                    "blob file header: bad encryption flag",
                    36,
                ))
            }
        };
        Ok(BlobFileHeader {
            file_number,
            file_uid,
            key_id,
        })
    }
}

/// Where a separated value lies: the stored value of an entry of kind
/// [`BlobPointer`](crate::key::ValueKind::BlobPointer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BlobPointer {
    /// The blob file's number.
    pub file_number: u64,
    /// The offset of the value's record in the file.
    pub offset: u64,
    /// The record's stored length (payload and trailer).
    pub stored_len: u64,
    /// The value's length once decoded.
    pub value_len: u64,
}

impl BlobPointer {
    /// The longest encoding of a pointer.
    pub const MAX_ENCODED_LEN: usize = 40;

    /// Appends the pointer's encoding to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_varint64(out, self.file_number);
        put_varint64(out, self.offset);
        put_varint64(out, self.stored_len);
        put_varint64(out, self.value_len);
    }

    /// The pointer's encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(Self::MAX_ENCODED_LEN);
        self.encode(&mut v);
        v
    }

    /// Decodes a pointer stored at `offset` (for errors). Refuses trailing
    /// bytes, a record before the end of the header or shorter than a
    /// trailer, and lengths no record can have.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<BlobPointer> {
        let mut c = Cursor::new(bytes, offset, "blob pointer");
        let p = BlobPointer {
            file_number: c.varint64()?,
            offset: c.varint64()?,
            stored_len: c.varint64()?,
            value_len: c.varint64()?,
        };
        if !c.is_empty() {
            return Err(c.error("trailing bytes"));
        }
        let bad = |why: &str| Error::corruption(format!("blob pointer: {why}"), offset);
        if p.offset < BLOB_HEADER_LEN as u64 || p.offset.checked_add(p.stored_len).is_none() {
            return Err(bad("offset out of range"));
        }
        if p.stored_len < TRAILER_LEN as u64 || p.stored_len > MAX_STORED_LEN {
            return Err(bad("stored length out of range"));
        }
        if p.value_len > MAX_BLOCK_LEN as u64 {
            return Err(bad("value length out of range"));
        }
        Ok(p)
    }

    /// The block context of the record the pointer names, in a file of
    /// uid `file_uid`.
    pub fn context(&self, file_uid: [u8; 16]) -> BlockContext {
        record_context(self.file_number, file_uid, self.offset)
    }

    /// Decodes the record the pointer names, read as `stored` (exactly
    /// `stored_len` bytes) from its file of uid `file_uid`, expecting `key`'s
    /// encryption (see [`BlockDecoder::decode`]). The value must have the
    /// length the pointer states.
    pub fn decode_record<'a>(
        &self,
        stored: &'a [u8],
        file_uid: [u8; 16],
        key: Option<&EncryptionKey>,
        decoder: &mut BlockDecoder,
    ) -> Result<Cow<'a, [u8]>> {
        if stored.len() as u64 != self.stored_len {
            return Err(Error::corruption(
                format!(
                    "blob record of file {}: {} bytes, the pointer says {}",
                    self.file_number,
                    stored.len(),
                    self.stored_len
                ),
                self.offset,
            ));
        }
        let value = decoder.decode(
            stored,
            &self.context(file_uid),
            key,
            self.value_len as usize,
        )?;
        if value.len() as u64 != self.value_len {
            return Err(Error::corruption(
                format!(
                    "blob record of file {}: value of {} bytes, the pointer says {}",
                    self.file_number,
                    value.len(),
                    self.value_len
                ),
                self.offset,
            ));
        }
        Ok(value)
    }
}

/// The block context of a value record at `offset` of blob file `number`.
pub fn record_context(number: u64, file_uid: [u8; 16], offset: u64) -> BlockContext {
    BlockContext {
        file_number: number,
        file_uid,
        offset,
        kind: BlockKind::Blob,
    }
}

/// Appends `value`'s record, to be stored at `offset` of blob file
/// `number`, to `out`, and returns its pointer.
pub fn encode_record(
    encoder: &mut BlockEncoder,
    number: u64,
    file_uid: [u8; 16],
    offset: u64,
    value: &[u8],
    out: &mut Vec<u8>,
) -> Result<BlobPointer> {
    let start = out.len();
    encoder.encode(value, &record_context(number, file_uid, offset), out)?;
    Ok(BlobPointer {
        file_number: number,
        offset,
        stored_len: (out.len() - start) as u64,
        value_len: value.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Compression;
    use proptest::prelude::*;
    use std::sync::Arc;

    #[test]
    fn a_record_round_trips_and_is_bound_to_its_place() {
        let key = Arc::new(EncryptionKey::new(3, [9; 32]));
        for key in [None, Some(key)] {
            for c in [Compression::None, Compression::Zstd { level: 1 }] {
                let mut enc = BlockEncoder::new(c, key.clone()).unwrap();
                let value = vec![7u8; 10_000];
                let mut out = vec![0u8; 100];
                let p = encode_record(&mut enc, 12, [1; 16], 100, &value, &mut out).unwrap();
                let stored = &out[100..];
                let mut dec = BlockDecoder::new();
                let got = p
                    .decode_record(stored, [1; 16], key.as_deref(), &mut dec)
                    .unwrap();
                assert_eq!(&got[..], &value[..]);
                // Encrypted, the record is bound to its file and offset
                // (plaintext records carry only a checksum, as SST blocks).
                if key.is_some() {
                    assert!(p
                        .decode_record(stored, [2; 16], key.as_deref(), &mut dec)
                        .is_err());
                    let moved = BlobPointer { offset: 101, ..p };
                    assert!(moved
                        .decode_record(stored, [1; 16], key.as_deref(), &mut dec)
                        .is_err());
                }
                // A pointer claiming another length: refused.
                let longer = BlobPointer {
                    value_len: p.value_len + 1,
                    ..p
                };
                assert!(longer
                    .decode_record(stored, [1; 16], key.as_deref(), &mut dec)
                    .is_err());
                let decoded = BlobPointer::decode(&p.to_bytes(), 0).unwrap();
                assert_eq!(decoded, p);
            }
        }
    }

    #[test]
    fn headers_round_trip_and_damage_is_refused() {
        for key_id in [None, Some(5)] {
            let h = BlobFileHeader {
                file_number: 77,
                file_uid: [4; 16],
                key_id,
            };
            let bytes = h.encode();
            assert_eq!(BlobFileHeader::decode(&bytes).unwrap(), h);
            for i in 0..bytes.len() {
                let mut bad = bytes;
                bad[i] ^= 0x10;
                assert!(BlobFileHeader::decode(&bad).is_err(), "byte {i}");
            }
            assert!(BlobFileHeader::decode(&bytes[..44]).is_err());
        }
    }

    proptest! {
        #[test]
        fn pointer_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..48)) {
            if let Ok(p) = BlobPointer::decode(&bytes, 0) {
                prop_assert!(p.stored_len <= MAX_STORED_LEN);
                prop_assert_eq!(p.to_bytes(), bytes);
            }
        }

        #[test]
        fn header_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = BlobFileHeader::decode(&bytes);
        }
    }
}
