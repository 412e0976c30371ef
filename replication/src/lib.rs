//! Strata replicated on Raft, with [openraft](https://docs.rs/openraft)
//! doing the consensus (SPEC §18).
//!
//! A node keeps two Strata databases: `raft/`, the Raft log and vote, and
//! `data-<n>/`, the state machine (the directory `DATA` names). They are
//! apart because a database has one commit-timestamp sequence: the data
//! database is written only by applying committed entries, each at the
//! timestamp the leader chose (`Db::write_at`), so every replica holds the
//! same versions at the same timestamps and time-travel reads agree.
//!
//! - [`LogStore`]: openraft's log storage on the `raft/` database; appends
//!   are synced before openraft hears they are durable.
//! - [`StateMachine`]: applies entries, one `write_at` each holding the
//!   entry's writes and the `_raft` bookkeeping (applied log id and commit
//!   timestamp, membership), so an entry is applied exactly once across
//!   crashes; snapshots are engine checkpoints.
//! - [`Replica`]: a node: writes through Raft, reads at a timestamp once
//!   applied, linearizable reads at the leader.
//! - [`snapshot_transfer`]: snapshots sent in bounded, checked chunks.
//! - [`sim`]: an in-process network with seeded faults, for tests.
//! - [`linearizability`]: checks that clients' histories of reads, writes
//!   and compare-and-swaps are linearizable, for the fault tests.
//! - [`types`]: the type configuration, commands and responses.

// openraft's trait methods fix the error type (`StorageError`, large);
// the helpers beside them return it as it is.
#![allow(clippy::result_large_err)]

mod codec;
mod committer;
pub mod linearizability;
mod log_store;
mod proposer;
mod replica;
pub mod sim;
pub mod snapshot_transfer;
mod state_machine;
mod txn;
pub mod types;

pub use committer::{RaftCommitter, DEFAULT_READ_WAIT};
pub use log_store::LogStore;
/// The consensus library, for its configuration and network traits.
pub use openraft;
pub use replica::{Replica, ReplicaError, DEFAULT_WRITE_WAIT};
pub use state_machine::{SnapshotFiles, StateMachine};
pub use txn::ReplicaTxn;
pub use types::{Node, NodeId, Request, Response, TxnCheck, TypeConfig};

use std::path::Path;

/// Opens (creating) the Raft storage of a node rooted at `root`: its log
/// store and its state machine, with `opts` for both databases.
pub fn open_storage(
    root: impl AsRef<Path>,
    opts: strata_engine::Options,
) -> strata_engine::Result<(LogStore, StateMachine)> {
    let root = root.as_ref();
    let log = LogStore::open(&root.join("raft"), opts.clone())?;
    let sm = StateMachine::open(root, opts)?;
    Ok((log, sm))
}
