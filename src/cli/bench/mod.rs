//! `strata bench`: db_bench-style workloads and YCSB A-F, timed per
//! operation, with write and space amplification and peak memory.

mod engines;
#[cfg(feature = "peers")]
mod peers;
mod report;
mod workloads;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Failure;
pub(crate) use engines::disk_usage;
use engines::{BenchDb, EngineSettings};
use report::{ChildReport, EngineInfo, Report, WorkloadResult};
use workloads::Shape;

/// Arguments of `strata bench`.
#[derive(Debug, Clone, PartialEq, Args)]
pub(crate) struct BenchArgs {
    /// Comma-separated workloads: fillseq, fillrandom, overwrite,
    /// readrandom, readmissing, readhot, seekrandom, readseq, readreverse,
    /// fillsync, readwhilewriting, txn, ycsb-a ... ycsb-f.
    #[arg(long, value_delimiter = ',', default_values_t = workloads::ALL.map(String::from))]
    workloads: Vec<String>,
    /// Entries loaded (and operations per workload; fillsync runs a
    /// thousandth, seeks and YCSB-E a tenth, transactions a quarter, other
    /// YCSB workloads half).
    #[arg(long, default_value_t = 1_000_000)]
    num: u64,
    /// Key size in bytes.
    #[arg(long, default_value_t = 16)]
    key_size: usize,
    /// Value size in bytes.
    #[arg(long, default_value_t = 100)]
    value_size: usize,
    /// Compressed size / raw size the values are made to have.
    #[arg(long, default_value_t = 0.5)]
    compressible: f64,
    /// Threads per workload (writers for fills, readers for reads).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Compress data (zstd where the engine has it).
    #[arg(long)]
    compression: bool,
    /// Encrypt data at rest (Strata).
    #[arg(long)]
    encryption: bool,
    /// Engines: strata, rocksdb, fjall, redb, sled, a comma-separated
    /// list, or all (peers need the `peers` feature).
    #[arg(long, value_delimiter = ',', default_value = "strata")]
    engine: Vec<String>,
    /// Block or page cache budget of every engine, in MiB.
    #[arg(long, default_value_t = 256)]
    cache_mb: usize,
    /// How Strata reads its SSTs: through memory mappings (mmap) or with
    /// positioned reads into the block cache (pread). Without it, the
    /// engine's default.
    #[arg(long, value_enum, value_name = "mmap|pread")]
    sst_reads: Option<SstReadsArg>,
    /// Write the results as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Draw throughput per workload and engine as an SVG bar chart.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Run in DIR (kept afterwards) instead of a fresh temporary directory.
    #[arg(long, value_name = "DIR")]
    db: Option<PathBuf>,
    /// Internal: run the one engine named and write what it measured to
    /// FILE as JSON (the parent process races each engine in a child of
    /// its own).
    #[arg(long, value_name = "FILE", hide = true)]
    child_report: Option<PathBuf>,
}

/// The values of `--sst-reads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum SstReadsArg {
    /// Memory mappings: blocks are slices of the mapped file.
    Mmap,
    /// Positioned reads: each block read with pread into the block cache.
    Pread,
}

impl From<SstReadsArg> for strata::engine::SstReads {
    fn from(a: SstReadsArg) -> Self {
        match a {
            SstReadsArg::Mmap => strata::engine::SstReads::Mmap,
            SstReadsArg::Pread => strata::engine::SstReads::Pread,
        }
    }
}

/// Bytes this process has caused to be written to storage.
fn write_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| {
                    l.strip_prefix("write_bytes:")
                        .map(|v| v.trim().parse().ok())
                })
                .flatten()
        })
        .unwrap_or(0)
}

/// Resets the peak resident set size, so each workload reports its own.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

fn bar(len: u64, label: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    if !std::io::stderr().is_terminal() {
        b.set_draw_target(ProgressDrawTarget::hidden());
    }
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>28} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
    {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_prefix(label.to_owned());
    b
}

/// The UTC date, for the report.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Civil date from days since the epoch (Howard Hinnant's algorithm).
    let z = (secs / 86_400) as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| {
                    v.split_whitespace()
                        .next()
                        .and_then(|k| k.parse::<u64>().ok())
                })
        })
        .map_or(0, |kb| kb >> 20);
    format!("{cpus} cores ({model}), {mem} GiB")
}

/// Empties `dir` (creating it if needed).
fn wipe(dir: &Path) -> Result<(), Failure> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Failure(format!("{}: {e}", dir.display())))
}

/// Runs every workload on one engine; returns how it was set up.
fn run_engine(
    name: &str,
    args: &BenchArgs,
    shape: &Shape,
    settings: EngineSettings,
    root: &Path,
    out: &mut Vec<WorkloadResult>,
) -> Result<EngineInfo, Failure> {
    let dir = root.join(name);
    wipe(&dir)?;
    let open = |dir: &Path| engines::open(name, dir, settings).map_err(Failure);
    let mut info = EngineInfo {
        name: name.to_owned(),
        version: engines::version(name).to_owned(),
        settings: String::new(),
    };
    let mut db: Option<Box<dyn BenchDb>> = None;
    // Keys 0..live are present. After fillsync (a small load) the next
    // workload that reads starts again from a full load.
    let mut live = 0u64;
    let mut reload = true;
    let kv = (shape.key_size + shape.value_size) as u64;
    for w in &args.workloads {
        let w = w.as_str();
        if workloads::starts_empty(w) || reload {
            // The old database closes before its files go.
            drop(db.take());
            wipe(&dir)?;
            db = Some(open(&dir)?);
            live = 0;
        }
        let Some(engine) = db.as_deref() else {
            return Err(Failure("no database".into()));
        };
        info.settings = engine.settings();
        if !workloads::starts_empty(w) && live == 0 {
            // Load the entries the workload reads, unmeasured.
            let b = bar(shape.num, &format!("{name} load"));
            workloads::run("fillrandom", engine, shape, 0, &b).map_err(Failure)?;
            engine.settle().map_err(Failure)?;
            b.finish_and_clear();
            live = shape.num;
        }
        let b = bar(workloads::op_count(w, shape.num), &format!("{name} {w}"));
        reset_peak_rss();
        let io_before = write_bytes();
        let m = workloads::run(w, engine, shape, live, &b)
            .map_err(|e| Failure(format!("{name} {w}: {e}")))?;
        b.finish_and_clear();
        if w == "compact" && m.ops == 0 {
            eprintln!("{name:>8} {w:<17} (the engine has no full compaction)");
            continue;
        }
        // A compaction writes no user bytes but changes the space used.
        let writes = m.bytes_written > 0 || w == "compact";
        if writes {
            engine.settle().map_err(Failure)?;
        }
        let io = write_bytes().saturating_sub(io_before);
        live = match w {
            "fillseq" | "fillrandom" => shape.num,
            "fillsync" => workloads::op_count(w, shape.num).min(shape.num),
            _ => live + m.inserted,
        };
        let secs = m.elapsed.as_secs_f64().max(1e-9);
        let q = |p: f64| m.latency.value_at_quantile(p) as f64 / 1000.0;
        let result = WorkloadResult {
            engine: name.to_owned(),
            workload: w.to_owned(),
            ops: m.ops,
            seconds: secs,
            ops_per_sec: m.ops as f64 / secs,
            mb_per_sec: m.bytes_moved as f64 / secs / 1e6,
            p50_us: q(0.5),
            p99_us: q(0.99),
            p999_us: q(0.999),
            max_us: m.latency.max() as f64 / 1000.0,
            write_amp: (m.bytes_written > 0).then(|| io as f64 / m.bytes_written as f64),
            space_amp: writes.then(|| engines::disk_usage(&dir) as f64 / (live.max(1) * kv) as f64),
            peak_rss_mb: peak_rss_mb(),
        };
        eprintln!(
            "{name:>8} {w:<17} {:>10.0} ops/s  p99 {:>8.1} us",
            result.ops_per_sec, result.p99_us
        );
        if writes {
            if let Some(c) = engine.stall_counters() {
                eprintln!("{name:>8} {w:<17} write stalls so far: {c}");
            }
        }
        out.push(result);
        reload = w == "fillsync";
    }
    drop(db);
    if args.db.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(info)
}

/// The arguments that run engine `name` alone in a child process, writing
/// its results to `report` and its files under `root`.
fn child_args(args: &BenchArgs, name: &str, root: &Path, report: &Path) -> Vec<std::ffi::OsString> {
    let mut a: Vec<std::ffi::OsString> = vec!["bench".into()];
    let mut flag = |k: &str, v: String| {
        a.push(format!("--{k}").into());
        a.push(v.into());
    };
    flag("workloads", args.workloads.join(","));
    flag("num", args.num.to_string());
    flag("key-size", args.key_size.to_string());
    flag("value-size", args.value_size.to_string());
    flag("compressible", args.compressible.to_string());
    flag("threads", args.threads.to_string());
    flag("engine", name.to_owned());
    flag("cache-mb", args.cache_mb.to_string());
    if let Some(r) = args.sst_reads {
        flag(
            "sst-reads",
            match r {
                SstReadsArg::Mmap => "mmap",
                SstReadsArg::Pread => "pread",
            }
            .to_owned(),
        );
    }
    if args.compression {
        a.push("--compression".into());
    }
    if args.encryption {
        a.push("--encryption".into());
    }
    a.push("--db".into());
    a.push(root.into());
    a.push("--child-report".into());
    a.push(report.into());
    a
}

/// Runs engine `name` in a child process of its own, so its memory, its
/// threads and the page cache it warmed do not weigh on the next engine.
fn run_child(
    args: &BenchArgs,
    name: &str,
    root: &Path,
    out: &mut Vec<WorkloadResult>,
) -> Result<EngineInfo, Failure> {
    let report = root.join(format!("{name}.report.json"));
    let exe = std::env::current_exe().map_err(|e| Failure(format!("this program's path: {e}")))?;
    let status = std::process::Command::new(exe)
        .args(child_args(args, name, root, &report))
        .status()
        .map_err(|e| Failure(format!("starting the {name} run: {e}")))?;
    if !status.success() {
        return Err(Failure(format!("the {name} run failed ({status})")));
    }
    let text = std::fs::read_to_string(&report)
        .map_err(|e| Failure(format!("{}: {e}", report.display())))?;
    let _ = std::fs::remove_file(&report);
    let child: ChildReport =
        serde_json::from_str(&text).map_err(|e| Failure(format!("{}: {e}", report.display())))?;
    if args.db.is_none() {
        let _ = std::fs::remove_dir_all(root.join(name));
    }
    out.extend(child.results);
    Ok(child.engine)
}

/// Runs the benchmark and prints its table.
pub(crate) fn run(args: &BenchArgs) -> Result<ExitCode, Failure> {
    for w in &args.workloads {
        if !workloads::ALL.contains(&w.as_str()) {
            return Err(Failure(format!(
                "unknown workload {w:?}; one of {}",
                workloads::ALL.join(", ")
            )));
        }
    }
    if args.num == 0 || args.key_size < 8 || args.value_size == 0 || args.threads == 0 {
        return Err(Failure(
            "--num, --value-size and --threads must be positive and --key-size at least 8".into(),
        ));
    }
    let names: Vec<String> = if args.engine.iter().any(|e| e == "all") {
        engines::ENGINES.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.engine.clone()
    };
    for n in &names {
        if !engines::ENGINES.contains(&n.as_str()) {
            return Err(Failure(format!(
                "unknown engine {n:?}; one of {}, or all",
                engines::ENGINES.join(", ")
            )));
        }
    }
    let shape = Shape {
        num: args.num,
        key_size: args.key_size,
        value_size: args.value_size,
        compressible: args.compressible,
        threads: args.threads,
    };
    let settings = EngineSettings {
        cache_bytes: args.cache_mb << 20,
        compression: args.compression,
        encryption: args.encryption,
        sst_reads: args.sst_reads.map(Into::into),
        separate_from: (args.value_size >= engines::SEPARATION_THRESHOLD)
            .then_some(engines::SEPARATION_THRESHOLD),
    };
    let tmp;
    let root = match &args.db {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("strata-bench-")
                .tempdir()
                .map_err(|e| Failure(format!("temporary directory: {e}")))?;
            tmp.path().to_path_buf()
        }
    };
    let mut results = Vec::new();
    if let Some(path) = &args.child_report {
        let [name] = names.as_slice() else {
            return Err(Failure("--child-report runs exactly one engine".into()));
        };
        let engine = run_engine(name, args, &shape, settings, &root, &mut results)?;
        let text = serde_json::to_string(&ChildReport { engine, results })
            .map_err(|e| Failure(e.to_string()))?;
        std::fs::write(path, text).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut engines = Vec::new();
    for name in &names {
        let info = if names.len() > 1 {
            run_child(args, name, &root, &mut results)?
        } else {
            run_engine(name, args, &shape, settings, &root, &mut results)?
        };
        engines.push(info);
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = Report {
        date: today(),
        machine: machine(),
        command: std::env::args().collect::<Vec<_>>().join(" "),
        num: args.num,
        key_size: args.key_size,
        value_size: args.value_size,
        threads: args.threads,
        cache_mb: args.cache_mb,
        engines,
        results,
    };
    println!(
        "strata bench, {}: {} entries of {} + {} bytes, {} thread(s), {} MiB cache{}{}{}",
        report.machine,
        report.num,
        report.key_size,
        report.value_size,
        report.threads,
        args.cache_mb,
        if args.compression {
            ", compression"
        } else {
            ""
        },
        if args.encryption { ", encryption" } else { "" },
        match args.sst_reads {
            Some(SstReadsArg::Mmap) => ", SSTs mapped",
            Some(SstReadsArg::Pread) => ", SSTs read with pread",
            None => "",
        },
    );
    print!("{}", report::table(&report));
    if let Some(path) = &args.json {
        report::write_json(&report, path).map_err(Failure)?;
    }
    if let Some(path) = &args.plot {
        report::write_plot(&report, path).map_err(Failure)?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }

    #[derive(clap::Subcommand)]
    enum Cmd {
        Bench(BenchArgs),
    }

    fn parse(args: &[std::ffi::OsString]) -> BenchArgs {
        let argv = std::iter::once(std::ffi::OsString::from("strata")).chain(args.iter().cloned());
        match Cli::try_parse_from(argv) {
            Ok(Cli { cmd: Cmd::Bench(a) }) => a,
            Err(e) => panic!("{e}"),
        }
    }

    /// A child runs the parent's benchmark on its one engine: every
    /// setting reaches it.
    #[test]
    fn a_child_gets_every_setting() {
        let s = |v: &[&str]| v.iter().map(std::ffi::OsString::from).collect::<Vec<_>>();
        for argv in [
            s(&["bench"]),
            s(&[
                "bench",
                "--workloads",
                "fillseq,readrandom",
                "--num",
                "77",
                "--key-size",
                "20",
                "--value-size",
                "4096",
                "--compressible",
                "0.25",
                "--threads",
                "2",
                "--engine",
                "all",
                "--cache-mb",
                "64",
                "--sst-reads",
                "pread",
                "--compression",
                "--encryption",
                "--json",
                "x.json",
                "--plot",
                "x.svg",
            ]),
        ] {
            let parent = parse(&argv);
            let root = Path::new("/r");
            let report = Path::new("/r/f.json");
            let child = parse(&child_args(&parent, "fjall2", root, report));
            let want = BenchArgs {
                engine: vec!["fjall2".into()],
                db: Some(root.into()),
                child_report: Some(report.into()),
                json: None,
                plot: None,
                ..parent
            };
            assert_eq!(child, want);
        }
    }
}
