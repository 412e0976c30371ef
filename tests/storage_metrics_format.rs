//! The metrics rendering is read by a strict parser of the Prometheus text
//! format, after a workload that touches every operation of the storage
//! system: it parses without an error, every family has one HELP and one
//! TYPE line, counters are named `..._total`, histograms have buckets, a
//! sum and a count, and names a scraper would choke on are refused.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricFamily, PrometheusType, PrometheusValue};
use serde_json::{json, Value};
use strata::engine::{KeyspaceStats, LevelStats, Stats};
use strata::{
    DeleteOptions, DocumentOptions, DocumentQuery, KeyPattern, MetricsRegistry, ObserverError,
    QueryOptions, RetrieveOptions, StorageError, StorageKey, StorageMetadata, StorageObserver,
    StorageOptions, StorageSystem, StorageSystemConfig, StorageTransaction, StorageType,
};

type Families = BTreeMap<String, MetricFamily<PrometheusType, PrometheusValue>>;

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

/// Parses `text` strictly and checks what every family must have; returns
/// the families by name.
fn parse_checked(text: &str) -> Families {
    let exposition = match parse_prometheus(text) {
        Ok(e) => e,
        Err(e) => panic!("the rendering does not parse: {e:?}\n{text}"),
    };
    let families: Families = exposition.families.into_iter().collect();
    assert!(!families.is_empty(), "{text}");
    for (name, f) in &families {
        let helps = text
            .lines()
            .filter(|l| l.starts_with(&format!("# HELP {name} ")))
            .count();
        let types = text
            .lines()
            .filter(|l| l.starts_with(&format!("# TYPE {name} ")))
            .count();
        assert_eq!((helps, types), (1, 1), "HELP and TYPE of {name}\n{text}");
        assert!(!f.help.trim().is_empty(), "{name} has an empty HELP");
        match f.family_type {
            PrometheusType::Counter => {
                assert!(name.ends_with("_total"), "counter {name} lacks _total");
            }
            PrometheusType::Histogram => {
                for suffix in ["_bucket", "_sum", "_count"] {
                    assert!(
                        text.lines()
                            .any(|l| l.starts_with(&format!("{name}{suffix}"))),
                        "histogram {name} has no {suffix}\n{text}"
                    );
                }
                for s in f.iter_samples() {
                    let PrometheusValue::Histogram(h) = &s.value else {
                        panic!("{name} holds a {:?}", s.value);
                    };
                    assert!(h.sum.is_some() && h.count.is_some(), "{name}: {h:?}");
                    assert!(h.buckets.iter().any(|b| b.upper_bound == f64::INFINITY));
                }
            }
            PrometheusType::Gauge => {
                assert!(!name.ends_with("_total"), "gauge {name} named as a counter");
            }
            ref t => panic!("{name} is typed {t:?}"),
        }
    }
    families
}

/// The label sets (name → value) of `family`'s samples.
fn label_sets(families: &Families, family: &str) -> Vec<BTreeMap<String, String>> {
    let Some(f) = families.get(family) else {
        panic!("no family {family} in {:?}", families.keys());
    };
    f.iter_samples()
        .map(|s| {
            s.get_labelset()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .collect()
}

/// Fails every call it hears of.
struct Failing;

impl StorageObserver for Failing {
    fn on_store(
        &self,
        _: &StorageKey,
        _: &StorageMetadata,
        _: StorageType,
    ) -> Result<(), ObserverError> {
        Err(ObserverError("cannot".into()))
    }
    fn on_delete(&self, _: &StorageKey, _: StorageType) -> Result<(), ObserverError> {
        Err(ObserverError("cannot".into()))
    }
    fn on_transaction_commit(&self, _: &StorageTransaction) -> Result<(), ObserverError> {
        Err(ObserverError("cannot".into()))
    }
}

/// Stores, reads, lists, deletes and fails on several storage types, and
/// runs transactions, documents and blobs.
fn workload(storage: &StorageSystem) {
    let opts = StorageOptions::new();
    for t in [
        StorageType::Resource,
        StorageType::Fact,
        StorageType::Operation,
        StorageType::Metadata,
    ] {
        let p = storage.get_provider(t).unwrap();
        for i in 0..5 {
            p.store(&key(&format!("k{i}")), format!("v{i}").as_bytes(), &opts)
                .unwrap();
        }
        p.store(&key("k0"), b"again", &opts).unwrap();
        p.retrieve(&key("k1"), &RetrieveOptions::new()).unwrap();
        assert!(p.exists(&key("k2")).unwrap());
        assert_eq!(p.list_keys(&KeyPattern::all()).unwrap().len(), 5);
        assert!(!p.history(&key("k0")).unwrap().is_empty());
        p.delete(&key("k3"), &DeleteOptions::new()).unwrap();
        // A failing call: nothing under the key.
        let missing = p.retrieve(&key("k3"), &RetrieveOptions::new());
        assert!(matches!(missing, Err(StorageError::NotFound(_))));
    }

    let resources = storage.get_provider(StorageType::Resource).unwrap();
    let tx = storage.begin_transaction().unwrap();
    resources
        .store(
            &key("tx/a"),
            b"1",
            &StorageOptions::new().with_transaction(&tx),
        )
        .unwrap();
    resources
        .retrieve(&key("tx/a"), &RetrieveOptions::new().with_transaction(&tx))
        .unwrap();
    storage.commit_transaction(tx.id).unwrap();
    let tx = storage.begin_transaction().unwrap();
    resources
        .store(
            &key("tx/b"),
            b"2",
            &StorageOptions::new().with_transaction(&tx),
        )
        .unwrap();
    storage.rollback_transaction(tx.id).unwrap();
    storage
        .transaction(|tx| {
            resources.store(
                &key("tx/c"),
                b"3",
                &StorageOptions::new().with_transaction(tx),
            )
        })
        .unwrap();

    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    let o = DocumentOptions::new();
    for (id, kind) in [("ada", "person"), ("bob", "person"), ("box", "thing")] {
        docs.store_document("things", id, &json!({"kind": kind, "id": id}), &o)
            .unwrap();
    }
    docs.create_index("things", "kind").unwrap();
    let back: Value = docs
        .retrieve_document("things", "ada", &RetrieveOptions::new())
        .unwrap();
    assert_eq!(back["kind"], "person");
    let people = docs
        .query_documents::<Value>(
            "things",
            &DocumentQuery::new().with_field_equals("kind", "person"),
            &QueryOptions::new(),
        )
        .unwrap();
    assert_eq!(people.len(), 2);
    assert!(docs
        .delete_document("things", "box", &DeleteOptions::new())
        .unwrap());
    // A failing document call: no collection name.
    assert!(docs.store_document("", "x", &json!({}), &o).is_err());

    let blobs = storage.get_blob_storage().unwrap();
    let data = vec![7u8; 5000];
    blobs
        .put_stream(&key("blob/1"), &data[..], &StorageOptions::new())
        .unwrap();
    let mut read = Vec::new();
    blobs
        .open(&key("blob/1"))
        .unwrap()
        .read_to_end(&mut read)
        .unwrap();
    assert_eq!(read, data);
    let blob_provider = storage.get_provider(StorageType::Blob).unwrap();
    assert!(blob_provider.exists(&key("blob/1")).unwrap());
}

#[test]
fn the_storage_rendering_parses_and_follows_the_conventions() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(MetricsRegistry::new());
    let mut config = StorageSystemConfig::default();
    config.engine.sync_writes = false;
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_config(config)
        .with_metrics_registry(registry.clone())
        .with_observer(Arc::new(Failing))
        .build()
        .unwrap();

    // The application shares the registry, with label values that need
    // escaping, and names a scraper would reject (left out).
    registry
        .counter(
            "app_requests_total",
            &[("path", "a \"quoted\" \\ back\nslash")],
        )
        .fetch_add(3, std::sync::atomic::Ordering::Relaxed);
    registry
        .counter("storage.resource.store.count", &[])
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    registry
        .counter("app_bad_total", &[("bad label", "x")])
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);

    workload(&storage);
    // Flushed tables, so the per-level gauges have samples.
    storage.db().flush().unwrap();

    let text = storage.metrics().render_prometheus();
    let families = parse_checked(&text);

    assert!(!text.contains("storage.resource"), "{text}");
    assert!(!text.contains("bad label"), "{text}");
    assert!(!families.contains_key("app_bad_total"));
    let app = label_sets(&families, "app_requests_total");
    assert_eq!(app.len(), 1);
    assert_eq!(app[0]["path"], "a \"quoted\" \\ back\nslash");

    // Every operation the storage system timed, per type.
    let ops: BTreeSet<(String, String)> = label_sets(&families, "strata_storage_operations_total")
        .into_iter()
        .map(|l| (l["type"].clone(), l["op"].clone()))
        .collect();
    for t in ["resource", "fact", "operation", "metadata"] {
        for op in [
            "store",
            "retrieve",
            "exists",
            "delete",
            "list_keys",
            "history",
        ] {
            assert!(ops.contains(&(t.into(), op.into())), "{t} {op}: {ops:?}");
        }
    }
    for op in [
        "store_document",
        "retrieve_document",
        "query_documents",
        "delete_document",
        "create_index",
    ] {
        assert!(ops.contains(&("resource".into(), op.into())), "{op}");
    }
    // The storage system describes its own families.
    for (name, f) in &families {
        if name.starts_with("strata_") {
            assert!(!f.help.contains("without a description"), "{name}");
        }
    }
    assert!(!label_sets(&families, "strata_storage_errors_total").is_empty());
    assert!(!label_sets(&families, "strata_observer_errors_total").is_empty());

    for counter in [
        "strata_storage_operations_total",
        "strata_storage_successes_total",
        "strata_storage_errors_total",
        "strata_storage_bytes_total",
        "strata_observer_errors_total",
        "strata_engine_writes_total",
        "strata_engine_wal_bytes_written_total",
        "strata_engine_wal_syncs_total",
        "strata_engine_write_groups_total",
        "strata_engine_write_stalls_total",
        "strata_engine_block_cache_hits_total",
        "strata_engine_block_cache_misses_total",
        "strata_engine_background_errors_total",
        "strata_engine_flushes_total",
        "strata_engine_user_bytes_written_total",
    ] {
        let f = families.get(counter);
        assert!(
            f.is_some_and(|f| f.family_type == PrometheusType::Counter),
            "{counter} is not a counter: {:?}",
            f.map(|f| &f.family_type)
        );
    }
    for gauge in [
        "strata_engine_wal_bytes_live",
        "strata_engine_block_cache_bytes",
        "strata_engine_sst_bytes",
        "strata_engine_sst_files",
        "strata_engine_memtable_bytes",
    ] {
        let f = families.get(gauge);
        assert!(
            f.is_some_and(|f| f.family_type == PrometheusType::Gauge),
            "{gauge} is not a gauge"
        );
    }
    let h = families.get("strata_storage_operation_seconds");
    assert!(h.is_some_and(|f| f.family_type == PrometheusType::Histogram));
}

#[test]
fn engine_keyspace_names_are_escaped() {
    let stats = Stats {
        keyspaces: vec![KeyspaceStats {
            name: "odd \"ks\" \\ name\n".into(),
            levels: vec![LevelStats {
                files: 2,
                bytes: 4096,
                key_ranges: Vec::new(),
            }],
            memtable_bytes: 10,
            ..Default::default()
        }],
        writes: 5,
        ..Default::default()
    };
    let text = strata::engine_prometheus(&stats);
    let families = parse_checked(&text);
    let sst = label_sets(&families, "strata_engine_sst_files");
    assert_eq!(sst.len(), 1);
    assert_eq!(sst[0]["keyspace"], "odd \"ks\" \\ name\n");
    assert_eq!(sst[0]["level"], "0");
}

#[test]
fn sub_microsecond_durations_are_kept() {
    let registry = MetricsRegistry::new();
    let h = registry.histogram("app_op_seconds", &[("op", "tiny")]);
    h.record(Duration::from_nanos(300));
    let families = parse_checked(&registry.render_prometheus());
    let f = &families["app_op_seconds"];
    let PrometheusValue::Histogram(v) = &f.iter_samples().next().unwrap().value else {
        panic!("not a histogram");
    };
    let sum = v.sum.as_ref().unwrap().as_f64();
    assert!((sum - 300e-9).abs() < 1e-12, "sum {sum}");
    // It lands below one microsecond, in a bucket of its own size.
    let first = v
        .buckets
        .iter()
        .filter(|b| b.count.as_f64() > 0.0)
        .map(|b| b.upper_bound)
        .fold(f64::INFINITY, f64::min);
    assert!(first < 1e-6, "first bucket holding it: {first}");
}

#[test]
fn invalid_names_are_refused_with_an_error_and_left_out() {
    let registry = MetricsRegistry::new();
    registry.describe("app_calls_total", "Calls.").unwrap();
    registry
        .try_counter("app_calls_total", &[("path", "/")])
        .unwrap()
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let bad_counters: [(&str, &[(&str, &str)]); 6] = [
        ("storage.resource.store.count", &[]),
        ("app_bad_total", &[("bad label", "x")]),
        ("app_bad_total", &[("__name__", "x")]),
        ("app_calls", &[]),
        ("strata_engine_writes_total", &[]),
        ("app_bad_total", &[("x", "1"), ("x", "2")]),
    ];
    for (name, labels) in bad_counters {
        match registry.try_counter(name, labels) {
            Err(StorageError::InvalidArgument(why)) => {
                let named = std::iter::once(name).chain(labels.iter().map(|(l, _)| *l));
                assert!(named.into_iter().any(|n| why.contains(n)), "{why}");
            }
            other => panic!("{name} {labels:?}: {other:?}"),
        }
        // The infallible call counts on a detached counter.
        registry
            .counter(name, labels)
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
    for name in ["bad name", "app_latency_seconds_count", "app_calls_total"] {
        let r = registry.try_histogram(name, &[]);
        assert!(matches!(r, Err(StorageError::InvalidArgument(_))), "{name}");
        registry
            .histogram(name, &[])
            .record(Duration::from_micros(5));
    }
    assert!(registry
        .try_histogram("app_latency_seconds", &[("le", "1")])
        .is_err());
    assert!(matches!(
        registry.describe("bad name", "x"),
        Err(StorageError::InvalidArgument(_))
    ));

    let text = registry.render_prometheus();
    let families = parse_checked(&text);
    assert_eq!(
        families.keys().collect::<Vec<_>>(),
        ["app_calls_total"],
        "{text}"
    );
    assert_eq!(families["app_calls_total"].help, "Calls.");
    for refused in [
        "storage.resource",
        "bad",
        "__name__",
        "app_calls{",
        "strata_engine",
    ] {
        assert!(!text.contains(refused), "{refused} in\n{text}");
    }
}
