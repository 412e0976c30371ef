//! A small typed client of a Strata server (`strata serve`, SPEC §19):
//! key-value reads and writes, reads at a time and history, conditional
//! batches, documents, blobs (whole or streamed), and the cluster's
//! status, over HTTP or HTTPS ([`tls`]).
//!
//! The client knows several nodes: a call goes to the first one that
//! answers, and a `307` from a follower is followed to the leader with
//! the token sent again (HTTP clients drop it across hosts).

mod blobs;
pub mod tls;

pub use blobs::BlobDownload;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status and a message.
    #[error("{status}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// No node could be reached, or the answer was not understood.
    #[error("transport: {0}")]
    Transport(String),
    /// No node accepted a connection: the request was never sent.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// A local reader or writer of a streamed blob failed.
    #[error("local: {0}")]
    Local(String),
}

impl ClientError {
    /// The HTTP status, for an answered call.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Status { status, .. } => Some(*status),
            ClientError::Transport(_) | ClientError::Unreachable(_) | ClientError::Local(_) => None,
        }
    }
}

/// The result of a client call.
pub type Result<T> = std::result::Result<T, ClientError>;

/// One version of a key, newest first in a history.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Version {
    /// Its commit timestamp.
    pub ts: u64,
    /// Its value as text (`None` for a delete or binary value).
    #[serde(default)]
    pub value: Option<String>,
    /// Its value in hex, when not UTF-8.
    #[serde(default)]
    pub value_hex: Option<String>,
    /// True for a delete.
    #[serde(default)]
    pub deleted: bool,
}

/// A write of a batch.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Op {
    /// Stores `value` under `key` of storage type `type`.
    Put {
        /// The storage type (`resource`, `fact`, ...).
        #[serde(rename = "type")]
        storage_type: String,
        /// The key.
        key: String,
        /// The value (UTF-8).
        value: String,
    },
    /// Deletes `key`.
    Delete {
        /// The storage type.
        #[serde(rename = "type")]
        storage_type: String,
        /// The key.
        key: String,
    },
}

/// What must hold for a batch to apply.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Condition {
    /// The storage type.
    #[serde(rename = "type")]
    pub storage_type: String,
    /// The key.
    pub key: String,
    /// Its value must be this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Its version (commit timestamp) must be this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// It must be absent.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub absent: bool,
}

/// An atomic batch: every op applies, or none (when a condition fails).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Batch {
    /// What must hold.
    pub conditions: Vec<Condition>,
    /// The writes.
    pub ops: Vec<Op>,
}

/// The cluster as one node sees it.
#[derive(Debug, Clone, Deserialize)]
pub struct ClusterStatus {
    /// The answering node.
    pub node: u64,
    /// The leader it knows.
    pub leader: Option<u64>,
    /// The leader's URL, as the cluster's configuration gives it.
    #[serde(default)]
    pub leader_url: Option<String>,
    /// Its term.
    pub term: u64,
    /// The last entry it applied.
    pub last_applied_index: Option<u64>,
    /// The commit timestamp of the last entry it applied.
    pub applied_ts: u64,
    /// The voters.
    pub voters: Vec<u64>,
}

/// A client of one cluster, as one identity (its token).
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    nodes: Vec<String>,
    token: String,
}

/// A follower's redirects followed at most.
const MAX_REDIRECTS: usize = 5;

impl Client {
    /// A client of the nodes at `nodes` (`http://host:port`, or `https://`
    /// with certificates the system trusts), sending `token`; each call
    /// gives up after `timeout`.
    pub fn new(
        nodes: impl IntoIterator<Item = impl Into<String>>,
        token: impl Into<String>,
        timeout: Duration,
    ) -> Result<Client> {
        Self::build(nodes, token, timeout, None)
    }

    /// A client of nodes served over HTTPS with certificates signed by one
    /// of the CA certificates of the PEM bundle `ca_pem` (and no other).
    pub fn with_ca(
        nodes: impl IntoIterator<Item = impl Into<String>>,
        token: impl Into<String>,
        timeout: Duration,
        ca_pem: &[u8],
    ) -> Result<Client> {
        Self::build(nodes, token, timeout, Some(ca_pem))
    }

    fn build(
        nodes: impl IntoIterator<Item = impl Into<String>>,
        token: impl Into<String>,
        timeout: Duration,
        ca_pem: Option<&[u8]>,
    ) -> Result<Client> {
        let http = tls::http_builder(ca_pem)?
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .build()
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let nodes: Vec<String> = nodes.into_iter().map(Into::into).collect();
        if nodes.is_empty() {
            return Err(ClientError::Transport("no node given".into()));
        }
        Ok(Client {
            http,
            nodes,
            token: token.into(),
        })
    }

    /// Whether `url` is at a node this client was given: the token goes
    /// nowhere else.
    fn is_known(&self, url: &str) -> bool {
        self.nodes.iter().any(|n| {
            url.strip_prefix(n.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
    }

    /// Sends a request to the first node that answers, following
    /// redirects; returns the final response, its body not yet read.
    async fn respond(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<reqwest::Response> {
        let mut last = ClientError::Unreachable("no node answered".into());
        for node in &self.nodes {
            let mut url = format!("{node}{path}");
            for _ in 0..=MAX_REDIRECTS {
                let mut req = self
                    .http
                    .request(method.clone(), &url)
                    .bearer_auth(&self.token);
                if let Some((b, ct)) = &body {
                    req = req.header("content-type", *ct).body(b.clone());
                }
                let resp = match req.send().await {
                    Ok(r) => r,
                    Err(e) if e.is_connect() => {
                        last = ClientError::Unreachable(format!("{url}: {e}"));
                        break;
                    }
                    // It may have reached the server: trying another node
                    // could apply a write twice.
                    Err(e) => return Err(ClientError::Transport(format!("{url}: {e}"))),
                };
                if resp.status() != StatusCode::TEMPORARY_REDIRECT {
                    return Ok(resp);
                }
                match resp.headers().get("location").and_then(|l| l.to_str().ok()) {
                    Some(l) if self.is_known(l) => url = l.to_owned(),
                    Some(l) => {
                        return Err(ClientError::Transport(format!(
                            "a redirect to {l}, which is not a known node"
                        )))
                    }
                    None => {
                        last = ClientError::Transport("a redirect without a location".into());
                        break;
                    }
                }
            }
        }
        Err(last)
    }

    /// Sends a request to the first node that answers, following
    /// redirects; returns the final response's status and body.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<(StatusCode, reqwest::header::HeaderMap, Vec<u8>)> {
        let resp = self.respond(method, path, body).await?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?
            .to_vec();
        Ok((status, headers, bytes))
    }

    /// The error an answer with `status` and `body` stands for.
    fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
        ClientError::Status {
            status: status.as_u16(),
            message,
        }
    }

    /// The body of a successful call; an error status becomes
    /// [`ClientError::Status`].
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<(Vec<u8>, &'static str)>,
    ) -> Result<(reqwest::header::HeaderMap, Vec<u8>)> {
        let (status, headers, bytes) = self.send(method, path, body).await?;
        if status.is_success() {
            return Ok((headers, bytes));
        }
        Err(Self::status_error(status, &bytes))
    }

    fn json<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T> {
        serde_json::from_slice(bytes)
            .map_err(|e| ClientError::Transport(format!("a bad answer: {e}")))
    }

    /// Stores `value` under `key`; returns its commit timestamp.
    pub async fn put(&self, storage_type: &str, key: &str, value: &[u8]) -> Result<u64> {
        let (_, b) = self
            .call(
                Method::PUT,
                &format!("/v1/kv/{storage_type}/{key}"),
                Some((value.to_vec(), "application/octet-stream")),
            )
            .await?;
        let v: serde_json::Value = Self::json(&b)?;
        v["version"]
            .as_u64()
            .ok_or_else(|| ClientError::Transport("an answer without a version".into()))
    }

    async fn read(&self, path: String) -> Result<Option<(Vec<u8>, u64)>> {
        match self.call(Method::GET, &path, None).await {
            Ok((h, b)) => {
                let version = h
                    .get("x-strata-version")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                Ok(Some((b, version)))
            }
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The value of `key` and its version, as the answering node applied
    /// it (`None`: absent).
    pub async fn get(&self, storage_type: &str, key: &str) -> Result<Option<(Vec<u8>, u64)>> {
        self.read(format!("/v1/kv/{storage_type}/{key}")).await
    }

    /// The value of `key` read at the leader after a quorum confirmed it
    /// leads: no write acknowledged before the call is missing.
    pub async fn get_linearizable(
        &self,
        storage_type: &str,
        key: &str,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        self.read(format!(
            "/v1/kv/{storage_type}/{key}?consistency=linearizable"
        ))
        .await
    }

    /// The value of `key` as of timestamp `at` (the same on every node).
    pub async fn get_at(
        &self,
        storage_type: &str,
        key: &str,
        at: u64,
    ) -> Result<Option<(Vec<u8>, u64)>> {
        self.read(format!("/v1/kv/{storage_type}/{key}?at={at}"))
            .await
    }

    /// Every version of `key`, newest first.
    pub async fn history(&self, storage_type: &str, key: &str) -> Result<Vec<Version>> {
        let (_, b) = self
            .call(
                Method::GET,
                &format!("/v1/kv/{storage_type}/{key}?history=true"),
                None,
            )
            .await?;
        Self::json(&b)
    }

    /// Deletes `key`.
    pub async fn delete(&self, storage_type: &str, key: &str) -> Result<()> {
        self.call(
            Method::DELETE,
            &format!("/v1/kv/{storage_type}/{key}"),
            None,
        )
        .await
        .map(|_| ())
    }

    /// Applies `batch`: `true` when applied, `false` when a condition did
    /// not hold (nothing was written).
    pub async fn batch(&self, batch: &Batch) -> Result<bool> {
        let body = serde_json::to_vec(batch).map_err(|e| ClientError::Transport(e.to_string()))?;
        match self
            .call(Method::POST, "/v1/batch", Some((body, "application/json")))
            .await
        {
            Ok(_) => Ok(true),
            Err(ClientError::Status {
                status: 409,
                message,
            }) if message.contains("condition") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Sets `key` to `new` if its value is `expected` (`None`: absent).
    pub async fn compare_and_set(
        &self,
        storage_type: &str,
        key: &str,
        expected: Option<&str>,
        new: &str,
    ) -> Result<bool> {
        let cond = Condition {
            storage_type: storage_type.into(),
            key: key.into(),
            value: expected.map(str::to_owned),
            absent: expected.is_none(),
            ..Condition::default()
        };
        self.batch(&Batch {
            conditions: vec![cond],
            ops: vec![Op::Put {
                storage_type: storage_type.into(),
                key: key.into(),
                value: new.into(),
            }],
        })
        .await
    }

    /// Stores the JSON document `doc` as `id` of `collection`.
    pub async fn put_document(
        &self,
        storage_type: &str,
        collection: &str,
        id: &str,
        doc: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let body = serde_json::to_vec(doc).map_err(|e| ClientError::Transport(e.to_string()))?;
        let (_, b) = self
            .call(
                Method::PUT,
                &format!("/v1/docs/{storage_type}/{collection}/{id}"),
                Some((body, "application/json")),
            )
            .await?;
        Self::json(&b)
    }

    /// The document `id` of `collection` (`None`: absent).
    pub async fn get_document(
        &self,
        storage_type: &str,
        collection: &str,
        id: &str,
    ) -> Result<Option<serde_json::Value>> {
        match self
            .call(
                Method::GET,
                &format!("/v1/docs/{storage_type}/{collection}/{id}"),
                None,
            )
            .await
        {
            Ok((_, b)) => Self::json(&b).map(Some),
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn post_json(&self, path: &str, body: &serde_json::Value) -> Result<Vec<u8>> {
        let body = serde_json::to_vec(body).map_err(|e| ClientError::Transport(e.to_string()))?;
        self.call(Method::POST, path, Some((body, "application/json")))
            .await
            .map(|(_, b)| b)
    }

    /// Posts `query` and `options` to the query-shaped route `route` of
    /// `collection`.
    async fn post_query(
        &self,
        route: &str,
        storage_type: &str,
        collection: &str,
        query: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<Vec<u8>> {
        self.post_json(
            &format!("/v1/{route}/{storage_type}/{collection}"),
            &serde_json::json!({ "query": query, "options": options }),
        )
        .await
    }

    /// The documents of `collection` matching `query` (the JSON form of a
    /// `DocumentQuery`), ordered and limited as `options` (a
    /// `QueryOptions`) asks.
    pub async fn query(
        &self,
        storage_type: &str,
        collection: &str,
        query: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<Vec<serde_json::Value>> {
        let b = self
            .post_query("query", storage_type, collection, query, options)
            .await?;
        Self::json(&b)
    }

    /// The plan `query` would run with.
    pub async fn explain(
        &self,
        storage_type: &str,
        collection: &str,
        query: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<serde_json::Value> {
        let b = self
            .post_query("explain", storage_type, collection, query, options)
            .await?;
        Self::json(&b)
    }

    /// How many documents of `collection` match `query` (offset and limit
    /// aside).
    pub async fn count(
        &self,
        storage_type: &str,
        collection: &str,
        query: &serde_json::Value,
        options: &serde_json::Value,
    ) -> Result<u64> {
        let b = self
            .post_query("count", storage_type, collection, query, options)
            .await?;
        let v: serde_json::Value = Self::json(&b)?;
        v["count"]
            .as_u64()
            .ok_or_else(|| ClientError::Transport(format!("a count without a number: {v}")))
    }

    /// Creates (and builds) an index on `field` of `collection`.
    pub async fn create_index(
        &self,
        storage_type: &str,
        collection: &str,
        field: &str,
    ) -> Result<serde_json::Value> {
        let b = self
            .post_json(
                &format!("/v1/indexes/{storage_type}/{collection}"),
                &serde_json::json!({ "field": field }),
            )
            .await?;
        Self::json(&b)
    }

    /// The cluster as the answering node sees it.
    pub async fn cluster(&self) -> Result<ClusterStatus> {
        let (_, b) = self.call(Method::GET, "/v1/cluster", None).await?;
        Self::json(&b)
    }

    /// The answering node's metrics, in the Prometheus text format.
    pub async fn metrics(&self) -> Result<String> {
        let (_, b) = self.call(Method::GET, "/metrics", None).await?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    /// Sends a raw request (for tests of the API's refusals): its status
    /// and body.
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>)> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        let (status, _, b) = self
            .send(method, path, body.map(|b| (b, "application/json")))
            .await?;
        Ok((status.as_u16(), b))
    }
}
