//! fjall at its current release (3) and its previous one (2), each with
//! its defaults apart from the cache budget and compression: fjall 3's
//! bloom filters (10 bits per key below level 0), fjall 2's at 10 bits
//! per key as its documentation suggests.

use std::path::Path;

use super::super::engines::{count, err, BenchDb, EngineSettings};
use super::rmw;

/// fjall 3: one keyspace of a database.
pub(super) struct Fjall {
    db: fjall::Database,
    ks: fjall::Keyspace,
    /// Key-value separation is on.
    blobs: bool,
}

impl Fjall {
    pub(super) fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        use fjall::config::CompressionPolicy;
        let db = fjall::Database::builder(dir)
            .cache_size(s.cache_bytes as u64)
            .open()
            .map_err(err)?;
        let compression = if s.compression {
            CompressionPolicy::all(fjall::CompressionType::Lz4)
        } else {
            CompressionPolicy::disabled()
        };
        let separation = s.separate_from.map(|min| {
            fjall::KvSeparationOptions::default()
                .separation_threshold(min as u32)
                .compression(if s.compression {
                    fjall::CompressionType::Lz4
                } else {
                    fjall::CompressionType::None
                })
        });
        let blobs = separation.is_some();
        let ks = db
            .keyspace("bench", || {
                fjall::KeyspaceCreateOptions::default()
                    .data_block_compression_policy(compression)
                    .with_kv_separation(separation)
            })
            .map_err(err)?;
        Ok(Fjall { db, ks, blobs })
    }
}

/// A fjall 3 iterator's entries, key and value read.
fn pairs(
    it: impl Iterator<Item = fjall::Guard>,
) -> impl Iterator<Item = fjall::Result<fjall::KvPair>> {
    it.map(fjall::Guard::into_inner)
}

impl BenchDb for Fjall {
    fn settings(&self) -> String {
        let base = "defaults (4 KiB blocks, leveled compaction, bloom filters), journal persisted only by fillsync";
        if self.blobs {
            format!("{base}, key-value separation from 4096 bytes")
        } else {
            base.into()
        }
    }
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        self.ks.insert(key, value).map_err(err)?;
        if sync {
            self.db.persist(fjall::PersistMode::SyncAll).map_err(err)?;
        }
        Ok(())
    }
    fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
        Ok(self.ks.get(key).map_err(err)?.map(|v| v.len()))
    }
    fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
        count(pairs(self.ks.range(start..)).take(n))
    }
    fn scan_all(&self, reverse: bool) -> Result<usize, String> {
        if reverse {
            count(pairs(self.ks.iter().rev()))
        } else {
            count(pairs(self.ks.iter()))
        }
    }
    fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
        rmw(self, key, value)
    }
    fn settle(&self) -> Result<(), String> {
        self.db.persist(fjall::PersistMode::SyncAll).map_err(err)
    }
    fn compact(&self) -> Result<bool, String> {
        self.ks.major_compact().map_err(err).map(|()| true)
    }
}

/// fjall 2: one partition of a keyspace.
pub(super) struct Fjall2 {
    keyspace: fjall2::Keyspace,
    part: fjall2::PartitionHandle,
    /// Key-value separation is on.
    blobs: bool,
}

impl Fjall2 {
    pub(super) fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
        let keyspace = fjall2::Config::new(dir)
            .cache_size(s.cache_bytes as u64)
            .open()
            .map_err(err)?;
        let mut opts = fjall2::PartitionCreateOptions::default()
            .compression(if s.compression {
                fjall2::CompressionType::Lz4
            } else {
                fjall2::CompressionType::None
            })
            .bloom_filter_bits(Some(10));
        if let Some(min) = s.separate_from {
            opts = opts.with_kv_separation(
                fjall2::KvSeparationOptions::default().separation_threshold(min as u32),
            );
        }
        let part = keyspace.open_partition("bench", opts).map_err(err)?;
        Ok(Fjall2 {
            keyspace,
            part,
            blobs: s.separate_from.is_some(),
        })
    }
}

impl BenchDb for Fjall2 {
    fn settings(&self) -> String {
        let base = "defaults, bloom 10 bits/key, journal persisted only by fillsync";
        if self.blobs {
            format!("{base}, key-value separation from 4096 bytes")
        } else {
            base.into()
        }
    }
    fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
        self.part.insert(key, value).map_err(err)?;
        if sync {
            self.keyspace
                .persist(fjall2::PersistMode::SyncAll)
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
            .persist(fjall2::PersistMode::SyncAll)
            .map_err(err)
    }
    fn compact(&self) -> Result<bool, String> {
        self.part.major_compact().map_err(err).map(|()| true)
    }
}
