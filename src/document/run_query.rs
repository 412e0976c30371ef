//! The provider's query calls: matching documents (projected if asked),
//! counts, and explain, all through one planner and executor, now, at a
//! past time or inside a transaction.

use std::sync::atomic::Ordering;

use serde::de::DeserializeOwned;
use serde_json::Value;
use strata_engine::Reader;

use super::index::{self, IndexState};
use super::plan::{self, PlanKind, QueryPlan, QueryStats};
use super::query::{DocumentQuery, QueryOptions};
use super::{keys, value, DocumentStorageProvider};
use crate::access::AccessType;
use crate::error::{Result, StorageError};
use crate::transaction::Effects;
use crate::types::StorageKey;

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
    pub fn query_documents<T: DeserializeOwned>(
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
    pub fn query_documents_with_stats<T: DeserializeOwned>(
        &self,
        collection: &str,
        query: &DocumentQuery,
        options: &QueryOptions,
    ) -> Result<(Vec<T>, QueryStats)> {
        let c = StorageKey::new(format!("{collection}/"));
        self.timed(
            "query_documents",
            Some(&c),
            options.transaction,
            |_| 0,
            || {
                let (docs, stats) = self.run_query(collection, query, options, Mode::Documents)?;
                self.count_query(&stats);
                let docs = match &options.projection {
                    Some(fields) => docs.iter().map(|d| value::project(d, fields)).collect(),
                    None => docs,
                };
                let docs = docs
                    .into_iter()
                    .map(serde_json::from_value)
                    .collect::<std::result::Result<Vec<T>, _>>()
                    .map_err(|e| StorageError::Serialization(format!("query result: {e}")))?;
                Ok((docs, stats))
            },
        )
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
        let c = StorageKey::new(format!("{collection}/"));
        self.timed(
            "count_documents",
            Some(&c),
            options.transaction,
            |_| 0,
            || {
                let (_, stats) = self.run_query(collection, query, options, Mode::Count)?;
                self.count_query(&stats);
                Ok((stats.documents_matched, stats))
            },
        )
    }

    /// Adds a query's figures to the provider's counters.
    fn count_query(&self, stats: &QueryStats) {
        let c = &self.shared.counters;
        c.queries.fetch_add(1, Ordering::Relaxed);
        match stats.plan.kind {
            PlanKind::IndexScan | PlanKind::IndexUnion => {
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
    ) -> Result<(Vec<Value>, QueryStats)> {
        keys::check_collection(collection)?;
        query.check().map_err(StorageError::InvalidArgument)?;
        if let Some(f) = &options.sort_field {
            value::check_path(f).map_err(StorageError::InvalidArgument)?;
        }
        for f in options.projection.iter().flatten() {
            value::check_path(f).map_err(StorageError::InvalidArgument)?;
        }
        self.require(&format!("{collection}/"), AccessType::List)?;
        let sh = &self.shared;
        let visible = |id: &str| self.allowed(&format!("{collection}/{id}"), AccessType::Read);
        let run = |src: &mut dyn Reader| -> Result<(Vec<Value>, QueryStats)> {
            let mut ready = Vec::new();
            for info in index::read_infos(src, &sh.keyspace, collection)? {
                if info.state == IndexState::Ready {
                    let marker = keys::multikey(collection, info.id);
                    let multikey = src.get(&sh.keyspace, &marker)?.is_some();
                    ready.push(plan::Usable { info, multikey });
                }
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
            let count = mode == Mode::Count;
            super::execute::execute(
                &p,
                src,
                &sh.keyspace,
                collection,
                query,
                options,
                &visible,
                count,
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
