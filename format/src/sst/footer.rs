//! The fixed-size footer that ends every SST.

use crate::codec::{authenticate, BlockContext, BlockKind, EncryptionKey, TAG_LEN};
use crate::coding::Cursor;
use crate::error::{Error, Result};

use super::BlockHandle;

/// "STRATSST" read as a little-endian u64: the last 8 bytes of every SST.
pub const SST_MAGIC: u64 = u64::from_le_bytes(*b"STRATSST");

/// The newest SST format version: this build reads versions 1 and 2, and
/// writes 2 for a table with range tombstones (its range-deletion block,
/// which a version-1 reader would not know to read), 1 otherwise.
pub const SST_FORMAT_VERSION: u32 = 2;

/// The version of a table without range tombstones: readable by every
/// build, so a database that never deletes a range stays readable by older
/// ones.
pub const SST_BASE_VERSION: u32 = 1;

/// Size of the footer in bytes.
pub const FOOTER_LEN: usize = 104;

/// Bytes of the footer the MAC covers (everything before the tag).
const AUTHENTICATED_LEN: usize = 72;

/// The footer's fields as `(name, offset, size)`, in order; they tile
/// [`FOOTER_LEN`] bytes. [`Footer::encode`] and [`Footer::decode`] follow
/// this layout, which SPEC.md §7 tabulates.
pub const FOOTER_LAYOUT: [(&str, usize, usize); 11] = [
    ("index handle", 0, 16),
    ("filter handle", 16, 16),
    ("properties handle", 32, 16),
    ("file uid", 48, 16),
    ("encryption", 64, 1),
    ("zero", 65, 3),
    ("key id", 68, 4),
    ("MAC", AUTHENTICATED_LEN, TAG_LEN),
    ("format version", 88, 4),
    ("crc32c", 92, 4),
    ("magic", 96, 8),
];

/// The decoded footer.
///
/// ```text
///  0  index handle       offset u64 LE, size u64 LE
/// 16  filter handle      offset u64 LE, size u64 LE
/// 32  properties handle  offset u64 LE, size u64 LE
/// 48  file uid           16 bytes
/// 64  encryption         u8 (0 none, 1 AES-256-GCM-SIV), 3 zero bytes
/// 68  key id             u32 LE (0 when not encrypted)
/// 72  tag                16 bytes: MAC over bytes 0..72 (zero when not encrypted)
/// 88  format version     u32 LE
/// 92  crc32c             u32 LE over bytes 0..92
/// 96  magic              u64 LE "STRATSST"
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    /// Where the index block is.
    pub index: BlockHandle,
    /// Where the filter block is.
    pub filter: BlockHandle,
    /// Where the properties block is.
    pub properties: BlockHandle,
    /// The file's random id, also part of every block's associated data.
    pub file_uid: [u8; 16],
    /// The id of the key every block of the file is encrypted with, or
    /// `None` for a plaintext file.
    pub key_id: Option<u32>,
    /// The format version (1 or 2, see [`SST_FORMAT_VERSION`]).
    pub version: u32,
}

impl Footer {
    fn context(file_number: u64, file_uid: [u8; 16], offset: u64) -> BlockContext {
        BlockContext {
            file_number,
            file_uid,
            offset,
            kind: BlockKind::Footer,
        }
    }

    /// Encodes the footer that will sit at `offset` in file `file_number`,
    /// authenticated with `key` when the file is encrypted.
    pub fn encode(
        &self,
        file_number: u64,
        offset: u64,
        key: Option<&EncryptionKey>,
    ) -> Result<[u8; FOOTER_LEN]> {
        let mut f = [0u8; FOOTER_LEN];
        let handles = [self.index, self.filter, self.properties];
        for (i, h) in handles.iter().enumerate() {
            f[16 * i..16 * i + 8].copy_from_slice(&h.offset.to_le_bytes());
            f[16 * i + 8..16 * i + 16].copy_from_slice(&h.size.to_le_bytes());
        }
        f[48..64].copy_from_slice(&self.file_uid);
        if let Some(id) = self.key_id {
            f[64] = 1;
            f[68..72].copy_from_slice(&id.to_le_bytes());
        }
        match (self.key_id, key) {
            (Some(id), Some(key)) if key.id() == id => {
                let ctx = Self::context(file_number, self.file_uid, offset);
                let tag = authenticate(key, &ctx, &f[..AUTHENTICATED_LEN])?;
                f[72..72 + TAG_LEN].copy_from_slice(&tag);
            }
            (None, None) => {}
            _ => {
                return Err(Error::InvalidArgument(
                    "footer key id does not match the key".into(),
                ))
            }
        }
        if self.version == 0 || self.version > SST_FORMAT_VERSION {
            return Err(Error::InvalidArgument(format!(
                "sst format version {}",
                self.version
            )));
        }
        f[88..92].copy_from_slice(&self.version.to_le_bytes());
        let crc = crc32c::crc32c(&f[..92]);
        f[92..96].copy_from_slice(&crc.to_le_bytes());
        f[96..104].copy_from_slice(&SST_MAGIC.to_le_bytes());
        Ok(f)
    }

    /// Decodes the last [`FOOTER_LEN`] bytes of an SST of `file_len` bytes.
    /// The magic and the version are checked first, so a file of an unknown
    /// format is refused as such rather than as damage. The MAC is checked
    /// separately by [`Footer::verify`], once the key is known.
    pub fn decode(bytes: &[u8], file_number: u64, offset: u64) -> Result<Footer> {
        let what = format!("sst {file_number} footer");
        if bytes.len() != FOOTER_LEN {
            return Err(Error::corruption(
                format!("{what}: file shorter than a footer"),
                offset,
            ));
        }
        let mut c = Cursor::new(&bytes[88..], offset + 88, &what);
        let version = c.u32_le()?;
        let stored_crc = c.u32_le()?;
        let magic = c.u64_le()?;
        if magic != SST_MAGIC {
            return Err(Error::corruption(
                format!("{what}: bad magic, not an SST"),
                offset + 96,
            ));
        }
        if version == 0 || version > SST_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what,
                found: version,
                supported: SST_FORMAT_VERSION,
            });
        }
        let computed = crc32c::crc32c(&bytes[..92]);
        if computed != stored_crc {
            return Err(Error::Checksum {
                what,
                offset,
                stored: stored_crc,
                computed,
            });
        }
        let mut c = Cursor::new(bytes, offset, &what);
        let mut handle = || -> Result<BlockHandle> {
            Ok(BlockHandle {
                offset: c.u64_le()?,
                size: c.u64_le()?,
            })
        };
        let index = handle()?;
        let filter = handle()?;
        let properties = handle()?;
        let file_uid = c.array::<16>()?;
        let encryption = c.array::<4>()?;
        let key_id = c.u32_le()?;
        let tag_is_zero = bytes[72..72 + TAG_LEN].iter().all(|&b| b == 0);
        let key_id = match encryption {
            [0, 0, 0, 0] if key_id == 0 && tag_is_zero => None,
            [1, 0, 0, 0] => Some(key_id),
            _ => {
                return Err(Error::corruption(
                    format!("{what}: bad encryption field"),
                    offset + 64,
                ))
            }
        };
        Ok(Footer {
            index,
            filter,
            properties,
            file_uid,
            key_id,
            version,
        })
    }

    /// Checks the footer's MAC with `key` (which must be the key the footer
    /// names). Binding the MAC to the footer's offset also binds it to the
    /// file's length, so a truncated or extended file fails here.
    pub fn verify(bytes: &[u8], file_number: u64, offset: u64, key: &EncryptionKey) -> Result<()> {
        if bytes.len() != FOOTER_LEN {
            return Err(Error::corruption("sst footer of the wrong length", offset));
        }
        let mut file_uid = [0u8; 16];
        file_uid.copy_from_slice(&bytes[48..64]);
        let ctx = Self::context(file_number, file_uid, offset);
        let expected = authenticate(key, &ctx, &bytes[..AUTHENTICATED_LEN])?;
        // Constant time, so timing does not reveal how much of a forged tag
        // was right.
        let diff = bytes[72..72 + TAG_LEN]
            .iter()
            .zip(expected)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(Error::Decrypt {
                what: format!("sst {file_number} footer"),
                offset,
                key_id: key.id(),
            });
        }
        Ok(())
    }
}
