//! `strata-engine`: the LSM tree under Strata, built on the on-disk formats
//! of [`strata_format`].
//!
//! The engine (write-ahead log, memtables, SSTables, compaction, MVCC) is
//! being built; for now this crate re-exports the format layer it stands on.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use strata_format as format;
