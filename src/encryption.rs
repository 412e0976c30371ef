//! Encryption: which storage types the engine encrypts at rest, and
//! AES-256-GCM-SIV for application data the caller wants sealed itself.

use std::collections::BTreeSet;
use std::sync::Arc;

use aes_gcm_siv::aead::{Aead, KeyInit, Payload};
use aes_gcm_siv::{Aes256GcmSiv, Nonce};
use serde::{Deserialize, Serialize};
use strata_engine::{EncryptionKeyProvider, Timestamp};

use crate::error::EncryptionError;
use crate::types::StorageType;

/// The algorithms [`StorageEncryptionManager::encrypt`] offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum EncryptionAlgorithm {
    /// AES-256-GCM-SIV (RFC 8452): nonce-misuse resistant.
    #[default]
    Aes256GcmSiv,
}

/// Which storage types are encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct EncryptionConfig {
    /// The encrypted types; `None` means every type (when a key provider
    /// is configured). Types left out are stored in plaintext.
    pub encrypted_types: Option<Vec<StorageType>>,
}

/// Inputs of [`StorageEncryptionManager::encrypt`].
#[derive(Debug, Clone, Default)]
pub struct EncryptionContext {
    /// The algorithm (the default when `None`).
    pub algorithm: Option<EncryptionAlgorithm>,
    /// The key (the provider's current key when `None`).
    pub key_id: Option<u32>,
    /// Data bound to the ciphertext: decryption needs the same bytes.
    pub additional_data: Option<Vec<u8>>,
}

/// Application data sealed by [`StorageEncryptionManager::encrypt`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedData {
    /// 12-byte random nonce, then the ciphertext with its 16-byte tag.
    pub ciphertext: Vec<u8>,
    /// The algorithm.
    pub algorithm: EncryptionAlgorithm,
    /// The key's id.
    pub key_id: u32,
    /// The associated data it is bound to.
    pub additional_data: Option<Vec<u8>>,
    /// When it was sealed (raw timestamp).
    pub created_at: u64,
}

/// Domain separation: application data never authenticates as an engine
/// block (whose associated data has another layout) and vice versa.
const DOMAIN: &[u8] = b"strata/app-data/v1\0";

/// Knows the key provider and which storage types are encrypted.
pub struct StorageEncryptionManager {
    key_provider: Option<Arc<dyn EncryptionKeyProvider>>,
    encrypted: BTreeSet<StorageType>,
}

impl std::fmt::Debug for StorageEncryptionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageEncryptionManager")
            .field("encrypted", &self.encrypted)
            .field("key_provider", &self.key_provider.is_some())
            .finish()
    }
}

impl StorageEncryptionManager {
    pub(crate) fn new(
        key_provider: Option<Arc<dyn EncryptionKeyProvider>>,
        config: &EncryptionConfig,
    ) -> Self {
        let encrypted = match (&key_provider, &config.encrypted_types) {
            (None, _) => BTreeSet::new(),
            (Some(_), None) => StorageType::ALL.into_iter().collect(),
            (Some(_), Some(types)) => types.iter().copied().collect(),
        };
        StorageEncryptionManager {
            key_provider,
            encrypted,
        }
    }

    /// True when `t`'s data is encrypted at rest.
    pub fn is_encrypted(&self, t: StorageType) -> bool {
        self.encrypted.contains(&t)
    }

    /// The engine keyspaces left in plaintext.
    pub(crate) fn plaintext_keyspaces(&self) -> Vec<String> {
        StorageType::ALL
            .into_iter()
            .filter(|t| !self.is_encrypted(*t))
            .map(|t| t.name().to_owned())
            .collect()
    }

    fn cipher(&self, key_id: u32) -> Result<Aes256GcmSiv, EncryptionError> {
        let provider = self
            .key_provider
            .as_ref()
            .ok_or(EncryptionError::NoKeyProvider)?;
        let key = provider
            .key(key_id)
            .ok_or(EncryptionError::MissingKey(key_id))?;
        Aes256GcmSiv::new_from_slice(key.bytes()).map_err(|_| EncryptionError::MissingKey(key_id))
    }

    fn aad(data: Option<&[u8]>) -> Vec<u8> {
        let mut aad = DOMAIN.to_vec();
        if let Some(d) = data {
            aad.extend_from_slice(d);
        }
        aad
    }

    /// Seals `data` under the provider's current key (or the context's),
    /// bound to the context's associated data.
    pub fn encrypt(
        &self,
        data: &[u8],
        context: &EncryptionContext,
    ) -> Result<EncryptedData, EncryptionError> {
        let algorithm = context.algorithm.unwrap_or_default();
        let provider = self
            .key_provider
            .as_ref()
            .ok_or(EncryptionError::NoKeyProvider)?;
        let key_id = context.key_id.unwrap_or_else(|| provider.current_key_id());
        let cipher = self.cipher(key_id)?;
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| {
            EncryptionError::UnsupportedAlgorithm("no randomness for a nonce".into())
        })?;
        let aad = Self::aad(context.additional_data.as_deref());
        let sealed = cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: data,
                    aad: &aad,
                },
            )
            .map_err(|_| EncryptionError::DecryptFailed)?;
        let mut ciphertext = nonce.to_vec();
        ciphertext.extend_from_slice(&sealed);
        Ok(EncryptedData {
            ciphertext,
            algorithm,
            key_id,
            additional_data: context.additional_data.clone(),
            created_at: Timestamp::now().as_u64(),
        })
    }

    /// Opens sealed data; `additional_data` overrides the one recorded in
    /// it. Any tampering, a wrong key or other associated data fails.
    pub fn decrypt(
        &self,
        data: &EncryptedData,
        additional_data: Option<&[u8]>,
    ) -> Result<Vec<u8>, EncryptionError> {
        let cipher = self.cipher(data.key_id)?;
        if data.ciphertext.len() < 12 + 16 {
            return Err(EncryptionError::DecryptFailed);
        }
        let (nonce, sealed) = data.ciphertext.split_at(12);
        let mut n = [0u8; 12];
        n.copy_from_slice(nonce);
        let aad = Self::aad(additional_data.or(data.additional_data.as_deref()));
        cipher
            .decrypt(
                &Nonce::from(n),
                Payload {
                    msg: sealed,
                    aad: &aad,
                },
            )
            .map_err(|_| EncryptionError::DecryptFailed)
    }
}
