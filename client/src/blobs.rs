//! Blobs over HTTP: whole in memory, or streamed from a reader and into a
//! writer, so a blob larger than memory goes through a fixed buffer. A
//! streamed download is checked against the hash the server states.

use std::pin::Pin;
use std::task::{Context, Poll};

use reqwest::{Method, StatusCode};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::{Client, ClientError, Result};

/// The bytes an upload reads from its reader at a time.
const UPLOAD_CHUNK: usize = 256 << 10;

/// What a streamed download wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobDownload {
    /// The bytes written.
    pub size: u64,
    /// The blob's content hash (xxh3-128, hex), which the bytes matched.
    pub content_hash: String,
}

/// An upload's body: the reader's bytes, a chunk at a time.
struct ReaderBody<R> {
    reader: R,
    buf: Vec<u8>,
    done: bool,
}

impl<R: AsyncRead + Unpin> http_body::Body for ReaderBody<R> {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<http_body::Frame<bytes::Bytes>, std::io::Error>>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let mut rb = ReadBuf::new(&mut this.buf);
        match Pin::new(&mut this.reader).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                // The request is cut short: the server sees a broken body
                // and stores nothing.
                this.done = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(Ok(())) if rb.filled().is_empty() => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Ok(())) => {
                let chunk = bytes::Bytes::copy_from_slice(rb.filled());
                Poll::Ready(Some(Ok(http_body::Frame::data(chunk))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

impl Client {
    /// Stores `data` as the blob `key`; answers its metadata.
    pub async fn put_blob(&self, key: &str, data: Vec<u8>) -> Result<serde_json::Value> {
        let (_, b) = self
            .call(
                Method::PUT,
                &format!("/v1/blobs/{key}"),
                Some((data, "application/octet-stream")),
            )
            .await?;
        Self::json(&b)
    }

    /// The bytes of the blob `key` (`None`: absent).
    pub async fn get_blob(&self, key: &str) -> Result<Option<Vec<u8>>> {
        match self
            .call(Method::GET, &format!("/v1/blobs/{key}"), None)
            .await
        {
            Ok((_, b)) => Ok(Some(b)),
            Err(ClientError::Status { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The URL of the leader, as a node this client knows.
    async fn leader_url(&self) -> Result<String> {
        let status = self.cluster().await?;
        match status.leader_url {
            Some(url) if self.is_known(&url) => Ok(url),
            Some(url) => Err(ClientError::Transport(format!(
                "the leader is at {url}, which is not a known node"
            ))),
            None => Err(ClientError::Status {
                status: 503,
                message: "no leader is known yet; retry".into(),
            }),
        }
    }

    /// Streams `reader` to the blob `key`, a chunk at a time, never holding
    /// it whole; answers its metadata. The upload goes to the leader, found
    /// first: a stream cannot be sent again, so if the leader changed in
    /// between the answer is a 307 error and nothing is stored. A reader
    /// that fails cuts the upload, and nothing is stored either.
    pub async fn put_blob_stream<R>(&self, key: &str, reader: R) -> Result<serde_json::Value>
    where
        R: AsyncRead + Unpin + Send + Sync + 'static,
    {
        let url = format!("{}/v1/blobs/{key}", self.leader_url().await?);
        let body = reqwest::Body::wrap(ReaderBody {
            reader,
            buf: vec![0; UPLOAD_CHUNK],
            done: false,
        });
        let resp = self
            .http
            .put(&url)
            .bearer_auth(&self.token)
            .header("content-type", "application/octet-stream")
            // Blobs take as long as they take; the server bounds them.
            .timeout(std::time::Duration::from_secs(u64::from(u32::MAX)))
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_connect() {
                    ClientError::Unreachable(format!("{url}: {e}"))
                } else {
                    ClientError::Transport(format!("{url}: {e}"))
                }
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Transport(e.to_string()))?;
        if status.is_success() {
            Self::json(&bytes)
        } else {
            Err(Self::status_error(status, &bytes))
        }
    }

    /// Streams the blob `key` (as of commit timestamp `at`, if given) into
    /// `out`, a chunk at a time; `None` when it is absent. The bytes are
    /// checked against the blob's hash at the end: on an error `out` may
    /// hold part of the blob, which must not be used.
    pub async fn get_blob_to<W>(
        &self,
        key: &str,
        at: Option<u64>,
        out: &mut W,
    ) -> Result<Option<BlobDownload>>
    where
        W: AsyncWrite + Unpin,
    {
        let path = match at {
            Some(ts) => format!("/v1/blobs/{key}?at={ts}"),
            None => format!("/v1/blobs/{key}"),
        };
        let mut resp = self.respond(Method::GET, &path, None).await?;
        let status = resp.status();
        if !status.is_success() {
            let bytes = resp
                .bytes()
                .await
                .map_err(|e| ClientError::Transport(e.to_string()))?;
            return match status {
                StatusCode::NOT_FOUND => Ok(None),
                _ => Err(Self::status_error(status, &bytes)),
            };
        }
        let want = resp
            .headers()
            .get("x-strata-hash")
            .and_then(|h| h.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| ClientError::Transport("a blob without its hash".into()))?;
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut size = 0u64;
        let local = |e: std::io::Error| ClientError::Local(e.to_string());
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| ClientError::Transport(format!("the download broke: {e}")))?
        {
            hasher.update(&chunk);
            size += chunk.len() as u64;
            out.write_all(&chunk).await.map_err(local)?;
        }
        out.flush().await.map_err(local)?;
        let got = format!("{:032x}", hasher.digest128());
        if got != want {
            return Err(ClientError::Transport(format!(
                "the blob's bytes hash to {got}, not {want}"
            )));
        }
        Ok(Some(BlobDownload {
            size,
            content_hash: want,
        }))
    }
}
