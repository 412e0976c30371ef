//! `strata serve`: one node of a cluster as an HTTP server (SPEC §19).
//!
//! The node runs the storage system on a Raft replica
//! ([`ReplicatedStorage`](crate::cluster::ReplicatedStorage)); its peers
//! reach its Raft over the same listener (`/raft/*`, with the cluster
//! token), and clients reach the API (`/v1/*`, `/metrics`) with their
//! bearer tokens. Writes and linearizable reads sent to a follower are
//! answered `307` with the leader's URL; reads at a timestamp are answered
//! by any node once it applied the timestamp.

mod api;
mod blobs;
pub mod config;
mod docs;
mod error;
mod raft_http;
mod tls;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::Router;
use strata_replication::openraft;

pub use config::{Limits, Peer, RaftTiming, ServerConfig, TlsConfig, Token};
pub use error::ApiError;

use crate::access::Identity;
use crate::cluster::ReplicatedStorage;
use crate::error::{Result, StorageError};
use crate::StorageSystem;

/// Entries in one Raft append, at most.
const MAX_APPEND_ENTRIES: u64 = 16;
/// The largest body a peer may send: `MAX_APPEND_ENTRIES` entries of the
/// largest command (64 MiB) and their framing. An append above it is
/// answered 413, and the sender splits it.
const RAFT_BODY_LIMIT: usize = (MAX_APPEND_ENTRIES as usize + 1) << 26;

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct AppState {
    inner: Arc<Shared>,
}

struct Shared {
    node: Arc<ReplicatedStorage>,
    config: ServerConfig,
    /// Client tokens and who they are.
    tokens: HashMap<String, Identity>,
}

impl AppState {
    pub(crate) fn node(&self) -> &ReplicatedStorage {
        &self.inner.node
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.inner.config
    }

    pub(crate) fn scheme(&self) -> &'static str {
        if self.inner.config.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }
}

/// Whether `got` equals the secret `want`, with the same work whatever
/// `got` is, so its bytes do not leak through timing.
fn same(want: &[u8], got: &[u8]) -> bool {
    let mut diff = want.len() ^ got.len();
    for (i, w) in want.iter().enumerate() {
        diff |= usize::from(w ^ got.get(i).copied().unwrap_or(0));
    }
    diff == 0
}

/// The bearer token of a request, if it has one.
fn bearer(req: &Request) -> Option<&str> {
    req.headers()
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Client requests carry a known client token: the identity they act as
/// goes with them. 401 otherwise, before anything runs.
async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    // Every token is compared, each in constant time: which one matched,
    // or how much of one did, does not show in the time taken.
    let who = bearer(&req).and_then(|t| {
        let mut found = None;
        for (known, who) in &s.inner.tokens {
            if same(known.as_bytes(), t.as_bytes()) {
                found = Some(who.clone());
            }
        }
        found
    });
    match who {
        Some(who) => {
            req.extensions_mut().insert(who);
            next.run(req).await
        }
        None => ApiError::unauthorized("a known bearer token is required").into_response(),
    }
}

/// Raft requests carry the cluster token. 401 otherwise.
async fn authenticate_peer(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let ok =
        bearer(&req).is_some_and(|t| same(s.inner.config.cluster_token.as_bytes(), t.as_bytes()));
    if ok {
        next.run(req).await
    } else {
        ApiError::unauthorized("the cluster token is required").into_response()
    }
}

/// Errors the HTTP layer answers itself (a body over the bound, a query
/// or path that does not parse) get the JSON body every other error has.
async fn json_errors(req: Request, next: Next) -> Response {
    let r = next.run(req).await;
    let is_json = r
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(r.status().is_client_error() || r.status().is_server_error()) || is_json {
        return r;
    }
    let status = r.status();
    let text = axum::body::to_bytes(r.into_body(), 64 << 10)
        .await
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_owned()
    } else {
        text
    };
    ApiError::new(status, message).into_response()
}

/// A request that outlasts its bound is answered 503.
async fn bounded(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_millis(s.inner.config.limits.request_timeout_ms);
    within(limit, req, next).await
}

/// A blob's transfer that outlasts its bound is answered 503.
async fn bounded_blob(State(s): State<AppState>, req: Request, next: Next) -> Response {
    let limit = Duration::from_millis(s.inner.config.limits.blob_timeout_ms);
    within(limit, req, next).await
}

async fn within(limit: Duration, req: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("the request took longer than {limit:?}"),
        )
        .into_response(),
    }
}

/// The Raft configuration of `timing`.
fn raft_config(timing: &RaftTiming) -> Result<Arc<openraft::Config>> {
    let c = openraft::Config {
        heartbeat_interval: timing.heartbeat_ms,
        election_timeout_min: timing.election_timeout_ms,
        election_timeout_max: timing.election_timeout_ms * 2,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(timing.snapshot_every),
        // An entry holds at most 64 MiB of operations: appends of this many
        // stay under the Raft routes' body bound.
        max_payload_entries: MAX_APPEND_ENTRIES,
        ..Default::default()
    };
    let c = c
        .validate()
        .map_err(|e| StorageError::Configuration(format!("raft: {e}")))?;
    Ok(Arc::new(c))
}

/// A running node.
pub struct Server {
    node: Arc<ReplicatedStorage>,
    router: Router,
    config: ServerConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("node", &self.config.node_id)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// Starts the node of `config`: its storage and Raft, and, when no node
    /// of the cluster has any state and this one has the lowest id, the
    /// cluster itself. Call inside a multi-threaded tokio runtime.
    pub async fn start(config: ServerConfig) -> Result<Server> {
        config.check()?;
        let mut builder = StorageSystem::builder().with_config(crate::StorageSystemConfig {
            access_control: true,
            ..Default::default()
        });
        if !config.access_policies.is_empty() {
            builder = builder.with_access_policies(config.access_policies.clone());
        }
        if let Some(dir) = &config.key_dir {
            let keys = strata_engine::FileKeyProvider::new(dir, config.key_id.unwrap_or(1))?;
            builder = builder.with_key_provider(Arc::new(keys));
        }
        // Certificates are read before anything starts, so a bad file is a
        // configuration error rather than a node that cannot be reached.
        let (tls, peer_roots) = match &config.tls {
            Some(t) => (Some(tls::server_config(t)?), tls::peer_roots(t)?),
            None => (None, None),
        };
        let network = raft_http::HttpNetwork::new(
            &config.cluster_token,
            tls.is_some(),
            peer_roots.as_deref(),
        )?;
        let node = Arc::new(
            ReplicatedStorage::start(
                config.node_id,
                &config.data_dir,
                builder,
                raft_config(&config.raft)?,
                network,
            )
            .await?,
        );
        let lowest = config.peers.iter().map(|p| p.id).min();
        let raft = node.replica().raft().clone();
        let fresh = {
            let m = raft.metrics().borrow().clone();
            m.last_log_index.is_none() && m.current_term == 0
        };
        if fresh && lowest == Some(config.node_id) {
            let members: std::collections::BTreeMap<u64, strata_replication::Node> = config
                .peers
                .iter()
                .map(|p| {
                    (
                        p.id,
                        strata_replication::Node {
                            addr: p.addr.clone(),
                        },
                    )
                })
                .collect();
            // Refused when the cluster was started already: nothing to do.
            let _ = raft.initialize(members).await;
        }
        let tokens = config
            .tokens
            .iter()
            .map(|t| {
                let mut who = Identity::new(t.identity.clone());
                for (k, v) in &t.attributes {
                    who = who.with_attribute(k.clone(), v.clone());
                }
                (t.token.clone(), who)
            })
            .collect();
        let state = AppState {
            inner: Arc::new(Shared {
                node: node.clone(),
                config: config.clone(),
                tokens,
            }),
        };
        let peers = raft_http::RaftRoutes::new(raft);
        let raft_routes = Router::new()
            .route("/raft/append", post(raft_http::append))
            .route("/raft/vote", post(raft_http::vote))
            .route("/raft/snapshot/begin", post(raft_http::snapshot_begin))
            .route("/raft/snapshot/chunk", post(raft_http::snapshot_chunk))
            .route("/raft/snapshot/finish", post(raft_http::snapshot_finish))
            .with_state(peers)
            // Chunks and appends are bounded by their senders; the body
            // bound here is the largest a peer sends.
            .layer(DefaultBodyLimit::max(RAFT_BODY_LIMIT))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                authenticate_peer,
            ));
        let api = Router::new()
            .route("/v1/health", get(api::health))
            .route("/v1/ready", get(api::ready))
            .route("/v1/cluster", get(api::cluster))
            .route("/v1/cluster/learners", post(api::add_learner))
            .route("/v1/cluster/voters", post(api::promote))
            .route("/v1/cluster/voters/{id}", delete(api::remove))
            .route("/v1/kv/{type}", get(api::kv_scan))
            .route(
                "/v1/kv/{type}/{*key}",
                get(api::kv_get).put(api::kv_put).delete(api::kv_delete),
            )
            .route("/v1/batch", post(api::batch))
            .route(
                "/v1/docs/{type}/{collection}/{id}",
                get(docs::get).put(docs::put).delete(docs::delete),
            )
            .route("/v1/query/{type}/{collection}", post(docs::query))
            .route("/v1/explain/{type}/{collection}", post(docs::explain))
            .route("/v1/count/{type}/{collection}", post(docs::count))
            .route("/v1/analyze/{type}/{collection}", post(docs::analyze))
            .route("/v1/page/{type}/{collection}", post(docs::page))
            .route("/v1/indexes/{type}/{collection}", post(docs::create_index))
            .route("/metrics", get(api::metrics))
            .layer(DefaultBodyLimit::max(config.limits.max_body_bytes))
            .layer(axum::middleware::from_fn_with_state(state.clone(), bounded));
        // Blobs stream, under their own bounds of size and time.
        let blob_routes = Router::new()
            .route(
                "/v1/blobs/{*key}",
                get(blobs::get).put(blobs::put).delete(blobs::delete),
            )
            .layer(DefaultBodyLimit::disable())
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                bounded_blob,
            ));
        // Unknown paths too need a token: without one they are 401.
        let api = api
            .merge(blob_routes)
            .fallback(|| async { ApiError::new(axum::http::StatusCode::NOT_FOUND, "no such path") })
            .layer(axum::middleware::from_fn(json_errors))
            .layer(axum::middleware::from_fn_with_state(
                state.clone(),
                authenticate,
            ))
            .with_state(state);
        let router = api.merge(raft_routes);
        Ok(Server {
            node,
            router,
            config,
            tls,
        })
    }

    /// The node's storage.
    pub fn node(&self) -> &Arc<ReplicatedStorage> {
        &self.node
    }

    /// Serves until `shutdown` completes, then stops the node.
    pub async fn serve(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let listener = tokio::net::TcpListener::bind(&self.config.listen)
            .await
            .map_err(|e| {
                StorageError::Io(format!("cannot listen on {}: {e}", self.config.listen))
            })?;
        let served = match self.tls {
            Some(tls) => {
                axum::serve(tls::TlsListener::new(listener, tls)?, self.router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
            None => {
                axum::serve(listener, self.router)
                    .with_graceful_shutdown(shutdown)
                    .await
            }
        };
        served.map_err(|e| StorageError::Io(format!("serving: {e}")))?;
        if let Ok(node) = Arc::try_unwrap(self.node) {
            node.shutdown().await?;
        }
        Ok(())
    }
}
