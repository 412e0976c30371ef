//! The engines a benchmark can drive, behind one small trait: Strata, and
//! with the `peers` feature RocksDB, fjall, redb and sled.

use std::path::Path;

use strata::engine::{Db, Isolation, Keyspace, Options, WriteOptions};
use strata::format::codec::Compression;

/// What every workload needs from an engine.
pub(crate) trait BenchDb: Send + Sync {
    /// How the engine is set up, beyond the shared cache budget, for the
    /// report.
    fn settings(&self) -> String;
    /// Writes one entry; with `sync`, durable before it returns.
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String>;
    /// Reads one entry; returns its length.
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String>;
    /// Seeks to `start` and reads up to `n` entries; returns how many.
    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String>;
    /// Reads every entry in order (or in reverse); returns how many.
    fn scan_all(&self, reverse: bool) -> Result<usize, String>;
    /// Reads `key` and writes `value` in one transaction, retrying on
    /// conflict.
    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String>;
    /// Makes everything written durable and settled (flushes memtables),
    /// before disk usage is measured.
    fn settle(&self) -> Result<(), String>;
    /// Compacts everything into the last level; false when the engine
    /// offers no full compaction.
    fn compact(&self) -> Result<bool, String>;
    /// What the engine counts of its own write stalls so far, for the
    /// progress output (`None` where it does not say).
    fn stall_counters(&self) -> Option<String> {
        None
    }
}

/// The names `--engine` accepts: fjall2 and redb2 are those engines'
/// previous major releases.
pub(crate) const ENGINES: [&str; 7] = [
    "strata", "rocksdb", "fjall", "fjall2", "redb", "redb2", "sled",
];

/// Each engine's crate and version as built, for the report (a test keeps
/// the peers' equal to Cargo.lock).
pub(crate) fn version(name: &str) -> &'static str {
    match name {
        "strata" => concat!("strata ", env!("CARGO_PKG_VERSION")),
        "rocksdb" => "rocksdb 0.25.0 (librocksdb-sys 0.19.0+11.8.1)",
        "fjall" => "fjall 3.1.13",
        "fjall2" => "fjall 2.11.2",
        "redb" => "redb 5.0.0",
        "redb2" => "redb 2.6.4",
        "sled" => "sled 0.34.7",
        _ => "unknown",
    }
}

/// Settings every engine gets, for a fair race.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EngineSettings {
    /// Bytes of block (or page) cache.
    pub cache_bytes: usize,
    /// Compress data (zstd where the engine has it).
    pub compression: bool,
    /// Encrypt data at rest (Strata only).
    pub encryption: bool,
    /// How Strata reads SSTs (`None`: the engine's default).
    pub sst_reads: Option<strata::engine::SstReads>,
    /// Store values of at least this many bytes apart from the tree, in
    /// each LSM engine's own way (Strata's blob files, RocksDB's BlobDB,
    /// fjall's key-value separation); `None`: every value in the tree.
    pub separate_from: Option<usize>,
}

/// Values this long or longer are stored apart from the tree by every LSM
/// engine of the race (Strata's default threshold).
pub(crate) const SEPARATION_THRESHOLD: usize = 4096;

/// Opens engine `name` in `dir`.
pub(crate) fn open(name: &str, dir: &Path, s: EngineSettings) -> Result<Box<dyn BenchDb>, String> {
    match name {
        "strata" => Ok(Box::new(StrataDb::open(dir, s)?)),
        #[cfg(feature = "peers")]
        "rocksdb" | "fjall" | "fjall2" | "redb" | "redb2" | "sled" => {
            super::peers::open(name, dir, s)
        }
        #[cfg(not(feature = "peers"))]
        "rocksdb" | "fjall" | "fjall2" | "redb" | "redb2" | "sled" => Err(format!(
            "{name} is built only with the `peers` feature: cargo run --release --features peers -- bench --engine {name}"
        )),
        other => Err(format!("unknown engine {other:?} (one of {})", ENGINES.join(", "))),
    }
}

pub(crate) fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Counts the entries a peer's iterator yields, stopping at an error.
#[cfg(feature = "peers")]
pub(crate) fn count<T, E: std::fmt::Display>(
    it: impl Iterator<Item = Result<T, E>>,
) -> Result<usize, String> {
    let mut n = 0;
    for e in it {
        e.map_err(err)?;
        n += 1;
    }
    Ok(n)
}

/// Counts up to `n` entries of a Strata scan, each lent by the iterator
/// (as redb's guards lend theirs) rather than copied out.
fn lend(mut it: strata_engine::Iter, n: usize, reverse: bool) -> Result<usize, String> {
    let mut seen = 0;
    while seen < n {
        let step = if reverse {
            it.next_back_ref()
        } else {
            it.next_ref()
        };
        match step {
            Some(r) => {
                r.map_err(err)?;
                seen += 1;
            }
            None => break,
        }
    }
    Ok(seen)
}

/// Strata's engine, one keyspace.
struct StrataDb {
    db: Db,
    ks: Keyspace,
    /// The separation threshold the race set, if any.
    separate_from: Option<usize>,
}

impl StrataDb {
    fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        let mut opts = Options {
            block_cache_size: s.cache_bytes,
            ..Options::default()
        };
        if s.separate_from.is_some() {
            opts.blob_threshold = s.separate_from;
        }
        if let Some(reads) = s.sst_reads {
            opts.sst_reads = reads;
        }
        opts.compression = if s.compression {
            vec![
                Compression::None,
                Compression::Zstd { level: 1 },
                Compression::Zstd { level: 3 },
            ]
        } else {
            vec![Compression::None]
        };
        if s.encryption {
            opts.key_provider = Some(std::sync::Arc::new(strata::engine::MemoryKeyProvider::new(
                1, [0x5a; 32],
            )));
        }
        let db = Db::open(dir, opts).map_err(err)?;
        let ks = db.keyspace("bench").map_err(err)?;
        Ok(StrataDb {
            db,
            ks,
            separate_from: s.separate_from,
        })
    }
}

impl BenchDb for StrataDb {
    fn settings(&self) -> String {
        let base =
            "defaults (4 KiB blocks, bloom 10 bits/key, leveled compaction), WAL synced only by fillsync";
        match self.separate_from {
            Some(min) => format!("{base}, values from {min} bytes in blob files"),
            None => base.into(),
        }
    }
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        if sync {
            let mut b = self.db.batch();
            b.put(&self.ks, key, value).map_err(err)?;
            self.db
                .write(b, WriteOptions { sync: true })
                .map(|_| ())
                .map_err(err)
        } else {
            self.ks.put(key, value).map(|_| ()).map_err(err)
        }
    }

    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        self.ks.get(key).map(|v| v.map(|v| v.len())).map_err(err)
    }

    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
        lend(self.ks.range(start..).map_err(err)?, n, false)
    }

    fn scan_all(&self, reverse: bool) -> Result<usize, String> {
        lend(self.ks.iter().map_err(err)?, usize::MAX, reverse)
    }

    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        self.db
            .transaction(Isolation::Serializable, |tx| {
                let _ = tx.get(&self.ks, key)?;
                tx.put(&self.ks, key, value)
            })
            .map_err(err)
    }

    fn settle(&self) -> Result<(), String> {
        self.db.flush().map_err(err)
    }
    fn stall_counters(&self) -> Option<String> {
        let s = self.db.stats();
        Some(format!(
            "{} stops ({:.1} ms in all), {} slowdowns of 1 ms",
            s.write_stalls,
            s.write_stall_micros as f64 / 1000.0,
            s.write_slowdowns
        ))
    }

    fn compact(&self) -> Result<bool, String> {
        self.db.compact().map_err(err).map(|()| true)
    }
}

/// Bytes of every file under `dir`.
pub(crate) fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(meta) = e.metadata() else { continue };
        if meta.is_dir() {
            total += disk_usage(&e.path());
        } else {
            total += meta.len();
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The versions the report names are the ones Cargo.lock builds.
    #[test]
    fn versions_match_cargo_lock() {
        let lock = include_str!("../../../Cargo.lock");
        let locked = |name: &str, version: &str| {
            lock.contains(&format!("name = \"{name}\"\nversion = \"{version}\""))
        };
        for engine in ENGINES {
            let v = version(engine);
            let mut words = v.split([' ', '(', ')']).filter(|w| !w.is_empty());
            while let (Some(name), Some(ver)) = (words.next(), words.next()) {
                if name == "strata" {
                    assert_eq!(ver, env!("CARGO_PKG_VERSION"));
                } else {
                    assert!(
                        locked(name, ver),
                        "{engine}: {name} {ver} is not in Cargo.lock"
                    );
                }
            }
        }
    }
}
