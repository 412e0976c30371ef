//! Transactions on a replicated Strata: read on a replica at a start
//! timestamp it applied, buffer the writes, and propose them with what was
//! read; every replica checks them the same way when the entry applies
//! (SPEC §18.2). A conflict runs the closure again after the transaction
//! pause.

use std::collections::BTreeMap;
use std::ops::RangeBounds;

use strata_engine::{Db, Isolation, Snapshot, Timestamp, TxnOptions};

use crate::replica::{Replica, ReplicaError};
use crate::types::{Request, TxnCheck};

/// Key–value pairs in key order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// A transaction's view and writes, handed to the closure of
/// [`Replica::transaction`].
pub struct ReplicaTxn {
    db: Db,
    snap: Snapshot,
    req: Request,
    check: TxnCheck,
    /// The transaction's own writes, for its later reads: `None` deletes.
    own: BTreeMap<(String, Vec<u8>), Option<Vec<u8>>>,
}

impl std::fmt::Debug for ReplicaTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaTxn")
            .field("start_ts", &self.check.start_ts)
            .finish_non_exhaustive()
    }
}

impl ReplicaTxn {
    /// The commit timestamp the transaction reads at.
    pub fn start_ts(&self) -> Timestamp {
        Timestamp(self.check.start_ts)
    }

    /// The value of `key` in `keyspace`: the transaction's own write, else
    /// as of its start.
    pub fn get(&mut self, keyspace: &str, key: &[u8]) -> Result<Option<Vec<u8>>, ReplicaError> {
        if let Some(v) = self.own.get(&(keyspace.to_owned(), key.to_vec())) {
            return Ok(v.clone());
        }
        let i = self.req.keyspace_index(keyspace);
        self.check.reads.push((i, key.to_vec()));
        if !self.db.keyspaces().iter().any(|k| k == keyspace) {
            return Ok(None);
        }
        let ks = self.db.keyspace(keyspace)?;
        Ok(self.snap.get(&ks, key)?.map(|v| v.to_vec()))
    }

    /// The entries of `keyspace` in `range`, in key order, with the
    /// transaction's own writes.
    pub fn scan<R: RangeBounds<Vec<u8>>>(
        &mut self,
        keyspace: &str,
        range: R,
    ) -> Result<Pairs, ReplicaError> {
        let lo = range.start_bound().cloned();
        let hi = range.end_bound().cloned();
        let i = self.req.keyspace_index(keyspace);
        self.check.ranges.push((i, lo.clone(), hi.clone()));
        let mut out: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
        if self.db.keyspaces().iter().any(|k| k == keyspace) {
            let ks = self.db.keyspace(keyspace)?;
            for r in self.snap.range(&ks, (lo.clone(), hi.clone()))? {
                let (k, v) = r?;
                out.insert(k.to_vec(), v.to_vec());
            }
        }
        for ((ks, k), v) in &self.own {
            if ks == keyspace && RangeBounds::<Vec<u8>>::contains(&(lo.clone(), hi.clone()), k) {
                match v {
                    Some(v) => out.insert(k.clone(), v.clone()),
                    None => out.remove(k),
                };
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Sets `key` in `keyspace` to `value` when the transaction commits.
    pub fn put(&mut self, keyspace: &str, key: &[u8], value: &[u8]) {
        let req = std::mem::take(&mut self.req);
        self.req = req.put(keyspace, key, value);
        self.own
            .insert((keyspace.to_owned(), key.to_vec()), Some(value.to_vec()));
    }

    /// Deletes `key` from `keyspace` when the transaction commits.
    pub fn delete(&mut self, keyspace: &str, key: &[u8]) {
        let req = std::mem::take(&mut self.req);
        self.req = req.delete(keyspace, key);
        self.own.insert((keyspace.to_owned(), key.to_vec()), None);
    }
}

impl Replica {
    /// Runs `f` as a transaction and commits it through Raft; on a
    /// conflict it runs `f` again, pausing as `opts` says (its isolation
    /// decides what is checked; `Serializable` by default). Returns `f`'s
    /// value and the commit timestamp. Reads start at what this replica
    /// applied; call it at the leader for fresh reads.
    pub async fn transaction<T, F>(
        &self,
        opts: &TxnOptions,
        mut f: F,
    ) -> Result<(T, Timestamp), ReplicaError>
    where
        F: FnMut(&mut ReplicaTxn) -> Result<T, ReplicaError>,
    {
        let mut x = Timestamp::now().as_u64() | 1;
        let mut rng = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut attempt = 0;
        loop {
            let start = self.state_machine().applied_ts();
            let db = self.state_machine().db();
            let snap = db.snapshot_at(start)?;
            let mut t = ReplicaTxn {
                db,
                snap,
                req: Request::new(0),
                check: TxnCheck {
                    start_ts: start.as_u64(),
                    serializable: opts.isolation == Isolation::Serializable,
                    ..TxnCheck::default()
                },
                own: BTreeMap::new(),
            };
            let value = f(&mut t)?;
            let mut req = t.req;
            req.check = Some(t.check);
            match self.write(req).await {
                Ok(ts) => return Ok((value, ts)),
                Err(ReplicaError::Conflict { .. }) if attempt + 1 < opts.attempts => {
                    attempt += 1;
                    tokio::time::sleep(opts.pause(attempt, &mut rng)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }
}
