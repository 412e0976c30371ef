//! Blobs over HTTP (SPEC §19.1), streamed both ways: an upload's body is
//! handed to the blob provider a chunk at a time as it arrives, and a
//! download is read a chunk at a time as the client takes it, so neither
//! is held in memory whole.

use std::io::Read;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::BodyExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::api::{parse_ts, storage_key, ApiResult};
use super::error::ApiError;
use super::AppState;
use crate::access::Identity;
use crate::types::StorageOptions;

/// Chunks in flight between the network and the blob provider.
const QUEUE: usize = 8;
/// The size of a download's chunks.
const READ_CHUNK: usize = 256 << 10;

type Chunk = Result<Bytes, std::io::Error>;

/// What the network hands an upload's reader: a chunk, or the end of a
/// body read whole. A channel closed without the end (a timeout dropped
/// the handler, the client went away) is an error, so a cut upload never
/// stores a truncated blob.
enum Piece {
    Data(Bytes),
    End,
}

/// The body of an upload as the blob provider reads it.
struct ChannelReader {
    rx: mpsc::Receiver<Result<Piece, std::io::Error>>,
    current: Bytes,
    ended: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.rx.blocking_recv() {
                Some(Ok(Piece::Data(b))) => self.current = b,
                Some(Ok(Piece::End)) => self.ended = true,
                Some(Err(e)) => return Err(e),
                None => {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the upload ended before its body did",
                    ))
                }
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// A download's chunks as a response body.
struct ChunkStream(mpsc::Receiver<Chunk>);

impl futures_core::Stream for ChunkStream {
    type Item = Chunk;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Chunk>> {
        self.0.poll_recv(cx)
    }
}

/// The query of an upload.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutQuery {
    ttl_secs: Option<u64>,
}

/// `PUT /v1/blobs/{key}`: stores the body, streamed; answers the blob's
/// metadata. A body above `limits.max_blob_bytes` is 413 and stores
/// nothing.
pub(crate) async fn put(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(key): Path<String>,
    Query(q): Query<PutQuery>,
    uri: Uri,
    body: Body,
) -> ApiResult<Json<serde_json::Value>> {
    let key = storage_key(&key)?;
    s.require_leader(&uri).await?;
    let max = s.config().limits.max_blob_bytes;
    let (tx, rx) = mpsc::channel::<Result<Piece, std::io::Error>>(QUEUE);
    let s2 = s.clone();
    let store = tokio::task::spawn_blocking(move || {
        let system = s2.node().system()?;
        let blobs = system.as_identity(&who).get_blob_storage()?;
        let opts = StorageOptions::new().with_ttl(q.ttl_secs.map(std::time::Duration::from_secs));
        let reader = ChannelReader {
            rx,
            current: Bytes::new(),
            ended: false,
        };
        blobs.put_stream(&key, reader, &opts)
    });
    let mut body = body;
    let mut total: u64 = 0;
    let mut too_large = false;
    let mut whole = true;
    while let Some(frame) = body.frame().await {
        let chunk = match frame {
            Ok(f) => match f.into_data() {
                Ok(d) => d,
                Err(_) => continue,
            },
            Err(e) => {
                whole = false;
                let _ = tx
                    .send(Err(std::io::Error::other(format!("the upload broke: {e}"))))
                    .await;
                break;
            }
        };
        total += chunk.len() as u64;
        if total > max {
            too_large = true;
            let _ = tx
                .send(Err(std::io::Error::other("the blob is too large")))
                .await;
            break;
        }
        if tx.send(Ok(Piece::Data(chunk))).await.is_err() {
            // The store stopped (refused, failed): its answer says why.
            whole = false;
            break;
        }
    }
    if whole && !too_large {
        let _ = tx.send(Ok(Piece::End)).await;
    }
    drop(tx);
    let stored = store
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    if too_large {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("a blob of at most {max} bytes"),
        ));
    }
    match stored {
        Ok(m) => Ok(Json(serde_json::to_value(m).unwrap_or_default())),
        Err(e) => Err(s.failed(ApiError::from(e), &uri).await),
    }
}

/// The query of a download.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct GetQuery {
    at: Option<String>,
}

/// `GET /v1/blobs/{key}`: the blob's bytes, streamed (`?at=` as of a
/// time); its size in `content-length`, its hash in `x-strata-hash`.
pub(crate) async fn get(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(key): Path<String>,
    Query(q): Query<GetQuery>,
) -> ApiResult<Response> {
    let key = storage_key(&key)?;
    let at = q.at.as_deref().map(parse_ts).transpose()?;
    // The body streams after the handler returned, outside its time bound:
    // the reader gives up at the same bound, so a client that stops
    // reading does not hold a thread for ever.
    let deadline = tokio::time::Instant::now()
        + std::time::Duration::from_millis(s.config().limits.blob_timeout_ms);
    let handle = tokio::runtime::Handle::current();
    let (tx, rx) = mpsc::channel::<Chunk>(QUEUE);
    let (meta_tx, meta_rx) = tokio::sync::oneshot::channel();
    tokio::task::spawn_blocking(move || {
        let opened = (|| {
            let system = s.node().system()?;
            let blobs = system.as_identity(&who).get_blob_storage()?;
            match at {
                Some(at) => blobs.open_at(&key, at),
                None => blobs.open(&key),
            }
        })();
        let mut reader = match opened {
            Ok(r) => {
                let _ = meta_tx.send(Ok(r.metadata().clone()));
                r
            }
            Err(e) => {
                let _ = meta_tx.send(Err(e));
                return;
            }
        };
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    let chunk = Ok(Bytes::copy_from_slice(&buf[..n]));
                    let sent = handle.block_on(tokio::time::timeout_at(deadline, tx.send(chunk)));
                    if !matches!(sent, Ok(Ok(()))) {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    let meta = meta_rx
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
        .map_err(ApiError::from)?;
    let mut resp = Body::from_stream(ChunkStream(rx)).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(v) = HeaderValue::from_str(&meta.size.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    if let Ok(v) = HeaderValue::from_str(&meta.content_hash) {
        h.insert("x-strata-hash", v);
    }
    Ok(resp)
}

/// `DELETE /v1/blobs/{key}`.
pub(crate) async fn delete(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(key): Path<String>,
    uri: Uri,
) -> ApiResult<Json<serde_json::Value>> {
    let key = storage_key(&key)?;
    s.as_caller(who, &uri, true, move |c| {
        let existed = c.get_blob_storage()?.delete_blob(&key)?;
        Ok(Json(serde_json::json!({ "deleted": existed })))
    })
    .await
}
