//! Commits decided elsewhere: a database opened with a [`Committer`] (a
//! replica of a replicated log) hands every write and transaction commit to
//! it instead of writing it, and the committer applies it back through
//! [`Db::write_at`](crate::Db::write_at) at the timestamp the log chose.
//! Reads stay local; a read at a timestamp the replica has not applied yet
//! waits for it instead of moving the clock, since a replica's clock moves
//! only with what it applies (SPEC §18.5).

use std::collections::{BTreeMap, HashSet};
use std::fmt::Debug;
use std::ops::Bound;

use strata_format::batch::{BatchBuilder, OpIter};

use crate::error::{Error, Result};
use crate::keyspaces::KeyspaceRegistry;
use crate::options::WriteOptions;
use crate::timestamp::Timestamp;
use crate::txn::conflicts::{KeyRef, Range};

/// Where a database sends its commits when they are decided elsewhere.
///
/// `commit` must return only once the commit was applied to this database
/// (through `write_at`), so a caller reads its own write at once.
pub trait Committer: Send + Sync + Debug {
    /// Commits `proposal` and returns its commit timestamp; a transaction
    /// that lost a conflict returns [`Error::Conflict`] and wrote nothing.
    /// Failures of the replication itself (no leader here, no quorum) are
    /// [`Error::Replication`].
    fn commit(&self, proposal: Proposal, opts: WriteOptions) -> Result<Timestamp>;

    /// Returns once every commit up to `ts` is applied to this database, or
    /// fails (a timeout as [`Error::Replication`]).
    fn wait_applied(&self, ts: Timestamp) -> Result<()>;
}

/// A commit as the committer receives it: the writes in the WAL batch
/// layout (SPEC §8.1), with the keyspace field an index into `keyspaces`,
/// since keyspace ids are local to each database.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Proposal {
    /// The keyspaces, by index.
    pub keyspaces: Vec<String>,
    /// The writes, in their stored form (a TTL value carries its expiry).
    pub ops: Vec<u8>,
    /// How many writes `ops` holds.
    pub count: u64,
    /// For a transaction: what must still hold when it commits.
    pub check: Option<ProposalCheck>,
}

/// What a transaction read, to be checked where its commit is decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProposalCheck {
    /// The timestamp its reads saw.
    pub start_ts: Timestamp,
    /// Serializable (reads and scans checked too) or snapshot isolation
    /// (writes checked).
    pub serializable: bool,
    /// The keys it read: (keyspace index, key).
    pub reads: Vec<(u32, Vec<u8>)>,
    /// The ranges it scanned: (keyspace index, lower, upper).
    pub ranges: Vec<ScannedRange>,
}

/// A scanned key range: (keyspace index, lower bound, upper bound).
pub type ScannedRange = (u32, Bound<Vec<u8>>, Bound<Vec<u8>>);

impl Proposal {
    /// The proposal's index of the keyspace with local id `id`, added if
    /// new.
    fn index(
        &mut self,
        ids: &mut BTreeMap<u32, u32>,
        id: u32,
        spaces: &KeyspaceRegistry,
    ) -> Result<u32> {
        if let Some(i) = ids.get(&id) {
            return Ok(*i);
        }
        let state = spaces
            .by_id(id)
            .ok_or_else(|| Error::InvalidArgument(format!("keyspace id {id} is unknown")))?;
        let i = self.keyspaces.len() as u32;
        self.keyspaces.push(state.name().to_owned());
        ids.insert(id, i);
        Ok(i)
    }

    /// The proposal of a batch's encoded writes (`ops`, `count`, keyspace
    /// ids local to `spaces`) and, for a transaction, its reads.
    pub(crate) fn build(
        ops: &[u8],
        count: u64,
        reads: Option<(Timestamp, bool, HashSet<KeyRef>, Vec<Range>)>,
        spaces: &KeyspaceRegistry,
    ) -> Result<Proposal> {
        let mut p = Proposal::default();
        let mut ids = BTreeMap::new();
        let mut out = BatchBuilder::new();
        for op in OpIter::new(ops, count, 0) {
            let op = op.map_err(|e| Error::InvalidArgument(e.to_string()))?;
            let i = p.index(&mut ids, op.keyspace, spaces)?;
            out.add(op.kind, i, op.key, op.value);
        }
        (p.ops, p.count) = out.into_parts();
        if let Some((start_ts, serializable, reads, ranges)) = reads {
            let mut check = ProposalCheck {
                start_ts,
                serializable,
                ..ProposalCheck::default()
            };
            // In key order, so the same transaction proposes the same bytes.
            let mut reads: Vec<KeyRef> = reads.into_iter().collect();
            reads.sort();
            for (id, key) in reads {
                check.reads.push((p.index(&mut ids, id, spaces)?, key));
            }
            for (id, lo, hi) in ranges {
                check.ranges.push((p.index(&mut ids, id, spaces)?, lo, hi));
            }
            p.check = Some(check);
        }
        Ok(p)
    }
}
