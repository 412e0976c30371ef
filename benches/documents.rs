//! Document queries over 100,000 documents: a 0.1%-selective equality
//! query through its index against the same query forced to scan the
//! collection; a sorted top-100 through the sort field's index against a
//! scan and in-memory sort; the same index query as of a past time; and
//! storing a document with two indexes.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::{json, Value};
use strata::document::{DocumentOptions, DocumentQuery, PlanKind, QueryOptions, SortOrder};
use strata::{StorageSystem, StorageSystemConfig, StorageType};

const DOCS: usize = 100_000;

fn setup(dir: &std::path::Path) -> StorageSystem {
    let mut config = StorageSystemConfig::default();
    config.engine.sync_writes = false;
    let storage = StorageSystem::builder()
        .path(dir)
        .with_config(config)
        .build()
        .unwrap();
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for chunk in 0..DOCS / 1000 {
        storage
            .transaction(|tx| {
                let o = DocumentOptions::new().with_transaction(tx);
                for i in chunk * 1000..(chunk + 1) * 1000 {
                    let doc = json!({
                        "type": if i % 1000 == 7 { "rare" } else { "common" },
                        "created_at": (i * 7919) % DOCS,
                        "title": format!("document {i}"),
                        "body": "lorem ipsum dolor sit amet ".repeat(4),
                    });
                    docs.store_document("resources", &format!("r{i:06}"), &doc, &o)?;
                }
                Ok(())
            })
            .unwrap();
    }
    docs.create_index("resources", "type").unwrap();
    docs.create_index("resources", "created_at").unwrap();
    storage.db().flush().unwrap();
    storage.db().compact().unwrap();
    storage
}

fn queries(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let storage = setup(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    let past = storage.db().last_timestamp();
    let rare = DocumentQuery::new().with_field_equals("type", "rare");
    let indexed = QueryOptions::new();
    let scan = QueryOptions::new().force_scan();
    assert_eq!(
        docs.explain("resources", &rare, &indexed).unwrap().kind,
        PlanKind::IndexScan
    );
    let (found, stats) = docs
        .query_documents_with_stats::<Value>("resources", &rare, &indexed)
        .unwrap();
    assert_eq!(found.len(), DOCS / 1000);
    assert_eq!(stats.documents_read, (DOCS / 1000) as u64);

    let mut g = c.benchmark_group("documents_100k");
    g.sample_size(10);
    g.bench_function("selective_eq_index", |b| {
        b.iter(|| {
            let v: Vec<Value> = docs.query_documents("resources", &rare, &indexed).unwrap();
            black_box(v)
        })
    });
    g.bench_function("selective_eq_scan", |b| {
        b.iter(|| {
            let v: Vec<Value> = docs.query_documents("resources", &rare, &scan).unwrap();
            black_box(v)
        })
    });
    g.bench_function("selective_eq_index_past", |b| {
        let o = QueryOptions::new().at(past);
        b.iter(|| {
            let v: Vec<Value> = docs.query_documents("resources", &rare, &o).unwrap();
            black_box(v)
        })
    });
    let top = DocumentQuery::new().with_limit(100);
    let sorted = QueryOptions::new().with_sort_field("created_at", SortOrder::Descending);
    assert!(
        docs.explain("resources", &top, &sorted)
            .unwrap()
            .sorted_by_index
    );
    g.bench_function("top100_sorted_index", |b| {
        b.iter(|| {
            let v: Vec<Value> = docs.query_documents("resources", &top, &sorted).unwrap();
            black_box(v)
        })
    });
    let sorted_scan = sorted.clone().force_scan();
    g.bench_function("top100_sorted_scan", |b| {
        b.iter(|| {
            let v: Vec<Value> = docs
                .query_documents("resources", &top, &sorted_scan)
                .unwrap();
            black_box(v)
        })
    });
    g.finish();

    let mut g = c.benchmark_group("documents_write");
    let mut i = 0usize;
    g.bench_function("store_two_indexes", |b| {
        b.iter(|| {
            i += 1;
            let doc = json!({"type": "common", "created_at": i, "title": "x"});
            docs.store_document(
                "resources",
                &format!("w{}", i % 5000),
                &doc,
                &DocumentOptions::new(),
            )
            .unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, queries);
criterion_main!(benches);
