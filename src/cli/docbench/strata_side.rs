//! The Strata side of `strata docbench`: the document provider with an
//! index per queried field, a compound index on (kind, ts) and a multikey
//! one on tags.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use strata::document::{
    DocumentOptions, DocumentQuery, DocumentStorageProvider, Filter, FilterOp, IndexSpec,
    QueryOptions, SortOrder,
};
use strata::{StorageSystem, StorageSystemConfig, StorageType};

use super::{DocEngine, Failure};

const C: &str = "docs";

fn fail(e: strata::StorageError) -> Failure {
    Failure(e.to_string())
}

/// Strata's document provider in a storage system of its own.
pub(crate) struct StrataDocs {
    storage: StorageSystem,
    docs: std::sync::Arc<DocumentStorageProvider>,
    dir: PathBuf,
}

impl StrataDocs {
    /// A fresh storage system in `dir` with the benchmark's indexes, or
    /// with `reuse` the one an earlier run left there.
    pub(crate) fn open(dir: &Path, cache_mb: usize, reuse: bool) -> Result<Self, Failure> {
        let mut config = StorageSystemConfig::default();
        config.engine.block_cache_size = cache_mb << 20;
        let storage = StorageSystem::builder()
            .path(dir)
            .with_config(config)
            .build()
            .map_err(fail)?;
        let docs = storage
            .get_document_storage(StorageType::Resource)
            .map_err(fail)?;
        let specs = if reuse {
            Vec::new()
        } else {
            vec![
                IndexSpec::on("user"),
                IndexSpec::on("city"),
                IndexSpec::on("score"),
                IndexSpec::on("kind").then("ts"),
                IndexSpec::on("tags"),
            ]
        };
        for spec in specs {
            docs.create_index_with(C, &spec).map_err(fail)?;
        }
        Ok(StrataDocs {
            storage,
            docs,
            dir: dir.to_path_buf(),
        })
    }

    fn found(&self, q: &DocumentQuery, o: &QueryOptions) -> Result<usize, Failure> {
        self.docs
            .query_documents::<Value>(C, q, o)
            .map(|d| d.len())
            .map_err(fail)
    }
}

impl DocEngine for StrataDocs {
    fn name(&self) -> &'static str {
        "strata"
    }

    fn load(&mut self, batch: &[Value]) -> Result<(), Failure> {
        let docs = &self.docs;
        self.storage
            .transaction(|tx| {
                let o = DocumentOptions::new().with_transaction(tx);
                for d in batch {
                    let id = d["id"].as_str().unwrap_or_default();
                    docs.store_document(C, id, d, &o)?;
                }
                Ok(())
            })
            .map_err(fail)
    }

    fn equality(&self, user: &str) -> Result<usize, Failure> {
        let q = DocumentQuery::new().with_field_equals("user", user);
        self.found(&q, &QueryOptions::new())
    }

    fn range_sort_limit(&self, score: u64) -> Result<usize, Failure> {
        let q = DocumentQuery::new()
            .with_field_greater_or_equal("score", score)
            .with_limit(100);
        let o = QueryOptions::new().with_sort_field("score", SortOrder::Ascending);
        self.found(&q, &o)
    }

    fn compound(&self, kind: &str, lo: u64, hi: u64) -> Result<usize, Failure> {
        let q = DocumentQuery::new()
            .with_field_equals("kind", kind)
            .with_field_greater_or_equal("ts", lo)
            .with_field_less_than("ts", hi);
        self.found(&q, &QueryOptions::new())
    }

    fn membership(&self, tag: &str) -> Result<usize, Failure> {
        let q = DocumentQuery::new()
            .with_field_equals("tags", tag)
            .with_limit(100);
        self.found(&q, &QueryOptions::new())
    }

    fn or(&self, user: &str, city: &str) -> Result<usize, Failure> {
        let q = DocumentQuery::new().with_where(Filter::any([
            Filter::field("user", FilterOp::Equals(json!(user))),
            Filter::field("city", FilterOp::Equals(json!(city))),
        ]));
        self.found(&q, &QueryOptions::new())
    }

    fn count(&self, kind: &str) -> Result<u64, Failure> {
        let q = DocumentQuery::new().with_field_equals("kind", kind);
        self.docs
            .count_documents(C, &q, &QueryOptions::new())
            .map_err(fail)
    }

    fn disk_bytes(&self) -> u64 {
        crate::cli::bench::disk_usage(&self.dir)
    }

    fn cache_counts(&self) -> Option<(u64, u64)> {
        let s = self.storage.db().stats();
        Some((s.block_cache_hits, s.block_cache_misses))
    }
}
