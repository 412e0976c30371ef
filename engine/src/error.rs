//! The engine's error type.

use std::path::PathBuf;

/// The result type of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine. Errors about stored bytes
/// name the file they were found in.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// Another process has the database open.
    #[error("database at {0} is locked by another process")]
    Locked(PathBuf),
    /// This process has the database open already: share that `Db` (every
    /// clone and keyspace handle is cheap) instead of opening it again.
    #[error("database at {0} is already open in this process; share its handle instead of opening it again")]
    AlreadyOpen(PathBuf),
    /// An I/O call failed.
    #[error("I/O error on {path}: {message} ({kind:?})")]
    Io {
        /// The file or directory the call was about.
        path: PathBuf,
        /// The kind of the original error.
        kind: std::io::ErrorKind,
        /// The original error's message.
        message: String,
    },
    /// A file's bytes are damaged, forged or of an unknown format.
    #[error("{path}: {source}")]
    Format {
        /// The file the damage was found in.
        path: PathBuf,
        /// What was wrong and at which offset.
        source: strata_format::Error,
    },
    /// A file could not be decrypted or authenticated: the key is wrong or
    /// missing, or the file was tampered with (a block moved, swapped,
    /// truncated, or its encryption stripped).
    #[error("{path}: cannot decrypt: {source}")]
    Decrypt {
        /// The file.
        path: PathBuf,
        /// What failed and where.
        source: strata_format::Error,
    },
    /// A key longer than the limit (64 KiB).
    #[error("key of {0} bytes exceeds the limit of 65536")]
    KeyTooLarge(usize),
    /// A value longer than the limit (256 MiB).
    #[error("value of {0} bytes exceeds the limit of 268435456")]
    ValueTooLarge(usize),
    /// A batch whose encoded size exceeds what one WAL record can hold.
    #[error("batch of {0} bytes exceeds the limit of one WAL record")]
    BatchTooLarge(usize),
    /// No keyspace of that name exists (it was dropped).
    #[error("keyspace {0:?} does not exist")]
    KeyspaceNotFound(String),
    /// An argument the engine cannot accept; nothing was changed.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// An earlier background or WAL failure put the database in read-only
    /// mode; writes fail until it is reopened.
    #[error("database is read-only after an earlier error: {0}")]
    Poisoned(String),
    /// The database was closed.
    #[error("database is closed")]
    Closed,
    /// The database was opened with `Db::open_read_only`: nothing may be
    /// written through it.
    #[error("database at {0} is open read-only")]
    ReadOnly(PathBuf),
    /// A read of the past before the oldest state still kept.
    #[error("history before {oldest} is not kept (requested {requested})")]
    HistoryUnavailable {
        /// The timestamp asked for.
        requested: crate::Timestamp,
        /// The oldest timestamp that can be read now.
        oldest: crate::Timestamp,
    },
    /// A transaction lost a conflict: another commit wrote what it wrote
    /// (or, when serializable, what it read) after it began. Nothing of it
    /// was applied; it may be retried.
    #[error("transaction conflict on key {key:?} of keyspace {keyspace:?}")]
    Conflict {
        /// The keyspace of the conflicting key.
        keyspace: String,
        /// The conflicting key.
        key: Vec<u8>,
    },
    /// A replica's commit or read failed in the replication around it (no
    /// leader here, no quorum, a timestamp not applied in time); whether a
    /// write took effect may be unknown. The source is the replication
    /// layer's own error.
    #[error("replication: {0}")]
    Replication(std::sync::Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            kind: e.kind(),
            message: e.to_string(),
        }
    }

    /// Wraps a format error with the file it was found in.
    pub fn format(path: impl Into<PathBuf>, source: strata_format::Error) -> Self {
        match source {
            // A write through a format encoder failed: an I/O error.
            strata_format::Error::Io(e) => Error::Io {
                path: path.into(),
                kind: e.kind,
                message: e.message,
            },
            strata_format::Error::Decrypt { .. } | strata_format::Error::MissingKey { .. } => {
                Error::Decrypt {
                    path: path.into(),
                    source,
                }
            }
            source => Error::Format {
                path: path.into(),
                source,
            },
        }
    }

    /// True when stored bytes were found damaged or forged.
    pub fn is_corruption(&self) -> bool {
        matches!(self, Error::Format { source, .. } | Error::Decrypt { source, .. } if source.is_corruption())
    }
}
