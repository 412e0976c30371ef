//! The peer engines, each configured for a fair race (see
//! `benches/README.md`): the same cache budget, compression off unless
//! asked for, bloom filters at 10 bits per key where the engine has them,
//! no fsync per write except in `fillsync`.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;
use redb::ReadableTable;

use super::engines::{count, err, BenchDb, EngineSettings};

/// Opens peer `name` in `dir`.
pub(crate) fn open(name: &str, dir: &Path, s: EngineSettings) -> Result<Box<dyn BenchDb>, String> {
    match name {
        "rocksdb" => Ok(Box::new(Rocks::open(dir, s)?)),
        "fjall" => Ok(Box::new(Fjall::open(dir, s)?)),
        "redb" => Ok(Box::new(Redb::open(dir, s)?)),
        "sled" => Ok(Box::new(Sled::open(dir, s)?)),
        other => Err(format!("unknown peer {other:?}")),
    }
}

/// Peers' read-modify-write: the engines' own transactions differ too much
/// to compare; this is a plain read then write (a lower bound on their
/// cost, where Strata runs a serializable transaction).
fn rmw(db: &dyn BenchDb, key: &[u8], value: &[u8]) -> Result<(), String> {
    let _ = db.get(key)?;
    db.put(key, value, false)
}

struct Rocks {
    db: rocksdb::DB,
}

impl Rocks {
    fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        let mut opts = rocksdb::Options::default();
        opts.create_if_missing(true);
        opts.increase_parallelism(2);
        let mut table = rocksdb::BlockBasedOptions::default();
        let cache = rocksdb::Cache::new_lru_cache(s.cache_bytes);
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        opts.set_block_based_table_factory(&table);
        opts.set_compression_type(if s.compression {
            rocksdb::DBCompressionType::Zstd
        } else {
            rocksdb::DBCompressionType::None
        });
        let db = rocksdb::DB::open(&opts, dir).map_err(err)?;
        Ok(Rocks { db })
    }
}

impl BenchDb for Rocks {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        let mut wo = rocksdb::WriteOptions::default();
        wo.set_sync(sync);
        self.db.put_opt(key, value, &wo).map_err(err)
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        Ok(self.db.get_pinned(key).map_err(err)?.map(|v| v.len()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
        let it = self.db.iterator(rocksdb::IteratorMode::From(
            start,
            rocksdb::Direction::Forward,
        ));
        count(it.take(n))
    }
    fn scan_all(&self, reverse: bool) -> Result<usize, String> {
        let mode = if reverse {
            rocksdb::IteratorMode::End
        } else {
            rocksdb::IteratorMode::Start
        };
        count(self.db.iterator(mode))
    }
    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        rmw(self, key, value)
    }
    fn settle(&self) -> Result<(), String> {
        self.db.flush().map_err(err)
    }
    fn compact(&self) -> Result<bool, String> {
        self.db.compact_range::<&[u8], &[u8]>(None, None);
        Ok(true)
    }
}

struct Fjall {
    keyspace: fjall::Keyspace,
    part: fjall::PartitionHandle,
}

impl Fjall {
    fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        let keyspace = fjall::Config::new(dir)
            .cache_size(s.cache_bytes as u64)
            .open()
            .map_err(err)?;
        let opts = fjall::PartitionCreateOptions::default()
            .compression(if s.compression {
                fjall::CompressionType::Lz4
            } else {
                fjall::CompressionType::None
            })
            .bloom_filter_bits(Some(10));
        let part = keyspace.open_partition("bench", opts).map_err(err)?;
        Ok(Fjall { keyspace, part })
    }
}

impl BenchDb for Fjall {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        self.part.insert(key, value).map_err(err)?;
        if sync {
            self.keyspace
                .persist(fjall::PersistMode::SyncAll)
                .map_err(err)?;
        }
        Ok(())
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        Ok(self.part.get(key).map_err(err)?.map(|v| v.len()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
        count(self.part.range(start.to_vec()..).take(n))
    }
    fn scan_all(&self, reverse: bool) -> Result<usize, String> {
        if reverse {
            count(self.part.iter().rev())
        } else {
            count(self.part.iter())
        }
    }
    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        rmw(self, key, value)
    }
    fn settle(&self) -> Result<(), String> {
        self.keyspace
            .persist(fjall::PersistMode::SyncAll)
            .map_err(err)
    }
    fn compact(&self) -> Result<bool, String> {
        self.part.major_compact().map_err(err).map(|()| true)
    }
}

const REDB_TABLE: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("bench");

/// redb commits each write transaction with a page-level copy-on-write
/// tree, so a transaction per put would measure commits, not writes:
/// writes are buffered and committed 1,000 at a time (each `fillsync`
/// write commits alone, durably).
struct Redb {
    db: redb::Database,
    pending: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
    batch: AtomicUsize,
}

impl Redb {
    fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        let db = redb::Builder::new()
            .set_cache_size(s.cache_bytes)
            .create(dir.join("bench.redb"))
            .map_err(err)?;
        let w = db.begin_write().map_err(err)?;
        w.open_table(REDB_TABLE).map_err(err)?;
        w.commit().map_err(err)?;
        Ok(Redb {
            db,
            pending: Mutex::new(Vec::new()),
            batch: AtomicUsize::new(1000),
        })
    }

    fn commit(&self, writes: Vec<(Vec<u8>, Vec<u8>)>, durable: bool) -> Result<(), String> {
        let mut w = self.db.begin_write().map_err(err)?;
        if !durable {
            w.set_durability(redb::Durability::None);
        }
        {
            let mut t = w.open_table(REDB_TABLE).map_err(err)?;
            for (k, v) in &writes {
                t.insert(k.as_slice(), v.as_slice()).map_err(err)?;
            }
        }
        w.commit().map_err(err)
    }
}

impl BenchDb for Redb {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        if sync {
            return self.commit(vec![(key.to_vec(), value.to_vec())], true);
        }
        let full = {
            let mut p = self.pending.lock();
            p.push((key.to_vec(), value.to_vec()));
            (p.len() >= self.batch.load(Ordering::Relaxed)).then(|| std::mem::take(&mut *p))
        };
        match full {
            Some(writes) => self.commit(writes, false),
            None => Ok(()),
        }
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(REDB_TABLE).map_err(err)?;
        Ok(t.get(key).map_err(err)?.map(|v| v.value().len()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(REDB_TABLE).map_err(err)?;
        count(t.range(start..).map_err(err)?.take(n))
    }
    fn scan_all(&self, reverse: bool) -> Result<usize, String> {
        let r = self.db.begin_read().map_err(err)?;
        let t = r.open_table(REDB_TABLE).map_err(err)?;
        let it = t.iter().map_err(err)?;
        if reverse {
            count(it.rev())
        } else {
            count(it)
        }
    }
    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let mut w = self.db.begin_write().map_err(err)?;
        w.set_durability(redb::Durability::None);
        {
            let mut t = w.open_table(REDB_TABLE).map_err(err)?;
            let _ = t.get(key).map_err(err)?.map(|v| v.value().len());
            t.insert(key, value).map_err(err)?;
        }
        w.commit().map_err(err)
    }
    fn settle(&self) -> Result<(), String> {
        let writes = std::mem::take(&mut *self.pending.lock());
        self.commit(writes, true)
    }
    /// A B-tree has no levels to merge (`Database::compact` only returns
    /// free pages, and needs the database exclusively).
    fn compact(&self) -> Result<bool, String> {
        Ok(false)
    }
}

struct Sled {
    db: sled::Db,
}

impl Sled {
    fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        // sled's compression needs a build feature this crate does not
        // enable: it runs uncompressed.
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(s.cache_bytes as u64)
            .open()
            .map_err(err)?;
        Ok(Sled { db })
    }
}

impl BenchDb for Sled {
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        self.db.insert(key, value).map_err(err)?;
        if sync {
            self.db.flush().map_err(err)?;
        }
        Ok(())
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        Ok(self.db.get(key).map_err(err)?.map(|v| v.len()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
        count(self.db.range(start..).take(n))
    }
    fn scan_all(&self, reverse: bool) -> Result<usize, String> {
        if reverse {
            count(self.db.iter().rev())
        } else {
            count(self.db.iter())
        }
    }
    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        rmw(self, key, value)
    }
    fn settle(&self) -> Result<(), String> {
        self.db.flush().map(|_| ()).map_err(err)
    }
    /// sled offers no full compaction.
    fn compact(&self) -> Result<bool, String> {
        Ok(false)
    }
}
