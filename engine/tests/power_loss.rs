//! Simulated power loss at random instants of random workloads (crash
//! scenarios S1, S2, S3, S7, S9 and S11 of the reliability checklist).
//!
//! Each case runs a random workload of batches and transactions across
//! three keyspaces on a [`SimFs`], with small memtables so that flushes,
//! compactions and manifest rotations happen, and cuts the power before a
//! random file-system call. The image is reopened (sometimes with a second
//! power loss during that recovery), and must hold exactly a prefix of the
//! attempted operations that includes every acknowledged synced one, with
//! every batch and transaction whole; reads of the past must agree with the
//! same prefix.
//!
//! A second test is the deterministic simulation of scenario S12: the
//! engine runs without background threads, so a seed fixes every file
//! operation; knobs are "buggified" per seed (tiny memtables, files, blocks
//! and manifests, compaction triggers), and one-shot I/O errors are
//! injected at random calls, after which the workload resumes the
//! database and retries. A failing seed reproduces exactly.
//!
//! `STRATA_CRASH_CASES=N` and `STRATA_SIM_SEEDS=N` run more cases than the
//! default; `STRATA_CRASH_SEED` / `STRATA_SIM_SEED` pick the first seed.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strata_engine::format::codec::Compression;
use strata_engine::fs::{CrashMode, FaultFs, FaultKind, FaultPlan, FaultTarget, FileSystem, SimFs};
use strata_engine::{
    Db, Isolation, ManualClock, MemoryKeyProvider, Options, Timestamp, WriteOptions,
};

const KEYSPACES: [&str; 3] = ["a", "b", "c"];
const META: &str = "meta";

type Model = BTreeMap<(usize, Vec<u8>), Vec<u8>>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// One write of an operation: keyspace index, key, value (`None`: delete).
type Write = (usize, Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, Clone)]
enum Step {
    /// A batch or transaction of writes, with its sync flag.
    Op {
        writes: Vec<Write>,
        txn: bool,
        sync: bool,
    },
    Flush,
    Compact,
    Reopen,
}

fn workload(rng: &mut Rng, len: usize) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut op = 0;
    while op < len {
        match rng.below(100) {
            0..=2 => steps.push(Step::Flush),
            3 => steps.push(Step::Compact),
            4..=5 => steps.push(Step::Reopen),
            _ => {
                // S11: every write of an operation carries the same value
                // base, so a half-applied one shows as a mix.
                let n = 1 + rng.below(6) as usize;
                let writes = (0..n)
                    .map(|j| {
                        let ks = rng.below(KEYSPACES.len() as u64) as usize;
                        let key = format!("k{:03}", rng.below(60)).into_bytes();
                        let value = if rng.chance(15) {
                            None
                        } else {
                            // Values of varied size, some spanning log blocks.
                            let pad = if rng.chance(5) {
                                9000
                            } else {
                                rng.below(200) as usize
                            };
                            let mut v = format!("op{op}-{j}-").into_bytes();
                            v.resize(v.len() + pad, b'x');
                            Some(v)
                        };
                        (ks, key, value)
                    })
                    .collect();
                steps.push(Step::Op {
                    writes,
                    txn: rng.chance(30),
                    sync: rng.chance(40),
                });
                op += 1;
            }
        }
    }
    steps
}

/// How a case is set up: random option bits, and whether it is a
/// deterministic simulation (no background threads, buggified knobs,
/// injected I/O errors).
#[derive(Debug, Clone, Copy)]
struct Config {
    bits: u64,
    simulate: bool,
}

impl Config {
    /// Bit `i` of the option bits, on in a quarter of seeds for the
    /// buggified knobs.
    fn knob(&self, i: u32) -> bool {
        (self.bits >> (8 + 2 * i)) & 3 == 0
    }
}

fn options(fs: &SimFs, cfg: Config, plan: Option<&FaultPlan>) -> Options {
    let mut o = common::small_options();
    o.fs = match plan {
        Some(p) => Arc::new(FaultFs::new(fs.clone(), p.clone())),
        None => Arc::new(fs.clone()),
    };
    o.memtable_size = 8 * 1024;
    o.target_file_size = 8 * 1024;
    o.base_level_size = 32 * 1024;
    o.history_retention = std::time::Duration::from_secs(3600);
    if cfg.bits & 1 == 1 {
        o.max_manifest_size = 2048;
    }
    if cfg.bits & 2 == 2 {
        o.key_provider = Some(Arc::new(MemoryKeyProvider::new(7, [42; 32])));
    }
    // Values stored apart: most of them, only the largest, or none; and
    // blob files emptied eagerly by compactions in some runs.
    o.blob_threshold = match (cfg.bits >> 24) & 3 {
        0 => Some(64),
        1 => None,
        _ => Some(4096),
    };
    if (cfg.bits >> 26) & 1 == 1 {
        o.blob_garbage_ratio = 0.2;
    }
    if cfg.simulate {
        o.background_threads = false;
        // Simulated time: timestamps, and so key prefixes and file sizes,
        // repeat from run to run.
        o.clock = Arc::new(ManualClock::new(Timestamp(1_800_000_000_000_000 << 12)));
        // Compressed sizes depend on the timestamps in the data, which come
        // from the clock: without compression every run writes the same
        // sizes, so the same file operations.
        o.compression = vec![Compression::None];
        if cfg.knob(0) {
            o.memtable_size = 4096;
        }
        if cfg.knob(1) {
            o.target_file_size = 2048;
            o.base_level_size = 8192;
        }
        if cfg.knob(2) {
            o.block_size = 64;
            o.restart_interval = 2;
        }
        if cfg.knob(3) {
            o.max_manifest_size = 256;
        }
        if cfg.knob(4) {
            o.l0_compaction_trigger = 1;
        }
        if cfg.knob(5) {
            o.max_immutable_memtables = 1;
        }
    }
    o
}

/// What the workload saw: per operation, whether it was acknowledged, with
/// which sync flag and timestamp.
#[derive(Debug, Default)]
struct Trace {
    /// Operations attempted (acknowledged or failed).
    attempted: usize,
    /// Index + 1 of the last acknowledged synced operation.
    synced_prefix: usize,
    /// Commit timestamps of acknowledged operations, by index.
    ts: Vec<Option<Timestamp>>,
}

fn seq_key() -> &'static [u8] {
    b"seq"
}

/// Injects one-shot I/O errors at random calls, in simulations.
struct Faults {
    plan: FaultPlan,
    rng: Rng,
}

impl Faults {
    /// Before a step: now and then, arms a fault a few calls ahead.
    fn maybe_arm(&mut self) {
        if self.rng.chance(15) {
            let target = match self.rng.below(3) {
                0 => FaultTarget {
                    writes: true,
                    ..FaultTarget::default()
                },
                1 => FaultTarget {
                    syncs: true,
                    ..FaultTarget::default()
                },
                _ => FaultTarget {
                    metadata: true,
                    ..FaultTarget::default()
                },
            };
            let kind = match self.rng.below(3) {
                0 => FaultKind::Eio,
                1 => FaultKind::NoSpace,
                _ => FaultKind::ShortWrite,
            };
            let n = 1 + self.rng.below(12);
            self.plan.arm(target, n, kind, false);
        }
    }
}

/// Runs `f`; after an injected error, resumes the database and retries (a
/// retried operation writes the same values, so a first attempt that
/// reached the disk changes nothing). Gives up when the power is off.
fn retrying<T>(
    db: &Db,
    faults: &mut Option<Faults>,
    mut f: impl FnMut() -> strata_engine::Result<T>,
) -> strata_engine::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) => {
                let Some(fl) = faults.as_mut() else {
                    return Err(e);
                };
                tries += 1;
                if fl.plan.faults() == 0 || tries > 4 {
                    return Err(e);
                }
                fl.plan.disarm();
                if db.resume().is_err() {
                    return Err(e);
                }
            }
        }
    }
}

/// Runs the steps until the first failure that is not an injected error
/// (the power loss).
fn run(dir: &Path, opts: &Options, steps: &[Step], mut faults: Option<Faults>) -> Trace {
    let mut trace = Trace::default();
    let open = |faults: &mut Option<Faults>| {
        let first = Db::open(dir, opts.clone());
        match (first, faults.as_mut()) {
            (Ok(db), _) => Some(db),
            (Err(_), Some(fl)) if fl.plan.faults() > 0 => {
                fl.plan.disarm();
                Db::open(dir, opts.clone()).ok()
            }
            _ => None,
        }
    };
    let Some(mut db) = open(&mut faults) else {
        return trace;
    };
    for step in steps {
        if let Some(fl) = faults.as_mut() {
            fl.maybe_arm();
        }
        let ok = match step {
            Step::Flush => retrying(&db, &mut faults, || db.flush()).is_ok(),
            Step::Compact => retrying(&db, &mut faults, || db.compact()).is_ok(),
            Step::Reopen => {
                let _ = db.close();
                drop(db);
                match open(&mut faults) {
                    Some(d) => {
                        db = d;
                        true
                    }
                    None => return trace,
                }
            }
            Step::Op { writes, txn, sync } => {
                let i = trace.attempted;
                trace.attempted += 1;
                let r = retrying(&db, &mut faults, || apply(&db, i, writes, *txn, *sync));
                trace.ts.push(r.as_ref().ok().copied());
                if r.is_ok() && *sync {
                    trace.synced_prefix = i + 1;
                }
                r.is_ok()
            }
        };
        if !ok {
            break;
        }
    }
    trace
}

fn apply(
    db: &Db,
    i: usize,
    writes: &[Write],
    txn: bool,
    sync: bool,
) -> strata_engine::Result<Timestamp> {
    let meta = db.keyspace(META)?;
    let ks: Vec<_> = KEYSPACES
        .iter()
        .map(|n| db.keyspace(n))
        .collect::<Result<_, _>>()?;
    let seq = (i as u64 + 1).to_be_bytes();
    if txn {
        let mut tx = db.begin(Isolation::Serializable)?;
        for (k, key, value) in writes {
            match value {
                Some(v) => tx.put(&ks[*k], key, v)?,
                None => tx.delete(&ks[*k], key)?,
            }
        }
        tx.put(&meta, seq_key(), seq)?;
        tx.commit_with(WriteOptions { sync })
    } else {
        let mut b = db.batch();
        for (k, key, value) in writes {
            match value {
                Some(v) => b.put(&ks[*k], key, v)?,
                None => b.delete(&ks[*k], key)?,
            }
        }
        b.put(&meta, seq_key(), seq)?;
        db.write(b, WriteOptions { sync })
    }
}

/// The model after the first `n` operations.
fn model_after(steps: &[Step], n: usize) -> Model {
    let mut m = Model::new();
    for (writes, _) in steps
        .iter()
        .filter_map(|s| match s {
            Step::Op { writes, .. } => Some((writes, ())),
            _ => None,
        })
        .take(n)
    {
        for (k, key, value) in writes {
            match value {
                Some(v) => m.insert((*k, key.clone()), v.clone()),
                None => m.remove(&(*k, key.clone())),
            };
        }
    }
    m
}

fn read_state(db: &Db, at: Option<Timestamp>) -> (usize, Model) {
    let snap = match at {
        Some(ts) => db.snapshot_at(ts).unwrap(),
        None => db.snapshot().unwrap(),
    };
    let meta = db.keyspace(META).unwrap();
    let n = snap.get(&meta, seq_key()).unwrap().map_or(0, |v| {
        u64::from_be_bytes(v[..8].try_into().unwrap()) as usize
    });
    let mut m = Model::new();
    for (i, name) in KEYSPACES.iter().enumerate() {
        let ks = db.keyspace(name).unwrap();
        for r in snap.range::<&[u8], _>(&ks, ..).unwrap() {
            let (k, v) = r.unwrap();
            m.insert((i, k.to_vec()), v.to_vec());
        }
    }
    (n, m)
}

/// Opens a crashed image and checks it against the trace; returns the
/// recovered operation count.
fn verify(
    dir: &Path,
    image: &SimFs,
    cfg: Config,
    steps: &[Step],
    trace: &Trace,
    what: &str,
) -> usize {
    let opts = options(image, cfg, None);
    let db = Db::open(dir, opts).unwrap_or_else(|e| panic!("{what}: reopen failed: {e}"));
    let (n, state) = read_state(&db, None);
    assert!(
        n >= trace.synced_prefix,
        "{what}: recovered {n} operations, but {} were acknowledged synced",
        trace.synced_prefix
    );
    assert!(
        n <= trace.attempted,
        "{what}: recovered {n} operations of {} attempted",
        trace.attempted
    );
    assert!(
        state == model_after(steps, n),
        "{what}: state after recovery is not the prefix of {n} operations"
    );
    // Reads of the past: the state as of an acknowledged operation's
    // timestamp is the prefix ending with it.
    for (i, ts) in trace.ts.iter().enumerate().take(n) {
        let Some(ts) = ts else { continue };
        if i % 7 != 0 && i + 1 != n {
            continue;
        }
        if *ts < db.oldest_readable() {
            continue;
        }
        let (m, past) = read_state(&db, Some(*ts));
        assert_eq!(m, i + 1, "{what}: as of op {i}'s timestamp, seq");
        assert!(
            past == model_after(steps, i + 1),
            "{what}: state as of op {i}"
        );
    }
    db.close().unwrap();
    n
}

fn one_case(seed: u64, simulate: bool) {
    let mut rng = Rng(seed);
    let dir = Path::new("/db");
    let cfg = Config {
        bits: rng.next(),
        simulate,
    };
    let len = 20 + rng.below(80) as usize;
    let steps = workload(&mut rng, len);
    let fault_seed = rng.next();
    let faults = |plan: &FaultPlan| {
        simulate.then(|| Faults {
            plan: plan.clone(),
            rng: Rng(fault_seed),
        })
    };

    // A dry run counts the file-system calls, to place the crash among them.
    let dry_run = || {
        let dry = SimFs::new();
        let plan = FaultPlan::new();
        let _ = run(dir, &options(&dry, cfg, Some(&plan)), &steps, faults(&plan));
        dry
    };
    let dry = dry_run();
    let total = dry.ops().max(2);
    if simulate {
        // Deterministic: the same seed makes the same file operations.
        let again = dry_run();
        assert_eq!(
            again.ops(),
            total,
            "seed {seed}: the simulation is not deterministic"
        );
        // The same files, byte for byte in size: the clock is simulated.
        let sizes = |fs: &SimFs| {
            let mut v: Vec<(String, u64)> = fs
                .list(dir)
                .unwrap()
                .into_iter()
                .map(|n| {
                    let size = fs.file_size(&dir.join(&n)).unwrap();
                    (n, size)
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            sizes(&again),
            sizes(&dry),
            "seed {seed}: files differ between runs"
        );
    }

    let fs = SimFs::new();
    let plan = FaultPlan::new();
    let mode = if rng.chance(50) {
        CrashMode::Torn
    } else {
        CrashMode::DropUnsynced
    };
    let crash_at = 1 + rng.below(total + total / 10);
    fs.crash_at(crash_at, mode, rng.next());
    let trace = run(dir, &options(&fs, cfg, Some(&plan)), &steps, faults(&plan));
    let image = fs
        .crashed_image()
        .unwrap_or_else(|| fs.crash(mode, rng.next()));
    let what = format!("seed {seed} ({mode:?} before call {crash_at} of ~{total}, {cfg:?})");
    let recovered = if rng.chance(30) {
        // S9: a second power loss during recovery of the image, then a
        // clean recovery must find the same state.
        let second = image.snapshot();
        let probe = second.snapshot();
        let _ = Db::open(dir, options(&probe, cfg, None)).map(|d| d.close());
        let calls = probe.ops().max(1);
        second.crash_at(1 + rng.below(calls), CrashMode::DropUnsynced, rng.next());
        let _ = Db::open(dir, options(&second, cfg, None)).map(|d| d.close());
        let again = second
            .crashed_image()
            .unwrap_or_else(|| second.crash(CrashMode::DropUnsynced, 0));
        let first = verify(dir, &image.snapshot(), cfg, &steps, &trace, &what);
        let n = verify(
            dir,
            &again,
            cfg,
            &steps,
            &trace,
            &format!("{what}, crash in recovery"),
        );
        assert_eq!(
            n, first,
            "{what}: a crash during recovery changed the state"
        );
        n
    } else {
        verify(dir, &image, cfg, &steps, &trace, &what)
    };
    if std::env::var_os("STRATA_CRASH_VERBOSE").is_some() {
        eprintln!(
            "{what}: attempted {}, synced {}, recovered {recovered}, faults {}",
            trace.attempted,
            trace.synced_prefix,
            plan.faults()
        );
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn deterministic_simulation_with_buggified_knobs_and_injected_errors() {
    let seeds = env_u64("STRATA_SIM_SEEDS", 150);
    let base = env_u64("STRATA_SIM_SEED", 0x51a1);
    for i in 0..seeds {
        one_case(base.wrapping_add(i), true);
    }
}

#[test]
fn power_loss_at_random_instants_keeps_an_acknowledged_prefix() {
    let cases = env_u64("STRATA_CRASH_CASES", 300);
    let base = env_u64("STRATA_CRASH_SEED", 0x5eed);
    for i in 0..cases {
        one_case(base.wrapping_add(i), false);
    }
}
