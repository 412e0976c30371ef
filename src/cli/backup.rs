//! `strata checkpoint` and `strata backup`: copies of a database at one
//! commit, and incremental backups with restore as of a time.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use strata::engine::backup::{BackupEngine, BackupListing};
use strata::engine::Db;

use super::{parse_time, ts_text, DbArgs, Failure};

/// `strata checkpoint`.
#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    #[command(flatten)]
    db: DbArgs,
    /// The directory to create the copy in (must not exist).
    target: PathBuf,
}

/// `strata backup`.
#[derive(Debug, Args)]
pub(crate) struct BackupArgs {
    #[command(subcommand)]
    command: BackupCommand,
}

#[derive(Debug, Subcommand)]
enum BackupCommand {
    /// Back up a database into a backup directory (created if missing);
    /// SSTs an earlier backup holds are shared, not copied.
    Create {
        #[command(flatten)]
        db: DbArgs,
        /// The backup directory.
        backups: PathBuf,
    },
    /// List the backups: id, creation time, timestamp, size; incomplete
    /// ones (interrupted) and damaged catalogs too.
    List {
        /// The backup directory.
        backups: PathBuf,
    },
    /// Check every file of one backup (or of all) against its catalog,
    /// without opening a database. Exit status 1 when something is wrong.
    Verify {
        /// The backup directory.
        backups: PathBuf,
        /// One backup's id; all when omitted.
        id: Option<u64>,
    },
    /// Restore a backup into a new or empty directory, as of its own
    /// timestamp or an earlier time its history keeps.
    Restore {
        /// The backup directory.
        backups: PathBuf,
        /// The backup's id.
        id: u64,
        /// The directory to restore into (new or empty).
        target: PathBuf,
        /// Restore the state as of this time: ISO-8601
        /// (2026-12-04T10:00:00Z) or a raw timestamp.
        #[arg(long, value_name = "TIME", value_parser = parse_time)]
        at: Option<strata::engine::Timestamp>,
        /// Directory of key files, for `--at` on an encrypted database.
        #[arg(long, value_name = "DIR")]
        key_dir: Option<PathBuf>,
        /// The current key id in `--key-dir`.
        #[arg(long, value_name = "ID", default_value_t = 1, requires = "key_dir")]
        key_id: u32,
    },
    /// Remove all but the newest N backups, every incomplete one, and the
    /// shared files no remaining backup uses.
    Purge {
        /// The backup directory.
        backups: PathBuf,
        /// How many of the newest backups to keep.
        #[arg(long, value_name = "N")]
        keep: usize,
    },
}

/// A byte progress bar on stderr (drawn only on a terminal).
fn bar(what: &str) -> ProgressBar {
    let b = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        b.set_style(style.progress_chars("=> "));
    }
    b.set_message(what.to_owned());
    b
}

fn tick(b: &ProgressBar) -> impl FnMut(u64, u64) + '_ {
    move |done, total| {
        b.set_length(total);
        b.set_position(done);
    }
}

fn mb_per_sec(bytes: u64, secs: f64) -> String {
    format!("{:.1} MB/s", bytes as f64 / 1e6 / secs.max(1e-9))
}

/// Makes a checkpoint of a database.
pub(crate) fn checkpoint(a: &CheckpointArgs) -> Result<ExitCode, Failure> {
    a.db.existing()?;
    let db = Db::open(&a.db.dir, a.db.options()?)?;
    let start = std::time::Instant::now();
    let info = db.checkpoint(&a.target)?;
    let secs = start.elapsed().as_secs_f64();
    db.close()?;
    println!(
        "checkpoint at {} in {}: {} files, {} bytes ({} hard-linked files, {} bytes written) in {secs:.3} s",
        ts_text(info.ts),
        a.target.display(),
        info.files,
        info.total_bytes,
        info.linked,
        info.bytes_written
    );
    Ok(ExitCode::SUCCESS)
}

/// An existing backup directory (a command that only reads one must not
/// create it).
fn existing(backups: &Path) -> Result<BackupEngine, Failure> {
    if !backups.join("backups").is_dir() {
        return Err(Failure(format!(
            "{}: not a backup directory",
            backups.display()
        )));
    }
    Ok(BackupEngine::open(backups)?)
}

/// Runs a `strata backup` command.
pub(crate) fn run(a: &BackupArgs) -> Result<ExitCode, Failure> {
    match &a.command {
        BackupCommand::Create { db, backups } => {
            db.existing()?;
            let database = Db::open(&db.dir, db.options()?)?;
            let engine = BackupEngine::open(backups)?;
            let b = bar("backup");
            let start = std::time::Instant::now();
            let made = engine.create(&database, &mut tick(&b))?;
            b.finish_and_clear();
            let secs = start.elapsed().as_secs_f64();
            database.close()?;
            println!(
                "backup {} at {}: {} files, {} bytes; {} bytes copied ({}), the rest shared",
                made.info.id,
                ts_text(made.info.ts),
                made.info.files,
                made.info.bytes,
                made.bytes_copied,
                mb_per_sec(made.bytes_copied, secs)
            );
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::List { backups } => {
            let engine = existing(backups)?;
            let mut damaged = false;
            for b in engine.list()? {
                match b {
                    BackupListing::Complete(i) => {
                        let created =
                            std::time::UNIX_EPOCH + std::time::Duration::from_millis(i.created_ms);
                        println!(
                            "{:>6}  created {}  at {}  {} files  {} bytes",
                            i.id,
                            ts_text(strata::engine::Timestamp::from_system_time(created)),
                            ts_text(i.ts),
                            i.files,
                            i.bytes
                        );
                    }
                    BackupListing::Incomplete { id } => {
                        println!(
                            "{id:>6}  incomplete (interrupted; `strata backup purge` removes it)"
                        )
                    }
                    BackupListing::Damaged { id, error } => {
                        damaged = true;
                        println!("{id:>6}  damaged catalog: {error}");
                    }
                }
            }
            Ok(if damaged {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        BackupCommand::Verify { backups, id } => {
            let engine = existing(backups)?;
            let b = bar("verify");
            let problems = engine.verify(*id, &mut tick(&b))?;
            b.finish_and_clear();
            for p in &problems {
                println!("{p}");
            }
            if problems.is_empty() {
                println!("every file matches its catalog");
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!("strata: {} damaged", problems.len());
                Ok(ExitCode::from(1))
            }
        }
        BackupCommand::Restore {
            backups,
            id,
            target,
            at,
            key_dir,
            key_id,
        } => {
            let engine = existing(backups)?;
            let opts = DbArgs {
                dir: target.clone(),
                key_dir: key_dir.clone(),
                key_id: *key_id,
                history_secs: DbArgs::DEFAULT_HISTORY_SECS,
            }
            .options()?;
            let b = bar("restore");
            let start = std::time::Instant::now();
            let r = engine.restore(*id, target, *at, &opts, &mut tick(&b));
            b.finish_and_clear();
            let r = r?;
            let secs = start.elapsed().as_secs_f64();
            match r.keys {
                None => println!(
                    "restored backup {} (state at {}) into {}: {} bytes ({})",
                    r.id,
                    ts_text(r.ts),
                    target.display(),
                    r.bytes,
                    mb_per_sec(r.bytes, secs)
                ),
                Some(keys) => println!(
                    "restored backup {} as of {} into {}: {keys} keys",
                    r.id,
                    ts_text(r.ts),
                    target.display()
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        BackupCommand::Purge { backups, keep } => {
            let engine = existing(backups)?;
            let p = engine.purge(*keep)?;
            println!(
                "removed {} backups ({:?}), {} incomplete, {} shared files",
                p.backups.len(),
                p.backups,
                p.incomplete.len(),
                p.shared_files
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
