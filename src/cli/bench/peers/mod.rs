//! The peer engines, each configured for a fair race (see
//! `benches/README.md`): the same cache budget, compression off unless
//! asked for, bloom filters where the engine has them, no fsync per write
//! except in `fillsync`; otherwise as each one's documentation recommends.

mod fjall;
mod redb;
mod rocksdb;
mod sled;

use std::path::Path;

use super::engines::{BenchDb, EngineSettings};

/// Opens peer `name` in `dir`.
pub(crate) fn open(name: &str, dir: &Path, s: EngineSettings) -> Result<Box<dyn BenchDb>, String> {
    match name {
        "rocksdb" => Ok(Box::new(rocksdb::Rocks::open(dir, s)?)),
        "fjall" => Ok(Box::new(fjall::Fjall::open(dir, s)?)),
        "fjall2" => Ok(Box::new(fjall::Fjall2::open(dir, s)?)),
        "redb" => Ok(Box::new(redb::current::Redb::open(dir, s)?)),
        "redb2" => Ok(Box::new(redb::previous::Redb::open(dir, s)?)),
        "sled" => Ok(Box::new(sled::Sled::open(dir, s)?)),
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
