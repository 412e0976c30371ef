//! Multikey, compound and unique indexes: arrays matched element by
//! element (and whole with `equals_whole`), equality on a prefix of a
//! compound index plus a range or sort on the next field, and unique
//! values refused with a typed error that changes nothing, also when
//! writers race on the same value. Each query is checked against a forced
//! collection scan as well as against the expected ids.

mod common;

use std::sync::{Arc, Barrier};

use serde_json::{json, Value};
use strata::document::{
    DocumentOptions, DocumentQuery, DocumentStorageProvider, Filter, FilterOp, IndexSpec, PlanKind,
    QueryOptions, SortOrder,
};
use strata::{IsolationLevel, StorageError, StorageSystemConfig, StorageType, TransactionConfig};

fn ids(docs: &[Value]) -> Vec<String> {
    docs.iter()
        .map(|d| d["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The ids `q` finds, through the planner and through a forced scan,
/// which must agree.
fn run(docs: &DocumentStorageProvider, q: &DocumentQuery, o: &QueryOptions) -> Vec<String> {
    let (got, stats) = docs.query_documents_with_stats::<Value>("c", q, o).unwrap();
    let scan: Vec<Value> = docs
        .query_documents("c", q, &o.clone().force_scan())
        .unwrap();
    assert_eq!(ids(&got), ids(&scan), "plan {}", stats.plan);
    assert_eq!(stats.stale_entries, 0);
    ids(&got)
}

fn store(docs: &DocumentStorageProvider, id: &str, d: Value) -> strata::Result<()> {
    docs.store_document("c", id, &d, &DocumentOptions::new())
        .map(|_| ())
}

#[test]
fn arrays_match_element_by_element_through_a_multikey_index() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    docs.create_index("c", "tags").unwrap();
    docs.create_index("c", "n").unwrap();
    store(
        &docs,
        "a",
        json!({"id": "a", "tags": ["red", "blue"], "n": [1, 9]}),
    )
    .unwrap();
    store(&docs, "b", json!({"id": "b", "tags": ["blue"], "n": 5})).unwrap();
    store(&docs, "c", json!({"id": "c", "tags": "red", "n": [2, 3]})).unwrap();
    store(&docs, "d", json!({"id": "d", "tags": [], "n": []})).unwrap();
    let o = QueryOptions::new();
    let q = DocumentQuery::new().with_field_equals("tags", "red");
    assert_eq!(run(&docs, &q, &o), ["a", "c"]);
    let plan = docs.explain("c", &q, &o).unwrap();
    assert_eq!(plan.kind, PlanKind::IndexScan, "{plan}");
    // A whole array equals too, through the index; `equals_whole` only
    // the whole value.
    let q = DocumentQuery::new().with_field_equals("tags", ["blue"]);
    assert_eq!(run(&docs, &q, &o), ["b"]);
    let q = DocumentQuery::new().with_field_equals_whole("tags", "red");
    assert_eq!(run(&docs, &q, &o), ["c"]);
    let q = DocumentQuery::new().with_field_equals("tags", Vec::<String>::new());
    assert_eq!(run(&docs, &q, &o), ["d"]);
    // Each range filter may hold for a different element: [1, 9] is both
    // below 2 and above 8, which intersected bounds would miss.
    let q = DocumentQuery::new()
        .with_field_less_than("n", 2)
        .with_field_greater_than("n", 8);
    assert_eq!(run(&docs, &q, &o), ["a"]);
    // A document with two matching elements comes once.
    let q = DocumentQuery::new().with_field_greater_than("n", 0);
    assert_eq!(run(&docs, &q, &o), ["a", "b", "c"]);
    let q = DocumentQuery::new().with_field_in("tags", ["red", "blue"]);
    assert_eq!(run(&docs, &q, &o), ["a", "b", "c"]);
    // An element repeated in its array, or equal to another array's whole
    // value, still gives one entry per document under that value: found
    // and counted (from the entries alone) once.
    store(
        &docs,
        "e",
        json!({"id": "e", "tags": ["red", "red", ["red"]]}),
    )
    .unwrap();
    store(&docs, "f", json!({"id": "f", "tags": [["red"]]})).unwrap();
    let q = DocumentQuery::new().with_field_equals("tags", "red");
    assert_eq!(run(&docs, &q, &o), ["a", "c", "e"]);
    assert_eq!(docs.count_documents("c", &q, &o).unwrap(), 3);
    let q = DocumentQuery::new().with_field_equals("tags", ["red"]);
    assert_eq!(run(&docs, &q, &o), ["e", "f"]);
    assert_eq!(docs.count_documents("c", &q, &o).unwrap(), 2);
    docs.delete_document("c", "e", &strata::DeleteOptions::new())
        .unwrap();
    docs.delete_document("c", "f", &strata::DeleteOptions::new())
        .unwrap();
    let q = DocumentQuery::new().with_field_not_equals("tags", "red");
    assert_eq!(run(&docs, &q, &o), ["b", "d"]);
    // Sorting follows whole values (SPEC §17.3), not the index's element
    // order: a multikey index does not give the order.
    let sorted = QueryOptions::new().with_sort_field("n", SortOrder::Ascending);
    let q = DocumentQuery::new()
        .with_field_greater_than("n", 0)
        .with_limit(2);
    let plan = docs.explain("c", &q, &sorted).unwrap();
    assert!(!plan.sorted_by_index, "{plan}");
    // Numbers before arrays; arrays element-wise.
    assert_eq!(run(&docs, &q, &sorted), ["b", "a"]);
    let q = DocumentQuery::new().with_limit(10);
    assert_eq!(run(&docs, &q, &sorted), ["b", "d", "a", "c"]);
}

#[test]
fn a_compound_index_answers_equality_on_a_prefix_and_a_range_or_sort_on_the_next_field() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for i in 0..60 {
        let kind = ["bug", "task", "epic"][i % 3];
        let d = json!({"id": format!("{i:02}"), "kind": kind, "priority": (i * 7) % 10});
        store(&docs, &format!("{i:02}"), d).unwrap();
    }
    let spec = IndexSpec::on("kind").then("priority");
    let info = docs.create_index_with("c", &spec).unwrap();
    assert_eq!(info.name(), "kind, priority");
    docs.create_index("c", "kind").unwrap();
    let q = DocumentQuery::new()
        .with_field_equals("kind", "bug")
        .with_field_greater_than("priority", 6)
        .with_limit(4);
    let o = QueryOptions::new().with_sort_field("priority", SortOrder::Descending);
    let plan = docs.explain("c", &q, &o).unwrap();
    assert_eq!(plan.index.as_deref(), Some("kind, priority"), "{plan}");
    assert_eq!(
        plan.bounds.as_deref(),
        Some(r#"kind = "bug", priority > 6"#),
        "{plan}"
    );
    assert!(plan.sorted_by_index && !plan.in_memory_sort, "{plan}");
    let (got, stats) = docs
        .query_documents_with_stats::<Value>("c", &q, &o)
        .unwrap();
    // Reading stops at the limit: the bugs with priority 9 and 8 come
    // first, each group by id descending.
    assert_eq!(ids(&got), run(&docs, &q, &o));
    assert_eq!(stats.documents_read, 4, "{stats:?}");
    for d in &got {
        assert_eq!(d["kind"], "bug");
        assert!(d["priority"].as_u64().unwrap() > 6);
    }
    // Equality on both fields beats equality on one.
    let q = DocumentQuery::new()
        .with_field_equals("kind", "task")
        .with_field_equals("priority", 4);
    let plan = docs.explain("c", &q, &QueryOptions::new()).unwrap();
    assert_eq!(plan.index.as_deref(), Some("kind, priority"), "{plan}");
    assert_eq!(run(&docs, &q, &QueryOptions::new()).len(), 2);
    // A filter on the second field alone cannot use the compound index.
    let q = DocumentQuery::new().with_field_equals("priority", 4);
    let plan = docs.explain("c", &q, &QueryOptions::new()).unwrap();
    assert_eq!(plan.kind, PlanKind::CollectionScan, "{plan}");
    // Two fields holding arrays cannot be indexed together.
    let err = store(&docs, "x", json!({"kind": ["a", "b"], "priority": [1, 2]})).unwrap_err();
    assert!(matches!(err, StorageError::InvalidArgument(_)), "{err}");
    assert!(docs
        .retrieve_document::<Value>("c", "x", &Default::default())
        .is_err());
    docs.drop_index_with("c", &spec).unwrap();
    assert_eq!(docs.indexes("c").unwrap().len(), 1);
}

#[test]
fn a_unique_index_refuses_a_second_document_with_the_same_values_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    docs.create_index_with("c", &IndexSpec::on("email").unique())
        .unwrap();
    docs.create_index("c", "team").unwrap();
    store(
        &docs,
        "u1",
        json!({"id": "u1", "email": "ada@x", "team": "a"}),
    )
    .unwrap();
    // Storing the same document again is not a clash with itself.
    store(
        &docs,
        "u1",
        json!({"id": "u1", "email": "ada@x", "team": "b"}),
    )
    .unwrap();
    let err = store(
        &docs,
        "u2",
        json!({"id": "u2", "email": "ada@x", "team": "c"}),
    )
    .unwrap_err();
    match &err {
        StorageError::UniqueViolation {
            index,
            id,
            existing,
            ..
        } => assert_eq!(
            (index.as_str(), id.as_str(), existing.as_str()),
            ("email", "u2", "u1")
        ),
        e => panic!("{e}"),
    }
    // Nothing of u2 was written: not the document, not its other entries.
    assert!(docs
        .retrieve_document::<Value>("c", "u2", &Default::default())
        .is_err());
    let q = DocumentQuery::new().with_field_equals("team", "c");
    assert!(run(&docs, &q, &QueryOptions::new()).is_empty());
    // Documents without the field are not constrained; a freed value can
    // be taken.
    store(&docs, "u3", json!({"id": "u3"})).unwrap();
    store(&docs, "u4", json!({"id": "u4"})).unwrap();
    store(&docs, "u1", json!({"id": "u1", "email": "ada@y"})).unwrap();
    store(&docs, "u2", json!({"id": "u2", "email": "ada@x"})).unwrap();
    let q = DocumentQuery::new().with_field_equals("email", "ada@x");
    assert_eq!(run(&docs, &q, &QueryOptions::new()), ["u2"]);
    // Array elements are values too: another document's element clashes.
    let err = store(&docs, "u5", json!({"email": ["z@x", "ada@y"]})).unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    // Compound: the pair is unique, each field alone is not.
    let pair = IndexSpec::on("team").then("seat").unique();
    docs.create_index_with("c", &pair).unwrap();
    store(&docs, "s1", json!({"team": "t", "seat": 1})).unwrap();
    store(&docs, "s2", json!({"team": "t", "seat": 2})).unwrap();
    let err = store(&docs, "s3", json!({"team": "t", "seat": 1})).unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
}

#[test]
fn building_a_unique_index_over_duplicates_fails_and_leaves_no_index() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for i in 0..2500 {
        let id = format!("{i:05}");
        let d = json!({"id": id, "code": if i == 2400 { 7 } else { i }});
        store(&docs, &id, d).unwrap();
    }
    let err = docs
        .create_index_with("c", &IndexSpec::on("code").unique())
        .unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    assert!(docs.indexes("c").unwrap().is_empty());
    let q = DocumentQuery::new().with_field_equals("code", 7);
    let plan = docs.explain("c", &q, &QueryOptions::new()).unwrap();
    assert_eq!(plan.kind, PlanKind::CollectionScan);
    // Without the duplicate the same index builds, and then holds.
    docs.delete_document("c", "02400", &Default::default())
        .unwrap();
    docs.create_index_with("c", &IndexSpec::on("code").unique())
        .unwrap();
    assert_eq!(run(&docs, &q, &QueryOptions::new()), ["00007"]);
    assert!(store(&docs, "x", json!({"code": 7})).is_err());
}

#[test]
fn writers_racing_on_one_unique_value_leave_exactly_one_winner() {
    for isolation in [IsolationLevel::Serializable, IsolationLevel::Snapshot] {
        let dir = tempfile::tempdir().unwrap();
        let mut config = StorageSystemConfig {
            transactions: TransactionConfig {
                isolation,
                ..Default::default()
            },
            ..Default::default()
        };
        config.engine.sync_writes = false;
        let storage = Arc::new(
            strata::StorageSystem::builder()
                .path(dir.path())
                .with_config(config)
                .build()
                .unwrap(),
        );
        let docs = storage.get_document_storage(StorageType::Resource).unwrap();
        docs.create_index_with("c", &IndexSpec::on("name").unique())
            .unwrap();
        for round in 0..10 {
            let threads = 4;
            let barrier = Arc::new(Barrier::new(threads));
            let handles: Vec<_> = (0..threads)
                .map(|t| {
                    let (storage, barrier) = (storage.clone(), barrier.clone());
                    let docs = docs.clone();
                    std::thread::spawn(move || {
                        let d = json!({"name": format!("n{round}")});
                        let id = format!("r{round}-t{t}");
                        barrier.wait();
                        if t % 2 == 0 {
                            // The provider's own transaction.
                            store(&docs, &id, d)
                        } else {
                            // A caller's transaction.
                            let tx = storage.begin()?;
                            let o = DocumentOptions::new().with_transaction(&tx);
                            docs.store_document("c", &id, &d, &o)?;
                            tx.commit().map(|_| ())
                        }
                    })
                })
                .collect();
            let results: Vec<strata::Result<()>> =
                handles.into_iter().map(|h| h.join().unwrap()).collect();
            let won = results.iter().filter(|r| r.is_ok()).count();
            assert_eq!(won, 1, "{isolation:?} round {round}: {results:?}");
            for r in results.iter().filter_map(|r| r.as_ref().err()) {
                assert!(
                    matches!(r, StorageError::UniqueViolation { .. }) || r.is_conflict(),
                    "{r}"
                );
            }
            let q = DocumentQuery::new().with_field_equals("name", format!("n{round}"));
            let found: Vec<Value> = docs
                .query_documents("c", &q, &QueryOptions::new().force_scan())
                .unwrap();
            assert_eq!(found.len(), 1, "{isolation:?} round {round}");
        }
    }
}

#[test]
fn an_or_whose_branches_have_indexes_reads_their_union() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for i in 0..200 {
        let id = format!("{i:03}");
        let d = json!({"id": id, "a": i % 50, "b": i % 7, "tags": [i % 3, i % 5], "c": i});
        store(&docs, &id, d).unwrap();
    }
    docs.create_index("c", "a").unwrap();
    docs.create_index("c", "tags").unwrap();
    let or = Filter::any([
        Filter::field("a", FilterOp::Equals(json!(3))),
        Filter::all([
            Filter::field("tags", FilterOp::Equals(json!(4))),
            Filter::field("b", FilterOp::Equals(json!(2))),
        ]),
    ]);
    let q = DocumentQuery::new().with_where(or.clone());
    let o = QueryOptions::new();
    let plan = docs.explain("c", &q, &o).unwrap();
    assert_eq!(plan.kind, PlanKind::IndexUnion, "{plan}");
    assert_eq!(plan.index.as_deref(), Some("a | tags"), "{plan}");
    let (got, stats) = docs
        .query_documents_with_stats::<Value>("c", &q, &o)
        .unwrap();
    let want: Vec<String> = (0..200)
        .filter(|i| i % 50 == 3 || (i % 5 == 4 && i % 7 == 2))
        .map(|i| format!("{i:03}"))
        .collect();
    assert_eq!(ids(&got), want);
    // Only the branches' entries were read, not the 200 documents.
    assert!(stats.documents_read < 60, "{stats:?}");
    assert_eq!(run(&docs, &q, &o), want);
    // A branch without an index makes it a scan; NOT never uses one.
    let q = DocumentQuery::new().with_where(Filter::any([
        Filter::field("a", FilterOp::Equals(json!(3))),
        Filter::field("c", FilterOp::Equals(json!(9))),
    ]));
    assert_eq!(
        docs.explain("c", &q, &o).unwrap().kind,
        PlanKind::CollectionScan
    );
    assert_eq!(run(&docs, &q, &o), ["003", "009", "053", "103", "153"]);
    let q = DocumentQuery::new()
        .with_field_less_than("c", 10)
        .with_where(Filter::negate(or));
    // 3 and 9 pass the OR.
    assert_eq!(run(&docs, &q, &o).len(), 8);
    // The tree travels as JSON.
    let text = serde_json::to_string(&q).unwrap();
    assert!(text.contains(r#""where":{"not":{"or":["#), "{text}");
    assert_eq!(serde_json::from_str::<DocumentQuery>(&text).unwrap(), q);
    // A tree nested too deep is refused.
    let mut deep = Filter::field("a", FilterOp::Exists(true));
    for _ in 0..40 {
        deep = Filter::negate(deep);
    }
    let err = docs
        .query_documents::<Value>("c", &DocumentQuery::new().with_where(deep), &o)
        .unwrap_err();
    assert!(matches!(err, StorageError::InvalidArgument(_)), "{err}");
}

#[test]
fn counts_read_no_document_when_the_index_decides_every_filter() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for i in 0..300 {
        let id = format!("{i:03}");
        let kind = ["a", "b", "c"][i % 3];
        let d = json!({"id": id, "kind": kind, "n": i % 10, "tags": [i % 4, 9],
                       "body": {"title": format!("t{i}"), "words": i}});
        store(&docs, &id, d).unwrap();
    }
    docs.create_index_with("c", &IndexSpec::on("kind").then("n"))
        .unwrap();
    docs.create_index("c", "tags").unwrap();
    let o = QueryOptions::new();
    let expect = |q: &DocumentQuery| {
        let all: Vec<Value> = docs
            .query_documents("c", q, &o.clone().force_scan())
            .unwrap();
        all.len() as u64
    };
    let covered = [
        DocumentQuery::new().with_field_equals("kind", "b"),
        DocumentQuery::new()
            .with_field_equals("kind", "a")
            .with_field_greater_or_equal("n", 4)
            .with_field_less_than("n", 8),
        DocumentQuery::new()
            .with_field_equals("kind", "c")
            .with_field_in("n", [1, 2, 40]),
        // Multikey: a document with two matching elements counts once.
        DocumentQuery::new().with_field_greater_than("tags", 1),
        // Offset and limit do not change a count.
        DocumentQuery::new()
            .with_field_equals("tags", 9)
            .with_limit(3)
            .with_offset(1),
    ];
    for q in &covered {
        let (n, stats) = docs.count_documents_with_stats("c", q, &o).unwrap();
        assert!(stats.plan.covering, "{}", stats.plan);
        assert_eq!(stats.documents_read, 0, "{stats:?}");
        assert_eq!(
            n,
            expect(&q.clone().with_limit(usize::MAX).with_offset(0)),
            "{q:?}"
        );
    }
    // A filter the index cannot decide: the documents are read.
    let q = DocumentQuery::new()
        .with_field_equals("kind", "b")
        .with_field_prefix("body.title", "t1");
    let (n, stats) = docs.count_documents_with_stats("c", &q, &o).unwrap();
    assert!(
        !stats.plan.covering && stats.documents_read > 0,
        "{stats:?}"
    );
    assert_eq!(n, expect(&q));
    // Counted the same at a past time and by a collection scan.
    let before = storage.db().last_timestamp();
    store(&docs, "new", json!({"kind": "b", "n": 1})).unwrap();
    let q = DocumentQuery::new().with_field_equals("kind", "b");
    assert_eq!(docs.count_documents("c", &q, &o).unwrap(), 101);
    assert_eq!(
        docs.count_documents("c", &q, &o.clone().at(before))
            .unwrap(),
        100
    );
    assert_eq!(
        docs.count_documents("c", &q, &o.clone().force_scan())
            .unwrap(),
        101
    );
}

#[test]
fn projections_return_only_the_fields_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    store(
        &docs,
        "x",
        json!({"id": "x", "a": 1, "b": {"c": 2, "d": 3}, "l": [5, 6]}),
    )
    .unwrap();
    let o = QueryOptions::new().with_projection(["id", "b.c", "l.1", "missing"]);
    let got: Vec<Value> = docs
        .query_documents("c", &DocumentQuery::new(), &o)
        .unwrap();
    assert_eq!(got, [json!({"id": "x", "b": {"c": 2}, "l": {"1": 6}})]);
    // Sorting and filtering see the whole document.
    let o = o.with_sort_field("a", SortOrder::Descending);
    let q = DocumentQuery::new().with_field_equals("b.d", 3);
    let got: Vec<Value> = docs.query_documents("c", &q, &o).unwrap();
    assert_eq!(got.len(), 1);
    let bad = QueryOptions::new().with_projection(["a..b"]);
    assert!(docs
        .query_documents::<Value>("c", &DocumentQuery::new(), &bad)
        .is_err());
}

/// Every page of `q` from the first, `size` at a time.
fn pages(
    docs: &DocumentStorageProvider,
    q: &DocumentQuery,
    o: &QueryOptions,
    size: usize,
) -> Vec<Vec<String>> {
    let q = q.clone().with_limit(size);
    let mut o = o.clone();
    let mut out = Vec::new();
    loop {
        let page = docs.query_page::<Value>("c", &q, &o).unwrap();
        assert!(page.documents.len() <= size);
        out.push(ids(&page.documents));
        match page.next {
            Some(c) => o = o.after(c),
            None => return out,
        }
        assert!(out.len() < 1000, "pages do not end");
    }
}

#[test]
fn cursors_page_through_every_plan_exactly_at_a_time_and_onward_while_writes_happen() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for i in 0..120 {
        let id = format!("{i:03}");
        let d = json!({"id": id, "a": i % 4, "b": (i * 37) % 11, "tags": [i % 5, i % 7]});
        store(&docs, &id, d).unwrap();
    }
    docs.create_index("c", "b").unwrap();
    docs.create_index_with("c", &IndexSpec::on("a").then("b"))
        .unwrap();
    docs.create_index("c", "tags").unwrap();
    let at = storage.db().last_timestamp();
    let asc = |f: &str| QueryOptions::new().with_sort_field(f, SortOrder::Ascending);
    let desc = |f: &str| QueryOptions::new().with_sort_field(f, SortOrder::Descending);
    let cases: Vec<(DocumentQuery, QueryOptions, PlanKind)> = vec![
        (
            DocumentQuery::new(),
            QueryOptions::new(),
            PlanKind::CollectionScan,
        ),
        (DocumentQuery::new(), desc("b"), PlanKind::IndexScan),
        (
            DocumentQuery::new().with_field_equals("a", 2),
            desc("b"),
            PlanKind::IndexScan,
        ),
        (
            DocumentQuery::new().with_field_greater_than("b", 3),
            asc("a"),
            PlanKind::IndexScan,
        ),
        (
            DocumentQuery::new().with_field_in("tags", [1, 6]),
            QueryOptions::new(),
            PlanKind::IndexScan,
        ),
        (
            DocumentQuery::new().with_where(Filter::any([
                Filter::field("b", FilterOp::Equals(json!(4))),
                Filter::field("tags", FilterOp::Equals(json!(3))),
            ])),
            desc("a"),
            PlanKind::IndexUnion,
        ),
    ];
    for (q, o, kind) in &cases {
        let o = o.clone().at(at);
        let whole = run(&docs, q, &o);
        let plan = docs.explain("c", &q.clone().with_limit(7), &o).unwrap();
        assert_eq!(plan.kind, *kind, "{plan}");
        let got = pages(&docs, q, &o, 7);
        assert_eq!(got.concat(), whole, "{q:?} {plan}");
        assert!(got.iter().rev().skip(1).all(|p| p.len() == 7));
    }
    // Now, with writes between pages: a page continues after the last
    // document of the one before, by its position in the order.
    let q = DocumentQuery::new().with_limit(10);
    let o = asc("b");
    let first = docs.query_page::<Value>("c", &q, &o).unwrap();
    let last = first.documents.last().unwrap().clone();
    assert_eq!(last["b"], 0);
    store(&docs, "000-before", json!({"id": "000-before", "b": 0})).unwrap();
    store(&docs, "zzz-after", json!({"id": "zzz-after", "b": 0})).unwrap();
    docs.delete_document("c", &ids(&first.documents)[0], &Default::default())
        .unwrap();
    let second = docs
        .query_page::<Value>("c", &q, &o.clone().after(first.next.clone().unwrap()))
        .unwrap();
    let second_ids = ids(&second.documents);
    assert!(
        second_ids.contains(&"zzz-after".to_owned()),
        "{second_ids:?}"
    );
    assert!(!second_ids.contains(&"000-before".to_owned()));
    assert!(second_ids
        .iter()
        .all(|id| !ids(&first.documents).contains(id)));
    // An ordered plan seeks to the cursor rather than reading what came
    // before it.
    let read = docs.stats().documents_read;
    let o = desc("b").after(second.next.clone().unwrap_or_default());
    let err = docs.query_page::<Value>("c", &q, &o).unwrap_err();
    assert!(
        matches!(err, StorageError::InvalidArgument(_)),
        "another order: {err}"
    );
    let mut cursor = None;
    for _ in 0..10 {
        let mut o = asc("b");
        if let Some(c) = cursor {
            o = o.after(c);
        }
        let page = docs.query_page::<Value>("c", &q, &o).unwrap();
        cursor = page.next;
    }
    assert!(cursor.is_some());
    assert!(
        docs.stats().documents_read - read <= 10 * 10,
        "pages read past their cursor"
    );
    // A cursor that is not one is refused.
    for bad in ["", "zz", "01", "0100000000000000000041"] {
        let o = QueryOptions::new().after(bad);
        let r = docs.query_page::<Value>("c", &q, &o);
        assert!(
            matches!(r, Err(StorageError::InvalidArgument(_))),
            "{bad}: {r:?}"
        );
    }
}

#[test]
fn with_statistics_the_planner_picks_the_index_that_reads_least() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    // 95% of the documents are open; ages spread evenly over 0..1000.
    for i in 0..2000u32 {
        let id = format!("{i:04}");
        let status = if i % 20 == 0 { "closed" } else { "open" };
        let d = json!({"id": id, "status": status, "age": (i * 7919) % 1000});
        store(&docs, &id, d).unwrap();
    }
    let spec = IndexSpec::on("status");
    docs.create_index_with("c", &spec).unwrap();
    docs.create_index("c", "age").unwrap();
    let q = DocumentQuery::new()
        .with_field_equals("status", "open")
        .with_field_less_than("age", 10);
    let o = QueryOptions::new();
    let want = run(&docs, &q, &o);
    let count = |f: &dyn Fn(u32, u32) -> bool| {
        (0..2000u32)
            .filter(|i| f(i % 20, (i * 7919) % 1000))
            .count()
    };
    assert_eq!(want.len(), count(&|s, age| s != 0 && age < 10));
    // Statistics are gathered when an index is built: the range on age
    // (1% of the entries) beats the equality on status (95%), which the
    // heuristic alone would prefer.
    let plan = docs.explain("c", &q, &o).unwrap();
    assert_eq!(plan.index.as_deref(), Some("age"), "{plan}");
    assert_eq!(plan.candidates.len(), 2, "{plan:?}");
    let est = |name: &str| {
        plan.candidates
            .iter()
            .find(|c| c.index == name)
            .and_then(|c| c.estimated_entries)
            .unwrap()
    };
    assert!(
        est("status") > 1500 && est("age") < 100,
        "{:?}",
        plan.candidates
    );
    let (got, stats) = docs
        .query_documents_with_stats::<Value>("c", &q, &o)
        .unwrap();
    assert_eq!(ids(&got), want);
    assert!(stats.documents_read < 60, "{stats:?}");
    // A rare value of status is now the better choice.
    let q = DocumentQuery::new()
        .with_field_equals("status", "closed")
        .with_field_less_than("age", 500);
    let plan = docs.explain("c", &q, &o).unwrap();
    assert_eq!(plan.index.as_deref(), Some("status"), "{plan}");
    assert_eq!(
        run(&docs, &q, &o).len(),
        count(&|s, age| s == 0 && age < 500)
    );
    // Dropped with their index: a query at a time before the index was
    // built again sees neither.
    docs.drop_index_with("c", &spec).unwrap();
    let before = storage.db().last_timestamp();
    docs.create_index_with("c", &spec).unwrap();
    let open = DocumentQuery::new().with_field_equals("status", "open");
    let then = docs.explain("c", &open, &o.clone().at(before)).unwrap();
    assert_eq!(then.kind, PlanKind::CollectionScan, "{then}");
    // analyze refreshes them after the data moved.
    for i in 0..2000u32 {
        let id = format!("{i:04}");
        let d = json!({"id": id, "status": "closed", "age": 5});
        store(&docs, &id, d).unwrap();
    }
    let q = DocumentQuery::new()
        .with_field_equals("status", "open")
        .with_field_less_than("age", 10);
    let stale = docs.explain("c", &q, &o).unwrap();
    assert_eq!(stale.index.as_deref(), Some("age"), "{stale}");
    let fresh = docs.analyze("c").unwrap();
    assert_eq!(fresh.len(), 2);
    assert!(fresh.iter().all(|s| s.entries == 2000), "{fresh:?}");
    let plan = docs.explain("c", &q, &o).unwrap();
    assert_eq!(plan.index.as_deref(), Some("status"), "{plan}");
    assert!(run(&docs, &q, &o).is_empty());
}

#[test]
fn counts_pages_and_unique_checks_work_inside_a_transaction_and_at_a_past_time() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    docs.create_index_with("c", &IndexSpec::on("k").unique())
        .unwrap();
    docs.create_index("c", "tags").unwrap();
    for i in 0..10 {
        store(
            &docs,
            &format!("{i}"),
            json!({"id": format!("{i}"), "k": i, "tags": ["x"]}),
        )
        .unwrap();
    }
    let before = storage.db().last_timestamp();
    let tx = storage.begin().unwrap();
    let o = DocumentOptions::new().with_transaction(&tx);
    docs.store_document(
        "c",
        "new",
        &json!({"id": "new", "k": 100, "tags": ["x"]}),
        &o,
    )
    .unwrap();
    // The transaction sees its own store in counts and pages.
    let q = DocumentQuery::new().with_field_equals("tags", "x");
    let in_tx = QueryOptions::new().with_transaction(&tx);
    assert_eq!(docs.count_documents("c", &q, &in_tx).unwrap(), 11);
    let page = docs
        .query_page::<Value>("c", &q.clone().with_limit(6), &in_tx)
        .unwrap();
    let rest = docs
        .query_page::<Value>(
            "c",
            &q.clone().with_limit(6),
            &in_tx.clone().after(page.next.unwrap()),
        )
        .unwrap();
    assert_eq!(page.documents.len() + rest.documents.len(), 11);
    assert!(rest.next.is_none());
    // A unique value taken inside the transaction is refused inside it.
    let err = docs
        .store_document("c", "dup", &json!({"k": 100}), &o)
        .unwrap_err();
    assert!(matches!(err, StorageError::UniqueViolation { .. }), "{err}");
    // Outside, nothing is visible until the commit.
    assert_eq!(
        docs.count_documents("c", &q, &QueryOptions::new()).unwrap(),
        10
    );
    tx.commit().unwrap();
    assert_eq!(
        docs.count_documents("c", &q, &QueryOptions::new()).unwrap(),
        11
    );
    assert_eq!(
        docs.count_documents("c", &q, &QueryOptions::new().at(before))
            .unwrap(),
        10
    );
}

#[test]
fn two_unselective_indexes_intersect_when_few_documents_are_in_both() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    for i in 0..3000u32 {
        let id = format!("{i:04}");
        let d = json!({"id": id, "a": i % 10, "b": (i / 10) % 10, "c": i});
        store(&docs, &id, d).unwrap();
    }
    docs.create_index("c", "a").unwrap();
    docs.create_index("c", "b").unwrap();
    let q = DocumentQuery::new()
        .with_field_equals("a", 3)
        .with_field_equals("b", 7);
    let o = QueryOptions::new();
    let plan = docs.explain("c", &q, &o).unwrap();
    assert_eq!(plan.kind, PlanKind::IndexIntersection, "{plan}");
    let (got, stats) = docs
        .query_documents_with_stats::<Value>("c", &q, &o)
        .unwrap();
    // A tenth of a tenth: 30 documents, each read once, of the 300 either
    // index alone would fetch.
    assert_eq!(got.len(), 30);
    assert_eq!(stats.documents_read, 30, "{stats:?}");
    assert_eq!(ids(&got), run(&docs, &q, &o));
    // Ordered by the scanned index, with a cursor, at a past time.
    let at = storage.db().last_timestamp();
    store(&docs, "x", json!({"id": "x", "a": 3, "b": 7})).unwrap();
    let paged = pages(&docs, &q, &o.clone().at(at), 7);
    assert_eq!(paged.concat(), ids(&got));
    assert_eq!(docs.count_documents("c", &q, &o).unwrap(), 31);
}
