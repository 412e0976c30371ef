//! Encryption keys: where the engine gets them, and the ciphers it keeps.
//!
//! A key is never written into the database directory, a log line or an
//! error message; files name only the key's id.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_format::codec::{EncryptionKey, Keyring};
use zeroize::Zeroizing;

use crate::error::{Error, Result};

/// A 256-bit key, wiped from memory when dropped.
#[derive(Clone)]
pub struct Key(Zeroizing<[u8; 32]>);

impl Key {
    /// Wraps key bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        Key(Zeroizing::new(bytes))
    }

    /// The key bytes.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Supplies encryption keys by id. New files are encrypted with the current
/// key; files written under older keys stay readable while their key is
/// still supplied.
pub trait EncryptionKeyProvider: Send + Sync + fmt::Debug {
    /// The id of the key new files are encrypted with.
    fn current_key_id(&self) -> u32;
    /// The key with id `id`, if the provider still has it.
    fn key(&self, id: u32) -> Option<Key>;
}

/// Keys held in memory. Rotation: [`add_key`](Self::add_key) a new key and
/// [`set_current`](Self::set_current) it; [`remove_key`](Self::remove_key)
/// the old one once `Db::reencrypt` has run.
#[derive(Debug)]
pub struct MemoryKeyProvider {
    keys: RwLock<HashMap<u32, Key>>,
    current: RwLock<u32>,
}

impl MemoryKeyProvider {
    /// A provider whose current key is `key`, with id `key_id`.
    pub fn new(key_id: u32, key: [u8; 32]) -> Self {
        let mut keys = HashMap::new();
        keys.insert(key_id, Key::new(key));
        MemoryKeyProvider {
            keys: RwLock::new(keys),
            current: RwLock::new(key_id),
        }
    }

    /// Adds (or replaces) a key.
    pub fn add_key(&self, key_id: u32, key: [u8; 32]) {
        self.keys.write().insert(key_id, Key::new(key));
    }

    /// Makes `key_id` the key new files use; it must have been added.
    pub fn set_current(&self, key_id: u32) -> Result<()> {
        if !self.keys.read().contains_key(&key_id) {
            return Err(Error::InvalidArgument(format!("no key with id {key_id}")));
        }
        *self.current.write() = key_id;
        Ok(())
    }

    /// Forgets a key (not the current one).
    pub fn remove_key(&self, key_id: u32) -> Result<()> {
        if *self.current.read() == key_id {
            return Err(Error::InvalidArgument(
                "the current key cannot be removed".into(),
            ));
        }
        self.keys.write().remove(&key_id);
        Ok(())
    }
}

impl EncryptionKeyProvider for MemoryKeyProvider {
    fn current_key_id(&self) -> u32 {
        *self.current.read()
    }

    fn key(&self, id: u32) -> Option<Key> {
        self.keys.read().get(&id).cloned()
    }
}

/// Keys read from files in a directory outside the database: one file per
/// key, named `<id>.key`, holding the 32 key bytes as 64 hex digits. A key
/// file readable by group or others is refused.
#[derive(Debug)]
pub struct FileKeyProvider {
    dir: PathBuf,
    current: u32,
}

impl FileKeyProvider {
    /// A provider reading keys from `dir`, with `current_key_id` current.
    /// Fails if the current key cannot be read.
    pub fn new(dir: impl AsRef<Path>, current_key_id: u32) -> Result<Self> {
        let p = FileKeyProvider {
            dir: dir.as_ref().to_path_buf(),
            current: current_key_id,
        };
        p.read_key(current_key_id)?;
        Ok(p)
    }

    fn read_key(&self, id: u32) -> Result<Key> {
        let path = self.dir.join(format!("{id}.key"));
        let meta = std::fs::metadata(&path).map_err(|e| Error::io(&path, e))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(Error::InvalidArgument(format!(
                    "key file {} is readable by group or others; chmod 600 it",
                    path.display()
                )));
            }
        }
        if meta.len() > 1024 {
            return Err(Error::InvalidArgument(format!(
                "key file {} is too large to hold a key",
                path.display()
            )));
        }
        let raw = Zeroizing::new(std::fs::read(&path).map_err(|e| Error::io(&path, e))?);
        let hex = raw.trim_ascii();
        let mut bytes = Zeroizing::new([0u8; 32]);
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let ok = hex.len() == 64
            && hex.chunks(2).zip(bytes.iter_mut()).all(|(pair, out)| {
                match (digit(pair[0]), digit(pair[1])) {
                    (Some(h), Some(l)) => {
                        *out = h << 4 | l;
                        true
                    }
                    _ => false,
                }
            });
        if !ok {
            return Err(Error::InvalidArgument(format!(
                "key file {} does not hold 64 hex digits",
                path.display()
            )));
        }
        Ok(Key::new(*bytes))
    }
}

impl EncryptionKeyProvider for FileKeyProvider {
    fn current_key_id(&self) -> u32 {
        self.current
    }

    fn key(&self, id: u32) -> Option<Key> {
        self.read_key(id).ok()
    }
}

/// The ciphers the engine has keyed, by id, so each key is expanded once.
#[derive(Debug, Default)]
pub(crate) struct Ciphers {
    provider: Option<Arc<dyn EncryptionKeyProvider>>,
    keyed: Mutex<HashMap<u32, Arc<EncryptionKey>>>,
}

impl Ciphers {
    pub(crate) fn new(provider: Option<Arc<dyn EncryptionKeyProvider>>) -> Self {
        Ciphers {
            provider,
            keyed: Mutex::new(HashMap::new()),
        }
    }

    /// The cipher of key `id`, if the provider has the key.
    pub(crate) fn get(&self, id: u32) -> Option<Arc<EncryptionKey>> {
        // Asked each time: a key the provider dropped is dropped here too.
        let Some(key) = self.provider.as_ref()?.key(id) else {
            self.keyed.lock().remove(&id);
            return None;
        };
        let mut keyed = self.keyed.lock();
        if let Some(k) = keyed.get(&id) {
            return Some(k.clone());
        }
        let cipher = Arc::new(EncryptionKey::new(id, *key.bytes()));
        keyed.insert(id, cipher.clone());
        Some(cipher)
    }

    /// The cipher new files use, or `None` without a provider.
    pub(crate) fn current(&self) -> Result<Option<Arc<EncryptionKey>>> {
        let Some(p) = &self.provider else {
            return Ok(None);
        };
        let id = p.current_key_id();
        self.get(id)
            .map(Some)
            .ok_or_else(|| Error::InvalidArgument(format!("the key provider has no key {id}")))
    }

    /// A keyring holding key `id` (empty if unknown), for a reader.
    pub(crate) fn keyring(&self, id: Option<u32>) -> Keyring {
        let mut ring = Keyring::new();
        if let Some(k) = id.and_then(|id| self.get(id)) {
            ring.insert(k);
        }
        ring
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_must_be_private_and_well_formed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("3.key");
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            let err = FileKeyProvider::new(dir.path(), 3).unwrap_err();
            assert!(
                err.to_string().contains("readable by group or others"),
                "{err}"
            );
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let p = FileKeyProvider::new(dir.path(), 3).unwrap();
        assert_eq!(p.current_key_id(), 3);
        assert_eq!(p.key(3).unwrap().bytes(), &[0xab; 32]);
        assert!(p.key(4).is_none());
        for bad in [
            "not hex".to_string(),
            format!("€{}", "a".repeat(61)),
            "+f".repeat(32),
        ] {
            std::fs::write(&path, &bad).unwrap();
            assert!(FileKeyProvider::new(dir.path(), 3).is_err(), "{bad:?}");
        }
        // Debug output never shows key bytes.
        assert_eq!(format!("{:?}", Key::new([7; 32])), "Key(..)");
    }

    #[test]
    fn memory_keys_rotate() {
        let p = MemoryKeyProvider::new(1, [1; 32]);
        assert!(p.set_current(2).is_err());
        p.add_key(2, [2; 32]);
        p.set_current(2).unwrap();
        assert!(p.remove_key(2).is_err());
        p.remove_key(1).unwrap();
        assert!(p.key(1).is_none());
        assert_eq!(p.current_key_id(), 2);
    }
}
