//! Metrics: counters and latency histograms per storage type and
//! operation, rendered with the engine's statistics in the Prometheus text
//! format.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

use crate::error::{Result, StorageError};

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

/// The prefix of the families [`engine_prometheus`] renders. The registry
/// refuses names under it, so a collector's rendering (the registry's
/// families, then the engine's) never holds one family twice.
const ENGINE_PREFIX: &str = "strata_engine_";

/// Endings a histogram's series take (`_bucket`, `_sum`, `_count`) or a
/// counter's name has (`_total`): refused at the end of a histogram's own
/// name, so its series cannot be mistaken for another family's.
const HISTOGRAM_SUFFIXES: [&str; 4] = ["_bucket", "_sum", "_count", "_total"];

/// The type of a metric family, as the `# TYPE` line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// What a registry holds: its metrics by (name, rendered labels), and the
/// HELP text of each name described.
#[derive(Debug, Default)]
struct Families {
    counters: BTreeMap<(String, String), Arc<AtomicU64>>,
    histograms: BTreeMap<(String, String), Arc<Histogram>>,
    help: BTreeMap<String, String>,
}

/// True when `map` holds a metric named `name` (with any labels).
fn holds<T>(map: &BTreeMap<(String, String), T>, name: &str) -> bool {
    map.range((name.to_owned(), String::new())..)
        .next()
        .is_some_and(|((n, _), _)| n == name)
}

impl Families {
    /// The name of a family of the other kind that `name`, registered as
    /// `kind`, would be rendered with: a histogram `x` and a counter `x`
    /// or `x_total` are one family to a parser.
    fn clash(&self, kind: Kind, name: &str) -> Option<String> {
        match kind {
            Kind::Counter => {
                let base = name.strip_suffix("_total").unwrap_or(name);
                [name, base]
                    .into_iter()
                    .find(|n| holds(&self.histograms, n))
                    .map(str::to_owned)
            }
            Kind::Gauge | Kind::Histogram => [name.to_owned(), format!("{name}_total")]
                .into_iter()
                .find(|n| holds(&self.counters, n)),
        }
    }

    /// The HELP text of `name`: the one described, or a generic one.
    fn help(&self, name: &str, kind: Kind) -> String {
        match self.help.get(name).filter(|h| !h.trim().is_empty()) {
            Some(h) => h.clone(),
            None => format!(
                "The {} {name} (registered without a description).",
                kind.name()
            ),
        }
    }
}

fn invalid(reason: String) -> StorageError {
    StorageError::InvalidArgument(reason)
}

/// Refuses a metric name the text format cannot carry, and the engine's.
fn check_metric_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid {
        return Err(invalid(format!(
            "metric name {name:?} is not valid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"
        )));
    }
    if name.starts_with(ENGINE_PREFIX) {
        return Err(invalid(format!(
            "metric name {name:?} is reserved: names starting with {ENGINE_PREFIX} are \
             the engine's statistics"
        )));
    }
    Ok(())
}

/// Refuses a name that is not valid for a metric of `kind`, and label
/// names that are not valid, repeated or reserved.
fn check(kind: Kind, name: &str, pairs: &[(&str, &str)]) -> Result<()> {
    check_metric_name(name)?;
    match kind {
        Kind::Counter if !name.ends_with("_total") => {
            return Err(invalid(format!(
                "counter name {name:?} is not valid: a counter's name ends with _total"
            )));
        }
        Kind::Histogram => {
            if let Some(s) = HISTOGRAM_SUFFIXES.iter().find(|s| name.ends_with(**s)) {
                return Err(invalid(format!(
                    "histogram name {name:?} is not valid: it may not end with {s}"
                )));
            }
        }
        Kind::Counter | Kind::Gauge => {}
    }
    for (i, (label, _)) in pairs.iter().enumerate() {
        let mut chars = label.chars();
        let valid = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !label.starts_with("__");
        if !valid {
            return Err(invalid(format!(
                "label name {label:?} of metric {name:?} is not valid: it must match \
                 [a-zA-Z_][a-zA-Z0-9_]* and not start with __"
            )));
        }
        if kind == Kind::Histogram && *label == "le" {
            return Err(invalid(format!(
                "label name \"le\" of histogram {name:?} is reserved for its buckets"
            )));
        }
        if pairs[..i].iter().any(|(l, _)| l == label) {
            return Err(invalid(format!(
                "label name {label:?} appears twice in metric {name:?}"
            )));
        }
    }
    Ok(())
}

/// `value` escaped for a label value: backslash, double quote, newline.
fn escape_label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Label pairs as the text format writes them between braces, values
/// escaped.
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (i, (k, v)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
    }
    out
}

/// Writes the `# HELP` and `# TYPE` lines of a family; the help text is
/// escaped (backslash, newline).
fn write_header(out: &mut String, name: &str, kind: Kind, help: &str) {
    let help = help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {}", kind.name());
}

/// Writes one sample line; `labels` as [`labels`] renders them.
fn write_sample(out: &mut String, name: &str, labels: &str, value: impl std::fmt::Display) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// `ns` nanoseconds in seconds, exactly, as a decimal.
fn seconds(ns: u64) -> String {
    let (whole, frac) = (ns / 1_000_000_000, ns % 1_000_000_000);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:09}");
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Named counters and histograms, each with labels, and the HELP text of
/// each name. Several storage systems (or the application) may share one
/// registry.
///
/// Registration refuses what would break a scrape or mislead a reader, so
/// that one bad name cannot take down the whole rendering:
///
/// - a metric name must match `[a-zA-Z_:][a-zA-Z0-9_:]*` and not start
///   with `strata_engine_` (the engine's statistics, which
///   [`StorageMetricsCollector::render_prometheus`] adds itself);
/// - a label name must match `[a-zA-Z_][a-zA-Z0-9_]*`, not start with
///   `__`, and appear once per metric;
/// - a counter's name ends with `_total`; a histogram's name does not end
///   with `_bucket`, `_sum`, `_count` or `_total`, and it has no `le`
///   label (its buckets' own);
/// - a name is a counter's or a histogram's, never both, and a histogram
///   `x` cannot sit beside a counter `x_total`.
///
/// [`try_counter`](Self::try_counter) and
/// [`try_histogram`](Self::try_histogram) say what is wrong;
/// [`counter`](Self::counter) and [`histogram`](Self::histogram) hand back
/// a detached metric instead, which counts but is never rendered. Label
/// values may be any string: they are escaped when rendered.
#[derive(Debug, Default)]
pub struct MetricsRegistry {
    families: RwLock<Families>,
}

impl MetricsRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// The counter `name` with `labels`, created at zero; an
    /// [`InvalidArgument`](StorageError::InvalidArgument) error naming what
    /// is wrong when the name or a label name is refused (see the
    /// [type's rules](Self)).
    pub fn try_counter(&self, name: &str, label_pairs: &[(&str, &str)]) -> Result<Arc<AtomicU64>> {
        check(Kind::Counter, name, label_pairs)?;
        let key = (name.to_owned(), labels(label_pairs));
        if let Some(c) = self.families.read().counters.get(&key) {
            return Ok(c.clone());
        }
        let mut f = self.families.write();
        if let Some(c) = f.counters.get(&key) {
            return Ok(c.clone());
        }
        if let Some(other) = f.clash(Kind::Counter, name) {
            return Err(invalid(format!(
                "counter name {name:?} clashes with the histogram {other:?}"
            )));
        }
        Ok(f.counters.entry(key).or_default().clone())
    }

    /// The histogram `name` with `labels`, created empty; an
    /// [`InvalidArgument`](StorageError::InvalidArgument) error naming what
    /// is wrong when the name or a label name is refused (see the
    /// [type's rules](Self)).
    pub fn try_histogram(
        &self,
        name: &str,
        label_pairs: &[(&str, &str)],
    ) -> Result<Arc<Histogram>> {
        check(Kind::Histogram, name, label_pairs)?;
        let key = (name.to_owned(), labels(label_pairs));
        if let Some(h) = self.families.read().histograms.get(&key) {
            return Ok(h.clone());
        }
        let mut f = self.families.write();
        if let Some(h) = f.histograms.get(&key) {
            return Ok(h.clone());
        }
        if let Some(other) = f.clash(Kind::Histogram, name) {
            return Err(invalid(format!(
                "histogram name {name:?} clashes with the counter {other:?}"
            )));
        }
        Ok(f.histograms.entry(key).or_default().clone())
    }

    /// The counter `name` with `labels`, created at zero. When
    /// [`try_counter`](Self::try_counter) would refuse them, a detached
    /// counter: it counts, but is not registered and never rendered.
    pub fn counter(&self, name: &str, label_pairs: &[(&str, &str)]) -> Arc<AtomicU64> {
        self.try_counter(name, label_pairs).unwrap_or_default()
    }

    /// The histogram `name` with `labels`, created empty. When
    /// [`try_histogram`](Self::try_histogram) would refuse them, a detached
    /// histogram: it records, but is not registered and never rendered.
    pub fn histogram(&self, name: &str, label_pairs: &[(&str, &str)]) -> Arc<Histogram> {
        self.try_histogram(name, label_pairs).unwrap_or_default()
    }

    /// Sets the HELP text rendered for the family `name` (registered
    /// before or after); an
    /// [`InvalidArgument`](StorageError::InvalidArgument) error when the
    /// name is refused. A family without one gets a generic HELP line.
    pub fn describe(&self, name: &str, help: &str) -> Result<()> {
        check_metric_name(name)?;
        self.families
            .write()
            .help
            .insert(name.to_owned(), help.to_owned());
        Ok(())
    }

    /// The value of the counter `name` with `labels`, without creating it.
    fn counter_value(&self, name: &str, label_pairs: &[(&str, &str)]) -> u64 {
        let key = (name.to_owned(), labels(label_pairs));
        self.families
            .read()
            .counters
            .get(&key)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }

    /// The histogram `name` with `labels`, if registered.
    fn find_histogram(&self, name: &str, label_pairs: &[(&str, &str)]) -> Option<Arc<Histogram>> {
        let key = (name.to_owned(), labels(label_pairs));
        self.families.read().histograms.get(&key).cloned()
    }

    /// The sum of every counter named `name`, over all its labels.
    fn counter_total(&self, name: &str) -> u64 {
        self.families
            .read()
            .counters
            .range((name.to_owned(), String::new())..)
            .take_while(|((n, _), _)| n == name)
            .map(|(_, c)| c.load(Ordering::Relaxed))
            .sum()
    }

    /// Everything registered, in the Prometheus text format: each family
    /// once, with its HELP and TYPE lines.
    pub fn render_prometheus(&self) -> String {
        let f = self.families.read();
        let mut out = String::new();
        let mut last: Option<&str> = None;
        for ((name, l), c) in &f.counters {
            if last != Some(name) {
                write_header(&mut out, name, Kind::Counter, &f.help(name, Kind::Counter));
                last = Some(name);
            }
            write_sample(&mut out, name, l, c.load(Ordering::Relaxed));
        }
        for ((name, l), h) in &f.histograms {
            if last != Some(name) {
                write_header(
                    &mut out,
                    name,
                    Kind::Histogram,
                    &f.help(name, Kind::Histogram),
                );
                last = Some(name);
            }
            let sep = if l.is_empty() { "" } else { "," };
            // The count is the buckets' total as read here, so that the
            // +Inf bucket and the count agree while calls are recorded.
            let mut cum = 0;
            for (i, b) in h.buckets.iter().enumerate() {
                cum += b.load(Ordering::Relaxed);
                let le = BOUNDS_NS
                    .get(i)
                    .map_or("+Inf".to_owned(), |ns| seconds(*ns));
                let _ = writeln!(out, "{name}_bucket{{{l}{sep}le=\"{le}\"}} {cum}");
            }
            let sum = h.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
            write_sample(&mut out, &format!("{name}_sum"), l, sum);
            write_sample(&mut out, &format!("{name}_count"), l, cum);
        }
        out
    }
}

mod collector;
mod engine;

pub use collector::{OperationStats, StorageMetricsCollector};
pub use engine::engine_prometheus;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_a_parser_would_reject_are_refused_and_never_rendered() {
        let r = MetricsRegistry::new();
        r.counter("app_calls_total", &[("path", "a\"b\\c\nd")])
            .fetch_add(2, Ordering::Relaxed);
        let refused: [(&str, &[(&str, &str)]); 9] = [
            ("storage.resource.store.count_total", &[]),
            ("", &[]),
            ("9lives_total", &[]),
            ("app_bad_total", &[("bad label", "x")]),
            ("app_bad_total", &[("__reserved", "x")]),
            ("app_bad_total", &[("1st", "x")]),
            ("app_bad_total", &[("a", "x"), ("a", "y")]),
            ("app_calls", &[]),
            ("strata_engine_writes_total", &[]),
        ];
        for (name, l) in refused {
            let e = r.try_counter(name, l).unwrap_err();
            assert!(matches!(e, StorageError::InvalidArgument(_)), "{e}");
            // The infallible call hands back a working, detached counter.
            r.counter(name, l).fetch_add(1, Ordering::Relaxed);
        }
        for (name, l) in [
            ("app_op_seconds_bucket", &[][..]),
            ("app_op_total", &[]),
            ("app_op_seconds", &[("le", "1")]),
            ("app op", &[]),
        ] {
            let e = r.try_histogram(name, l).unwrap_err();
            assert!(e.to_string().contains(name), "{e}");
            r.histogram(name, l).record(Duration::from_micros(1));
        }
        // A name is one kind or the other.
        r.histogram("app_calls", &[])
            .record(Duration::from_micros(1));
        assert!(r.try_histogram("app_calls_total", &[]).is_err());
        r.histogram("app_wait_seconds", &[])
            .record(Duration::from_micros(1));
        assert!(r.try_counter("app_wait_seconds_total", &[]).is_err());
        assert!(r.describe("bad name", "x").is_err());

        let text = r.render_prometheus();
        assert_eq!(
            text.lines().filter(|l| !l.starts_with('#')).count(),
            1 + BOUNDS_NS.len() + 3,
            "{text}"
        );
        assert!(text.contains("app_calls_total{path=\"a\\\"b\\\\c\\nd\"} 2\n"));
        assert!(!text.contains("app_calls{"), "{text}");
        assert!(text.contains("app_wait_seconds_count 1\n"), "{text}");
        for name in ["app_calls_total", "app_wait_seconds"] {
            assert_eq!(text.matches(&format!("# HELP {name} ")).count(), 1);
            assert_eq!(text.matches(&format!("# TYPE {name} ")).count(), 1);
        }
    }

    #[test]
    fn help_is_always_rendered_and_escaped() {
        let r = MetricsRegistry::new();
        r.counter("a_total", &[]);
        r.describe("b_total", "Line one\nback\\slash").unwrap();
        r.counter("b_total", &[]);
        let text = r.render_prometheus();
        assert!(text
            .contains("# HELP a_total The counter a_total (registered without a description).\n"));
        assert!(
            text.contains("# HELP b_total Line one\\nback\\\\slash\n"),
            "{text}"
        );
        for (name, help) in collector::DESCRIPTIONS {
            r.describe(name, help).unwrap();
        }
    }

    #[test]
    fn bounds_render_as_exact_seconds() {
        assert_eq!(seconds(100), "0.0000001");
        assert_eq!(seconds(2_500_000), "0.0025");
        assert_eq!(seconds(1_000_000_000), "1");
        assert_eq!(seconds(10_000_000_000), "10");
        let r = MetricsRegistry::new();
        r.histogram("x_seconds", &[])
            .record(Duration::from_nanos(300));
        let text = r.render_prometheus();
        assert!(
            text.contains("x_seconds_bucket{le=\"0.0000002\"} 0\n"),
            "{text}"
        );
        assert!(
            text.contains("x_seconds_bucket{le=\"0.0000005\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("x_seconds_sum 0.0000003\n"), "{text}");
    }

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
