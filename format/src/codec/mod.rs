//! The block codec: what turns a block's bytes into what is stored on disk.
//!
//! Applied in this order: compress (none or zstd; the block is stored
//! uncompressed when compression saves less than 12.5%), then encrypt (none
//! or AES-256-GCM-SIV), then append the trailer:
//!
//! ```text
//! payload ‖ compression (u8) ‖ encryption (u8) ‖ key_id (u32 LE) ‖ crc32c (u32 LE)
//! ```
//!
//! The crc32c covers the payload and the first six trailer bytes, so bit rot
//! is caught before any decryption or decompression is attempted. An
//! encrypted payload is `ciphertext ‖ tag` (16 bytes); its nonce is derived
//! from the file number and the offset and is not stored, and its associated
//! data binds it to its file, offset, kind, codec and key (see SPEC.md).

mod crypto;

use std::borrow::Cow;

pub use crypto::{EncryptionKey, Keyring, MAX_NONCE_FIELD, TAG_LEN};

use crate::error::{Error, Result};

/// Bytes the trailer adds after every stored payload.
pub const TRAILER_LEN: usize = 10;

/// The largest decoded block the codec produces: a 256 MiB value plus a
/// 64 KiB key and some framing. A stored block claiming more is refused
/// before any allocation.
pub const MAX_BLOCK_LEN: usize = 256 * 1024 * 1024 + 1024 * 1024;

const COMPRESSION_NONE: u8 = 0;
const COMPRESSION_ZSTD: u8 = 1;
const ENCRYPTION_NONE: u8 = 0;
const ENCRYPTION_AES256_GCM_SIV: u8 = 1;

/// Domain separation for the associated data, and the codec's version.
const AAD_MAGIC: &[u8; 8] = b"STRATA\x00\x01";

/// How blocks are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// Stored as is.
    #[default]
    None,
    /// zstd at the given level (1 to 22; 0 means zstd's default, 3).
    Zstd {
        /// The zstd compression level.
        level: i32,
    },
}

impl Compression {
    /// The byte that names the compression in a trailer.
    pub fn id(self) -> u8 {
        match self {
            Compression::None => COMPRESSION_NONE,
            Compression::Zstd { .. } => COMPRESSION_ZSTD,
        }
    }
}

/// What a stored structure is. It is part of the associated data, so a
/// block of one kind cannot be passed off as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BlockKind {
    /// An SST data block.
    Data = 1,
    /// An SST index block.
    Index = 2,
    /// An SST filter block.
    Filter = 3,
    /// An SST properties block.
    Properties = 4,
    /// An SST footer (authenticated, not encrypted).
    Footer = 5,
    /// A record of the write-ahead log.
    WalRecord = 6,
    /// A record of the manifest.
    ManifestRecord = 7,
    /// A value stored in a blob file (see [`crate::blob`]).
    Blob = 8,
    /// An SST range-deletion block: the table's range tombstones
    /// (see [`crate::range_del`]).
    RangeDeletions = 9,
}

impl BlockKind {
    /// Every kind, the reserved one included, in code order.
    pub const ALL: [BlockKind; 9] = [
        BlockKind::Data,
        BlockKind::Index,
        BlockKind::Filter,
        BlockKind::Properties,
        BlockKind::Footer,
        BlockKind::WalRecord,
        BlockKind::ManifestRecord,
        BlockKind::Blob,
        BlockKind::RangeDeletions,
    ];

    /// True for kinds set aside for a later format version: the codec
    /// refuses them, on write and on read. None is now (blob values, once
    /// reserved, have their meaning).
    pub fn is_reserved(self) -> bool {
        false
    }
}

/// Where a block lives: the facts its encryption is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockContext {
    /// The number of the file that holds the block.
    pub file_number: u64,
    /// The file's random 128-bit id, recorded in the file and the manifest.
    pub file_uid: [u8; 16],
    /// The block's offset in the file.
    pub offset: u64,
    /// What the block is.
    pub kind: BlockKind,
}

fn associated_data(ctx: &BlockContext, compression: u8, key_id: u32) -> [u8; 46] {
    let mut aad = [0u8; 46];
    aad[..8].copy_from_slice(AAD_MAGIC);
    aad[8] = ctx.kind as u8;
    aad[9..17].copy_from_slice(&ctx.file_number.to_le_bytes());
    aad[17..33].copy_from_slice(&ctx.file_uid);
    aad[33..41].copy_from_slice(&ctx.offset.to_le_bytes());
    aad[41] = compression;
    aad[42..46].copy_from_slice(&key_id.to_le_bytes());
    aad
}

/// The nonce of the block `ctx` names. A blob file shares its number with
/// the WAL it was written beside, so a blob record's offset carries bit 47
/// to keep its nonce apart from any WAL record's: offsets in a blob file
/// must stay below 2^47.
fn block_nonce(ctx: &BlockContext) -> Result<[u8; 12]> {
    const BLOB_BIT: u64 = 1 << 47;
    if ctx.kind == BlockKind::Blob {
        if ctx.offset >= BLOB_BIT {
            return Err(Error::InvalidArgument(format!(
                "blob record offset {} exceeds 2^47 - 1",
                ctx.offset
            )));
        }
        return crypto::nonce(ctx.file_number, ctx.offset | BLOB_BIT);
    }
    crypto::nonce(ctx.file_number, ctx.offset)
}

/// Refuses to write a block of a reserved kind: no reader would accept it.
fn writable(ctx: &BlockContext) -> Result<()> {
    if ctx.kind.is_reserved() {
        return Err(Error::InvalidArgument(format!(
            "block kind {:?} is reserved",
            ctx.kind
        )));
    }
    Ok(())
}

/// A MAC over `data`, bound to the context like a block: used to
/// authenticate structures that must stay in the clear, like a footer.
pub fn authenticate(key: &EncryptionKey, ctx: &BlockContext, data: &[u8]) -> Result<[u8; TAG_LEN]> {
    writable(ctx)?;
    let nonce = block_nonce(ctx)?;
    let mut aad = associated_data(ctx, COMPRESSION_NONE, key.id()).to_vec();
    aad.extend_from_slice(data);
    Ok(key.mac(&nonce, &aad))
}

/// Encodes blocks with fixed settings, keeping the zstd context between
/// blocks (creating one per block would cost more than compressing 4 KiB).
pub struct BlockEncoder {
    compression: Compression,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    key: Option<std::sync::Arc<EncryptionKey>>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for BlockEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockEncoder")
            .field("compression", &self.compression)
            .field("key_id", &self.key.as_ref().map(|k| k.id()))
            .finish()
    }
}

impl BlockEncoder {
    /// An encoder that compresses with `compression` and, when `key` is
    /// given, encrypts with it.
    pub fn new(
        compression: Compression,
        key: Option<std::sync::Arc<EncryptionKey>>,
    ) -> Result<Self> {
        let compressor = match compression {
            Compression::None => None,
            Compression::Zstd { level } => {
                let range = zstd::compression_level_range();
                if level != 0 && !range.contains(&level) {
                    return Err(Error::InvalidArgument(format!(
                        "zstd level {level} outside {}..={}",
                        range.start(),
                        range.end()
                    )));
                }
                Some(zstd::bulk::Compressor::new(level).map_err(Error::from)?)
            }
        };
        Ok(BlockEncoder {
            compression,
            compressor,
            key,
            scratch: Vec::new(),
        })
    }

    /// The compression this encoder applies.
    pub fn compression(&self) -> Compression {
        self.compression
    }

    /// The key this encoder encrypts with.
    pub fn key(&self) -> Option<&std::sync::Arc<EncryptionKey>> {
        self.key.as_ref()
    }

    /// True when the encoder neither compresses nor encrypts: the stored
    /// form of a block is then the block's bytes followed by its
    /// [`plain_trailer`](Self::plain_trailer).
    pub fn is_plain(&self) -> bool {
        self.compressor.is_none() && self.key.is_none()
    }

    /// The trailer of the stored form of the block `parts` concatenated,
    /// for a plain encoder ([`is_plain`](Self::is_plain)): that stored form
    /// is the parts followed by this trailer, exactly what
    /// [`encode`](Self::encode) would produce, so a caller can write the
    /// parts from where they lie instead of copying them. Refuses what
    /// `encode` refuses, and an encoder that is not plain.
    pub fn plain_trailer(&self, parts: &[&[u8]], ctx: &BlockContext) -> Result<[u8; TRAILER_LEN]> {
        if !self.is_plain() {
            return Err(Error::InvalidArgument(
                "plain trailer asked of an encoder that compresses or encrypts".into(),
            ));
        }
        encodable(parts.iter().map(|p| p.len()).sum(), ctx)?;
        let crc = parts.iter().fold(0, |crc, p| crc32c::crc32c_append(crc, p));
        Ok(trailer(crc, COMPRESSION_NONE, ENCRYPTION_NONE, 0))
    }

    /// Turns the payload at `out[start..]` into its stored form in place by
    /// appending the trailer, for a plain encoder: the same bytes
    /// [`encode`](Self::encode) produces, with the payload written only
    /// once, by the caller, where it is stored. Refuses what `encode`
    /// refuses, and an encoder that is not plain (then `out` is unchanged).
    pub fn seal_plain_in_place(
        &self,
        out: &mut Vec<u8>,
        start: usize,
        ctx: &BlockContext,
    ) -> Result<()> {
        if !self.is_plain() || start > out.len() {
            return Err(Error::InvalidArgument(
                "in-place sealing asked of an encoder that compresses or encrypts".into(),
            ));
        }
        encodable(out.len() - start, ctx)?;
        let t = trailer(
            crc32c::crc32c(&out[start..]),
            COMPRESSION_NONE,
            ENCRYPTION_NONE,
            0,
        );
        out.extend_from_slice(&t);
        Ok(())
    }

    /// Appends the stored form of `raw` (payload and trailer) to `out`. A
    /// reserved block kind ([`BlockKind::is_reserved`]) is refused.
    pub fn encode(&mut self, raw: &[u8], ctx: &BlockContext, out: &mut Vec<u8>) -> Result<()> {
        encodable(raw.len(), ctx)?;
        let start = out.len();
        let mut compression = COMPRESSION_NONE;
        if let Some(c) = self.compressor.as_mut() {
            self.scratch.clear();
            self.scratch
                .reserve(zstd::zstd_safe::compress_bound(raw.len()));
            c.compress_to_buffer(raw, &mut self.scratch)
                .map_err(Error::from)?;
            // Worth it only when it saves at least 12.5%.
            if self.scratch.len() <= raw.len() - raw.len() / 8 {
                out.extend_from_slice(&self.scratch);
                compression = COMPRESSION_ZSTD;
            }
        }
        if compression == COMPRESSION_NONE {
            out.extend_from_slice(raw);
        }
        let (encryption, key_id) = match &self.key {
            Some(key) => {
                let nonce = block_nonce(ctx)?;
                let aad = associated_data(ctx, compression, key.id());
                let mut payload = out.split_off(start);
                key.seal(&nonce, &aad, &mut payload)?;
                out.extend_from_slice(&payload);
                (ENCRYPTION_AES256_GCM_SIV, key.id())
            }
            None => (ENCRYPTION_NONE, 0),
        };
        let payload_crc = crc32c::crc32c(&out[start..]);
        out.extend_from_slice(&trailer(payload_crc, compression, encryption, key_id));
        Ok(())
    }
}

/// Refuses to encode a block over the size limit or of a reserved kind.
fn encodable(len: usize, ctx: &BlockContext) -> Result<()> {
    writable(ctx)?;
    if len > MAX_BLOCK_LEN {
        return Err(Error::InvalidArgument(format!(
            "block of {len} bytes exceeds the limit of {MAX_BLOCK_LEN}"
        )));
    }
    Ok(())
}

/// The trailer of a stored block whose payload has the crc32c
/// `payload_crc`: the codec bytes, then the crc32c of payload and codec
/// bytes.
fn trailer(payload_crc: u32, compression: u8, encryption: u8, key_id: u32) -> [u8; TRAILER_LEN] {
    let mut t = [0u8; TRAILER_LEN];
    t[0] = compression;
    t[1] = encryption;
    t[2..6].copy_from_slice(&key_id.to_le_bytes());
    let crc = crc32c::crc32c_append(payload_crc, &t[..6]);
    t[6..].copy_from_slice(&crc.to_le_bytes());
    t
}

/// Decodes one stored block with a fresh [`BlockDecoder`]; see
/// [`BlockDecoder::decode`]. Hot paths keep a decoder instead.
pub fn decode_block<'a>(
    stored: &'a [u8],
    ctx: &BlockContext,
    key: Option<&EncryptionKey>,
    max_len: usize,
) -> Result<Cow<'a, [u8]>> {
    BlockDecoder::new().decode(stored, ctx, key, max_len)
}

/// Decodes stored blocks, keeping a zstd decompression context between
/// calls (creating one per block costs about as much as decompressing it).
#[derive(Default)]
pub struct BlockDecoder {
    decompressor: Option<zstd::bulk::Decompressor<'static>>,
}

impl std::fmt::Debug for BlockDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockDecoder").finish_non_exhaustive()
    }
}

impl BlockDecoder {
    /// A decoder; its zstd context is created on first use.
    pub fn new() -> Self {
        BlockDecoder::default()
    }

    /// Decodes a stored block (payload and trailer) back to its bytes.
    ///
    /// `key` is the key the caller expects the block to be encrypted with, or
    /// `None` for a plaintext block: a block that is encrypted when it should not
    /// be, or plaintext when it should be encrypted, or names another key id, is
    /// refused, so stripping the encryption of a block is detected. The result
    /// borrows `stored` when the block was neither compressed nor encrypted.
    /// A block of a reserved kind ([`BlockKind::is_reserved`]) is refused as
    /// corruption.
    pub fn decode<'a>(
        &mut self,
        stored: &'a [u8],
        ctx: &BlockContext,
        key: Option<&EncryptionKey>,
        max_len: usize,
    ) -> Result<Cow<'a, [u8]>> {
        let what = |s: &str| format!("{:?} block of file {}: {s}", ctx.kind, ctx.file_number);
        if ctx.kind.is_reserved() {
            return Err(Error::corruption(
                what(&format!(
                    "block kind {} is reserved and not supported by this version",
                    ctx.kind as u8
                )),
                ctx.offset,
            ));
        }
        let split = stored
            .len()
            .checked_sub(TRAILER_LEN)
            .ok_or_else(|| Error::corruption(what("shorter than its trailer"), ctx.offset))?;
        let (payload, trailer) = stored.split_at(split);
        let stored_crc = u32::from_le_bytes([trailer[6], trailer[7], trailer[8], trailer[9]]);
        let computed = crc32c::crc32c(&stored[..split + 6]);
        if stored_crc != computed {
            return Err(Error::Checksum {
                what: what("trailer crc32c"),
                offset: ctx.offset,
                stored: stored_crc,
                computed,
            });
        }
        let compression = trailer[0];
        let encryption = trailer[1];
        let key_id = u32::from_le_bytes([trailer[2], trailer[3], trailer[4], trailer[5]]);
        let plain: Cow<'a, [u8]> = match (encryption, key) {
            (ENCRYPTION_NONE, None) => {
                if key_id != 0 {
                    return Err(Error::corruption(
                        what("plaintext block names a key"),
                        ctx.offset,
                    ));
                }
                Cow::Borrowed(payload)
            }
            (ENCRYPTION_AES256_GCM_SIV, Some(key)) if key.id() == key_id => {
                let nonce = block_nonce(ctx)?;
                let aad = associated_data(ctx, compression, key_id);
                let mut buf = payload.to_vec();
                key.open(&nonce, &aad, &mut buf)
                    .map_err(|_| Error::Decrypt {
                        what: what("authentication failed"),
                        offset: ctx.offset,
                        key_id,
                    })?;
                Cow::Owned(buf)
            }
            (ENCRYPTION_AES256_GCM_SIV, _) => {
                return Err(Error::MissingKey {
                    what: what("encrypted block"),
                    offset: ctx.offset,
                    key_id,
                })
            }
            (ENCRYPTION_NONE, Some(_)) => {
                return Err(Error::Decrypt {
                    what: what("plaintext block where an encrypted one was expected"),
                    offset: ctx.offset,
                    key_id,
                })
            }
            (other, _) => {
                return Err(Error::corruption(
                    what(&format!("unknown encryption {other}")),
                    ctx.offset,
                ))
            }
        };
        match compression {
            COMPRESSION_NONE => {
                if plain.len() > max_len {
                    return Err(Error::corruption(
                        what("block exceeds the size limit"),
                        ctx.offset,
                    ));
                }
                Ok(plain)
            }
            COMPRESSION_ZSTD => self
                .decompress(&plain, max_len)
                .map(Cow::Owned)
                .ok_or_else(|| Error::corruption(what("zstd frame does not decode"), ctx.offset)),
            other => Err(Error::corruption(
                what(&format!("unknown compression {other}")),
                ctx.offset,
            )),
        }
    }
}

impl BlockDecoder {
    /// Decompresses one zstd frame whose header states its size, refusing a
    /// size above `max_len` before allocating.
    fn decompress(&mut self, frame: &[u8], max_len: usize) -> Option<Vec<u8>> {
        let size = zstd::zstd_safe::get_frame_content_size(frame).ok()??;
        let size = usize::try_from(size)
            .ok()
            .filter(|&s| s <= max_len.min(MAX_BLOCK_LEN))?;
        if self.decompressor.is_none() {
            self.decompressor = Some(zstd::bulk::Decompressor::new().ok()?);
        }
        let out = self.decompressor.as_mut()?.decompress(frame, size).ok()?;
        (out.len() == size).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::sync::Arc;

    fn ctx(offset: u64) -> BlockContext {
        BlockContext {
            file_number: 12,
            file_uid: [9; 16],
            offset,
            kind: BlockKind::Data,
        }
    }

    fn codec() -> impl Strategy<Value = (Compression, bool)> {
        (
            prop_oneof![
                Just(Compression::None),
                (1i32..6).prop_map(|level| Compression::Zstd { level })
            ],
            any::<bool>(),
        )
    }

    fn encode(
        raw: &[u8],
        c: Compression,
        key: Option<Arc<EncryptionKey>>,
        ctx: &BlockContext,
    ) -> Vec<u8> {
        let mut out = Vec::new();
        BlockEncoder::new(c, key)
            .unwrap()
            .encode(raw, ctx, &mut out)
            .unwrap();
        out
    }

    proptest! {
        #[test]
        fn codec_round_trips(raw in proptest::collection::vec(0u8..3, 0..3000), (c, enc) in codec(), offset in 0u64..1_000_000) {
            let key = enc.then(|| Arc::new(EncryptionKey::new(4, [7; 32])));
            let stored = encode(&raw, c, key.clone(), &ctx(offset));
            let back = decode_block(&stored, &ctx(offset), key.as_deref(), MAX_BLOCK_LEN).unwrap();
            prop_assert_eq!(&back[..], &raw[..]);
        }

        #[test]
        fn decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300), enc in any::<bool>()) {
            let key = EncryptionKey::new(0, [1; 32]);
            let _ = decode_block(&bytes, &ctx(0), enc.then_some(&key), 1 << 20);
        }
    }

    proptest! {
        #[test]
        fn plain_trailer_matches_encode(parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..5), offset in 0u64..1_000_000) {
            let enc = BlockEncoder::new(Compression::None, None).unwrap();
            prop_assert!(enc.is_plain());
            let slices: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            let raw = parts.concat();
            let mut expected = raw.clone();
            expected.extend_from_slice(&enc.plain_trailer(&slices, &ctx(offset)).unwrap());
            prop_assert_eq!(encode(&raw, Compression::None, None, &ctx(offset)), expected);
        }
    }

    #[test]
    fn only_a_plain_encoder_gives_a_plain_trailer() {
        let key = Arc::new(EncryptionKey::new(4, [7; 32]));
        for (c, k) in [
            (Compression::Zstd { level: 1 }, None),
            (Compression::None, Some(key)),
        ] {
            let enc = BlockEncoder::new(c, k).unwrap();
            assert!(!enc.is_plain());
            assert!(enc.plain_trailer(&[b"x"], &ctx(0)).is_err());
        }
    }

    #[test]
    fn blob_records_have_nonces_apart_from_the_wal_records_of_their_number() {
        let wal = BlockContext {
            kind: BlockKind::WalRecord,
            ..ctx(100)
        };
        let blob = BlockContext {
            kind: BlockKind::Blob,
            ..ctx(100)
        };
        assert_ne!(block_nonce(&wal).unwrap(), block_nonce(&blob).unwrap());
        let far = BlockContext {
            offset: 1 << 47,
            ..blob
        };
        assert!(block_nonce(&far).is_err());
        assert!(block_nonce(&BlockContext {
            kind: BlockKind::Data,
            ..far
        })
        .is_ok());
    }

    #[test]
    fn compression_is_skipped_when_it_saves_too_little() {
        // Random bytes do not compress: stored plain, one trailer longer.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let raw: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let stored = encode(&raw, Compression::Zstd { level: 3 }, None, &ctx(0));
        assert_eq!(stored.len(), raw.len() + TRAILER_LEN);
        assert_eq!(stored[raw.len()], COMPRESSION_NONE);
        // Repetitive bytes do.
        let stored = encode(&[b'a'; 4096], Compression::Zstd { level: 3 }, None, &ctx(0));
        assert!(stored.len() < 100);
    }

    #[test]
    fn encrypted_block_is_bound_to_its_place() {
        let key = Arc::new(EncryptionKey::new(4, [7; 32]));
        let raw = b"the quick brown fox".repeat(20);
        let stored = encode(
            &raw,
            Compression::Zstd { level: 3 },
            Some(key.clone()),
            &ctx(100),
        );
        assert!(!stored.windows(9).any(|w| w == b"quick bro"));
        let k = Some(&*key);
        assert!(decode_block(&stored, &ctx(100), k, MAX_BLOCK_LEN).is_ok());
        let moved = [
            ctx(200),
            BlockContext {
                file_number: 13,
                ..ctx(100)
            },
            BlockContext {
                file_uid: [8; 16],
                ..ctx(100)
            },
            BlockContext {
                kind: BlockKind::Index,
                ..ctx(100)
            },
        ];
        for other in moved {
            let err = decode_block(&stored, &other, k, MAX_BLOCK_LEN).unwrap_err();
            assert!(matches!(err, Error::Decrypt { .. }), "{other:?}: {err}");
        }
        // The wrong key with the right id, a missing key, another id.
        let wrong = EncryptionKey::new(4, [8; 32]);
        assert!(matches!(
            decode_block(&stored, &ctx(100), Some(&wrong), MAX_BLOCK_LEN),
            Err(Error::Decrypt { .. })
        ));
        assert!(matches!(
            decode_block(&stored, &ctx(100), None, MAX_BLOCK_LEN),
            Err(Error::MissingKey { key_id: 4, .. })
        ));
        let other_id = EncryptionKey::new(5, [7; 32]);
        assert!(matches!(
            decode_block(&stored, &ctx(100), Some(&other_id), MAX_BLOCK_LEN),
            Err(Error::MissingKey { .. })
        ));
    }

    #[test]
    fn stripping_encryption_is_detected() {
        // A forger replaces an encrypted block with a plaintext one (valid crc).
        let key = EncryptionKey::new(4, [7; 32]);
        let plain = encode(b"forged", Compression::None, None, &ctx(0));
        assert!(matches!(
            decode_block(&plain, &ctx(0), Some(&key), MAX_BLOCK_LEN),
            Err(Error::Decrypt { .. })
        ));
    }

    #[test]
    fn every_bit_flip_is_caught() {
        let key = Arc::new(EncryptionKey::new(4, [7; 32]));
        for (c, k) in [
            (Compression::None, None),
            (Compression::Zstd { level: 1 }, Some(key.clone())),
        ] {
            let stored = encode(&b"abcabcabc".repeat(30), c, k.clone(), &ctx(0));
            for bit in 0..stored.len() * 8 {
                let mut bad = stored.clone();
                bad[bit / 8] ^= 1 << (bit % 8);
                let err = decode_block(&bad, &ctx(0), k.as_deref(), MAX_BLOCK_LEN).unwrap_err();
                assert!(err.is_corruption(), "bit {bit}: {err}");
            }
        }
    }

    #[test]
    fn oversized_frames_are_refused_before_allocation() {
        let stored = encode(
            &[0u8; 100_000],
            Compression::Zstd { level: 1 },
            None,
            &ctx(0),
        );
        let err = decode_block(&stored, &ctx(0), None, 50_000).unwrap_err();
        assert!(err.is_corruption());
        assert!(BlockEncoder::new(Compression::Zstd { level: 99 }, None).is_err());
    }
}
