//! An in-process network between replicas for tests: messages go straight
//! to the target's `Raft` handle, through faults a seed decides: loss
//! (before or after delivery), delay, one-way or two-way partitions, and
//! nodes that are down. A failing schedule replays from its seed as far as
//! the tasks' interleaving allows. A snapshot travels as a manifest and
//! chunks ([`snapshot_transfer`](crate::snapshot_transfer)), each its own
//! message under the same faults.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::Snapshot;
use openraft::{Raft, Vote};
use parking_lot::Mutex;

use crate::snapshot_transfer::{
    ReceiveLimits, SnapshotReceiver, SnapshotSender, TransferError, DEFAULT_CHUNK_BYTES,
};
use crate::state_machine::SnapshotFiles;
use crate::types::{Node, NodeId, TypeConfig};

/// The faults of the simulated network.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Faults {
    /// Of each 1000 messages, how many are lost before delivery.
    pub drop_request_per_mille: u32,
    /// Of each 1000 delivered messages, how many lose their reply.
    pub drop_reply_per_mille: u32,
    /// The longest delay a message takes (uniform from zero); delays also
    /// reorder messages.
    pub max_delay: Duration,
}

struct State {
    nodes: HashMap<NodeId, Raft<TypeConfig>>,
    /// Links that are down, as (from, to).
    cut: HashSet<(NodeId, NodeId)>,
    faults: Faults,
    rng: u64,
}

impl State {
    fn next(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }
}

/// The network: one per simulated cluster. Cheap to clone.
#[derive(Clone)]
pub struct SimNetwork {
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for SimNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNetwork").finish_non_exhaustive()
    }
}

impl SimNetwork {
    /// A network with no faults, its choices drawn from `seed`.
    pub fn new(seed: u64) -> SimNetwork {
        SimNetwork {
            state: Arc::new(Mutex::new(State {
                nodes: HashMap::new(),
                cut: HashSet::new(),
                faults: Faults::default(),
                rng: seed | 1,
            })),
        }
    }

    /// Connects node `id`.
    pub fn connect(&self, id: NodeId, raft: Raft<TypeConfig>) {
        self.state.lock().nodes.insert(id, raft);
    }

    /// Disconnects node `id` (it crashed or stopped): messages to it fail.
    pub fn disconnect(&self, id: NodeId) {
        self.state.lock().nodes.remove(&id);
    }

    /// Sets the faults.
    pub fn set_faults(&self, faults: Faults) {
        self.state.lock().faults = faults;
    }

    /// Cuts every link between different groups (both ways); nodes in no
    /// group keep their links.
    pub fn partition(&self, groups: &[&[NodeId]]) {
        let mut st = self.state.lock();
        for (i, a) in groups.iter().enumerate() {
            for (j, b) in groups.iter().enumerate() {
                if i != j {
                    for &x in *a {
                        for &y in *b {
                            st.cut.insert((x, y));
                        }
                    }
                }
            }
        }
    }

    /// Cuts the link from `from` to `to` only.
    pub fn cut_one_way(&self, from: NodeId, to: NodeId) {
        self.state.lock().cut.insert((from, to));
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.state.lock().cut.clear();
    }

    /// A draw from the network's generator (for test schedules that share
    /// the seed).
    pub fn draw(&self) -> u64 {
        self.state.lock().next()
    }

    /// The connection factory of node `from`.
    pub fn factory(&self, from: NodeId) -> SimFactory {
        SimFactory {
            from,
            net: self.clone(),
        }
    }

    /// Decides a message's fate: the target, the delay, and whether the
    /// reply is lost; `None` when the message is lost.
    fn route(&self, from: NodeId, to: NodeId) -> Option<(Raft<TypeConfig>, Duration, bool)> {
        let mut st = self.state.lock();
        let f = st.faults;
        let lost = st.next() % 1000 < u64::from(f.drop_request_per_mille);
        let delay_ns = match f.max_delay.as_nanos() as u64 {
            0 => 0,
            max => st.next() % max,
        };
        let reply_lost = st.next() % 1000 < u64::from(f.drop_reply_per_mille);
        if lost || st.cut.contains(&(from, to)) {
            return None;
        }
        let raft = st.nodes.get(&to)?.clone();
        Some((raft, Duration::from_nanos(delay_ns), reply_lost))
    }
}

/// Makes node `from`'s connections.
pub struct SimFactory {
    from: NodeId,
    net: SimNetwork,
}

impl RaftNetworkFactory<TypeConfig> for SimFactory {
    type Network = SimConn;

    async fn new_client(&mut self, target: NodeId, _node: &Node) -> SimConn {
        SimConn {
            from: self.from,
            to: target,
            net: self.net.clone(),
        }
    }
}

/// One node's connection to another.
pub struct SimConn {
    from: NodeId,
    to: NodeId,
    net: SimNetwork,
}

fn unreachable(to: NodeId) -> Unreachable {
    Unreachable::new(&std::io::Error::other(format!("node {to} unreachable")))
}

fn reply_lost() -> NetworkError {
    NetworkError::new(&std::io::Error::other("the reply was lost"))
}

/// Holds a message for `delay`. One without delay goes at once: tokio's
/// timer would hold even a zero sleep to its next millisecond tick, which
/// no in-process message should cost.
async fn delay_by(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

impl SimConn {
    async fn deliver<T, E, F, Fut>(
        &self,
        call: F,
    ) -> Result<T, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        E: std::error::Error,
        F: FnOnce(Raft<TypeConfig>) -> Fut,
        Fut: Future<Output = Result<T, RaftError<NodeId, E>>>,
    {
        let Some((raft, delay, lose_reply)) = self.net.route(self.from, self.to) else {
            return Err(RPCError::Unreachable(unreachable(self.to)));
        };
        delay_by(delay).await;
        let r = call(raft).await;
        if lose_reply {
            return Err(RPCError::Network(reply_lost()));
        }
        r.map_err(|e| RPCError::RemoteError(RemoteError::new(self.to, e)))
    }
}

/// The bounds the simulated receivers put on a snapshot transfer.
const RECEIVE_LIMITS: ReceiveLimits = ReceiveLimits {
    max_files: 1 << 20,
    max_total_bytes: 1 << 40,
    max_chunk_bytes: DEFAULT_CHUNK_BYTES,
};

type Streaming<T> = Result<T, StreamingError<TypeConfig, Fatal<NodeId>>>;

/// A transfer that failed on either side: openraft sends the snapshot
/// again.
fn transfer_failed(e: TransferError) -> StreamingError<TypeConfig, Fatal<NodeId>> {
    StreamingError::Network(NetworkError::new(&e))
}

/// Runs file work (reads, writes, syncs) on tokio's blocking pool, so a
/// large snapshot does not hold up heartbeats.
async fn off_worker<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Streaming<T> {
    tokio::task::spawn_blocking(f).await.map_err(|e| {
        transfer_failed(TransferError::Io {
            path: PathBuf::new(),
            source: std::io::Error::other(format!("the transfer task failed: {e}")),
        })
    })
}

/// A received snapshot's staging directory, removed once the install is
/// over (whatever its outcome: an installed snapshot is copied out).
struct Staged(PathBuf);

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl SimConn {
    /// One message's trip over the network: lost (an error), or delayed
    /// and delivered to the target, with whether its reply is lost.
    async fn hop(&self) -> Streaming<(Raft<TypeConfig>, bool)> {
        let Some((raft, delay, lose_reply)) = self.net.route(self.from, self.to) else {
            return Err(StreamingError::Unreachable(unreachable(self.to)));
        };
        delay_by(delay).await;
        Ok((raft, lose_reply))
    }

    /// Sends the snapshot in `dir`: its manifest, then each chunk, each a
    /// message; returns the receiver's verified copy. On any failure the
    /// receiver is dropped, which removes its staging directory.
    async fn send_files(&self, dir: &Path) -> Streaming<Staged> {
        let dir = dir.to_path_buf();
        let mut sender = off_worker(move || SnapshotSender::new(dir, DEFAULT_CHUNK_BYTES))
            .await?
            .map_err(transfer_failed)?;
        // The manifest: the receiver stages into a fresh directory its
        // state machine names.
        let (raft, lose_reply) = self.hop().await?;
        let staging = raft
            .begin_receiving_snapshot()
            .await
            .map_err(|e| StreamingError::Unreachable(Unreachable::new(&e)))?;
        let (dir, manifest) = (staging.dir().to_path_buf(), sender.manifest().clone());
        let mut receiver = off_worker(move || SnapshotReceiver::new(dir, manifest, RECEIVE_LIMITS))
            .await?
            .map_err(transfer_failed)?;
        if lose_reply {
            return Err(StreamingError::Network(reply_lost()));
        }
        loop {
            let (s, next) = off_worker(move || {
                let next = sender.next_chunk();
                (sender, next)
            })
            .await?;
            sender = s;
            let Some(chunk) = next.map_err(transfer_failed)? else {
                break;
            };
            let (_, lose_reply) = self.hop().await?;
            let (r, accepted) = off_worker(move || {
                let accepted = receiver.accept(&chunk);
                (receiver, accepted)
            })
            .await?;
            receiver = r;
            accepted.map_err(transfer_failed)?;
            if lose_reply {
                return Err(StreamingError::Network(reply_lost()));
            }
        }
        let files = off_worker(move || receiver.finish())
            .await?
            .map_err(transfer_failed)?;
        Ok(Staged(files.dir().to_path_buf()))
    }
}

impl RaftNetwork<TypeConfig> for SimConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.deliver(|raft| async move { raft.append_entries(rpc).await })
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.deliver(|raft| async move { raft.vote(rpc).await })
            .await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        _option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        // The files travel first, a message per chunk, into a staging
        // directory of the receiver; a cancel stops them between messages.
        let mut cancel = std::pin::pin!(cancel);
        let staged = tokio::select! {
            biased;
            closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            r = self.send_files(snapshot.snapshot.dir()) => r?,
        };
        // Then the install, one more message.
        let (raft, lose_reply) = self.hop().await?;
        let r = raft
            .install_full_snapshot(
                vote,
                Snapshot {
                    meta: snapshot.meta,
                    snapshot: Box::new(SnapshotFiles::new(staged.0.clone())),
                },
            )
            .await;
        drop(staged);
        if lose_reply {
            return Err(StreamingError::Network(reply_lost()));
        }
        r.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.to, e)))
    }
}
