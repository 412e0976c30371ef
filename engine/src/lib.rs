//! `strata-engine`: the LSM tree under Strata, built on the on-disk formats
//! of [`strata_format`].
//!
//! A [`Db`] holds named [`Keyspace`]s that share one write-ahead log, so a
//! [`WriteBatch`] across keyspaces is atomic. Writes go to the WAL (with
//! group commit) and a memtable; full memtables are flushed to L0 SSTs in
//! the background and leveled compaction keeps the levels within their
//! targets. Every write carries a commit timestamp; reads see the newest
//! committed state at the moment they start. SPEC.md describes the files,
//! the write path, the compaction picker and recovery.
//!
//! ```
//! # fn main() -> strata_engine::Result<()> {
//! let dir = tempfile::tempdir().unwrap();
//! let db = strata_engine::Db::open(dir.path(), Default::default())?;
//! let users = db.keyspace("users")?;
//! users.put("ada", "lovelace")?;
//! assert_eq!(users.get("ada")?.as_deref(), Some(&b"lovelace"[..]));
//! # Ok(()) }
//! ```

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cache;
mod compaction;
mod cursor;
mod db;
mod describe;
mod encryption;
mod error;
mod flush;
pub mod fs;
mod history;
mod iter;
mod keyspace;
mod memtable;
mod options;
#[allow(dead_code)]
mod policy;
mod recovery;
mod snapshot;
mod stats;
mod table_sink;
mod timestamp;
mod txn;
mod verify;
mod version;
mod view;
mod write;

pub use db::Db;
pub use describe::{DirDescription, KeyspaceDescription, TableDescription};
pub use encryption::{EncryptionKeyProvider, FileKeyProvider, Key, MemoryKeyProvider};
pub use error::{Error, Result};
pub use iter::{Iter, KvPair};
pub use keyspace::Version;
pub use keyspace::{Keyspace, Value};
pub use options::{Options, WriteOptions};
pub use snapshot::Snapshot;
pub use stats::{KeyspaceStats, LevelStats, Stats};
pub use strata_format as format;
pub use timestamp::{Clock, ManualClock, SystemClock, Timestamp};
pub use txn::{Isolation, Transaction, TxIter};
pub use verify::{DamagedFile, VerifyReport};
pub use write::{WriteBatch, MAX_VALUE_LEN};

/// A fresh random 128-bit file uid.
pub(crate) fn random_uid() -> [u8; 16] {
    let mut uid = [0u8; 16];
    if getrandom::fill(&mut uid).is_err() {
        // No OS randomness: fall back to time and address entropy. The uid
        // guards against swapped files; it is not a secret.
        let t = now_micros().to_le_bytes();
        let a = (&uid as *const _ as usize as u64).to_le_bytes();
        uid[..8].copy_from_slice(&t);
        uid[8..].copy_from_slice(&a);
    }
    uid
}

/// Microseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_micros() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}
