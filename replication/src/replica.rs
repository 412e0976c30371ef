//! A replica: one node's Raft and storage, and the operations clients use:
//! writes (committed once a majority has them durably), reads at a
//! timestamp (after the replica applied it), linearizable reads at the
//! leader.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, RaftError};
use openraft::network::RaftNetworkFactory;
use openraft::Raft;
use strata_engine::{Db, Options, Snapshot, Timestamp};

use crate::committer::RaftCommitter;
use crate::log_store::LogStore;
use crate::proposer::Proposer;
use crate::state_machine::StateMachine;
use crate::types::{NodeId, Request, Response, TypeConfig};

/// How long a write waits for a majority by default: above an election
/// (a leader cut off from the others keeps waiting for them, unaware
/// that another node leads).
pub const DEFAULT_WRITE_WAIT: Duration = Duration::from_secs(5);

/// Why a replica could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplicaError {
    /// Writes and linearizable reads go to the leader; this node is not it.
    #[error("not the leader (the leader is {leader:?}); retry there")]
    NotLeader {
        /// The leader, when known.
        leader: Option<NodeId>,
    },
    /// The command cannot apply on any replica (nothing was written).
    #[error("rejected: {0}")]
    Rejected(String),
    /// A transaction found a newer version of `key` than its start; run it
    /// again.
    #[error("conflict on {key:?} in {keyspace}; retry")]
    Conflict {
        /// The keyspace.
        keyspace: String,
        /// The key.
        key: Vec<u8>,
    },
    /// No majority confirmed a write or a linearizable read in time (this
    /// node may lead a minority, unaware yet that another leads): the
    /// write may still apply. Send it again, with the same session, at the
    /// leader.
    #[error("no majority confirmed within {waited:?}; a write may still apply: retry it with the same session")]
    Unconfirmed {
        /// How long the write waited.
        waited: Duration,
    },
    /// The replica did not apply the timestamp in time.
    #[error("timestamp {0} not applied within the timeout")]
    Timeout(u64),
    /// Raft failed (no quorum, shutting down, a storage failure); whether
    /// a write took effect is unknown.
    #[error("raft: {0}")]
    Raft(String),
    /// The engine failed.
    #[error(transparent)]
    Engine(#[from] strata_engine::Error),
}

impl ReplicaError {
    /// True when the same request may succeed if sent again (to the
    /// leader, or later): no leader here, no quorum, a timestamp not yet
    /// applied, a transaction conflict. A write that failed this way may
    /// still have been applied: send it again with the same session number
    /// and it applies once.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ReplicaError::NotLeader { .. }
                | ReplicaError::Raft(_)
                | ReplicaError::Timeout(_)
                | ReplicaError::Unconfirmed { .. }
                | ReplicaError::Conflict { .. }
        )
    }
}

/// One node of a replicated Strata.
#[derive(Clone)]
pub struct Replica {
    id: NodeId,
    raft: Raft<TypeConfig>,
    sm: StateMachine,
    log: LogStore,
    committer: Arc<RaftCommitter>,
    proposer: Proposer,
    /// How long a write waits for a majority.
    write_wait: Arc<parking_lot::Mutex<Duration>>,
}

impl std::fmt::Debug for Replica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replica").field("id", &self.id).finish()
    }
}

impl Replica {
    /// Starts node `id` on the storage rooted at `root` (created if new),
    /// talking to its peers through `network`. Call inside a tokio
    /// runtime.
    pub async fn start<N: RaftNetworkFactory<TypeConfig>>(
        id: NodeId,
        root: &Path,
        opts: Options,
        config: Arc<openraft::Config>,
        network: N,
    ) -> Result<Replica, ReplicaError> {
        let committer = RaftCommitter::new(tokio::runtime::Handle::current());
        let mut log_opts = opts.clone();
        log_opts.committer = None;
        let log = LogStore::open(&root.join("raft"), log_opts)?;
        // The data database is written only through the log: a write or a
        // transaction on it goes through Raft.
        let mut data_opts = opts;
        data_opts.committer = Some(committer.clone());
        let sm = StateMachine::open(root, data_opts)?;
        let raft = Raft::new(id, config, network, log.clone(), sm.clone())
            .await
            .map_err(|e| ReplicaError::Raft(e.to_string()))?;
        let replica = Replica {
            id,
            raft: raft.clone(),
            sm,
            log,
            committer,
            proposer: Proposer::start(raft.clone()),
            write_wait: Arc::new(parking_lot::Mutex::new(DEFAULT_WRITE_WAIT)),
        };
        replica.committer.attach(replica.clone());
        Ok(replica)
    }

    /// Sets how long a write waits for a majority before it is answered
    /// [`ReplicaError::Unconfirmed`] (default [`DEFAULT_WRITE_WAIT`]).
    pub fn set_write_wait(&self, wait: Duration) {
        *self.write_wait.lock() = wait;
    }

    /// The committer of the data database (how long its reads at a
    /// timestamp wait).
    pub fn committer(&self) -> &RaftCommitter {
        &self.committer
    }

    /// The node's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// The Raft handle (membership changes, metrics, initialization).
    pub fn raft(&self) -> &Raft<TypeConfig> {
        &self.raft
    }

    /// The state machine (its database is for reads only).
    pub fn state_machine(&self) -> &StateMachine {
        &self.sm
    }

    /// The log store.
    pub fn log_store(&self) -> &LogStore {
        &self.log
    }

    /// Commits `req` through Raft and returns its commit timestamp, the
    /// same on every replica. Acknowledged only once a majority has the
    /// entry durably and this node applied it. A `ts_hint` of 0 is the
    /// leader's clock.
    pub async fn write(&self, mut req: Request) -> Result<Timestamp, ReplicaError> {
        if req.ts_hint == 0 {
            req.ts_hint = Timestamp::now().as_u64();
        }
        let waited = *self.write_wait.lock();
        let Ok(written) = tokio::time::timeout(waited, self.proposer.submit(req)).await else {
            return Err(ReplicaError::Unconfirmed { waited });
        };
        match written? {
            Response::Committed { ts } => Ok(Timestamp(ts)),
            Response::Rejected(why) => Err(ReplicaError::Rejected(why)),
            Response::Conflict { keyspace, key } => Err(ReplicaError::Conflict { keyspace, key }),
            Response::Noop => Err(ReplicaError::Raft("a write answered as a no-op".into())),
        }
    }

    /// Waits (at most `timeout`) until this replica has applied every entry
    /// up to commit timestamp `ts`.
    pub async fn wait_applied(&self, ts: Timestamp, timeout: Duration) -> Result<(), ReplicaError> {
        let mut rx = self.sm.subscribe_applied();
        let reached = tokio::time::timeout(timeout, async {
            rx.wait_for(|&applied| applied >= ts.as_u64()).await.is_ok()
        })
        .await;
        match reached {
            Ok(true) => Ok(()),
            _ => Err(ReplicaError::Timeout(ts.as_u64())),
        }
    }

    /// A snapshot at commit timestamp `ts` on this replica, once it has
    /// applied `ts` (so it agrees with every other replica). Never reads
    /// past what this replica applied: such a read would move its clock.
    pub async fn read_at(
        &self,
        ts: Timestamp,
        timeout: Duration,
    ) -> Result<Snapshot, ReplicaError> {
        self.wait_applied(ts, timeout).await?;
        Ok(self.sm.db().snapshot_at(ts)?)
    }

    /// The database for a linearizable read: at the leader, after a quorum
    /// confirmed it still leads and it applied everything committed before
    /// the call.
    pub async fn linearizable(&self) -> Result<Db, ReplicaError> {
        let waited = *self.write_wait.lock();
        let Ok(confirmed) = tokio::time::timeout(waited, self.raft.ensure_linearizable()).await
        else {
            return Err(ReplicaError::Unconfirmed { waited });
        };
        match confirmed {
            Ok(_) => Ok(self.sm.db()),
            Err(RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(f))) => {
                Err(ReplicaError::NotLeader {
                    leader: f.leader_id,
                })
            }
            Err(e) => Err(ReplicaError::Raft(e.to_string())),
        }
    }

    /// Adds node `id` at `node` as a learner and waits until it has caught
    /// up (by log or snapshot). Call at the leader.
    pub async fn add_learner(
        &self,
        id: NodeId,
        node: crate::types::Node,
    ) -> Result<(), ReplicaError> {
        self.raft
            .add_learner(id, node, true)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Makes the learners `ids` voters. Call at the leader.
    pub async fn promote(
        &self,
        ids: std::collections::BTreeSet<NodeId>,
    ) -> Result<(), ReplicaError> {
        self.raft
            .change_membership(openraft::ChangeMembers::AddVoterIds(ids), false)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Removes the voters `ids` from the cluster (they are not kept as
    /// learners): once the change commits they take no part, and a write
    /// sent to one is refused. Call at the leader.
    pub async fn remove(
        &self,
        ids: std::collections::BTreeSet<NodeId>,
    ) -> Result<(), ReplicaError> {
        self.raft
            .change_membership(openraft::ChangeMembers::RemoveVoters(ids), false)
            .await
            .map(|_| ())
            .map_err(membership_error)
    }

    /// Stops the node's Raft and closes its databases.
    pub async fn shutdown(self) -> Result<(), ReplicaError> {
        self.committer.detach();
        self.raft
            .shutdown()
            .await
            .map_err(|e| ReplicaError::Raft(e.to_string()))?;
        let _ = self.sm.db().close();
        let _ = self.log.db().close();
        Ok(())
    }
}

/// A membership change's error as the replica reports it.
fn membership_error(
    e: RaftError<NodeId, ClientWriteError<NodeId, crate::types::Node>>,
) -> ReplicaError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ReplicaError::NotLeader {
            leader: f.leader_id,
        },
        e => ReplicaError::Raft(e.to_string()),
    }
}
