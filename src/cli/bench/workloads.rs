//! The workloads: db_bench's (fills, reads, seeks, scans, synced fills,
//! reads while writing, transactions) and YCSB A to F, each timed per
//! operation into an HDR histogram.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use indicatif::ProgressBar;

use super::engines::BenchDb;

/// Every workload name `--workloads` accepts, in the default order.
pub(crate) const ALL: [&str; 19] = [
    "fillseq",
    "fillrandom",
    "overwrite",
    "compact",
    "readrandom",
    "readmissing",
    "readhot",
    "seekrandom",
    "readseq",
    "readreverse",
    "fillsync",
    "readwhilewriting",
    "txn",
    "ycsb-a",
    "ycsb-b",
    "ycsb-c",
    "ycsb-d",
    "ycsb-e",
    "ycsb-f",
];

/// True for workloads that start from an empty database.
pub(crate) fn starts_empty(w: &str) -> bool {
    matches!(w, "fillseq" | "fillrandom" | "fillsync")
}

/// The shape of keys and values.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shape {
    pub num: u64,
    pub key_size: usize,
    pub value_size: usize,
    /// Compressed size / raw size the values aim at.
    pub compressible: f64,
    pub threads: usize,
}

impl Shape {
    /// Key `i`: its decimal digits, zero-padded, so keys sort like their
    /// numbers (fillseq writes in key order).
    pub(crate) fn key(&self, i: u64, out: &mut Vec<u8>) {
        out.clear();
        let digits = i.to_string();
        let width = self.key_size.max(digits.len());
        out.resize(width - digits.len(), b'0');
        out.extend_from_slice(digits.as_bytes());
    }

    /// A value whose first part is random and the rest repetitive, so
    /// that it compresses to about `compressible` of its size.
    pub(crate) fn value(&self, rng: &mut Rng, out: &mut Vec<u8>) {
        out.clear();
        let random = ((self.value_size as f64) * self.compressible.clamp(0.0, 1.0)) as usize;
        for _ in 0..random {
            out.push(rng.next() as u8);
        }
        while out.len() < self.value_size {
            out.push(b'a' + (out.len() % 7) as u8);
        }
    }

    /// The `i`-th key of a random permutation of `0..n`.
    pub(crate) fn shuffled(&self, i: u64, n: u64) -> u64 {
        let n = n.max(1);
        let a = coprime_multiplier(n);
        ((i as u128 * a as u128 + 0x9E37_79B9) % n as u128) as u64
    }
}

/// A large multiplier coprime with `n`, for an affine permutation.
fn coprime_multiplier(n: u64) -> u64 {
    let mut a = 0x9E37_79B9_7F4A_7C15 % n.max(2);
    while gcd(a, n) != 1 {
        a += 1;
    }
    a.max(1)
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// xorshift64*: fast, per thread.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// YCSB's scrambled Zipfian generator (theta 0.99) over `0..n`.
pub(crate) struct Zipf {
    n: u64,
    theta: f64,
    alpha: f64,
    zetan: f64,
    eta: f64,
}

impl Zipf {
    pub(crate) fn new(n: u64) -> Self {
        let theta = 0.99;
        let n = n.max(2);
        let zeta = |k: u64| (1..=k).map(|i| 1.0 / (i as f64).powf(theta)).sum::<f64>();
        let zetan = zeta(n);
        let zeta2 = zeta(2);
        Zipf {
            n,
            theta,
            alpha: 1.0 / (1.0 - theta),
            zetan,
            eta: (1.0 - (2.0 / n as f64).powf(1.0 - theta)) / (1.0 - zeta2 / zetan),
        }
    }

    /// A popular-first rank in `0..n`.
    pub(crate) fn rank(&self, rng: &mut Rng) -> u64 {
        let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
        let uz = u * self.zetan;
        if uz < 1.0 {
            return 0;
        }
        if uz < 1.0 + 0.5f64.powf(self.theta) {
            return 1;
        }
        ((self.n as f64) * (self.eta * u - self.eta + 1.0).powf(self.alpha)) as u64 % self.n
    }

    /// A rank scrambled over the key space, so popular keys are spread.
    pub(crate) fn scrambled(&self, rng: &mut Rng) -> u64 {
        let r = self.rank(rng);
        xxhash_rust::xxh3::xxh3_64(&r.to_le_bytes()) % self.n
    }
}

/// What one workload measured.
pub(crate) struct Measured {
    pub ops: u64,
    pub elapsed: Duration,
    pub latency: Histogram<u64>,
    /// User bytes written (keys + values).
    pub bytes_written: u64,
    /// User bytes read or written, for MB/s.
    pub bytes_moved: u64,
    /// Keys inserted beyond the loaded ones.
    pub inserted: u64,
}

fn histogram() -> Histogram<u64> {
    // Nanoseconds, from 1 ns to 100 s, 3 significant digits.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("constant bounds are valid")
}

/// One thread's latencies, bytes moved and bytes written.
type ThreadTotals = (Histogram<u64>, u64, u64);

/// Runs `op` `ops` times over the configured threads, thread `t` taking
/// indices `t, t + threads, ...`; `op` returns the user bytes it moved and
/// wrote.
fn run_threads(
    shape: &Shape,
    ops: u64,
    threads: usize,
    bar: &ProgressBar,
    op: impl Fn(u64, &mut Rng, &mut Vec<u8>, &mut Vec<u8>) -> Result<(u64, u64), String> + Sync,
) -> Result<Measured, String> {
    let threads = threads.max(1) as u64;
    let started = Instant::now();
    let results: Vec<Result<ThreadTotals, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let op = &op;
                s.spawn(move || {
                    let mut h = histogram();
                    let mut rng =
                        Rng::new(0x1234_5678 ^ (t + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    let (mut kb, mut vb) = (Vec::with_capacity(shape.key_size), Vec::new());
                    let (mut moved, mut written) = (0, 0);
                    let mut i = t;
                    let mut since = 0u64;
                    while i < ops {
                        let t0 = Instant::now();
                        let (m, w) = op(i, &mut rng, &mut kb, &mut vb)?;
                        let _ = h.record(t0.elapsed().as_nanos().max(1) as u64);
                        moved += m;
                        written += w;
                        i += threads;
                        since += 1;
                        if since == 1024 {
                            bar.inc(since);
                            since = 0;
                        }
                    }
                    bar.inc(since);
                    Ok((h, moved, written))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("a benchmark thread panicked".into()))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    let mut latency = histogram();
    let (mut moved, mut written) = (0, 0);
    for r in results {
        let (h, m, w) = r?;
        let _ = latency.add(&h);
        moved += m;
        written += w;
    }
    Ok(Measured {
        ops,
        elapsed,
        latency,
        bytes_written: written,
        bytes_moved: moved,
        inserted: 0,
    })
}

/// How many operations workload `w` runs for `--num` entries.
pub(crate) fn op_count(w: &str, num: u64) -> u64 {
    match w {
        // One fsync each: a hundredth of the entries, at least 1,000 (a
        // shorter run measures thread start-up more than commits).
        "fillsync" => (num / 100).max(1000).min(num.max(1)),
        "seekrandom" | "ycsb-e" => (num / 10).max(1),
        "readseq" | "readreverse" => num,
        "txn" => (num / 4).max(1),
        w if w.starts_with("ycsb") => (num / 2).max(1),
        _ => num,
    }
}

/// Runs workload `w` on `db`, which holds `live` keys (`0..live`).
pub(crate) fn run(
    w: &str,
    db: &dyn BenchDb,
    shape: &Shape,
    live: u64,
    bar: &ProgressBar,
) -> Result<Measured, String> {
    let n = shape.num;
    let ops = op_count(w, n);
    let kv = (shape.key_size + shape.value_size) as u64;
    let threads = shape.threads;
    let zipf = || Zipf::new(live.max(1));
    match w {
        // One full compaction; what it leaves is the space amplification.
        "compact" => {
            let started = Instant::now();
            let done = db.compact()?;
            let elapsed = started.elapsed();
            let mut latency = histogram();
            let _ = latency.record(elapsed.as_nanos().max(1) as u64);
            bar.inc(1);
            // No operation at all: the engine has no full compaction.
            Ok(Measured {
                ops: u64::from(done),
                elapsed,
                latency,
                bytes_written: 0,
                bytes_moved: live * kv,
                inserted: 0,
            })
        }
        "fillseq" | "fillrandom" | "overwrite" | "fillsync" => {
            let sync = w == "fillsync";
            let seq = w == "fillseq";
            let space = match w {
                "overwrite" => live.max(1),
                "fillsync" => ops,
                _ => n,
            };
            run_threads(shape, ops, threads, bar, |i, rng, k, v| {
                let idx = if seq {
                    i
                } else if w == "overwrite" {
                    rng.below(space)
                } else {
                    shape.shuffled(i, space)
                };
                shape.key(idx, k);
                shape.value(rng, v);
                db.put(k, v, sync)?;
                Ok((kv, kv))
            })
        }
        "readrandom" | "readmissing" | "readhot" => {
            let hot = (live / 100).max(1);
            run_threads(shape, ops, threads, bar, |_, rng, k, _| {
                let idx = match w {
                    "readmissing" => live + rng.below(live.max(1)),
                    "readhot" => rng.below(hot),
                    _ => rng.below(live.max(1)),
                };
                shape.key(idx, k);
                let got = db.get(k)?;
                match (w, got) {
                    ("readmissing", Some(_)) => Err(format!("missing key {idx} found")),
                    ("readmissing", None) => Ok((shape.key_size as u64, 0)),
                    (_, None) => Err(format!("key {idx} not found")),
                    (_, Some(len)) => Ok((shape.key_size as u64 + len as u64, 0)),
                }
            })
        }
        "seekrandom" => run_threads(shape, ops, threads, bar, |_, rng, k, _| {
            shape.key(rng.below(live.max(1)), k);
            let got = db.scan(k, 10)?;
            Ok((got as u64 * kv, 0))
        }),
        "readseq" | "readreverse" => {
            // One pass over everything; latency is per entry.
            let started = Instant::now();
            let count = db.scan_all(w == "readreverse")? as u64;
            let elapsed = started.elapsed();
            bar.inc(ops);
            let mut latency = histogram();
            let per = (elapsed.as_nanos() as u64 / count.max(1)).max(1);
            let _ = latency.record_n(per, count.max(1));
            if count != live {
                return Err(format!("{w} saw {count} entries, {live} are live"));
            }
            Ok(Measured {
                ops: count,
                elapsed,
                latency,
                bytes_written: 0,
                bytes_moved: count * kv,
                inserted: 0,
            })
        }
        "readwhilewriting" => {
            let stop = AtomicBool::new(false);
            let writes = AtomicU64::new(0);
            std::thread::scope(|s| {
                let writer = s.spawn(|| -> Result<(), String> {
                    let mut rng = Rng::new(99);
                    let (mut k, mut v) = (Vec::new(), Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        shape.key(rng.below(live.max(1)), &mut k);
                        shape.value(&mut rng, &mut v);
                        db.put(&k, &v, false)?;
                        writes.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(())
                });
                let readers = run_threads(shape, ops, threads, bar, |_, rng, k, _| {
                    let idx = rng.below(live.max(1));
                    shape.key(idx, k);
                    match db.get(k)? {
                        Some(len) => Ok((shape.key_size as u64 + len as u64, 0)),
                        None => Err(format!("key {idx} not found")),
                    }
                });
                stop.store(true, Ordering::Relaxed);
                let w = writer
                    .join()
                    .unwrap_or_else(|_| Err("the writer panicked".into()));
                let mut m = readers?;
                w?;
                m.bytes_written = writes.load(Ordering::Relaxed) * kv;
                Ok(m)
            })
        }
        "txn" => run_threads(shape, ops, threads, bar, |_, rng, k, v| {
            shape.key(rng.below(live.max(1)), k);
            shape.value(rng, v);
            db.read_modify_write(k, v)?;
            Ok((2 * kv, kv))
        }),
        w if w.starts_with("ycsb-") => {
            let z = zipf();
            let next_insert = AtomicU64::new(live);
            let mut m = run_threads(shape, ops, threads, bar, |_, rng, k, v| {
                let roll = rng.below(100);
                let read = |idx: u64, k: &mut Vec<u8>| -> Result<(u64, u64), String> {
                    shape.key(idx, k);
                    Ok((shape.key_size as u64 + db.get(k)?.unwrap_or(0) as u64, 0))
                };
                match w {
                    "ycsb-a" | "ycsb-b" => {
                        let update = if w == "ycsb-a" { 50 } else { 5 };
                        let idx = z.scrambled(rng);
                        if roll < update {
                            shape.key(idx, k);
                            shape.value(rng, v);
                            db.put(k, v, false)?;
                            Ok((kv, kv))
                        } else {
                            read(idx, k)
                        }
                    }
                    "ycsb-c" => read(z.scrambled(rng), k),
                    "ycsb-d" => {
                        if roll < 5 {
                            let idx = next_insert.fetch_add(1, Ordering::Relaxed);
                            shape.key(idx, k);
                            shape.value(rng, v);
                            db.put(k, v, false)?;
                            Ok((kv, kv))
                        } else {
                            // Read latest: recent inserts are the most popular.
                            let top = next_insert.load(Ordering::Relaxed);
                            let back = z.rank(rng).min(top.saturating_sub(1));
                            read(top - 1 - back, k)
                        }
                    }
                    "ycsb-e" => {
                        if roll < 5 {
                            let idx = next_insert.fetch_add(1, Ordering::Relaxed);
                            shape.key(idx, k);
                            shape.value(rng, v);
                            db.put(k, v, false)?;
                            Ok((kv, kv))
                        } else {
                            shape.key(z.scrambled(rng), k);
                            let len = 1 + rng.below(100) as usize;
                            Ok((db.scan(k, len)? as u64 * kv, 0))
                        }
                    }
                    _ => {
                        // ycsb-f: read-modify-write half the time.
                        let idx = z.scrambled(rng);
                        if roll < 50 {
                            shape.key(idx, k);
                            shape.value(rng, v);
                            db.read_modify_write(k, v)?;
                            Ok((2 * kv, kv))
                        } else {
                            read(idx, k)
                        }
                    }
                }
            })?;
            m.inserted = next_insert.load(Ordering::Relaxed) - live;
            Ok(m)
        }
        other => Err(format!("unknown workload {other:?}")),
    }
}
