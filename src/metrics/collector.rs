//! The storage system's own figures: calls, outcomes, latencies and bytes
//! per storage type and operation, rendered with the engine's statistics.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use strata_engine::Db;

use super::{engine_prometheus, MetricsRegistry};
use crate::types::StorageType;

/// The figures of one operation on one storage type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OperationStats {
    /// Calls.
    pub count: u64,
    /// Calls that succeeded.
    pub successes: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Median latency (bucket upper bound).
    pub p50: Duration,
    /// 99th percentile latency (bucket upper bound).
    pub p99: Duration,
    /// Bytes stored or retrieved.
    pub bytes: u64,
}

/// The HELP text of the families a [`StorageMetricsCollector`] records.
pub(super) const DESCRIPTIONS: [(&str, &str); 8] = [
    (
        "strata_storage_operations_total",
        "Calls of each operation, per storage type.",
    ),
    (
        "strata_storage_successes_total",
        "Calls that succeeded, per storage type and operation.",
    ),
    (
        "strata_storage_errors_total",
        "Calls that failed, per storage type and operation.",
    ),
    (
        "strata_storage_bytes_total",
        "Bytes stored or retrieved, per storage type and operation.",
    ),
    (
        "strata_storage_operation_seconds",
        "Time each call took, per storage type and operation.",
    ),
    (
        "strata_observer_errors_total",
        "Observer calls that failed or panicked, per hook.",
    ),
    (
        "strata_storage_not_found_total",
        "Calls that found no item under their key (an answer, not an error).",
    ),
    (
        "strata_blob_cleanup_failures_total",
        "Removals of unreferenced blob chunks that failed and were left for the next cleanup.",
    ),
];

/// Records what the storage system does, per storage type and operation.
#[derive(Debug)]
pub struct StorageMetricsCollector {
    registry: Arc<MetricsRegistry>,
    db: Db,
    /// The storage policies, whose quota gauges join the rendering.
    policies: std::sync::OnceLock<Arc<crate::policy::StoragePolicyManager>>,
}

impl StorageMetricsCollector {
    pub(crate) fn new(registry: Arc<MetricsRegistry>, db: Db) -> Self {
        for (name, help) in DESCRIPTIONS {
            // Constant names, valid by construction (a unit test checks).
            let _ = registry.describe(name, help);
        }
        StorageMetricsCollector {
            registry,
            db,
            policies: std::sync::OnceLock::new(),
        }
    }

    /// The registry the figures go to.
    pub fn registry(&self) -> &Arc<MetricsRegistry> {
        &self.registry
    }

    /// Records one call: its outcome, its duration and the bytes it moved.
    pub fn record_operation(
        &self,
        operation: &str,
        storage_type: StorageType,
        ok: bool,
        duration: Duration,
        bytes: u64,
    ) {
        let l = [("type", storage_type.name()), ("op", operation)];
        let r = &self.registry;
        r.counter("strata_storage_operations_total", &l)
            .fetch_add(1, Ordering::Relaxed);
        let outcome = if ok {
            "strata_storage_successes_total"
        } else {
            "strata_storage_errors_total"
        };
        r.counter(outcome, &l).fetch_add(1, Ordering::Relaxed);
        r.histogram("strata_storage_operation_seconds", &l)
            .record(duration);
        if bytes > 0 {
            r.counter("strata_storage_bytes_total", &l)
                .fetch_add(bytes, Ordering::Relaxed);
        }
    }

    /// Records an observer that failed or panicked.
    pub fn record_observer_error(&self, hook: &str) {
        self.registry
            .counter("strata_observer_errors_total", &[("hook", hook)])
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Observer failures so far, over every hook.
    pub fn observer_errors(&self) -> u64 {
        self.registry.counter_total("strata_observer_errors_total")
    }

    /// The figures of `operation` on `storage_type`.
    pub fn operation_stats(&self, storage_type: StorageType, operation: &str) -> OperationStats {
        let l = [("type", storage_type.name()), ("op", operation)];
        let r = &self.registry;
        let get = |n: &str| r.counter_value(n, &l);
        let h = r.find_histogram("strata_storage_operation_seconds", &l);
        let q = |q: f64| h.as_ref().map_or(Duration::ZERO, |h| h.quantile(q));
        OperationStats {
            count: get("strata_storage_operations_total"),
            successes: get("strata_storage_successes_total"),
            errors: get("strata_storage_errors_total"),
            p50: q(0.5),
            p99: q(0.99),
            bytes: get("strata_storage_bytes_total"),
        }
    }

    /// The storage metrics and the engine's statistics, in the Prometheus
    /// text format.
    pub fn render_prometheus(&self) -> String {
        let mut out = self.registry.render_prometheus();
        if let Some(p) = self.policies.get() {
            out.push_str(&p.render_prometheus());
        }
        out.push_str(&engine_prometheus(&self.db.stats()));
        out
    }

    /// Renders the quota usage of `policies` with the rest.
    pub(crate) fn set_policies(&self, policies: Arc<crate::policy::StoragePolicyManager>) {
        let _ = self.policies.set(policies);
    }
}
