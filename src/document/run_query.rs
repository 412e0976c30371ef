//! The provider's query calls: matching documents (projected if asked),
//! counts, and explain, all through one planner and executor, now, at a
//! past time or inside a transaction.

use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_engine::Reader;

use super::execute::{Hit, Run};

use super::index::{self, IndexState};
use super::plan::{self, PlanKind, QueryPlan, QueryStats};
use super::query::{DocumentQuery, QueryOptions};
use super::{keys, value, DocumentStorageProvider};
use crate::access::AccessType;
use crate::error::{Result, StorageError};
use crate::transaction::Effects;
use crate::types::StorageKey;

/// One page of results and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct DocumentPage<T> {
    /// The page's documents, in the query's order.
    pub documents: Vec<T>,
    /// The cursor of the next page (`QueryOptions::cursor`); `None` when
    /// this page was not full, so no result follows it.
    pub next: Option<String>,
}

/// Results as the caller asked for them: projected, then as `T`s.
fn deliver<T: DeserializeOwned + 'static>(
    docs: impl ExactSizeIterator<Item = Value>,
    options: &QueryOptions,
) -> Result<Vec<T>> {
    // Sized once: growing a page by doubling reallocates past the
    // allocator's small-chunk sizes, which costs more than the copies.
    let mut out = Vec::with_capacity(docs.len());
    for d in docs {
        let d = match &options.projection {
            Some(fields) => value::project(&d, fields),
            None => d,
        };
        out.push(as_t(d).map_err(|e| StorageError::Serialization(format!("query result: {e}")))?);
    }
    Ok(out)
}

/// A document as a `T`. Asked for as a `Value`, the parsed value itself is
/// handed over rather than rebuilt by serde, which would cost a second
/// pass as long as the parse.
fn as_t<T: DeserializeOwned + 'static>(doc: Value) -> serde_json::Result<T> {
    let mut slot = Some(doc);
    if let Some(same) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<T>>() {
        if let Some(t) = same.take() {
            return Ok(t);
        }
    }
    serde_json::from_value(slot.unwrap_or_default())
}

/// Resume tokens: hex of `01 ‖ fingerprint (u64 LE) ‖ position`. The
/// fingerprint hashes the query's filters, tree and order, so a cursor
/// given to another query is refused rather than misread.
mod cursor {
    use super::{DocumentQuery, QueryOptions, Result, StorageError};

    const VERSION: u8 = 1;

    fn fingerprint(query: &DocumentQuery, options: &QueryOptions) -> u64 {
        let shape = (
            &query.filters,
            &query.filter,
            &options.sort_field,
            &options.sort_order,
        );
        // Plain data always serializes.
        let bytes = serde_json::to_vec(&shape).unwrap_or_default();
        xxhash_rust::xxh3::xxh3_64(&bytes)
    }

    /// The cursor of the page after position `key`.
    pub(super) fn encode(query: &DocumentQuery, options: &QueryOptions, key: &[u8]) -> String {
        let mut raw = vec![VERSION];
        raw.extend_from_slice(&fingerprint(query, options).to_le_bytes());
        raw.extend_from_slice(key);
        raw.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The position a cursor of this query names.
    pub(super) fn decode(
        query: &DocumentQuery,
        options: &QueryOptions,
        text: &str,
    ) -> Result<Vec<u8>> {
        let bad = |why: &str| StorageError::InvalidArgument(format!("cursor: {why}"));
        if !text.len().is_multiple_of(2) {
            return Err(bad("not a cursor of this store"));
        }
        let raw = (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(text.get(i..i + 2).unwrap_or("zz"), 16))
            .collect::<std::result::Result<Vec<u8>, _>>()
            .map_err(|_| bad("not hex"))?;
        if raw.len() < 9 || raw[0] != VERSION {
            return Err(bad("not a cursor of this store"));
        }
        let mut fp = [0u8; 8];
        fp.copy_from_slice(&raw[1..9]);
        if u64::from_le_bytes(fp) != fingerprint(query, options) {
            return Err(bad("it belongs to another query (filters or order differ)"));
        }
        Ok(raw[9..].to_vec())
    }
}

/// What a query run is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The plan only.
    Explain,
    /// The matching documents.
    Documents,
    /// How many match.
    Count,
}

impl DocumentStorageProvider {
    /// The documents of `collection` matching `query`, as `T`s, in the
    /// order `options` asks for. Needs List on `collection/`; documents
    /// the caller may not read are left out.
    pub fn query_documents<T: DeserializeOwned + 'static>(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
    ) -> Result<Vec<T>> {
        self.query_documents_with_stats(collection, query, options)
            .map(|(docs, _)| docs)
    }

    /// [`query_documents`](Self::query_documents), with what the query
    /// read: its plan, index entries and documents.
    pub fn query_documents_with_stats<T: DeserializeOwned + 'static>(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
    ) -> Result<(Vec<T>, QueryStats)> {
        let (hits, stats) = self.measured(collection, query, options, Mode::Documents)?;
        Ok((deliver(hits.into_iter().map(|h| h.doc), options)?, stats))
    }

    /// A page of [`query_documents`](Self::query_documents): at most
    /// `query.limit` documents after `options.cursor` (from the start
    /// without one), and the cursor of the next page when this one is
    /// full. A page continues after the previous page's last document in
    /// the query's order however the collection changed meanwhile; pages
    /// read at one past time (`options.at`) are exactly the results of one
    /// query, cut in pages.
    pub fn query_page<T: DeserializeOwned + 'static>(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
    ) -> Result<DocumentPage<T>> {
        let (hits, _) = self.measured(collection, query, options, Mode::Documents)?;
        let full = query.limit.is_some_and(|l| l > 0 && hits.len() >= l);
        let next = match hits.last() {
            Some(last) if full => {
                let at = super::execute::position(&last.doc, &last.id, options);
                Some(cursor::encode(query, options, &at))
            }
            _ => None,
        };
        let documents = deliver(hits.into_iter().map(|h| h.doc), options)?;
        Ok(DocumentPage { documents, next })
    }

    /// How many documents of `collection` match `query` (its offset and
    /// limit aside) and that the caller may read. When the chosen index
    /// decides every filter (`QueryPlan::covering`), only its entries are
    /// read, no document. Needs List on `collection/`.
    pub fn count_documents(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
    ) -> Result<u64> {
        self.count_documents_with_stats(collection, query, options)
            .map(|(n, _)| n)
    }

    /// [`count_documents`](Self::count_documents), with what the count
    /// read.
    pub fn count_documents_with_stats(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
    ) -> Result<(u64, QueryStats)> {
        let (_, stats) = self.measured(collection, query, options, Mode::Count)?;
        Ok((stats.documents_matched, stats))
    }

    /// Runs a query as an operation of the storage system (timed and
    /// observed like every other) and adds its figures to the counters.
    fn measured(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
        mode: Mode,
    ) -> Result<(Vec<Hit>, QueryStats)> {
        let c = StorageKey::new(format!("{collection}/"));
        let op = match mode {
            Mode::Count => "count_documents",
            Mode::Documents | Mode::Explain => "query_documents",
        };
        self.timed(
            op,
            Some(&c),
            options.transaction,
            |_| 0,
            || {
                let (hits, stats) = self.run_query(collection, query, options, mode)?;
                self.count_query(&stats);
                Ok((hits, stats))
            },
        )
    }

    /// Adds a query's figures to the provider's counters.
    fn count_query(&self, stats: &QueryStats) {
        let c = &self.shared.counters;
        c.queries.fetch_add(1, Ordering::Relaxed);
        match stats.plan.kind {
            PlanKind::IndexScan | PlanKind::IndexUnion | PlanKind::IndexIntersection => {
                c.index_queries.fetch_add(1, Ordering::Relaxed)
            }
            PlanKind::CollectionScan => c.scan_queries.fetch_add(1, Ordering::Relaxed),
        };
        c.entries_read
            .fetch_add(stats.index_entries_read, Ordering::Relaxed);
        c.docs_read
            .fetch_add(stats.documents_read, Ordering::Relaxed);
    }

    /// The plan `query` would run with, and why, without running it.
    pub fn explain(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
    ) -> Result<QueryPlan> {
        self.run_query(collection, query, options, Mode::Explain)
            .map(|(_, s)| s.plan)
    }

    fn run_query(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
        mode: Mode,
    ) -> Result<(Vec<Hit>, QueryStats)> {
        keys::check_collection(collection)?;
        query.check().map_err(StorageError::InvalidArgument)?;
        if let Some(f) = &options.sort_field {
            value::check_path(f).map_err(StorageError::InvalidArgument)?;
        }
        for f in options.projection.iter().flatten() {
            value::check_path(f).map_err(StorageError::InvalidArgument)?;
        }
        // A count ignores the cursor as it ignores offset and limit.
        let after = match (&options.cursor, mode) {
            (Some(c), Mode::Documents) => Some(cursor::decode(query, options, c)?),
            _ => None,
        };
        self.require(&format!("{collection}/"), AccessType::List)?;
        let sh = &self.shared;
        // Without access control every document is visible: no key is
        // even formatted.
        let checked = self.checks_access();
        let visible = |id: &str| {
            if !checked {
                return Ok(true);
            }
            self.allowed(&format!("{collection}/{id}"), AccessType::Read)
        };
        let run = |src: &mut dyn Reader| -> Result<(Vec<Hit>, QueryStats)> {
            let infos: Vec<_> = index::read_infos(src, &sh.keyspace, collection)?
                .into_iter()
                .filter(|i| i.state == IndexState::Ready)
                .collect();
            // A plan uses an index only through a filter on its first field
            // or a sort by it: of the others only the definition is read,
            // which explain names. Their statistics serve one estimate, the
            // collection's size when an intersection is weighed, which
            // takes two indexes filtered by the query's top-level AND: then
            // every index is read.
            let named = |i: &index::IndexInfo| {
                query.names_field(&i.field) || options.sort_field.as_deref() == Some(&i.field)
            };
            let leaves = query.conjuncts().leaves;
            let all = infos
                .iter()
                .filter(|i| leaves.iter().any(|l| l.field == i.field))
                .count()
                > 1;
            let mut ready = Vec::with_capacity(infos.len());
            for info in infos {
                if !all && !named(&info) {
                    ready.push(plan::Usable::unread(info));
                    continue;
                }
                let marker = keys::multikey(collection, info.id);
                let multikey = src.get(&sh.keyspace, &marker)?.is_some();
                let stats = super::stats::read(src, &sh.keyspace, collection, info.id)?;
                ready.push(plan::Usable {
                    info,
                    multikey,
                    stats,
                });
            }
            let p = plan::plan(collection, query, options, &ready);
            if mode == Mode::Explain {
                let stats = QueryStats {
                    plan: p.public,
                    index_entries_read: 0,
                    documents_read: 0,
                    stale_entries: 0,
                    documents_matched: 0,
                    documents_returned: 0,
                };
                return Ok((Vec::new(), stats));
            }
            let how = Run {
                count: mode == Mode::Count,
                after: after.as_deref(),
            };
            super::execute::execute(
                &p,
                src,
                &sh.keyspace,
                collection,
                query,
                options,
                &visible,
                how,
            )
        };
        match (options.transaction, options.at) {
            (Some(_), Some(_)) => Err(StorageError::InvalidArgument(
                "a query runs either in a transaction or at a past time".into(),
            )),
            (Some(tx), None) => sh
                .transactions
                .with_storage(tx, Effects::default(), |t| run(t)),
            (None, at) => {
                let mut snap = match at {
                    Some(ts) => {
                        sh.policies.check_readable(sh.storage_type, ts)?;
                        sh.db.snapshot_at(ts)?
                    }
                    None => sh.db.snapshot()?,
                };
                run(&mut snap)
            }
        }
    }
}
