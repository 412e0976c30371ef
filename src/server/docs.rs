//! Documents over HTTP (SPEC §19.1): store, retrieve (also as of a time),
//! delete, query and explain with the JSON form `DocumentQuery` and
//! `QueryOptions` serialize to, and index creation.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, Uri};
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;

use super::api::{parse_json, parse_ts, storage_type, ApiResult};
use super::error::ApiError;
use super::AppState;
use crate::access::Identity;
use crate::document::{DocumentOptions, DocumentQuery, IndexSpec, QueryOptions};
use crate::error::StorageError;
use crate::types::{DeleteOptions, RetrieveOptions};

/// The query of a document read.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DocRead {
    at: Option<String>,
}

/// Runs `f` on the identity's document provider of `t`, at the leader
/// when `write`.
async fn with_docs<T: Send + 'static>(
    s: &AppState,
    who: Identity,
    t: &str,
    uri: &Uri,
    write: bool,
    f: impl FnOnce(&crate::DocumentStorageProvider) -> Result<T, StorageError> + Send + 'static,
) -> ApiResult<T> {
    let t = storage_type(t)?;
    s.as_caller(who, uri, write, move |c| f(&*c.get_document_storage(t)?))
        .await
}

/// `PUT /v1/docs/{type}/{collection}/{id}`: stores the JSON body.
pub(crate) async fn put(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, collection, id)): Path<(String, String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let doc: Value = parse_json(&body)?;
    with_docs(&s, who, &t, &uri, true, move |d| {
        let m = d.store_document(&collection, &id, &doc, &DocumentOptions::new())?;
        Ok(Json(serde_json::json!({
            "collection": m.collection,
            "id": m.id,
            "size": m.size,
            "version": m.version.map(|v| v.as_u64()),
            "stored_at": m.stored_at.as_u64(),
        })))
    })
    .await
}

/// `GET /v1/docs/{type}/{collection}/{id}`: the document (`?at=` as of a
/// time).
pub(crate) async fn get(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, collection, id)): Path<(String, String, String)>,
    Query(q): Query<DocRead>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    let at = q.at.as_deref().map(parse_ts).transpose()?;
    with_docs(&s, who, &t, &uri, false, move |d| {
        let mut opts = RetrieveOptions::new();
        if let Some(at) = at {
            opts = opts.at(at);
        }
        Ok(Json(d.retrieve_document::<Value>(
            &collection,
            &id,
            &opts,
        )?))
    })
    .await
}

/// `DELETE /v1/docs/{type}/{collection}/{id}`.
pub(crate) async fn delete(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, collection, id)): Path<(String, String, String)>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    with_docs(&s, who, &t, &uri, true, move |d| {
        let existed = d.delete_document(&collection, &id, &DeleteOptions::new())?;
        Ok(Json(serde_json::json!({ "deleted": existed })))
    })
    .await
}

/// A query's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryBody {
    #[serde(default)]
    query: DocumentQuery,
    #[serde(default)]
    options: QueryOptions,
}

/// Runs `f` on a query body's query and options, as a read of the
/// caller's collection: what every query-shaped route shares.
async fn with_query(
    s: &AppState,
    who: Identity,
    (t, collection): (String, String),
    uri: &Uri,
    body: &[u8],
    f: impl FnOnce(&crate::DocumentStorageProvider, &str, &QueryBody) -> Result<Value, StorageError>
        + Send
        + 'static,
) -> ApiResult<Json<Value>> {
    let q: QueryBody = parse_json(body)?;
    with_docs(s, who, &t, uri, false, move |d| {
        f(d, &collection, &q).map(Json)
    })
    .await
}

/// `POST /v1/query/{type}/{collection}`: the matching documents.
pub(crate) async fn query(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(path): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    with_query(&s, who, path, &uri, &body, |d, c, q| {
        let docs = d.query_documents::<Value>(c, &q.query, &q.options)?;
        Ok(Value::Array(docs))
    })
    .await
}

/// `POST /v1/page/{type}/{collection}`: a page of the matching documents
/// and the cursor of the next (`options.cursor` continues).
pub(crate) async fn page(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(path): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    with_query(&s, who, path, &uri, &body, |d, c, q| {
        let p = d.query_page::<Value>(c, &q.query, &q.options)?;
        Ok(serde_json::json!({ "documents": p.documents, "next": p.next }))
    })
    .await
}

/// `POST /v1/count/{type}/{collection}`: how many documents match.
pub(crate) async fn count(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(path): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    with_query(&s, who, path, &uri, &body, |d, c, q| {
        let n = d.count_documents(c, &q.query, &q.options)?;
        Ok(serde_json::json!({ "count": n }))
    })
    .await
}

/// `POST /v1/explain/{type}/{collection}`: the plan.
pub(crate) async fn explain(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path(path): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    with_query(&s, who, path, &uri, &body, |d, c, q| {
        let plan = d.explain(c, &q.query, &q.options)?;
        Ok(serde_json::to_value(plan).unwrap_or_default())
    })
    .await
}

/// `POST /v1/analyze/{type}/{collection}`: gathers the indexes'
/// statistics.
pub(crate) async fn analyze(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, collection)): Path<(String, String)>,
    uri: Uri,
) -> ApiResult<Json<Value>> {
    with_docs(&s, who, &t, &uri, true, move |d| {
        let stats = d.analyze(&collection)?;
        Ok(Json(serde_json::to_value(stats).unwrap_or_default()))
    })
    .await
}

/// An index to create: `{"field"}`, or `{"fields": [...], "unique"}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct IndexBody {
    #[serde(default)]
    field: Option<String>,
    #[serde(default)]
    fields: Vec<String>,
    #[serde(default)]
    unique: bool,
}

/// `POST /v1/indexes/{type}/{collection}` with `{"field"}` or
/// `{"fields", "unique"}`: creates and builds an index.
pub(crate) async fn create_index(
    State(s): State<AppState>,
    Extension(who): Extension<Identity>,
    Path((t, collection)): Path<(String, String)>,
    uri: Uri,
    body: Bytes,
) -> ApiResult<Json<Value>> {
    let b: IndexBody = parse_json(&body)?;
    let fields = match (b.field, b.fields.is_empty()) {
        (Some(f), true) => vec![f],
        (None, false) => b.fields,
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "give exactly one of \"field\" and \"fields\"",
            ))
        }
    };
    let spec = IndexSpec {
        fields,
        unique: b.unique,
    };
    with_docs(&s, who, &t, &uri, true, move |d| {
        let info = d.create_index_with(&collection, &spec)?;
        Ok(Json(serde_json::to_value(info).unwrap_or_default()))
    })
    .await
}
