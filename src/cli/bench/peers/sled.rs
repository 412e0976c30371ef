//! sled 0.34 (its current release; 1.0 is still an alpha), with its
//! defaults apart from the cache budget.

use std::path::Path;

use super::super::engines::{count, err, BenchDb, EngineSettings};
use super::rmw;

pub(super) struct Sled {
    db: sled::Db,
}

impl Sled {
    pub(super) fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
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
    fn settings(&self) -> String {
        "defaults, uncompressed, flushed only by fillsync".into()
    }
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
