//! `strata-format`: every byte Strata writes to disk, encoded and decoded.
//!
//! This crate is pure: no file I/O, no threads, no clocks, no global state.
//! Encoders write into a `Vec<u8>` or any [`std::io::Write`]; decoders take
//! untrusted `&[u8]` (or [`bytes::Bytes`], so the engine can hand in an
//! mmap, or for tables a [`sst::TableSource`] the engine implements with
//! positioned reads) and return a value or an [`Error`] naming what was
//! wrong and where, never a panic, an unbounded allocation or a hang.
//!
//! The layout of every structure is specified in `SPEC.md` at the root of
//! the repository; each module's documentation repeats its part.
//!
//! - [`key`]: internal keys (user key ‖ timestamp ‖ kind) and the comparator.
//! - [`block`]: sorted entries with prefix compression and restart points.
//! - [`codec`]: compression, encryption and checksums applied to each block.
//! - [`bloom`]: the per-table bloom filter.
//! - [`sst`]: tables of blocks with an index, a filter, properties and a footer.
//! - [`log`]: the record log used by the WAL and the manifest.
//! - [`manifest`]: the manifest's records.
//! - [`batch`]: write-batch records, the payload of WAL records.
//! - [`blob`]: blob files and the pointers to the values they hold.
//! - [`range_del`]: range tombstones, fragmented, as tables store them.

#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod backup;
pub mod batch;
pub mod blob;
pub mod block;
pub mod bloom;
pub mod codec;
pub mod coding;
pub mod error;
pub mod item;
pub mod key;
pub mod log;
pub mod manifest;
pub mod raft;
pub mod range_del;
pub mod sst;

pub use error::{Error, Result};
