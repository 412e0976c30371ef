//! How a failure reaches an HTTP client: a status and a JSON body
//! `{"error": "..."}` that says what went wrong, never a panic or a hang.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::StorageError;

/// A failed request.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// For a write sent to a follower: where the leader listens.
    location: Option<String>,
    /// The storage system refused because this node does not lead (and
    /// nothing was proposed): safe to send to the leader.
    not_leader: bool,
}

impl ApiError {
    /// A failure with `status` and a message for the client.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            location: None,
            not_leader: false,
        }
    }

    /// 400: the request itself is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 401: no token, or an unknown one.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// 307 to the same path at the leader: writes and linearizable reads
    /// go there.
    pub fn redirect(location: String) -> Self {
        ApiError {
            status: StatusCode::TEMPORARY_REDIRECT,
            message: format!("not the leader: retry at {location}"),
            location: Some(location),
            not_leader: false,
        }
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// True when this node refused because another leads, before
    /// proposing anything.
    pub fn is_not_leader(&self) -> bool {
        self.not_leader
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        use StorageError as E;
        let status = match &e {
            E::NotFound(_) => StatusCode::NOT_FOUND,
            E::AccessDenied { .. } => StatusCode::FORBIDDEN,
            E::InvalidArgument(_)
            | E::Serialization(_)
            | E::SchemaViolation { .. }
            | E::PolicyViolation { .. } => StatusCode::BAD_REQUEST,
            E::AlreadyExists(_) | E::UniqueViolation { .. } => StatusCode::CONFLICT,
            E::QuotaExceeded { .. } => StatusCode::INSUFFICIENT_STORAGE,
            E::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            e if e.is_conflict() => StatusCode::CONFLICT,
            E::Engine(strata_engine::Error::InvalidArgument(_))
            | E::Engine(strata_engine::Error::KeyTooLarge(_))
            | E::Engine(strata_engine::Error::ValueTooLarge(_))
            | E::Engine(strata_engine::Error::BatchTooLarge(_))
            | E::Engine(strata_engine::Error::HistoryUnavailable { .. }) => StatusCode::BAD_REQUEST,
            // No leader here, no quorum, a timestamp not applied in time:
            // the client may retry.
            E::Engine(strata_engine::Error::Replication(_)) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut a = ApiError::new(status, e.to_string());
        a.not_leader = e.is_not_leader();
        a
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut r = (self.status, body).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(loc) = self.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
            r.headers_mut().insert(header::LOCATION, loc);
        }
        r
    }
}
