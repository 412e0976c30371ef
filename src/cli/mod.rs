//! Command-line parsing and dispatch for the `strata` tool.
//!
//! Exit codes: 0 success; 1 the command ran and found a problem (a damaged
//! file for `verify`); 2 bad usage; 3 the database could not be opened or
//! read (missing or locked directory, wrong key, damage that stops the
//! command).

mod backup;
mod bench;
mod data;
mod docbench;
mod inspect;
#[cfg(feature = "server")]
mod load;
#[cfg(feature = "server")]
mod remote;
#[cfg(feature = "server")]
mod serve;
mod verify;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use strata::engine::{FileKeyProvider, Options};

/// Tools for Strata database directories.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about)]
struct Cli {
    /// Print timestamps as raw numbers rather than ISO-8601.
    #[arg(long, global = true)]
    raw_timestamps: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Throughput benchmarks: db_bench workloads and YCSB A-F, on Strata
    /// and, built with `--features peers`, on RocksDB, fjall, redb and sled.
    #[command(
        after_help = "Examples:\n  strata bench\n  strata bench --workloads fillrandom,readrandom --num 100000\n  strata bench --workloads fillsync --threads 8\n  strata bench --engine all --json results.json --plot results.svg   (needs --features peers)\n\nEvery run starts from a fresh temporary directory unless --db is given."
    )]
    Bench(bench::BenchArgs),
    /// Document queries on the same documents in Strata and, built with
    /// `--features sqlite`, SQLite: load, equality, range + sort + limit,
    /// compound, array membership, OR, count.
    #[command(
        after_help = "Examples:\n  strata docbench --num 100000\n  strata docbench --engine all   (needs --features sqlite)"
    )]
    Docbench(docbench::DocBenchArgs),
    /// Describe a closed database (keyspaces, levels, tables with key and
    /// timestamp ranges, WALs, bytes per key id), or decode one SST, WAL or
    /// manifest.
    #[command(
        after_help = "Examples:\n  strata inspect /var/lib/app/db\n  strata inspect sst /var/lib/app/db/000012.sst --entries\n  strata inspect wal /var/lib/app/db/000015.log\n  strata inspect manifest /var/lib/app/db/MANIFEST-000014"
    )]
    Inspect(inspect::InspectArgs),
    /// Print the value of a key (exit status 1 when absent).
    #[command(
        after_help = "Example:\n  strata get /var/lib/app/db users ada\n  strata get /var/lib/app/db users ada --at 7355822171400896512"
    )]
    Get(data::GetArgs),
    /// Write a value (synced).
    #[command(after_help = "Example:\n  strata put /var/lib/app/db users ada lovelace")]
    Put(data::PutArgs),
    /// Delete a key (synced).
    #[command(after_help = "Example:\n  strata delete /var/lib/app/db users ada")]
    Delete(data::DeleteArgs),
    /// Print entries in key order.
    #[command(
        after_help = "Example:\n  strata scan /var/lib/app/db users --from a --to m --limit 20"
    )]
    Scan(data::ScanArgs),
    /// Print every version of a key in the history window.
    #[command(after_help = "Example:\n  strata history /var/lib/app/db users ada")]
    History(data::HistoryArgs),
    /// Compact every keyspace into its last level.
    #[command(after_help = "Example:\n  strata compact /var/lib/app/db")]
    Compact(DbArgs),
    /// Print the engine's statistics in the Prometheus text format.
    #[command(after_help = "Example:\n  strata stats /var/lib/app/db")]
    Stats(DbArgs),
    /// Make a consistent copy of a database at one commit, SSTs
    /// hard-linked when on the same file system.
    #[command(
        after_help = "Example:\n  strata checkpoint /var/lib/app/db /var/backups/app-2026-12-04"
    )]
    Checkpoint(backup::CheckpointArgs),
    /// Incremental backups: create, list, verify, restore (as of a time
    /// too), purge.
    #[command(
        after_help = "Examples:\n  strata backup create /var/lib/app/db /var/backups/app\n  strata backup list /var/backups/app\n  strata backup verify /var/backups/app 3\n  strata backup restore /var/backups/app 3 /var/lib/app/restored --at 2026-12-04T10:00:00Z\n  strata backup purge /var/backups/app --keep 7\n\nExit status: 0 on success, 1 when verify or list finds damage, 2 on bad usage, 3 when the database or backup cannot be opened or the work fails."
    )]
    Backup(backup::BackupArgs),
    /// Check every checksum of every file of a closed database, without
    /// changing anything; list every damaged file.
    #[command(
        after_help = "Examples:\n  strata verify /var/lib/app/db\n  strata verify --key-dir /etc/app/keys --key-id 2 /var/lib/app/db\n\nExit status: 0 when every file is sound, 1 when some file is damaged, 3 when the directory cannot be checked (missing, locked, wrong key)."
    )]
    Verify(verify::VerifyArgs),
    /// Run one node of a cluster: the storage system over HTTP, Raft
    /// between the nodes (see README, "A cluster").
    #[cfg(feature = "server")]
    #[command(after_help = "Example:\n  strata serve --config node1.toml")]
    Serve(serve::ServeArgs),
    /// Load a running server or cluster through its HTTP API: concurrent
    /// clients writing and reading, with ops/s and latency percentiles.
    #[cfg(feature = "server")]
    #[command(
        after_help = "Example:\n  strata load --remote http://127.0.0.1:7001 --remote http://127.0.0.1:7002 --token T --clients 16 --ops 20000"
    )]
    Load(load::LoadArgs),
    /// Get, put, delete and history against a running server or cluster,
    /// through its HTTP API.
    #[cfg(feature = "server")]
    #[command(
        after_help = "Examples:\n  strata remote --remote http://127.0.0.1:7001 --token T put resource users/ada lovelace\n  strata remote --remote http://127.0.0.1:7002 --token T get resource users/ada --at 2026-12-04T10:00:00Z\n  strata remote --remote https://127.0.0.1:7001 --remote https://127.0.0.1:7002 --ca ca.pem --token T put-blob videos/intro intro.mp4\n\nExit status: 0 on success, 1 when get finds no value, 3 when the server refuses or cannot be reached."
    )]
    Remote(remote::RemoteArgs),
}

/// How to open a database: its directory and, when encrypted, its keys.
#[derive(Debug, Args)]
pub(crate) struct DbArgs {
    /// The database directory.
    pub dir: PathBuf,
    /// Directory of key files (`<id>.key`, 64 hex digits, mode 0600) for an
    /// encrypted database.
    #[arg(long, value_name = "DIR")]
    pub key_dir: Option<PathBuf>,
    /// The current key id in `--key-dir`.
    #[arg(long, value_name = "ID", default_value_t = 1, requires = "key_dir")]
    pub key_id: u32,
    /// How far back reads of the past (`get --at`, `history`) may go, in
    /// seconds; compaction keeps what they need while the command runs.
    #[arg(long, value_name = "SECS", default_value_t = DbArgs::DEFAULT_HISTORY_SECS)]
    pub history_secs: u64,
}

/// Set by `--raw-timestamps`: print timestamps as raw numbers.
static RAW_TIMESTAMPS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// A timestamp as the commands print it: ISO-8601, or the raw number with
/// `--raw-timestamps`.
pub(crate) fn ts_text(ts: strata::engine::Timestamp) -> String {
    if RAW_TIMESTAMPS.load(std::sync::atomic::Ordering::Relaxed) {
        ts.as_u64().to_string()
    } else {
        ts.to_iso8601()
    }
}

/// A time given on the command line: a raw timestamp (digits only) or an
/// ISO-8601 time. A clap value parser, so a bad time is a usage error.
pub(crate) fn parse_time(s: &str) -> Result<strata::engine::Timestamp, String> {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse()
            .map(strata::engine::Timestamp)
            .map_err(|_| format!("{s}: not a timestamp"));
    }
    strata::engine::Timestamp::from_iso8601(s).map_err(|e| {
        format!("not a time (ISO-8601 such as 2026-12-04T10:00:00Z, or a raw timestamp): {e}")
    })
}

impl DbArgs {
    /// The default history window of a command's open: a week.
    pub(crate) const DEFAULT_HISTORY_SECS: u64 = 7 * 24 * 3600;

    /// Engine options for this directory.
    pub(crate) fn options(&self) -> Result<Options, Failure> {
        let mut opts = Options {
            history_retention: std::time::Duration::from_secs(self.history_secs),
            ..Options::default()
        };
        if let Some(dir) = &self.key_dir {
            let provider = FileKeyProvider::new(dir, self.key_id).map_err(Failure::from)?;
            opts.key_provider = Some(Arc::new(provider));
        }
        Ok(opts)
    }

    /// Fails cleanly when the directory does not exist, rather than
    /// letting an open create it.
    pub(crate) fn existing(&self) -> Result<(), Failure> {
        if self.dir.is_dir() {
            Ok(())
        } else {
            Err(Failure(format!(
                "{}: no such directory",
                self.dir.display()
            )))
        }
    }
}

/// An error that stops a command: printed as one line, exit status 3.
#[derive(Debug)]
pub(crate) struct Failure(pub String);

impl From<strata::engine::Error> for Failure {
    fn from(e: strata::engine::Error) -> Self {
        Failure(e.to_string())
    }
}

/// Parses the command line and runs the command.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    RAW_TIMESTAMPS.store(cli.raw_timestamps, std::sync::atomic::Ordering::Relaxed);
    let result = match cli.command {
        Command::Verify(args) => verify::run(&args),
        Command::Bench(args) => bench::run(&args),
        Command::Docbench(args) => docbench::run(&args),
        Command::Inspect(args) => inspect::run(&args),
        Command::Get(args) => data::get(&args),
        Command::Put(args) => data::put(&args),
        Command::Delete(args) => data::delete(&args),
        Command::Scan(args) => data::scan(&args),
        Command::History(args) => data::history(&args),
        Command::Compact(args) => data::compact(&args),
        Command::Stats(args) => data::stats(&args),
        Command::Checkpoint(args) => backup::checkpoint(&args),
        Command::Backup(args) => backup::run(&args),
        #[cfg(feature = "server")]
        Command::Serve(args) => serve::run(&args),
        #[cfg(feature = "server")]
        Command::Load(args) => load::run(&args),
        #[cfg(feature = "server")]
        Command::Remote(args) => remote::run(&args),
    };
    match result {
        Ok(code) => code,
        Err(Failure(msg)) => {
            eprintln!("strata: {msg}");
            ExitCode::from(3)
        }
    }
}
