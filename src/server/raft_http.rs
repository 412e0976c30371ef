//! Raft between nodes over HTTP (SPEC §19.3): `POST /raft/append`,
//! `/raft/vote`, and a snapshot as `/raft/snapshot/begin` (the manifest),
//! `/raft/snapshot/chunk` (each chunk, in order) and
//! `/raft/snapshot/finish` (the install). Bodies are postcard-encoded;
//! every request carries the cluster token, which clients never see.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use openraft::error::{
    Fatal, NetworkError, RPCError, RaftError, RemoteError, ReplicationClosed, StreamingError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, SnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::storage::Snapshot;
use openraft::{Raft, SnapshotMeta, Vote};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use strata_replication::openraft;
use strata_replication::snapshot_transfer::{
    Chunk, ReceiveLimits, SnapshotManifest, SnapshotReceiver, SnapshotSender, DEFAULT_CHUNK_BYTES,
};
use strata_replication::{Node, NodeId, SnapshotFiles, TypeConfig};

/// What a receiver accepts of a snapshot from a peer.
const RECEIVE_LIMITS: ReceiveLimits = ReceiveLimits {
    max_files: 1 << 20,
    max_total_bytes: 1 << 44,
    max_chunk_bytes: 16 << 20,
};

/// The first message of a snapshot transfer.
#[derive(Serialize, Deserialize)]
struct Begin {
    manifest: SnapshotManifest,
}

/// The last: install what was received.
#[derive(Serialize, Deserialize)]
struct Finish {
    transfer: u64,
    vote: Vote<NodeId>,
    meta: SnapshotMeta<NodeId, Node>,
}

/// A chunk of transfer `transfer`.
#[derive(Serialize, Deserialize)]
struct ChunkMsg {
    transfer: u64,
    chunk: Chunk,
}

fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, NetworkError> {
    postcard::to_allocvec(v).map_err(|e| NetworkError::new(&e))
}

// ---------------------------------------------------------------- client

/// Makes a node's connections to its peers.
#[derive(Clone)]
pub(crate) struct HttpNetwork {
    client: reqwest::Client,
    token: Arc<str>,
    scheme: &'static str,
}

impl HttpNetwork {
    /// Connections that authenticate with `token`, over HTTPS when `tls`,
    /// trusting the CA certificates of `roots` (PEM) or the system's.
    pub(crate) fn new(
        token: &str,
        tls: bool,
        roots: Option<&[u8]>,
    ) -> crate::error::Result<HttpNetwork> {
        let client = strata_client::tls::http_builder(roots)
            .and_then(|b| {
                b.build()
                    .map_err(|e| strata_client::ClientError::Transport(e.to_string()))
            })
            .map_err(|e| crate::error::StorageError::Configuration(format!("tls.ca: {e}")))?;
        Ok(HttpNetwork {
            client,
            token: token.into(),
            scheme: if tls { "https" } else { "http" },
        })
    }
}

impl RaftNetworkFactory<TypeConfig> for HttpNetwork {
    type Network = HttpConn;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> HttpConn {
        HttpConn {
            net: self.clone(),
            base: format!("{}://{}", self.scheme, node.addr),
            target,
        }
    }
}

/// One node's connection to a peer.
pub(crate) struct HttpConn {
    net: HttpNetwork,
    base: String,
    target: NodeId,
}

/// Why a call to a peer got no answer: unreachable (openraft backs off)
/// or a network error (it retries).
enum CallError {
    Unreachable(Unreachable),
    Network(NetworkError),
    /// The peer refused the body as too large (413).
    TooLarge(NetworkError),
}

impl HttpConn {
    /// Posts `body` to `path` and decodes the answer.
    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<T, CallError> {
        let r = self
            .net
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&*self.net.token)
            .timeout(timeout)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    CallError::Unreachable(Unreachable::new(&e))
                } else {
                    CallError::Network(NetworkError::new(&e))
                }
            })?;
        let status = r.status();
        let bytes = r
            .bytes()
            .await
            .map_err(|e| CallError::Network(NetworkError::new(&e)))?;
        if !status.is_success() {
            let why = String::from_utf8_lossy(&bytes).into_owned();
            let e = NetworkError::new(&std::io::Error::other(format!("{path}: {status}: {why}")));
            if status == reqwest::StatusCode::PAYLOAD_TOO_LARGE {
                return Err(CallError::TooLarge(e));
            }
            return Err(CallError::Network(e));
        }
        postcard::from_bytes(&bytes).map_err(|e| CallError::Network(NetworkError::new(&e)))
    }

    async fn rpc<Req: Serialize, Resp: DeserializeOwned, E>(
        &self,
        path: &str,
        req: &Req,
        option: &RPCOption,
    ) -> Result<Resp, RPCError<NodeId, Node, RaftError<NodeId, E>>>
    where
        E: std::error::Error + DeserializeOwned,
    {
        let body = encode(req).map_err(RPCError::Network)?;
        let answer: Result<Resp, RaftError<NodeId, E>> = self
            .post(path, body, option.hard_ttl())
            .await
            .map_err(|e| match e {
                CallError::Unreachable(u) => RPCError::Unreachable(u),
                CallError::Network(n) => RPCError::Network(n),
                // openraft sends fewer entries next time.
                CallError::TooLarge(_) => {
                    RPCError::PayloadTooLarge(openraft::error::PayloadTooLarge::new_entries_hint(1))
                }
            })?;
        answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    /// Sends the snapshot in `dir`: the manifest, then each chunk.
    async fn send_files(
        &self,
        dir: PathBuf,
        timeout: Duration,
    ) -> Result<u64, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let net = |e: NetworkError| StreamingError::Network(e);
        let call = |e: CallError| match e {
            CallError::Unreachable(u) => StreamingError::Unreachable(u),
            CallError::Network(n) | CallError::TooLarge(n) => StreamingError::Network(n),
        };
        fn failed<E: std::error::Error + 'static>(
            e: &E,
        ) -> StreamingError<TypeConfig, Fatal<NodeId>> {
            StreamingError::Network(NetworkError::new(e))
        }
        let mut sender =
            tokio::task::spawn_blocking(move || SnapshotSender::new(dir, DEFAULT_CHUNK_BYTES))
                .await
                .map_err(|e| failed(&e))?
                .map_err(|e| failed(&e))?;
        let begin = Begin {
            manifest: sender.manifest().clone(),
        };
        let transfer: u64 = self
            .post(
                "/raft/snapshot/begin",
                encode(&begin).map_err(net)?,
                timeout,
            )
            .await
            .map_err(call)?;
        loop {
            let (s, next) = tokio::task::spawn_blocking(move || {
                let next = sender.next_chunk();
                (sender, next)
            })
            .await
            .map_err(|e| failed(&e))?;
            sender = s;
            let Some(chunk) = next.map_err(|e| failed(&e))? else {
                return Ok(transfer);
            };
            let msg = ChunkMsg { transfer, chunk };
            let () = self
                .post("/raft/snapshot/chunk", encode(&msg).map_err(net)?, timeout)
                .await
                .map_err(call)?;
        }
    }
}

impl RaftNetwork<TypeConfig> for HttpConn {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc("/raft/append", &rpc, &option).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, Node, RaftError<NodeId>>> {
        self.rpc("/raft/vote", &rpc, &option).await
    }

    async fn full_snapshot(
        &mut self,
        vote: Vote<NodeId>,
        snapshot: Snapshot<TypeConfig>,
        cancel: impl Future<Output = ReplicationClosed> + Send + 'static,
        option: RPCOption,
    ) -> Result<SnapshotResponse<NodeId>, StreamingError<TypeConfig, Fatal<NodeId>>> {
        let timeout = option.hard_ttl().max(Duration::from_secs(10));
        let dir = snapshot.snapshot.dir().to_path_buf();
        let mut cancel = std::pin::pin!(cancel);
        let transfer = tokio::select! {
            biased;
            closed = &mut cancel => return Err(StreamingError::Closed(closed)),
            r = self.send_files(dir, timeout) => r?,
        };
        let finish = Finish {
            transfer,
            vote,
            meta: snapshot.meta,
        };
        let body = encode(&finish).map_err(StreamingError::Network)?;
        let answer: Result<SnapshotResponse<NodeId>, Fatal<NodeId>> = self
            .post("/raft/snapshot/finish", body, timeout)
            .await
            .map_err(|e| match e {
                CallError::Unreachable(u) => StreamingError::Unreachable(u),
                CallError::Network(n) | CallError::TooLarge(n) => StreamingError::Network(n),
            })?;
        answer.map_err(|e| StreamingError::RemoteError(RemoteError::new(self.target, e)))
    }
}

// ---------------------------------------------------------------- server

/// The receiving side's state: the node's Raft and the transfers under
/// way (one at a time: a new one replaces an unfinished one).
#[derive(Clone)]
pub(crate) struct RaftRoutes {
    raft: Raft<TypeConfig>,
    transfer: Arc<Mutex<Option<(u64, SnapshotReceiver)>>>,
    next: Arc<Mutex<u64>>,
}

impl RaftRoutes {
    pub(crate) fn new(raft: Raft<TypeConfig>) -> RaftRoutes {
        RaftRoutes {
            raft,
            transfer: Arc::new(Mutex::new(None)),
            // Not from 0: a sender from before a restart does not meet a
            // new transfer's id.
            next: Arc::new(Mutex::new(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |t| t.as_nanos() as u64),
            )),
        }
    }
}

impl RaftRoutes {
    /// Transfer `id`'s receiver, taken out while a chunk is written or the
    /// transfer finishes; `None` when another transfer holds the slot.
    fn take(&self, id: u64) -> Option<SnapshotReceiver> {
        let mut t = self.transfer.lock();
        match t.take() {
            Some((held, r)) if held == id => Some(r),
            other => {
                *t = other;
                None
            }
        }
    }

    /// Puts transfer `id`'s receiver back, unless a newer transfer began
    /// meanwhile (then it is dropped, and its files with it).
    fn put_back(&self, id: u64, receiver: SnapshotReceiver) {
        let mut t = self.transfer.lock();
        if t.is_none() {
            *t = Some((id, receiver));
        }
    }
}

/// A postcard body, or why not.
fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    postcard::from_bytes(body).map_err(|e| format!("a malformed raft message: {e}"))
}

fn reply<T: Serialize>(v: &T) -> Response {
    match postcard::to_allocvec(v) {
        Ok(b) => b.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

fn refuse(e: impl std::fmt::Display) -> Response {
    (StatusCode::BAD_REQUEST, e.to_string()).into_response()
}

pub(crate) async fn append(State(s): State<RaftRoutes>, body: Bytes) -> Response {
    let rpc: AppendEntriesRequest<TypeConfig> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    reply(&s.raft.append_entries(rpc).await)
}

pub(crate) async fn vote(State(s): State<RaftRoutes>, body: Bytes) -> Response {
    let rpc: VoteRequest<NodeId> = match decode(&body) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    reply(&s.raft.vote(rpc).await)
}

pub(crate) async fn snapshot_begin(State(s): State<RaftRoutes>, body: Bytes) -> Response {
    let begin: Begin = match decode(&body) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let staging = match s.raft.begin_receiving_snapshot().await {
        Ok(f) => f,
        Err(e) => return (StatusCode::SERVICE_UNAVAILABLE, e.to_string()).into_response(),
    };
    let dir = staging.dir().to_path_buf();
    let made = tokio::task::spawn_blocking(move || {
        SnapshotReceiver::new(dir, begin.manifest, RECEIVE_LIMITS)
    })
    .await;
    let receiver = match made {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return refuse(e),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let id = {
        let mut n = s.next.lock();
        *n += 1;
        *n
    };
    // An unfinished earlier transfer is dropped, which removes its files.
    *s.transfer.lock() = Some((id, receiver));
    reply(&id)
}

pub(crate) async fn snapshot_chunk(State(s): State<RaftRoutes>, body: Bytes) -> Response {
    let msg: ChunkMsg = match decode(&body) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let taken = s.take(msg.transfer);
    let Some(mut receiver) = taken else {
        return refuse(format!("no snapshot transfer {}", msg.transfer));
    };
    let done = tokio::task::spawn_blocking(move || {
        let r = receiver.accept(&msg.chunk);
        (receiver, r)
    })
    .await;
    match done {
        Ok((receiver, Ok(()))) => {
            s.put_back(msg.transfer, receiver);
            reply(&())
        }
        // The receiver is dropped: its files go with it.
        Ok((_, Err(e))) => refuse(e),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

pub(crate) async fn snapshot_finish(State(s): State<RaftRoutes>, body: Bytes) -> Response {
    let msg: Finish = match decode(&body) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let taken = s.take(msg.transfer);
    let Some(receiver) = taken else {
        return refuse(format!("no snapshot transfer {}", msg.transfer));
    };
    let files: SnapshotFiles = match tokio::task::spawn_blocking(move || receiver.finish()).await {
        Ok(Ok(f)) => f,
        Ok(Err(e)) => return refuse(e),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let dir = files.dir().to_path_buf();
    let r = s
        .raft
        .install_full_snapshot(
            msg.vote,
            Snapshot {
                meta: msg.meta,
                snapshot: Box::new(files),
            },
        )
        .await;
    let _ = std::fs::remove_dir_all(&dir);
    reply(&r)
}
