//! The storage system on a node of a replicated cluster (SPEC §18.5).
//!
//! The node's data database is a replica: every write the storage system
//! makes (items, documents and their indexes, blobs, policies) is a Raft
//! entry, committed once a majority has it durably and applied on every
//! replica at the timestamp the leader chose, so all replicas hold the same
//! versions. Reads stay local: they see what this node applied, and a read
//! `at` a timestamp waits until the node applied it. Writes on a follower
//! fail with [`ReplicaError::NotLeader`](strata_replication::ReplicaError)
//! inside `engine::Error::Replication`.
//!
//! The storage system caches what it reads at build (policies, access
//! policies, quota usage). [`ReplicatedStorage::system`] builds it again
//! whenever those may have changed under it: a snapshot replaced the data,
//! the Raft term moved (another node may have led and written), or the log
//! wrote to the Registry keyspace. Take a fresh handle for each unit of
//! work rather than keeping one.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;
use strata_engine::Timestamp;
use strata_replication::openraft::network::RaftNetworkFactory;
use strata_replication::{NodeId, Replica, ReplicaError, TypeConfig};

use crate::error::{Result, StorageError};
use crate::system::{StorageSystem, StorageSystemBuilder};
use crate::types::StorageType;

/// What a built storage system depends on: when any of it changes, the
/// system is built again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Basis {
    /// The data directory's generation (a snapshot install changes it).
    generation: u64,
    /// The Raft term.
    term: u64,
    /// The Registry keyspace's last commit.
    registry: Timestamp,
}

/// A storage system on one node of a Raft cluster.
pub struct ReplicatedStorage {
    replica: Replica,
    builder: StorageSystemBuilder,
    current: Mutex<Option<(Basis, StorageSystem)>>,
}

impl std::fmt::Debug for ReplicatedStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicatedStorage")
            .field("replica", &self.replica)
            .finish_non_exhaustive()
    }
}

/// A replica's failure as the storage system reports it.
fn replica_error(e: ReplicaError) -> StorageError {
    match e {
        ReplicaError::Engine(e) => StorageError::from(e),
        e => StorageError::from(strata_engine::Error::Replication(Arc::new(e))),
    }
}

impl ReplicatedStorage {
    /// Starts node `id` with its storage under `root` (created if new):
    /// the engine options come from `builder` (its path is not used),
    /// the Raft settings from `config`, the peers through `network`. Call
    /// inside a multi-threaded tokio runtime; the cluster is initialised
    /// through [`replica`](Self::replica).
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        root: &Path,
        builder: StorageSystemBuilder,
        config: Arc<strata_replication::openraft::Config>,
        network: N,
    ) -> Result<ReplicatedStorage> {
        let replica = Replica::start(id, root, builder.engine_options(), config, network)
            .await
            .map_err(replica_error)?;
        Ok(ReplicatedStorage {
            replica,
            builder,
            current: Mutex::new(None),
        })
    }

    /// The node's replica: its Raft (membership, metrics), writes and
    /// reads below the storage system.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    fn basis(&self) -> Result<Basis> {
        let sm = self.replica.state_machine();
        let registry = sm.db().keyspace(StorageType::Registry.name())?;
        Ok(Basis {
            generation: sm.generation(),
            term: self.replica.raft().metrics().borrow().current_term,
            registry: registry.last_commit_ts(),
        })
    }

    /// The storage system over what this node holds now, built again when
    /// what it caches may be stale. It blocks (its writes wait for Raft):
    /// call it, and use what it returns, from a plain thread or
    /// `tokio::task::spawn_blocking`, never from an async task.
    pub fn system(&self) -> Result<StorageSystem> {
        let mut current = self.current.lock();
        let basis = self.basis()?;
        if let Some((b, s)) = &*current {
            if *b == basis {
                return Ok(s.clone());
            }
        }
        let system = self
            .builder
            .clone()
            .build_on(self.replica.state_machine().db())?;
        *current = Some((basis, system.clone()));
        Ok(system)
    }

    /// Stops the node: its Raft, then its databases.
    pub async fn shutdown(self) -> Result<()> {
        self.current.lock().take();
        self.replica.shutdown().await.map_err(replica_error)
    }
}
