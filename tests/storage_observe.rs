//! Metrics per storage type and operation, the Prometheus rendering, and
//! observers that are called after each event and can never break one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use strata::{
    DeleteOptions, MetricsRegistry, ObserverError, RetrieveOptions, StorageItem, StorageKey,
    StorageMetadata, StorageObserver, StorageOptions, StorageSystem, StorageTransaction,
    StorageType,
};

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

#[derive(Default)]
struct Recorder {
    events: Mutex<Vec<String>>,
    /// Read back during a store callback: the store must be visible.
    seen_in_store: AtomicUsize,
    storage: Mutex<Option<StorageSystem>>,
}

impl StorageObserver for Recorder {
    fn on_store(
        &self,
        k: &StorageKey,
        m: &StorageMetadata,
        t: StorageType,
    ) -> Result<(), ObserverError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("store {t} {k} {}", m.size));
        if let Some(s) = self.storage.lock().unwrap().as_ref() {
            let p = s.get_provider(t).unwrap();
            if p.exists(k).unwrap_or(false) {
                self.seen_in_store.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    }
    fn on_retrieve(
        &self,
        k: &StorageKey,
        i: &StorageItem,
        t: StorageType,
    ) -> Result<(), ObserverError> {
        self.events
            .lock()
            .unwrap()
            .push(format!("retrieve {t} {k} {}", i.value.len()));
        Ok(())
    }
    fn on_delete(&self, k: &StorageKey, t: StorageType) -> Result<(), ObserverError> {
        self.events.lock().unwrap().push(format!("delete {t} {k}"));
        Ok(())
    }
    fn on_transaction_begin(&self, _: &StorageTransaction) -> Result<(), ObserverError> {
        self.events.lock().unwrap().push("begin".into());
        Ok(())
    }
    fn on_transaction_commit(&self, tx: &StorageTransaction) -> Result<(), ObserverError> {
        assert!(tx.commit_time.is_some());
        self.events.lock().unwrap().push("commit".into());
        Ok(())
    }
    fn on_transaction_rollback(&self, _: &StorageTransaction) -> Result<(), ObserverError> {
        self.events.lock().unwrap().push("rollback".into());
        Ok(())
    }
}

/// Fails every call, or panics.
struct Broken {
    panic: bool,
}

impl StorageObserver for Broken {
    fn on_store(
        &self,
        _: &StorageKey,
        _: &StorageMetadata,
        _: StorageType,
    ) -> Result<(), ObserverError> {
        if self.panic {
            panic!("observer bug");
        }
        Err(ObserverError("cannot".into()))
    }
    fn on_transaction_commit(&self, _: &StorageTransaction) -> Result<(), ObserverError> {
        if self.panic {
            panic!("observer bug");
        }
        Err(ObserverError("cannot".into()))
    }
}

#[test]
fn observers_hear_every_event_after_it_happened_and_cannot_break_it() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Arc::new(Recorder::default());
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_observer(Arc::new(Broken { panic: true }))
        .with_observer(rec.clone())
        .with_observer(Arc::new(Broken { panic: false }))
        .build()
        .unwrap();
    *rec.storage.lock().unwrap() = Some(storage.clone());
    let p = storage.get_provider(StorageType::Fact).unwrap();
    p.store(&key("a"), b"123", &StorageOptions::new()).unwrap();
    p.retrieve(&key("a"), &RetrieveOptions::new()).unwrap();
    p.delete(&key("a"), &DeleteOptions::new()).unwrap();
    let tx = storage.begin_transaction().unwrap();
    p.store(
        &key("b"),
        b"x",
        &StorageOptions::new().with_transaction(&tx),
    )
    .unwrap();
    storage.commit_transaction(tx.id).unwrap();
    let tx = storage.begin_transaction().unwrap();
    storage.rollback_transaction(tx.id).unwrap();
    *rec.storage.lock().unwrap() = None;

    let events = rec.events.lock().unwrap().clone();
    assert_eq!(
        events,
        vec![
            "store fact a 3",
            "retrieve fact a 3",
            "delete fact a",
            "begin",
            "store fact b 1",
            "commit",
            "begin",
            "rollback"
        ]
    );
    // Called once the store applied, the transaction's at its commit: the
    // item was visible from the callback both times.
    assert_eq!(rec.seen_in_store.load(Ordering::Relaxed), 2);
    // Every failure and panic was counted; every operation succeeded.
    assert_eq!(storage.metrics().observer_errors(), 6);
    assert!(p.exists(&key("b")).unwrap());
    let text = storage.metrics().render_prometheus();
    assert!(
        text.contains("strata_observer_errors_total{hook=\"store\"} 4"),
        "{text}"
    );
}

#[test]
fn metrics_count_calls_outcomes_latencies_and_bytes_per_type_and_operation() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Arc::new(MetricsRegistry::new());
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_metrics_registry(registry.clone())
        .build()
        .unwrap();
    let p = storage.get_provider(StorageType::Resource).unwrap();
    for i in 0..50 {
        p.store(&key(&format!("k{i}")), &[0u8; 100], &StorageOptions::new())
            .unwrap();
    }
    for i in 0..60 {
        let _ = p.retrieve(&key(&format!("k{i}")), &RetrieveOptions::new());
    }
    let m = storage.metrics();
    let store = m.operation_stats(StorageType::Resource, "store");
    assert_eq!(
        (store.count, store.successes, store.errors, store.bytes),
        (50, 50, 0, 5000)
    );
    assert!(store.p50 > std::time::Duration::ZERO && store.p99 >= store.p50);
    // A missing key is an answer, not an error: counted apart.
    let get = m.operation_stats(StorageType::Resource, "retrieve");
    assert_eq!((get.count, get.successes, get.errors), (60, 60, 0));
    assert_eq!(m.operation_stats(StorageType::Fact, "store").count, 0);

    let text = m.render_prometheus();
    for needle in [
        "# TYPE strata_storage_operations_total counter",
        "strata_storage_operations_total{type=\"resource\",op=\"store\"} 50",
        "strata_storage_not_found_total{type=\"resource\",op=\"retrieve\"} 10",
        "strata_storage_operation_seconds_bucket{type=\"resource\",op=\"store\",le=\"+Inf\"} 50",
        "strata_storage_operation_seconds_count{type=\"resource\",op=\"retrieve\"} 60",
        "strata_engine_writes_total ",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
    // The shared registry holds the same figures.
    assert!(registry
        .render_prometheus()
        .contains("strata_storage_bytes_total"));
    // Every sample line parses as name{labels} value.
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
    }
}

/// Hears every operation with its transaction and outcome, and every
/// applied store and delete.
/// What `Everything` keeps of one operation: its name, key, transaction
/// and outcome.
type Seen = (
    String,
    String,
    Option<strata::TransactionId>,
    strata::Outcome,
);

#[derive(Default)]
struct Everything {
    ops: Mutex<Vec<Seen>>,
    applied: Mutex<Vec<String>>,
}

impl StorageObserver for Everything {
    fn on_operation(&self, e: &strata::StorageEvent<'_>) -> Result<(), ObserverError> {
        self.ops.lock().unwrap().push((
            e.operation.to_owned(),
            e.key.map(|k| k.to_string()).unwrap_or_default(),
            e.transaction,
            e.outcome.clone(),
        ));
        Ok(())
    }
    fn on_store(
        &self,
        k: &StorageKey,
        m: &StorageMetadata,
        t: StorageType,
    ) -> Result<(), ObserverError> {
        assert!(
            m.version.is_some(),
            "an applied store has its commit timestamp"
        );
        self.applied.lock().unwrap().push(format!("store {t} {k}"));
        Ok(())
    }
    fn on_retrieve(
        &self,
        k: &StorageKey,
        _: &StorageItem,
        t: StorageType,
    ) -> Result<(), ObserverError> {
        self.applied
            .lock()
            .unwrap()
            .push(format!("retrieve {t} {k}"));
        Ok(())
    }
    fn on_delete(&self, k: &StorageKey, t: StorageType) -> Result<(), ObserverError> {
        self.applied.lock().unwrap().push(format!("delete {t} {k}"));
        Ok(())
    }
}

/// Documents and blob streams are observed and measured like every other
/// operation; a write in a transaction is reported as stored only when
/// the transaction commits, and observers can tell it was transactional.
#[test]
fn every_operation_is_observed_and_measured_with_its_transaction() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let seen = Arc::new(Everything::default());
    let storage = StorageSystem::builder()
        .path(dir.path())
        .with_observer(seen.clone())
        .build()
        .unwrap();
    let docs = storage.get_document_storage(StorageType::Resource).unwrap();
    docs.store_document("c", "1", &serde_json::json!({"n": 1}), &Default::default())
        .unwrap();
    let _: serde_json::Value = docs
        .retrieve_document("c", "1", &RetrieveOptions::new())
        .unwrap();
    docs.delete_document("c", "1", &DeleteOptions::new())
        .unwrap();
    let blobs = storage.get_blob_storage().unwrap();
    blobs
        .put_stream(&key("b"), &b"blob"[..], &StorageOptions::new())
        .unwrap();
    let mut back = Vec::new();
    blobs
        .open(&key("b"))
        .unwrap()
        .read_to_end(&mut back)
        .unwrap();

    // A transaction that rolls back: its write is never "stored".
    let p = storage.get_provider(StorageType::Fact).unwrap();
    let tx = storage.begin().unwrap();
    let id = tx.id();
    p.store(
        &key("rolled"),
        b"x",
        &StorageOptions::new().with_transaction(&tx),
    )
    .unwrap();
    tx.rollback().unwrap();
    // One that commits: stored at the commit.
    let tx = storage.begin().unwrap();
    let committed = tx.id();
    p.store(
        &key("kept"),
        b"y",
        &StorageOptions::new().with_transaction(&tx),
    )
    .unwrap();
    assert!(!seen
        .applied
        .lock()
        .unwrap()
        .iter()
        .any(|e| e.contains("kept")));
    tx.commit().unwrap();
    // A missing key is an outcome.
    assert!(p
        .get(&key("absent"), &RetrieveOptions::new())
        .unwrap()
        .is_none());

    let applied = seen.applied.lock().unwrap().clone();
    assert_eq!(
        applied,
        vec![
            "store resource c/1",
            "retrieve resource c/1",
            "delete resource c/1",
            "store blob b",
            "store fact kept",
        ]
    );
    let ops = seen.ops.lock().unwrap().clone();
    let names: Vec<&str> = ops.iter().map(|(o, ..)| o.as_str()).collect();
    for op in [
        "store_document",
        "retrieve_document",
        "delete_document",
        "put_stream",
        "open",
    ] {
        assert!(names.contains(&op), "{op} not observed: {names:?}");
    }
    let rolled = ops.iter().find(|(_, k, ..)| k == "rolled").unwrap();
    assert_eq!(rolled.2, Some(id));
    let kept = ops.iter().find(|(_, k, ..)| k == "kept").unwrap();
    assert_eq!(kept.2, Some(committed));
    let absent = ops.iter().find(|(_, k, ..)| k == "absent").unwrap();
    assert_eq!(absent.3, strata::Outcome::NotFound);
    let m = storage.metrics();
    for (t, op) in [
        (StorageType::Resource, "store_document"),
        (StorageType::Resource, "retrieve_document"),
        (StorageType::Blob, "put_stream"),
        (StorageType::Blob, "open"),
    ] {
        assert_eq!(m.operation_stats(t, op).count, 1, "{t} {op}");
    }
    assert_eq!(m.operation_stats(StorageType::Fact, "retrieve").errors, 0);
}
