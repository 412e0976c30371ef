//! Metrics: counters and latency histograms per storage type and
//! operation, rendered with the engine's statistics in the Prometheus text
//! format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use strata_engine::Db;

use crate::types::StorageType;

/// Upper bounds of the latency buckets, in nanoseconds, from 100 ns to 10 s
/// (the last bucket is everything above).
const BOUNDS_NS: [u64; 25] = [
    100,
    200,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    20_000,
    50_000,
    100_000,
    200_000,
    500_000,
    1_000_000,
    2_000_000,
    5_000_000,
    10_000_000,
    20_000_000,
    50_000_000,
    100_000_000,
    200_000_000,
    500_000_000,
    1_000_000_000,
    2_000_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A latency histogram with fixed, roughly logarithmic buckets. Durations
/// are kept to the nanosecond: each lands in the bucket of its exact
/// length, and the sum is of exact lengths.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; BOUNDS_NS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Records one duration.
    pub fn record(&self, d: Duration) {
        let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS_NS.partition_point(|&b| b < ns);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Durations recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The durations recorded, added up (exact to the nanosecond).
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum_ns.load(Ordering::Relaxed))
    }

    /// The `q` quantile (0..=1), as the upper bound of its bucket; zero
    /// when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        let n = self.count();
        if n == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, b) in self.buckets.iter().enumerate() {
            seen += b.load(Ordering::Relaxed);
            if seen >= rank {
                return match BOUNDS_NS.get(i) {
                    Some(&ns) => Duration::from_nanos(ns),
                    // Above the last bound: unbounded.
                    None => Duration::from_micros(u64::MAX / 2),
                };
            }
        }
        Duration::from_nanos(BOUNDS_NS[BOUNDS_NS.len() - 1])
    }
}

/// Named counters and histograms, each with labels. Several storage
/// systems (or the application) may share one registry.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    counters: RwLock<BTreeMap<(String, String), Arc<AtomicU64>>>,
    histograms: RwLock<BTreeMap<(String, String), Arc<Histogram>>>,
}

fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let v = v
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('\n', "\\n");
        let _ = write!(out, "{k}=\"{v}\"");
    }
    out
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name` with `labels`, created at zero.
    pub fn counter(&self, name: &str, label_pairs: &[(&str, &str)]) -> Arc<AtomicU64> {
        let key = (name.to_owned(), labels(label_pairs));
        if let Some(c) = self.counters.read().get(&key) {
            return c.clone();
        }
        self.counters.write().entry(key).or_default().clone()
    }

    /// The histogram `name` with `labels`, created empty.
    pub fn histogram(&self, name: &str, label_pairs: &[(&str, &str)]) -> Arc<Histogram> {
        let key = (name.to_owned(), labels(label_pairs));
        if let Some(h) = self.histograms.read().get(&key) {
            return h.clone();
        }
        self.histograms.write().entry(key).or_default().clone()
    }

    /// Everything registered, in the Prometheus text format.
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        let mut last = String::new();
        for ((name, l), c) in self.counters.read().iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} counter");
                last = name.clone();
            }
            let _ = writeln!(out, "{name}{{{l}}} {}", c.load(Ordering::Relaxed));
        }
        for ((name, l), h) in self.histograms.read().iter() {
            if *name != last {
                let _ = writeln!(out, "# TYPE {name} histogram");
                last = name.clone();
            }
            let sep = if l.is_empty() { "" } else { "," };
            let mut cum = 0;
            for (i, b) in h.buckets.iter().enumerate() {
                cum += b.load(Ordering::Relaxed);
                let le = BOUNDS_NS
                    .get(i)
                    .map_or("+Inf".to_owned(), |ns| format!("{}", *ns as f64 / 1e9));
                let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{le}\"}} {cum}");
            }
            let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            let _ = writeln!(out, "{name}_sum{{{l}}} {sum}");
            let _ = writeln!(out, "{name}_count{{{l}}} {}", h.count());
        }
        out
    }
}

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

/// Records what the storage system does, per storage type and operation.
#[derive(Debug)]
pub struct StorageMetricsCollector {
    registry: Arc<MetricsRegistry>,
    db: Db,
}

impl StorageMetricsCollector {
    pub(crate) fn new(registry: Arc<MetricsRegistry>, db: Db) -> Self {
        StorageMetricsCollector { registry, db }
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
        self.registry
            .counters
            .read()
            .iter()
            .filter(|((n, _), _)| n == "strata_observer_errors_total")
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// The figures of `operation` on `storage_type`.
    pub fn operation_stats(&self, storage_type: StorageType, operation: &str) -> OperationStats {
        let l = [("type", storage_type.name()), ("op", operation)];
        let r = &self.registry;
        let get = |n: &str| r.counter(n, &l).load(Ordering::Relaxed);
        let h = r.histogram("strata_storage_operation_seconds", &l);
        OperationStats {
            count: get("strata_storage_operations_total"),
            successes: get("strata_storage_successes_total"),
            errors: get("strata_storage_errors_total"),
            p50: h.quantile(0.5),
            p99: h.quantile(0.99),
            bytes: get("strata_storage_bytes_total"),
        }
    }

    /// The storage metrics and the engine's statistics, in the Prometheus
    /// text format.
    pub fn render_prometheus(&self) -> String {
        let mut out = self.registry.render_prometheus();
        out.push_str(&engine_prometheus(&self.db.stats()));
        out
    }
}

/// The engine's statistics in the Prometheus text format.
pub fn engine_prometheus(s: &strata_engine::Stats) -> String {
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, v: u64| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
    };
    gauge(
        "strata_engine_wal_bytes_written",
        "Bytes appended to the WAL.",
        s.wal_bytes_written,
    );
    gauge(
        "strata_engine_wal_bytes_live",
        "Bytes of WAL files not yet deleted.",
        s.wal_bytes_live,
    );
    gauge("strata_engine_wal_syncs", "WAL syncs.", s.wal_syncs);
    gauge("strata_engine_writes", "Write batches committed.", s.writes);
    gauge(
        "strata_engine_write_groups",
        "Commit groups.",
        s.write_groups,
    );
    gauge(
        "strata_engine_write_stalls",
        "Writes that waited for background work.",
        s.write_stalls,
    );
    gauge(
        "strata_engine_block_cache_hits",
        "Block cache hits.",
        s.block_cache_hits,
    );
    gauge(
        "strata_engine_block_cache_misses",
        "Block cache misses.",
        s.block_cache_misses,
    );
    gauge(
        "strata_engine_block_cache_bytes",
        "Bytes held by the block cache.",
        s.block_cache_bytes,
    );
    gauge(
        "strata_engine_background_errors",
        "Times the engine entered its error state.",
        s.background_errors,
    );
    for (name, help, bytes) in [
        (
            "strata_engine_sst_bytes",
            "Bytes of SSTs per keyspace and level.",
            true,
        ),
        (
            "strata_engine_sst_files",
            "SSTs per keyspace and level.",
            false,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for k in &s.keyspaces {
            for (level, l) in k.levels.iter().enumerate().filter(|(_, l)| l.files > 0) {
                let v = if bytes { l.bytes } else { l.files as u64 };
                let _ = writeln!(
                    out,
                    "{name}{{keyspace=\"{}\",level=\"{level}\"}} {v}",
                    k.name
                );
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_keep_their_nanoseconds() {
        let h = Histogram::default();
        h.record(Duration::from_nanos(300));
        h.record(Duration::from_nanos(1_500));
        assert_eq!(h.sum(), Duration::from_nanos(1_800));
        // Each in the bucket of its exact length, not truncated to whole
        // microseconds.
        assert_eq!(h.quantile(0.5), Duration::from_nanos(500));
        assert_eq!(h.quantile(1.0), Duration::from_micros(2));
    }

    #[test]
    fn quantiles_come_from_buckets() {
        let h = Histogram::default();
        for _ in 0..98 {
            h.record(Duration::from_micros(3));
        }
        h.record(Duration::from_millis(3));
        h.record(Duration::from_millis(3));
        assert_eq!(h.quantile(0.5), Duration::from_micros(5));
        assert_eq!(h.quantile(0.99), Duration::from_millis(5));
        assert_eq!(h.count(), 100);
    }
}
