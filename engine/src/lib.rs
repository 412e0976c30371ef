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

pub mod backup;
mod blob;
mod bounds;
mod cache;
mod checkpoint;
mod commit;
mod committer;
mod cursor;
mod db;
mod describe;
mod encryption;
mod error;
mod error_state;
mod flush;
pub mod fs;
mod gc;
mod history;
mod iter;
mod keyspace;
mod keyspaces;
mod levels;
mod memtable;
mod options;
mod policy;
mod random;
mod range_del;
mod reader;
mod recovery;
mod retention;
mod snapshot;
mod stats;
mod table_file;
mod table_sink;
mod timestamp;
mod txn;
mod verify;
mod version;
mod view;
mod write_batch;

pub use checkpoint::{CheckpointInfo, LiveFile, LiveFileKind, LiveFiles};
pub use commit::batch::MAX_VALUE_LEN;
pub use committer::{Committer, Proposal, ProposalCheck, ScannedRange};
pub use db::Db;
pub use describe::{DirDescription, KeyspaceDescription, TableDescription};
pub use encryption::{EncryptionKeyProvider, FileKeyProvider, Key, MemoryKeyProvider};
pub use error::{Error, Result};
pub use iter::{Iter, KvPair};
pub use keyspace::Version;
pub use keyspace::{Keyspace, Value};
pub use options::{Options, SstReads, WriteOptions};
pub use reader::{Entries, Entry, Reader};
pub use snapshot::Snapshot;
pub use stats::{KeyspaceStats, LevelStats, Stats};
pub use strata_format as format;
pub use timestamp::{Clock, ManualClock, SystemClock, Timestamp};
pub use txn::{Isolation, Retryable, Transaction, TxIter, TxnOptions};
pub use verify::{DamagedFile, VerifyReport};
pub use write_batch::WriteBatch;
