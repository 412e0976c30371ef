//! redb at its current release (5) and its previous one (2): the same
//! code for both, their APIs agreeing on everything used here.
//!
//! redb commits each write transaction with a page-level copy-on-write
//! tree, so a transaction per put would measure commits, not writes:
//! writes are buffered and committed 1,000 at a time without durability
//! (each `fillsync` write commits alone, durably).

/// What `WriteTransaction::set_durability` returns: nothing in redb 2, a
/// result in redb 5.
trait DurabilitySet {
    fn checked(self) -> Result<(), String>;
}

impl DurabilitySet for () {
    fn checked(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: std::fmt::Display> DurabilitySet for Result<(), E> {
    fn checked(self) -> Result<(), String> {
        self.map_err(|e| e.to_string())
    }
}

/// Writes per buffered commit.
const BATCH: usize = 1000;

macro_rules! redb_engine {
    ($name:ident, $redb:ident, [$($read:ident),*]) => {
        pub(super) mod $name {
            use std::path::Path;

            use parking_lot::Mutex;
            use $redb::{$($read),*};

            use super::super::super::engines::{count, err, BenchDb, EngineSettings};
            use super::{DurabilitySet, BATCH};

            const TABLE: $redb::TableDefinition<&[u8], &[u8]> =
                $redb::TableDefinition::new("bench");

            pub(crate) struct Redb {
                db: $redb::Database,
                pending: Mutex<Vec<(Vec<u8>, Vec<u8>)>>,
            }

            impl Redb {
                pub(crate) fn open(dir: &Path, s: EngineSettings) -> Result<Self, String> {
                    let db = $redb::Builder::new()
                        .set_cache_size(s.cache_bytes)
                        .create(dir.join("bench.redb"))
                        .map_err(err)?;
                    let w = db.begin_write().map_err(err)?;
                    w.open_table(TABLE).map_err(err)?;
                    w.commit().map_err(err)?;
                    Ok(Redb {
                        db,
                        pending: Mutex::new(Vec::new()),
                    })
                }

                fn commit(&self, writes: Vec<(Vec<u8>, Vec<u8>)>, durable: bool) -> Result<(), String> {
                    let mut w = self.db.begin_write().map_err(err)?;
                    if !durable {
                        w.set_durability($redb::Durability::None).checked()?;
                    }
                    {
                        let mut t = w.open_table(TABLE).map_err(err)?;
                        for (k, v) in &writes {
                            t.insert(k.as_slice(), v.as_slice()).map_err(err)?;
                        }
                    }
                    w.commit().map_err(err)
                }
            }

            impl BenchDb for Redb {
                fn settings(&self) -> String {
                    format!("defaults; {BATCH} writes per non-durable commit, each fillsync write its own durable commit")
                }
                fn put(&self, key: &[u8], value: &[u8], sync: bool) -> Result<(), String> {
                    if sync {
                        return self.commit(vec![(key.to_vec(), value.to_vec())], true);
                    }
                    let full = {
                        let mut p = self.pending.lock();
                        p.push((key.to_vec(), value.to_vec()));
                        (p.len() >= BATCH).then(|| std::mem::take(&mut *p))
                    };
                    match full {
                        Some(writes) => self.commit(writes, false),
                        None => Ok(()),
                    }
                }
                fn get(&self, key: &[u8]) -> Result<Option<usize>, String> {
                    let r = self.db.begin_read().map_err(err)?;
                    let t = r.open_table(TABLE).map_err(err)?;
                    let len = t.get(key).map_err(err)?.map(|v| v.value().len());
                    Ok(len)
                }
                fn scan(&self, start: &[u8], n: usize) -> Result<usize, String> {
                    let r = self.db.begin_read().map_err(err)?;
                    let t = r.open_table(TABLE).map_err(err)?;
                    let n = count(t.range(start..).map_err(err)?.take(n))?;
                    Ok(n)
                }
                fn scan_all(&self, reverse: bool) -> Result<usize, String> {
                    let r = self.db.begin_read().map_err(err)?;
                    let t = r.open_table(TABLE).map_err(err)?;
                    let it = t.iter().map_err(err)?;
                    if reverse {
                        count(it.rev())
                    } else {
                        count(it)
                    }
                }
                fn read_modify_write(&self, key: &[u8], value: &[u8]) -> Result<(), String> {
                    let mut w = self.db.begin_write().map_err(err)?;
                    w.set_durability($redb::Durability::None).checked()?;
                    {
                        let mut t = w.open_table(TABLE).map_err(err)?;
                        let _ = t.get(key).map_err(err)?.map(|v| v.value().len());
                        t.insert(key, value).map_err(err)?;
                    }
                    w.commit().map_err(err)
                }
                fn settle(&self) -> Result<(), String> {
                    let writes = std::mem::take(&mut *self.pending.lock());
                    self.commit(writes, true)
                }
                /// A B-tree has no levels to merge (`Database::compact`
                /// only returns free pages, and needs the database
                /// exclusively).
                fn compact(&self) -> Result<bool, String> {
                    Ok(false)
                }
            }
        }
    };
}

// redb 5 moved `begin_read` into the `ReadableDatabase` trait.
redb_engine!(current, redb, [ReadableDatabase, ReadableTable]);
redb_engine!(previous, redb2, [ReadableTable]);
