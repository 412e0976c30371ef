//! The committer of a replica's data database: `Db::write`, transaction
//! commits and everything built on them (a `StorageSystem`) go through
//! Raft, and reads at a timestamp not yet applied wait for it (SPEC §18.5).
//! The engine is synchronous and the replica async: a commit is handed to
//! the replica's runtime and the calling thread waits for its answer.

use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use strata_engine::{Committer, Error, Proposal, Timestamp, WriteOptions};
use tokio::runtime::Handle;

use crate::replica::{Replica, ReplicaError};
use crate::types::{Request, TxnCheck};

/// How long a read at a timestamp waits for the replica to apply it, by
/// default.
pub const DEFAULT_READ_WAIT: Duration = Duration::from_secs(5);

/// Sends a data database's commits through its replica's Raft.
#[derive(Debug)]
pub struct RaftCommitter {
    /// Set once the replica started; cleared at its shutdown, which ends
    /// the cycle replica → database → committer → replica.
    replica: Mutex<Option<Replica>>,
    handle: Handle,
    read_wait: Mutex<Duration>,
}

impl RaftCommitter {
    /// A committer for a replica about to start on the current runtime.
    pub(crate) fn new(handle: Handle) -> Arc<RaftCommitter> {
        Arc::new(RaftCommitter {
            replica: Mutex::new(None),
            handle,
            read_wait: Mutex::new(DEFAULT_READ_WAIT),
        })
    }

    /// Connects the committer to its started replica.
    pub(crate) fn attach(&self, replica: Replica) {
        *self.replica.lock() = Some(replica);
    }

    /// Disconnects it: later commits fail.
    pub(crate) fn detach(&self) {
        self.replica.lock().take();
    }

    /// Sets how long reads at an unapplied timestamp wait.
    pub fn set_read_wait(&self, wait: Duration) {
        *self.read_wait.lock() = wait;
    }

    /// Runs `f` on the replica's runtime and waits for its result on this
    /// thread (which must not be one of the runtime's async workers: call
    /// from a plain thread or `spawn_blocking`).
    fn run<T, F, Fut>(&self, f: F) -> Result<T, ReplicaError>
    where
        T: Send + 'static,
        F: FnOnce(Replica) -> Fut,
        Fut: std::future::Future<Output = Result<T, ReplicaError>> + Send + 'static,
    {
        let replica = self
            .replica
            .lock()
            .clone()
            .ok_or_else(|| ReplicaError::Raft("the replica has not started".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let fut = f(replica);
        self.handle.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv()
            .unwrap_or_else(|_| Err(ReplicaError::Raft("the replica's runtime stopped".into())))
    }
}

/// A replica's failure as the engine reports it: conflicts stay conflicts
/// (the engine's retry loops run them again), the rest is a replication
/// error carrying the replica's.
fn engine_error(e: ReplicaError) -> Error {
    match e {
        ReplicaError::Conflict { keyspace, key } => Error::Conflict { keyspace, key },
        ReplicaError::Rejected(why) => Error::InvalidArgument(why),
        ReplicaError::Engine(e) => e,
        e => Error::Replication(Arc::new(e)),
    }
}

/// The Raft request of an engine proposal.
pub(crate) fn request(p: Proposal) -> Request {
    Request {
        ts_hint: 0,
        session: None,
        keyspaces: p.keyspaces,
        ops: p.ops,
        count: p.count,
        check: p.check.map(|c| TxnCheck {
            start_ts: c.start_ts.as_u64(),
            serializable: c.serializable,
            reads: c.reads,
            ranges: c.ranges,
        }),
    }
}

impl Committer for RaftCommitter {
    fn commit(&self, proposal: Proposal, _opts: WriteOptions) -> strata_engine::Result<Timestamp> {
        // Acknowledged once a majority has the entry durably, whatever the
        // options ask: the data database's own sync adds nothing.
        let req = request(proposal);
        self.run(|r| async move { r.write(req).await })
            .map_err(engine_error)
    }

    fn wait_applied(&self, ts: Timestamp) -> strata_engine::Result<()> {
        let wait = *self.read_wait.lock();
        self.run(move |r| async move { r.wait_applied(ts, wait).await })
            .map_err(engine_error)
    }
}
