//! The client API (SPEC §19.1): key-value items with reads at a time and
//! history, atomic batches with conditions, the cluster's status and
//! membership, health and metrics. Every call runs as the identity of its
//! token, under the storage system's access policies.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use strata_engine::Timestamp;

use super::error::ApiError;
use super::AppState;
use crate::access::{AccessType, Identity};
use crate::error::StorageError;
use crate::system::IdentityStorage;
use crate::types::{
    DeleteOptions, KeyPattern, RetrieveOptions, StorageKey, StorageOptions, StorageType,
};

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// A storage type named in a path.
pub(super) fn storage_type(name: &str) -> ApiResult<StorageType> {
    StorageType::ALL
        .into_iter()
        .find(|t| t.name() == name)
        .ok_or_else(|| ApiError::bad_request(format!("no storage type {name:?}")))
}

/// A key named in a path: not empty.
pub(super) fn storage_key(key: &str) -> ApiResult<StorageKey> {
    if key.is_empty() {
        return Err(ApiError::bad_request("an empty key"));
    }
    Ok(StorageKey::new(key))
}

/// A timestamp: raw, or ISO-8601.
pub(super) fn parse_ts(s: &str) -> ApiResult<Timestamp> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(Timestamp(n));
    }
    Timestamp::from_iso8601(s)
        .map_err(|e| ApiError::bad_request(format!("bad timestamp {s:?}: {e}")))
}

/// A JSON body of type `T`, or 400 naming what is wrong.
pub(super) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}

/// Runs storage work (which blocks on Raft) off the async workers.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

impl AppState {
    /// `Ok` at the leader; a redirect to the same path at the leader
    /// elsewhere; 503 while no leader is known.
    pub(super) async fn require_leader(&self, uri: &Uri) -> ApiResult<()> {
        let me = self.node().replica().id();
        match self.node().replica().raft().current_leader().await {
            Some(l) if l == me => Ok(()),
            Some(l) => Err(self.redirect_to(l, uri)),
            None => Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no leader is known yet; retry",
            )),
        }
    }

    fn redirect_to(&self, leader: u64, uri: &Uri) -> ApiError {
        match self.config().addr_of(leader) {
            Some(addr) => ApiError::redirect(format!(
                "{}://{addr}{}",
                self.scheme(),
                uri.path_and_query().map_or("/", |p| p.as_str())
            )),
            None => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the leader, node {leader}, is not among the configured peers"),
            ),
        }
    }

    /// Runs `f` as `who` on a blocking thread (storage calls wait for
    /// Raft), at the leader when `write`; a failure as the client sees it.
    pub(super) async fn as_caller<T: Send + 'static>(
        &self,
        who: Identity,
        uri: &Uri,
        write: bool,
        f: impl FnOnce(&IdentityStorage) -> Result<T, StorageError> + Send + 'static,
    ) -> ApiResult<T> {
        if write {
            self.require_leader(uri).await?;
        }
        let s = self.clone();
        let r = blocking(move || {
            let system = s.node().system()?;
            f(&system.as_identity(&who)).map_err(ApiError::from)
        })
        .await;
        match r {
            Ok(v) => Ok(v),
            Err(e) => Err(self.failed(e, uri).await),
        }
    }

    /// A storage failure as the client sees it: a write refused by a
    /// follower becomes a redirect.
    pub(super) async fn failed(&self, e: ApiError, uri: &Uri) -> ApiError {
        // Only a refusal made before proposing is safe to redirect: a write
        // whose outcome is unknown stays a 503.
        if e.is_not_leader() {
            if let Some(l) = self.node().replica().raft().current_leader().await {
                if l != self.node().replica().id() {
                    return self.redirect_to(l, uri);
                }
            }
        }
        e
    }
}

/// `GET /v1/health`: the process serves.
pub(crate) async fn health(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "node": s.node().replica().id()}))
}

/// `GET /v1/ready`: the node knows a leader (it can take writes through
/// it); 503 otherwise.
pub(crate) async fn ready(State(s): State<AppState>) -> Response {
    match s.node().replica().raft().current_leader().await {
        Some(l) => Json(serde_json::json!({"ready": true, "leader": l})).into_response(),
        None => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "no leader yet").into_response(),
    }
}

/// The cluster as one node sees it.
#[derive(Serialize)]
struct ClusterStatus {
    node: u64,
    leader: Option<u64>,
    /// Where clients reach the leader: a stream (a blob upload) goes
    /// there directly, since it cannot follow a redirect.
    leader_url: Option<String>,
    term: u64,
    state: String,
    last_log_index: Option<u64>,
    last_applied_index: Option<u64>,
    applied_ts: u64,
    voters: Vec<u64>,
    learners: Vec<u64>,
}

/// `GET /v1/cluster`.
pub(crate) async fn cluster(State(s): State<AppState>) -> Json<serde_json::Value> {
    let r = s.node().replica();
    let m = r.raft().metrics().borrow().clone();
    let membership = m.membership_config.membership();
    let status = ClusterStatus {
        node: r.id(),
        leader: m.current_leader,
        leader_url: m
            .current_leader
            .and_then(|l| s.config().addr_of(l))
            .map(|a| format!("{}://{a}", s.scheme())),
        term: m.current_term,
        state: format!("{:?}", m.state),
        last_log_index: m.last_log_index,
        last_applied_index: m.last_applied.map(|l| l.index),
        // From the watch, not the state machine's lock, which an install
        // holds while it copies.
        applied_ts: *r.state_machine().subscribe_applied().borrow(),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
    };
    Json(serde_json::to_value(status).unwrap_or_default())
}

/// A membership change's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Learner {
    id: u64,
    addr: String,
}

/// Needs Admin on `cluster` of the Registry type.
fn require_admin(s: &AppState, who: &Identity) -> ApiResult<()> {
    let system = s.node().system().map_err(ApiError::from)?;
    let allowed = match system.access_control() {
        Some(ac) => ac
            .check_access(who, StorageType::Registry, "cluster", AccessType::Admin)
            .map_err(ApiError::from)?
            .is_allowed(),
        None => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("{} may not change the cluster", who.id),
        ))
    }
}

/// `POST /v1/cluster/learners {"id", "addr"}`: adds a learner and waits
/// until it caught up.
pub(crate) async fn add_learner(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let l: Learner = parse_json(&body)?;
    // The leader sends the cluster token to its learners: only to a
    // configured peer.
    if s.config().addr_of(l.id) != Some(l.addr.as_str()) {
        return Err(ApiError::bad_request(format!(
            "node {} at {} is not among the configured peers",
            l.id, l.addr
        )));
    }
    s.require_leader(&uri).await?;
    let s2 = s.clone();
    blocking(move || require_admin(&s2, &who)).await?;
    s.node()
        .replica()
        .add_learner(l.id, strata_replication::Node { addr: l.addr })
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(serde_json::json!({"added": l.id})))
}

/// A set of node ids.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ids {
    ids: Vec<u64>,
}

/// `POST /v1/cluster/voters {"ids"}`: makes learners voters.
pub(crate) async fn promote(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let ids: Ids = parse_json(&body)?;
    s.require_leader(&uri).await?;
    let s2 = s.clone();
    blocking(move || require_admin(&s2, &who)).await?;
    s.node()
        .replica()
        .promote(ids.ids.iter().copied().collect())
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(serde_json::json!({"voters_added": ids.ids})))
}

/// `DELETE /v1/cluster/voters/{id}`: removes a voter.
pub(crate) async fn remove(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    uri: Uri,
    Path(id): Path<u64>,
) -> ApiResult<Json<serde_json::Value>> {
    s.require_leader(&uri).await?;
    let s2 = s.clone();
    blocking(move || require_admin(&s2, &who)).await?;
    s.node()
        .replica()
        .remove([id].into_iter().collect())
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string()))?;
    Ok(Json(serde_json::json!({"removed": id})))
}

/// `GET /metrics`: the engine's, the storage system's and Raft's figures
/// in the Prometheus text format.
pub(crate) async fn metrics(State(s): State<AppState>) -> ApiResult<Response> {
    let s2 = s.clone();
    let mut text = blocking(move || {
        let system = s2.node().system().map_err(ApiError::from)?;
        Ok(system.metrics().render_prometheus())
    })
    .await?;
    let r = s.node().replica();
    let m = r.raft().metrics().borrow().clone();
    let is_leader = u8::from(m.current_leader == Some(r.id()));
    for (name, help, v) in [
        (
            "strata_raft_term",
            "The Raft term this node is in.",
            m.current_term,
        ),
        (
            "strata_raft_is_leader",
            "1 when this node leads.",
            u64::from(is_leader),
        ),
        (
            "strata_raft_last_log_index",
            "The index of the last entry in this node's log.",
            m.last_log_index.unwrap_or(0),
        ),
        (
            "strata_raft_last_applied_index",
            "The index of the last entry this node applied.",
            m.last_applied.map_or(0, |l| l.index),
        ),
    ] {
        text += &format!("# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}\n");
    }
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4"),
    );
    Ok(resp)
}

/// The query of a key-value read.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReadQuery {
    /// Read as of this time (raw or ISO-8601); any node serves it once it
    /// applied it.
    at: Option<String>,
    /// `linearizable`: read at the leader after a quorum confirms it.
    consistency: Option<String>,
    /// Every version instead of one value.
    history: Option<bool>,
}

/// One version, as JSON: the value as a string when it is UTF-8, else in
/// hex.
pub(super) fn version_json(ts: Timestamp, value: Option<&[u8]>) -> serde_json::Value {
    let mut v = serde_json::json!({ "ts": ts.as_u64() });
    match value {
        None => v["deleted"] = true.into(),
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => v["value"] = text.into(),
            Err(_) => v["value_hex"] = hex(b).into(),
        },
    }
    v
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// `GET /v1/kv/{type}/{key}`: the value (raw bytes, its commit timestamp
/// in `x-strata-version`), or its history as JSON.
pub(crate) async fn kv_get(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, key)): Path<(String, String)>,
    Query(q): Query<ReadQuery>,
    uri: Uri,
) -> ApiResult<Response> {
    let t = storage_type(&t)?;
    let key = storage_key(&key)?;
    let at = q.at.as_deref().map(parse_ts).transpose()?;
    match q.consistency.as_deref() {
        None | Some("local") => {}
        Some("linearizable") => {
            s.require_leader(&uri).await?;
            if let Err(e) = s.node().replica().linearizable().await {
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    e.to_string(),
                ));
            }
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "consistency is local or linearizable, not {other:?}"
            )))
        }
    }
    let history = q.history.unwrap_or(false);
    s.as_caller(who, &uri, false, move |c| {
        let p = c.get_provider(t)?;
        if history {
            let versions: Vec<serde_json::Value> = p
                .history(&key)?
                .into_iter()
                .map(|v| version_json(v.ts, v.item.as_ref().map(|i| &i.value[..])))
                .collect();
            return Ok(Json(versions).into_response());
        }
        let mut opts = RetrieveOptions::new();
        if let Some(at) = at {
            opts = opts.at(at);
        }
        let item = p.retrieve(&key, &opts)?;
        let mut resp = item.value.into_response();
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        if let Some(v) = item.metadata.version {
            if let Ok(v) = HeaderValue::from_str(&v.as_u64().to_string()) {
                h.insert("x-strata-version", v);
            }
        }
        Ok(resp)
    })
    .await
}

/// The query of a key-value write.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct WriteQuery {
    /// Expire the item this many seconds from now.
    ttl_secs: Option<u64>,
}

/// `PUT /v1/kv/{type}/{key}`: stores the body; answers its commit
/// timestamp.
pub(crate) async fn kv_put(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, key)): Path<(String, String)>,
    Query(q): Query<WriteQuery>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<serde_json::Value>> {
    let t = storage_type(&t)?;
    let key = storage_key(&key)?;
    s.as_caller(who, &uri, true, move |c| {
        let opts = StorageOptions::new().with_ttl(q.ttl_secs.map(Duration::from_secs));
        let m = c.get_provider(t)?.store(&key, &body, &opts)?;
        Ok(Json(serde_json::json!({
            "key": m.key.as_str(),
            "version": m.version.map(|v| v.as_u64()),
            "size": m.size,
        })))
    })
    .await
}

/// `DELETE /v1/kv/{type}/{key}`.
pub(crate) async fn kv_delete(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, key)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult<Json<serde_json::Value>> {
    let t = storage_type(&t)?;
    let key = storage_key(&key)?;
    s.as_caller(who, &uri, true, move |c| {
        c.get_provider(t)?.delete(&key, &DeleteOptions::new())?;
        Ok(Json(serde_json::json!({ "deleted": key.as_str() })))
    })
    .await
}

/// The query of a scan.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ScanQuery {
    prefix: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/kv/{type}?prefix=&limit=`: the keys (and values) in order.
pub(crate) async fn kv_scan(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(t): Path<String>,
    Query(q): Query<ScanQuery>,
) -> ApiResult<Json<Vec<serde_json::Value>>> {
    let t = storage_type(&t)?;
    let max = s.config().limits.max_scan_keys;
    let limit = q.limit.unwrap_or(max).min(max);
    let pattern = KeyPattern::prefix(q.prefix.unwrap_or_default()).with_limit(limit);
    blocking(move || {
        {
            let system = s.node().system()?;
            let p = system.as_identity(&who).get_provider(t)?;
            let keys = p.list_keys(&pattern)?;
            let mut out = Vec::new();
            for k in keys.into_iter().take(limit) {
                if let Some(item) = p.get(&k, &RetrieveOptions::new())? {
                    let ts = item.metadata.version.unwrap_or(item.metadata.stored_at);
                    let mut v = version_json(ts, Some(&item.value));
                    v["key"] = k.as_str().into();
                    out.push(v);
                }
            }
            Ok::<_, StorageError>(Json(out))
        }
        .map_err(ApiError::from)
    })
    .await
}

/// A write of a batch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, tag = "op", rename_all = "lowercase")]
pub(crate) enum BatchOp {
    /// Stores `value` (UTF-8) under `key`.
    Put {
        #[serde(rename = "type")]
        storage_type: String,
        key: String,
        value: String,
        #[serde(default)]
        ttl_secs: Option<u64>,
    },
    /// Deletes `key`.
    Delete {
        #[serde(rename = "type")]
        storage_type: String,
        key: String,
    },
}

/// What must hold for a batch to apply: the key's current value equals
/// `value`, or its version equals `version`, or it is absent.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Condition {
    #[serde(rename = "type")]
    storage_type: String,
    key: String,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    version: Option<u64>,
    #[serde(default)]
    absent: bool,
}

/// An atomic batch across storage types, applied only if every condition
/// holds (optimistic transactions over the network).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Batch {
    #[serde(default)]
    conditions: Vec<Condition>,
    ops: Vec<BatchOp>,
}

/// `POST /v1/batch`: 200 `{"applied": true}`; 409 with the first
/// condition that failed, and nothing written.
pub(crate) async fn batch(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Response> {
    let b: Batch = parse_json(&body)?;
    if b.ops.is_empty() && b.conditions.is_empty() {
        return Err(ApiError::bad_request("an empty batch"));
    }
    // Checked before anything runs: a bad name changes nothing.
    for c in &b.conditions {
        storage_type(&c.storage_type)?;
        storage_key(&c.key)?;
        let set = usize::from(c.value.is_some())
            + usize::from(c.version.is_some())
            + usize::from(c.absent);
        if set != 1 {
            return Err(ApiError::bad_request(format!(
                "the condition on {:?} needs exactly one of value, version, absent",
                c.key
            )));
        }
    }
    for op in &b.ops {
        let (BatchOp::Put {
            storage_type: t,
            key,
            ..
        }
        | BatchOp::Delete {
            storage_type: t,
            key,
        }) = op;
        storage_type(t)?;
        storage_key(key)?;
    }
    s.require_leader(&uri).await?;
    let s2 = s.clone();
    let r = blocking(move || {
        {
            let system = s2.node().system()?;
            let scoped = system.as_identity(&who);
            let failed = system.transaction(|tx| {
                for (i, c) in b.conditions.iter().enumerate() {
                    let t = storage_type(&c.storage_type)
                        .map_err(|e| StorageError::InvalidArgument(format!("{e:?}")))?;
                    let p = scoped.get_provider(t)?;
                    let got = p.get(
                        &StorageKey::new(&c.key),
                        &RetrieveOptions::new().with_transaction(tx),
                    )?;
                    let holds = match (&got, c) {
                        (None, Condition { absent: true, .. }) => true,
                        (Some(item), Condition { value: Some(v), .. }) => {
                            item.value == v.as_bytes()
                        }
                        (
                            Some(item),
                            Condition {
                                version: Some(v), ..
                            },
                        ) => item.metadata.version.map(|t| t.as_u64()) == Some(*v),
                        _ => false,
                    };
                    if !holds {
                        return Ok(Some(i));
                    }
                }
                for op in &b.ops {
                    match op {
                        BatchOp::Put {
                            storage_type: t,
                            key,
                            value,
                            ttl_secs,
                        } => {
                            let t = storage_type(t)
                                .map_err(|e| StorageError::InvalidArgument(format!("{e:?}")))?;
                            let opts = StorageOptions::new()
                                .with_transaction(tx)
                                .with_ttl(ttl_secs.map(Duration::from_secs));
                            scoped.get_provider(t)?.store(
                                &StorageKey::new(key),
                                value.as_bytes(),
                                &opts,
                            )?;
                        }
                        BatchOp::Delete {
                            storage_type: t,
                            key,
                        } => {
                            let t = storage_type(t)
                                .map_err(|e| StorageError::InvalidArgument(format!("{e:?}")))?;
                            scoped.get_provider(t)?.delete(
                                &StorageKey::new(key),
                                &DeleteOptions::new().with_transaction(tx),
                            )?;
                        }
                    }
                }
                Ok(None)
            })?;
            Ok::<_, StorageError>(failed)
        }
        .map_err(ApiError::from)
    })
    .await;
    match r {
        Ok(None) => Ok(Json(serde_json::json!({"applied": true})).into_response()),
        Ok(Some(i)) => Ok((
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "applied": false,
                "failed_condition": i,
                "error": format!("condition {i} does not hold; nothing was written"),
            })),
        )
            .into_response()),
        Err(e) => Err(s.failed(e, &uri).await),
    }
}
