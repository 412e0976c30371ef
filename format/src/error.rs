//! The one error type of the format crate.
//!
//! Every decoder takes untrusted bytes, so every way bytes can be wrong has a
//! variant here that says what was wrong and where. Offsets are byte offsets
//! within the file (or within the buffer, when the decoder does not know the
//! file), so an operator can find the damage with a hex dump.

use std::fmt;

/// The result type used throughout `strata-format`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure the format crate reports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The bytes do not decode: a length runs past the end, a field holds an
    /// impossible value, a structure is malformed.
    #[error("corruption in {what} at offset {offset}")]
    Corruption {
        /// What was being decoded, including the file when it is known.
        what: String,
        /// Byte offset of the damaged structure.
        offset: u64,
    },
    /// A stored checksum does not match the bytes it covers.
    #[error("checksum mismatch in {what} at offset {offset}: stored {stored:#010x}, computed {computed:#010x}")]
    Checksum {
        /// What was being verified.
        what: String,
        /// Byte offset of the checksummed structure.
        offset: u64,
        /// The checksum found on disk.
        stored: u32,
        /// The checksum of the bytes as read.
        computed: u32,
    },
    /// Authenticated decryption failed: wrong key, tampered bytes, or a block
    /// moved to another file, offset or kind.
    #[error("cannot decrypt {what} at offset {offset} with key {key_id}: wrong key, tampering, or a block out of place")]
    Decrypt {
        /// What was being decrypted.
        what: String,
        /// Byte offset of the encrypted structure.
        offset: u64,
        /// The key id the bytes name.
        key_id: u32,
    },
    /// The bytes were encrypted with a key id the caller did not supply.
    #[error("{what} at offset {offset} is encrypted with key {key_id}, which was not supplied")]
    MissingKey {
        /// What needed the key.
        what: String,
        /// Byte offset of the encrypted structure.
        offset: u64,
        /// The key id the bytes name.
        key_id: u32,
    },
    /// The structure was written by a newer or unknown format version.
    #[error("{what} has format version {found}; this build reads versions up to {supported}")]
    UnsupportedVersion {
        /// What carried the version.
        what: String,
        /// The version found on disk.
        found: u32,
        /// The newest version this build understands.
        supported: u32,
    },
    /// The caller passed something the format cannot represent, such as keys
    /// out of order or a length beyond a limit. Nothing was written.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An underlying writer failed while a table or log was being streamed,
    /// or a [`TableSource`](crate::sst::TableSource) failed to read.
    #[error("I/O failed: {0}")]
    Io(IoError),
}

impl Error {
    /// Shorthand for a [`Error::Corruption`].
    pub fn corruption(what: impl Into<String>, offset: u64) -> Self {
        Error::Corruption {
            what: what.into(),
            offset,
        }
    }

    /// True for errors that say the stored bytes are damaged or forged, as
    /// opposed to errors of the caller or of the environment.
    pub fn is_corruption(&self) -> bool {
        matches!(
            self,
            Error::Corruption { .. } | Error::Checksum { .. } | Error::Decrypt { .. }
        )
    }
}

/// A cloneable, comparable wrapper of [`std::io::Error`]'s kind and message,
/// so that [`Error`] can stay `Clone + Eq` for tests and caching.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoError {
    /// The kind of the original error.
    pub kind: std::io::ErrorKind,
    /// The original error's message.
    pub message: String,
}

impl fmt::Display for IoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({:?})", self.message, self.kind)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(IoError {
            kind: e.kind(),
            message: e.to_string(),
        })
    }
}
