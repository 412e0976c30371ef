//! Strata: an embedded log-structured storage engine with MVCC timestamps,
//! time-travel reads, and per-block compression and encryption.
//!
//! The crate is layered: [`format`] defines every byte on disk, and
//! [`engine`] builds the LSM tree on it. The storage system with typed
//! providers sits on top of the engine.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use strata_engine as engine;
pub use strata_format as format;
