//! `strata inspect`: a database directory, or one SST, WAL or manifest,
//! decoded for a person to read.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use strata::engine::{Db, EncryptionKeyProvider};
use strata::format::codec::{EncryptionKey, Keyring};
use strata::format::key::InternalKeyRef;
use strata::format::log::{peek_header, LogKind, LogReadOptions, LogReader};
use strata::format::sst::{Table, TableReadOptions};

use super::{DbArgs, Failure};

/// Arguments of `strata inspect`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    #[command(subcommand)]
    what: Option<Target>,
    /// The database directory (when no file kind is named).
    dir: Option<PathBuf>,
    /// Directory of key files, for encrypted data.
    #[arg(long, value_name = "DIR", global = true)]
    key_dir: Option<PathBuf>,
    /// The current key id in `--key-dir`.
    #[arg(long, value_name = "ID", default_value_t = 1, global = true)]
    key_id: u32,
}

#[derive(Debug, Subcommand)]
enum Target {
    /// One SST: footer, properties, index, and (with --entries) its entries.
    Sst {
        /// The file (`NNNNNN.sst`).
        file: PathBuf,
        /// Print every entry too.
        #[arg(long)]
        entries: bool,
    },
    /// One WAL: every record (timestamp, keyspace id, kind, key, value size).
    Wal {
        /// The file (`NNNNNN.log`).
        file: PathBuf,
    },
    /// One manifest: every version edit.
    Manifest {
        /// The file (`MANIFEST-NNNNNN`).
        file: PathBuf,
    },
}

/// A key for a person: printable ASCII as is, other bytes as `\xNN`.
pub(crate) fn show(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if (0x20..0x7f).contains(&b) && b != b'\\' {
            out.push(b as char);
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn file_number(path: &Path) -> Result<u64, Failure> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| Failure(format!("{}: not a file name", path.display())))?;
    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
    digits
        .parse()
        .map_err(|_| Failure(format!("{}: no file number in its name", path.display())))
}

fn keyring(args: &InspectArgs, id: Option<u32>) -> Result<Keyring, Failure> {
    let mut ring = Keyring::new();
    if let (Some(dir), Some(id)) = (&args.key_dir, id) {
        let provider = strata::engine::FileKeyProvider::new(dir, args.key_id)?;
        let key = provider
            .key(id)
            .ok_or_else(|| Failure(format!("key {id} is not in {}", dir.display())))?;
        ring.insert(Arc::new(EncryptionKey::new(id, *key.bytes())));
    }
    Ok(ring)
}

fn read(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure(format!("{}: {e}", path.display())))
}

fn format_err(path: &Path, e: strata::format::Error) -> Failure {
    Failure(format!("{}: {e}", path.display()))
}

/// Runs `strata inspect`.
pub(crate) fn run(args: &InspectArgs) -> Result<ExitCode, Failure> {
    match &args.what {
        None => {
            let Some(dir) = &args.dir else {
                return Err(Failure(
                    "name a database directory, or sst|wal|manifest FILE".into(),
                ));
            };
            inspect_dir(args, dir)
        }
        Some(Target::Sst { file, entries }) => inspect_sst(args, file, *entries),
        Some(Target::Wal { file }) => inspect_log(args, file, LogKind::Wal),
        Some(Target::Manifest { file }) => inspect_log(args, file, LogKind::Manifest),
    }
}

fn inspect_dir(args: &InspectArgs, dir: &Path) -> Result<ExitCode, Failure> {
    let db_args = DbArgs {
        dir: dir.to_path_buf(),
        key_dir: args.key_dir.clone(),
        key_id: args.key_id,
        history_secs: 0,
    };
    db_args.existing()?;
    let d = Db::describe_dir(dir, &db_args.options()?)?;
    let mut out = String::new();
    match &d.manifest {
        Some((p, s)) => {
            let _ = writeln!(out, "manifest  {} ({s} bytes)", p.display());
        }
        None => {
            let _ = writeln!(out, "manifest  none (an empty directory)");
        }
    }
    let _ = writeln!(
        out,
        "log number {}, last timestamp {}, history from {}",
        d.log_number,
        t(d.last_timestamp),
        t(d.history_horizon)
    );
    for (p, s) in &d.wals {
        let _ = writeln!(out, "wal       {} ({s} bytes)", p.display());
    }
    for k in &d.keyspaces {
        let files: usize = k.levels.iter().map(Vec::len).sum();
        let bytes: u64 = k.levels.iter().flatten().map(|t| t.size).sum();
        let _ = writeln!(
            out,
            "keyspace {:?} (id {}): {files} tables, {bytes} bytes",
            k.name, k.id
        );
        for (l, level) in k.levels.iter().enumerate() {
            if level.is_empty() {
                continue;
            }
            let lb: u64 = level.iter().map(|t| t.size).sum();
            let _ = writeln!(out, "  L{l}: {} tables, {lb} bytes", level.len());
            for t in level {
                let _ = writeln!(
                    out,
                    "    {:06}.sst {:>10} bytes  keys {} .. {}  ts {} .. {}  key {}",
                    t.number,
                    t.size,
                    show(&t.smallest),
                    show(&t.largest),
                    self::t(t.min_ts),
                    self::t(t.max_ts),
                    t.key_id.map_or("plaintext".into(), |k| k.to_string())
                );
            }
        }
    }
    for (id, bytes) in &d.bytes_by_key_id {
        let _ = writeln!(
            out,
            "bytes under key {}: {bytes}",
            id.map_or("none (plaintext)".into(), |k| k.to_string())
        );
    }
    for u in &d.unreferenced {
        let _ = writeln!(out, "unreferenced {u} (the next open removes it)");
    }
    for f in &d.foreign {
        let _ = writeln!(
            out,
            "foreign   {f} (not the database's file: the next open leaves it alone)"
        );
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn inspect_sst(args: &InspectArgs, file: &Path, entries: bool) -> Result<ExitCode, Failure> {
    let data = read(file)?;
    let number = file_number(file)?;
    let key_id = strata::format::sst::peek_key_id(&data);
    let ring = keyring(args, key_id)?;
    let opts = TableReadOptions {
        file_number: number,
        expected_uid: None,
        keyring: Some(&ring),
        expected_key_id: None,
    };
    let table = Table::open(bytes::Bytes::from(data), &opts).map_err(|e| format_err(file, e))?;
    let f = table.footer();
    let p = table.properties();
    let mut out = String::new();
    let _ = writeln!(out, "sst {number}: {} bytes", table.size());
    let uid: String = f.file_uid.iter().map(|b| format!("{b:02x}")).collect();
    let _ = writeln!(
        out,
        "footer: uid {uid}, key {}, index {:?}, filter {:?}, properties {:?}",
        f.key_id.map_or("plaintext".into(), |k| k.to_string()),
        f.index,
        f.filter,
        f.properties
    );
    let _ = writeln!(
        out,
        "properties: {} entries ({} tombstones, {} distinct keys) in {} data blocks of {} bytes; keys {} .. {}; ts {} .. {}; raw keys {} bytes, values {} bytes; compression {} level {}; bloom {} bits/key; restart interval {}",
        p.entries, p.tombstones, p.distinct_keys, p.data_blocks, p.data_bytes,
        show(&user(&p.smallest_key)), show(&user(&p.largest_key)), t(p.min_ts), t(p.max_ts),
        p.raw_key_bytes, p.raw_value_bytes, p.compression, p.compression_level,
        p.bloom_bits_per_key, p.restart_interval
    );
    let mut it = table.index_iter();
    it.seek_to_first().map_err(|e| format_err(file, e))?;
    let mut block = 0;
    while it.valid() {
        let _ = writeln!(out, "  block {block}: up to {}", describe_key(it.key()));
        block += 1;
        it.next().map_err(|e| format_err(file, e))?;
    }
    if entries {
        let mut it = table.iter_without_fill();
        it.seek_to_first().map_err(|e| format_err(file, e))?;
        while it.valid() {
            let _ = writeln!(
                out,
                "  {} = {} bytes",
                describe_key(it.key()),
                it.value().len()
            );
            it.next().map_err(|e| format_err(file, e))?;
        }
    }
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

fn user(internal: &[u8]) -> Vec<u8> {
    InternalKeyRef::parse(internal).map_or_else(|_| internal.to_vec(), |k| k.user_key.to_vec())
}

fn describe_key(internal: &[u8]) -> String {
    match InternalKeyRef::parse(internal) {
        Ok(k) => format!("{} @{} {:?}", show(k.user_key), t(k.ts), k.kind),
        Err(_) => format!("(bad key {})", show(internal)),
    }
}

fn inspect_log(args: &InspectArgs, file: &Path, kind: LogKind) -> Result<ExitCode, Failure> {
    let data = read(file)?;
    let number = file_number(file)?;
    let ring = keyring(args, peek_header(&data).and_then(|h| h.key_id))?;
    let opts = LogReadOptions {
        keyring: Some(&ring),
        ..LogReadOptions::new(number, kind)
    };
    let mut reader = LogReader::new(&data, &opts).map_err(|e| format_err(file, e))?;
    let mut out = String::new();
    if let Some(h) = reader.header() {
        let _ = writeln!(
            out,
            "{kind:?} log {}: {} bytes, key {}",
            h.file_number,
            data.len(),
            h.key_id.map_or("plaintext".into(), |k| k.to_string())
        );
    }
    let mut records = 0;
    while let Some((at, record)) = reader.next_record().map_err(|e| format_err(file, e))? {
        records += 1;
        match kind {
            LogKind::Manifest => {
                let edit = strata::format::manifest::VersionEdit::decode(&record, at)
                    .map_err(|e| format_err(file, e))?;
                let _ = writeln!(out, "@{at}: {edit:?}");
            }
            LogKind::Wal => {
                let batch = strata::format::batch::BatchRecord::decode(&record, at)
                    .map_err(|e| format_err(file, e))?;
                let _ = writeln!(out, "@{at}: ts {} ({} ops)", t(batch.ts), batch.ops().len());
                for op in batch.ops() {
                    let _ = writeln!(
                        out,
                        "    keyspace {} {:?} {} ({} bytes)",
                        op.keyspace,
                        op.kind,
                        show(op.key),
                        op.value.len()
                    );
                }
            }
        }
    }
    let _ = writeln!(out, "{records} records; ends {:?}", reader.end());
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// A raw timestamp as the commands print timestamps.
fn t(raw: u64) -> String {
    super::ts_text(strata::engine::Timestamp(raw))
}
