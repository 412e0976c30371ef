//! Manual use of a database: get, put, delete, scan, history, compact and
//! stats. Each opens the database (recovering it), does one thing and
//! closes it.

use std::process::ExitCode;

use clap::Args;
use strata::engine::{Db, Keyspace, Timestamp};

use super::inspect::show;
use super::{DbArgs, Failure};

/// A database and one of its keyspaces.
#[derive(Debug, Args)]
pub(crate) struct KeyspaceArgs {
    #[command(flatten)]
    pub db: DbArgs,
    /// The keyspace.
    pub keyspace: String,
}

impl KeyspaceArgs {
    /// Opens the database and the keyspace, which must exist unless
    /// `create`; read-only (nothing written, no lock file) unless `write`.
    fn open(&self, create: bool, write: bool) -> Result<(Db, Keyspace), Failure> {
        // Only a write that may create the keyspace may create the
        // database (as `create_if_missing`); the rest need one.
        if !(create && write) {
            self.db.existing()?;
        }
        let db = if write {
            Db::open(&self.db.dir, self.db.options()?)?
        } else {
            Db::open_read_only(&self.db.dir, self.db.options()?)?
        };
        if !create && !db.keyspaces().contains(&self.keyspace) {
            return Err(Failure(format!(
                "no keyspace {:?} (there are: {})",
                self.keyspace,
                db.keyspaces().join(", ")
            )));
        }
        let ks = db.keyspace(&self.keyspace)?;
        Ok((db, ks))
    }
}

/// `strata get`.
#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    #[command(flatten)]
    ks: KeyspaceArgs,
    /// The key.
    key: String,
    /// Read as of this time: ISO-8601 (2026-12-04T10:00:00Z) or a raw
    /// timestamp (`--raw-timestamps` prints them).
    #[arg(long, value_name = "TIME", value_parser = super::parse_time)]
    at: Option<Timestamp>,
}

/// `strata put`.
#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    #[command(flatten)]
    ks: KeyspaceArgs,
    /// The key.
    key: String,
    /// The value.
    value: String,
}

/// `strata delete`.
#[derive(Debug, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    ks: KeyspaceArgs,
    /// The key.
    key: String,
}

/// `strata scan`.
#[derive(Debug, Args)]
pub(crate) struct ScanArgs {
    #[command(flatten)]
    ks: KeyspaceArgs,
    /// First key (inclusive).
    #[arg(long)]
    from: Option<String>,
    /// Last key (exclusive).
    #[arg(long)]
    to: Option<String>,
    /// At most this many entries.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// From the end.
    #[arg(long)]
    reverse: bool,
}

/// `strata history`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    #[command(flatten)]
    ks: KeyspaceArgs,
    /// The key.
    key: String,
}

fn value_text(v: &[u8]) -> String {
    match std::str::from_utf8(v) {
        Ok(s) if !s.chars().any(char::is_control) => s.to_owned(),
        _ => show(v),
    }
}

/// Prints the value; exit status 1 when the key is absent.
pub(crate) fn get(a: &GetArgs) -> Result<ExitCode, Failure> {
    let (db, ks) = a.ks.open(false, false)?;
    let v = match a.at {
        Some(ts) => ks.get_at(&a.key, ts)?,
        None => ks.get(&a.key)?,
    };
    db.close()?;
    match v {
        Some(v) => {
            println!("{}", value_text(&v));
            Ok(ExitCode::SUCCESS)
        }
        None => {
            eprintln!("strata: {:?} not found", a.key);
            Ok(ExitCode::from(1))
        }
    }
}

/// Writes a value, synced.
pub(crate) fn put(a: &PutArgs) -> Result<ExitCode, Failure> {
    let (db, ks) = a.ks.open(true, true)?;
    let mut b = db.batch();
    b.put(&ks, &a.key, &a.value)?;
    let ts = db.write(b, strata::engine::WriteOptions { sync: true })?;
    db.close()?;
    println!("written at {}", super::ts_text(ts));
    Ok(ExitCode::SUCCESS)
}

/// Deletes a key, synced.
pub(crate) fn delete(a: &DeleteArgs) -> Result<ExitCode, Failure> {
    let (db, ks) = a.ks.open(false, true)?;
    let mut b = db.batch();
    b.delete(&ks, &a.key)?;
    let ts = db.write(b, strata::engine::WriteOptions { sync: true })?;
    db.close()?;
    println!("deleted at {}", super::ts_text(ts));
    Ok(ExitCode::SUCCESS)
}

/// Prints entries in key order.
pub(crate) fn scan(a: &ScanArgs) -> Result<ExitCode, Failure> {
    let (db, ks) = a.ks.open(false, false)?;
    let from = a.from.clone().unwrap_or_default().into_bytes();
    let it = match &a.to {
        Some(to) => ks.range(from..to.clone().into_bytes())?,
        None => ks.range(from..)?,
    };
    let mut n = 0;
    let print = |r: strata::engine::Result<strata::engine::KvPair>| -> Result<(), Failure> {
        let (k, v) = r?;
        println!("{} = {}", show(&k), value_text(&v));
        Ok(())
    };
    if a.reverse {
        for r in it.rev().take(a.limit) {
            print(r)?;
            n += 1;
        }
    } else {
        for r in it.take(a.limit) {
            print(r)?;
            n += 1;
        }
    }
    db.close()?;
    eprintln!("{n} entries");
    Ok(ExitCode::SUCCESS)
}

/// Prints every version of a key in the history window, newest first.
pub(crate) fn history(a: &HistoryArgs) -> Result<ExitCode, Failure> {
    let (db, ks) = a.ks.open(false, false)?;
    for v in ks.history(&a.key)? {
        match v.value {
            Some(value) => println!("{} put {}", super::ts_text(v.ts), value_text(&value)),
            None => println!("{} delete", super::ts_text(v.ts)),
        }
    }
    db.close()?;
    Ok(ExitCode::SUCCESS)
}

/// Compacts every keyspace into its last level.
pub(crate) fn compact(a: &DbArgs) -> Result<ExitCode, Failure> {
    a.existing()?;
    let db = Db::open(&a.dir, a.options()?)?;
    db.compact()?;
    let s = db.stats();
    db.close()?;
    for k in &s.keyspaces {
        let bytes: u64 = k.levels.iter().map(|l| l.bytes).sum();
        let files: usize = k.levels.iter().map(|l| l.files).sum();
        println!("{}: {files} tables, {bytes} bytes", k.name);
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the engine's statistics in the Prometheus text format.
pub(crate) fn stats(a: &DbArgs) -> Result<ExitCode, Failure> {
    a.existing()?;
    let db = Db::open_read_only(&a.dir, a.options()?)?;
    let s = db.stats();
    db.close()?;
    print!("{}", strata::engine_prometheus(&s));
    Ok(ExitCode::SUCCESS)
}
