//! Proposing writes. openraft 0.9 appends (and syncs) each client write on
//! its own, so concurrent writers would never share a sync: a node's
//! requests go through one proposer, which gathers those that arrive while
//! earlier entries are in flight into one entry. The entry's requests
//! apply in order, each at its own timestamp with its own response
//! (SPEC §18.2), exactly as if proposed one by one.

use std::sync::Arc;

use openraft::error::{ClientWriteError, RaftError};
use openraft::Raft;
use tokio::sync::{mpsc, oneshot, Semaphore};

use crate::replica::ReplicaError;
use crate::types::{Request, Response, TypeConfig};

/// Entries one node keeps in flight: while they are, requests gather.
const MAX_IN_FLIGHT: usize = 2;
/// Requests in one entry, at most.
const MAX_BATCH_REQUESTS: usize = 1024;
/// Bytes of operations in one entry, at most (one larger request goes
/// alone).
const MAX_BATCH_BYTES: usize = 8 << 20;

type Reply = oneshot::Sender<Result<Response, ReplicaError>>;

/// The proposer of one node. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Proposer {
    tx: mpsc::UnboundedSender<(Request, Reply)>,
}

impl Proposer {
    /// Starts the proposer of `raft` on the current runtime; it stops when
    /// every handle is dropped.
    pub(crate) fn start(raft: Raft<TypeConfig>) -> Proposer {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Request, Reply)>();
        tokio::spawn(async move {
            let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    break;
                };
                let Some(first) = rx.recv().await else {
                    break;
                };
                let mut bytes = first.0.ops.len();
                let mut batch = vec![first];
                while batch.len() < MAX_BATCH_REQUESTS && bytes < MAX_BATCH_BYTES {
                    match rx.try_recv() {
                        Ok(next) => {
                            bytes += next.0.ops.len();
                            batch.push(next);
                        }
                        Err(_) => break,
                    }
                }
                let raft = raft.clone();
                tokio::spawn(async move {
                    propose(&raft, batch).await;
                    drop(slot);
                });
            }
        });
        Proposer { tx }
    }

    /// Proposes `req` and waits for its response.
    pub(crate) async fn submit(&self, req: Request) -> Result<Response, ReplicaError> {
        let stopped = || ReplicaError::Raft("the proposer stopped".into());
        let (reply, answer) = oneshot::channel();
        self.tx.send((req, reply)).map_err(|_| stopped())?;
        answer.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// Proposes one entry of `batch`'s requests and answers each.
async fn propose(raft: &Raft<TypeConfig>, batch: Vec<(Request, Reply)>) {
    let (reqs, replies): (Vec<Request>, Vec<Reply>) = batch.into_iter().unzip();
    match raft.client_write(reqs).await {
        Ok(r) => {
            let mut responses = r.data.into_iter();
            for reply in replies {
                let _ = reply.send(responses.next().ok_or_else(|| {
                    ReplicaError::Raft("the entry answered fewer requests than it held".into())
                }));
            }
        }
        Err(e) => {
            let e = match e {
                RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => {
                    ReplicaError::NotLeader {
                        leader: f.leader_id,
                    }
                }
                e => ReplicaError::Raft(e.to_string()),
            };
            for reply in replies {
                let _ = reply.send(Err(e.clone()));
            }
        }
    }
}
