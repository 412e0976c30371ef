//! AES-256-GCM-SIV for blocks: keys, the nonce scheme and the associated
//! data that binds a block to its place.

use std::fmt;
use std::sync::Arc;

use aes_gcm_siv::aead::{AeadInOut, KeyInit};
use aes_gcm_siv::{Aes256GcmSiv, Nonce, Tag};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// Bytes of the authentication tag appended to every encrypted payload.
pub const TAG_LEN: usize = 16;

/// The largest file number or offset the nonce scheme can encode (2^48 - 1).
pub const MAX_NONCE_FIELD: u64 = (1 << 48) - 1;

/// A 256-bit encryption key with its id. The raw key bytes are zeroized as
/// soon as the cipher is keyed, and the cipher state is zeroized on drop; the
/// `Debug` form shows only the id.
pub struct EncryptionKey {
    id: u32,
    cipher: Aes256GcmSiv,
}

impl EncryptionKey {
    /// Keys a cipher with `key`, known to readers by `id`.
    pub fn new(id: u32, key: [u8; 32]) -> Self {
        let key = Zeroizing::new(key);
        // The slice constructor keys the cipher straight from the zeroized
        // copy; a 32-byte slice always has the right length.
        let cipher = match Aes256GcmSiv::new_from_slice(&key[..]) {
            Ok(c) => c,
            Err(_) => unreachable!("AES-256 takes a 32-byte key"),
        };
        EncryptionKey { id, cipher }
    }

    /// The id written beside everything this key encrypts.
    pub fn id(&self) -> u32 {
        self.id
    }

    /// Encrypts `buf` in place and appends the tag.
    pub(crate) fn seal(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        let tag = self
            .cipher
            .encrypt_inout_detached(&Nonce::from(*nonce), aad, buf.as_mut_slice().into())
            .map_err(|_| Error::InvalidArgument("payload too large to encrypt".into()))?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Authenticates and decrypts `buf` (ciphertext ‖ tag) in place, leaving
    /// the plaintext. `Err(())` when authentication fails.
    pub(crate) fn open(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut Vec<u8>) -> Result<(), ()> {
        let split = buf.len().checked_sub(TAG_LEN).ok_or(())?;
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&buf[split..]);
        buf.truncate(split);
        self.cipher
            .decrypt_inout_detached(
                &Nonce::from(*nonce),
                aad,
                buf.as_mut_slice().into(),
                &Tag::from(tag),
            )
            .map_err(|_| ())
    }

    /// A tag over `aad` alone (an empty plaintext): a MAC for structures
    /// that stay readable but must not be forged, such as a table footer.
    pub(crate) fn mac(&self, nonce: &[u8; 12], aad: &[u8]) -> [u8; TAG_LEN] {
        let mut empty = Vec::new();
        // Encrypting nothing cannot exceed the AEAD's length limit.
        let _ = self.seal(nonce, aad, &mut empty);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&empty[..TAG_LEN.min(empty.len())]);
        tag
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptionKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The keys a reader may need, by id: the current one and any older ones
/// that files written before a rotation still name.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    keys: Vec<Arc<EncryptionKey>>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Adds a key, replacing any key with the same id.
    pub fn insert(&mut self, key: Arc<EncryptionKey>) {
        self.keys.retain(|k| k.id() != key.id());
        self.keys.push(key);
    }

    /// The key with id `id`.
    pub fn get(&self, id: u32) -> Option<&Arc<EncryptionKey>> {
        self.keys.iter().find(|k| k.id() == id)
    }
}

/// The nonce of the structure at `offset` in file `file_number`: the low 48
/// bits of each, little-endian. Unique per block because file numbers are
/// never reused within a database and no two structures of a file start at
/// the same offset.
pub(crate) fn nonce(file_number: u64, offset: u64) -> Result<[u8; 12]> {
    if file_number > MAX_NONCE_FIELD || offset > MAX_NONCE_FIELD {
        return Err(Error::InvalidArgument(format!(
            "file number {file_number} or offset {offset} exceeds 2^48 - 1"
        )));
    }
    let mut n = [0u8; 12];
    n[..6].copy_from_slice(&file_number.to_le_bytes()[..6]);
    n[6..].copy_from_slice(&offset.to_le_bytes()[..6]);
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_key_bytes() {
        let key = EncryptionKey::new(7, [0xab; 32]);
        let s = format!("{key:?}");
        assert!(s.contains('7'));
        assert!(!s.to_lowercase().contains("ab, ab") && !s.contains("171"));
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let key = EncryptionKey::new(1, [3; 32]);
        let n = nonce(5, 4096).unwrap();
        let mut buf = b"hello world".to_vec();
        key.seal(&n, b"aad", &mut buf).unwrap();
        assert_eq!(buf.len(), 11 + TAG_LEN);
        let mut copy = buf.clone();
        key.open(&n, b"aad", &mut copy).unwrap();
        assert_eq!(copy, b"hello world");
        let mut copy = buf.clone();
        assert!(key.open(&n, b"aaD", &mut copy).is_err());
        let mut copy = buf.clone();
        copy[0] ^= 1;
        assert!(key.open(&n, b"aad", &mut copy).is_err());
        let other = EncryptionKey::new(1, [4; 32]);
        let mut copy = buf.clone();
        assert!(other.open(&n, b"aad", &mut copy).is_err());
    }

    #[test]
    fn nonce_fields_are_bounded_and_distinct() {
        assert_ne!(nonce(1, 2).unwrap(), nonce(2, 1).unwrap());
        assert!(nonce(MAX_NONCE_FIELD + 1, 0).is_err());
        assert!(nonce(0, MAX_NONCE_FIELD + 1).is_err());
    }

    /// RFC 8452 Appendix C.2, the first AES-256-GCM-SIV vector with
    /// plaintext: proves the cipher is the standard one.
    #[test]
    fn rfc8452_known_answer() {
        let mut key = [0u8; 32];
        key[0] = 1;
        let key = EncryptionKey::new(0, key);
        let mut nonce = [0u8; 12];
        nonce[0] = 3;
        let mut buf = vec![1, 0, 0, 0, 0, 0, 0, 0];
        key.seal(&nonce, b"", &mut buf).unwrap();
        let hex: String = buf.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "c2ef328e5c71c83b843122130f7364b761e0b97427e3df28");
    }
}
