//! `strata docbench`: the same documents loaded into Strata and, built
//! with `--features sqlite` (or `peers`), into SQLite (JSON text with expression indexes
//! on `json_extract`, WAL, synced commits), then the same indexed queries
//! on both: equality, range + sort + limit, compound equality + range,
//! array membership, an OR of two indexed fields, and a count. Each query
//! is asked of every engine with the same parameters and must give the
//! same number of results.

#[cfg(feature = "sqlite")]
mod sqlite_side;
mod strata_side;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{json, Value};

use super::Failure;

/// Arguments of `strata docbench`.
#[derive(Debug, Args)]
pub(crate) struct DocBenchArgs {
    /// Documents loaded.
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Documents per load transaction (one synced commit each).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// Queries of each kind.
    #[arg(long, default_value_t = 2000)]
    queries: u64,
    /// Queries to run (default all): equality, range+sort+limit,
    /// compound, membership, or, count.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<String>,
    /// Engines: strata, sqlite (needs the `sqlite` feature), or all.
    #[arg(long, value_delimiter = ',', default_value = "strata")]
    engine: Vec<String>,
    /// Cache budget of each engine, in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mb: usize,
    /// Run in DIR (kept) instead of a fresh temporary directory.
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// With `--db`, query the documents an earlier run left there instead
    /// of loading them again (the same `--num`).
    #[arg(long, requires = "db")]
    reuse: bool,
}

/// Distinct users: an equality on one matches `num / USERS` documents.
const USERS: u64 = 10_000;
/// Distinct cities (the second branch of the OR).
const CITIES: u64 = 7_919;
/// Kinds: a count of one covers a tenth of the documents.
const KINDS: u64 = 10;
/// Tags: each document has three of them.
const TAGS: u64 = 50;
/// Scores: the range starts at a random one.
const SCORES: u64 = 100_000;

/// Document `i`.
pub(crate) fn document(i: u64) -> Value {
    json!({
        "id": format!("d{i:08}"),
        "user": format!("u{}", i % USERS),
        "city": format!("c{}", (i * 31) % CITIES),
        "kind": format!("k{}", i % KINDS),
        "ts": i,
        "score": (i * 7919) % SCORES,
        "tags": [format!("t{}", i % TAGS), format!("t{}", (i / 3) % TAGS), format!("t{}", (i / 7) % TAGS)],
        "body": format!("{:0>96}", i * 2654435761 % 1_000_000_007),
    })
}

/// The queries every engine answers, by the number of results.
pub(crate) trait DocEngine {
    /// The engine's name.
    fn name(&self) -> &'static str;
    /// Stores `docs` in one synced transaction.
    fn load(&mut self, docs: &[Value]) -> Result<(), Failure>;
    /// `user = u`.
    fn equality(&self, user: &str) -> Result<usize, Failure>;
    /// `score >= s`, by score ascending, the first 100.
    fn range_sort_limit(&self, score: u64) -> Result<usize, Failure>;
    /// `kind = k and lo <= ts < hi`.
    fn compound(&self, kind: &str, lo: u64, hi: u64) -> Result<usize, Failure>;
    /// `tags` holds `tag`, the first 100 by id.
    fn membership(&self, tag: &str) -> Result<usize, Failure>;
    /// `user = u or city = c`.
    fn or(&self, user: &str, city: &str) -> Result<usize, Failure>;
    /// How many have `kind = k`.
    fn count(&self, kind: &str) -> Result<u64, Failure>;
    /// Bytes on disk.
    fn disk_bytes(&self) -> u64;
    /// Block cache hits and misses so far, where the engine counts them.
    fn cache_counts(&self) -> Option<(u64, u64)> {
        None
    }
}

/// A small deterministic generator for query parameters.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// One query kind's parameters for round `i` of a run.
enum Params {
    Equality(String),
    Range(u64),
    Compound(String, u64, u64),
    Membership(String),
    Or(String, String),
    Count(String),
}

const QUERIES: [&str; 6] = [
    "equality",
    "range+sort+limit",
    "compound",
    "membership",
    "or",
    "count",
];

fn params(kind: &str, rng: &mut Rng, num: u64) -> Params {
    match kind {
        "equality" => Params::Equality(format!("u{}", rng.below(USERS))),
        "range+sort+limit" => Params::Range(rng.below(SCORES)),
        "compound" => {
            let lo = rng.below(num);
            Params::Compound(format!("k{}", rng.below(KINDS)), lo, lo + 1000)
        }
        "membership" => Params::Membership(format!("t{}", rng.below(TAGS))),
        "or" => Params::Or(
            format!("u{}", rng.below(USERS)),
            format!("c{}", rng.below(CITIES)),
        ),
        _ => Params::Count(format!("k{}", rng.below(KINDS))),
    }
}

fn ask(e: &dyn DocEngine, p: &Params) -> Result<u64, Failure> {
    Ok(match p {
        Params::Equality(u) => e.equality(u)? as u64,
        Params::Range(s) => e.range_sort_limit(*s)? as u64,
        Params::Compound(k, lo, hi) => e.compound(k, *lo, *hi)? as u64,
        Params::Membership(t) => e.membership(t)? as u64,
        Params::Or(u, c) => e.or(u, c)? as u64,
        Params::Count(k) => e.count(k)?,
    })
}

/// Runs the benchmark.
pub(crate) fn run(a: &DocBenchArgs) -> Result<ExitCode, Failure> {
    let tmp;
    let root = match &a.db {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| Failure(format!("{}: {e}", d.display())))?;
            d.clone()
        }
        None => {
            tmp = tempfile::tempdir().map_err(|e| Failure(e.to_string()))?;
            tmp.path().to_path_buf()
        }
    };
    let names: Vec<String> = if a.engine.iter().any(|e| e == "all") {
        vec!["strata".into(), "sqlite".into()]
    } else {
        a.engine.clone()
    };
    let mut engines: Vec<Box<dyn DocEngine>> = Vec::new();
    for n in &names {
        let dir = root.join(n);
        engines.push(match n.as_str() {
            "strata" => Box::new(strata_side::StrataDocs::open(&dir, a.cache_mb, a.reuse)?),
            #[cfg(feature = "sqlite")]
            "sqlite" => Box::new(sqlite_side::SqliteDocs::open(&dir, a.cache_mb, a.reuse)?),
            other => {
                return Err(Failure(format!(
                    "no engine {other:?} (strata; sqlite needs --features sqlite)"
                )))
            }
        });
    }
    println!(
        "{} documents, {} per load transaction, {} queries of each kind",
        a.num, a.batch, a.queries
    );
    println!(
        "{:<18} {:<8} {:>12} {:>10}",
        "workload", "engine", "ops/s", "results"
    );
    for e in engines.iter_mut().filter(|_| !a.reuse) {
        let started = Instant::now();
        let mut i = 0;
        while i < a.num {
            let docs: Vec<Value> = (i..(i + a.batch as u64).min(a.num)).map(document).collect();
            e.load(&docs)?;
            i += docs.len() as u64;
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:<18} {:<8} {:>12.0} {:>10}   ({:.1} s, {} MiB on disk)",
            "load",
            e.name(),
            a.num as f64 / secs,
            a.num,
            secs,
            e.disk_bytes() >> 20
        );
    }
    for kind in QUERIES {
        if !a.workloads.is_empty() && !a.workloads.iter().any(|w| w == kind) {
            continue;
        }
        let mut answers: Vec<Vec<u64>> = Vec::new();
        for e in &engines {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
            let mut got = Vec::new();
            let cache_before = e.cache_counts();
            let started = Instant::now();
            for _ in 0..a.queries {
                let p = params(kind, &mut rng, a.num);
                got.push(ask(e.as_ref(), &p)?);
            }
            let secs = started
                .elapsed()
                .max(Duration::from_micros(1))
                .as_secs_f64();
            // The share of block reads the cache answered, which tells a
            // query bound by memory from one bound by decoding blocks.
            let cache = match (cache_before, e.cache_counts()) {
                (Some((h0, m0)), Some((h1, m1))) if h1 + m1 > h0 + m0 => format!(
                    "   (block cache hits {:.1}%)",
                    100.0 * (h1 - h0) as f64 / ((h1 + m1) - (h0 + m0)) as f64
                ),
                _ => String::new(),
            };
            println!(
                "{:<18} {:<8} {:>12.0} {:>10}{cache}",
                kind,
                e.name(),
                a.queries as f64 / secs,
                got.iter().sum::<u64>()
            );
            answers.push(got);
        }
        if let Some(first) = answers.first() {
            if answers.iter().any(|g| g != first) {
                return Err(Failure(format!(
                    "the engines answered {kind} differently: {:?}",
                    answers
                        .iter()
                        .map(|g| g.iter().sum::<u64>())
                        .collect::<Vec<_>>()
                )));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
