//! The Raft type configuration: node ids and addresses, the command an
//! entry carries and the response its application gives.

use serde::{Deserialize, Serialize};

/// A node's id.
pub type NodeId = u64;

/// A node's address, as the membership records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Where its Raft and client traffic goes (`host:port`).
    pub addr: String,
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.addr)
    }
}

/// A replicated write: operations over keyspaces named here, committed at
/// a timestamp no lower than `ts_hint` (the leader's clock when it
/// proposed). The operations use the WAL batch layout (SPEC §8.1) with the
/// keyspace field an index into `keyspaces`, since keyspace ids are local
/// to each replica.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The lowest commit timestamp the proposer allows.
    pub ts_hint: u64,
    /// The client and the request's number among its requests: a request
    /// proposed again with the same pair is answered, not applied again
    /// (`None`: no such guarantee).
    pub session: Option<(u64, u64)>,
    /// The keyspaces, by index.
    pub keyspaces: Vec<String>,
    /// The operations.
    pub ops: Vec<u8>,
    /// How many operations `ops` holds.
    pub count: u64,
    /// For a transaction: what it read, checked when the entry applies.
    pub check: Option<TxnCheck>,
}

/// A scanned key range: (keyspace index, lower bound, upper bound).
pub use strata_engine::ScannedRange;

/// What a transaction read, for the check every replica makes when its
/// entry applies (SPEC §18.2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnCheck {
    /// The commit timestamp its reads saw.
    pub start_ts: u64,
    /// Serializable (reads and scans checked too) or snapshot isolation
    /// (writes checked).
    pub serializable: bool,
    /// The keys it read: (keyspace index, key).
    pub reads: Vec<(u32, Vec<u8>)>,
    /// The ranges it scanned: (keyspace index, lower, upper).
    pub ranges: Vec<ScannedRange>,
}

/// What applying an entry gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// A write committed at this timestamp (the same on every replica).
    Committed {
        /// The commit timestamp.
        ts: u64,
    },
    /// The command could not apply, on any replica (a malformed batch):
    /// nothing was written but the bookkeeping.
    Rejected(String),
    /// A transaction found a newer version of `key` than its start:
    /// nothing was written; it may run again.
    Conflict {
        /// The keyspace.
        keyspace: String,
        /// The key.
        key: Vec<u8>,
    },
    /// A blank or membership entry.
    Noop,
}

openraft::declare_raft_types!(
    /// Strata's Raft types. An entry carries the requests proposed
    /// together (applied in order, each at its own timestamp) and answers
    /// with one response each.
    pub TypeConfig:
        D = Vec<Request>,
        R = Vec<Response>,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = crate::state_machine::SnapshotFiles,
);

impl Request {
    /// This request as number `seq` of client `client` (both above 0):
    /// proposed again, it is answered with its first response.
    pub fn with_session(mut self, client: u64, seq: u64) -> Request {
        self.session = Some((client, seq));
        self
    }

    /// An empty write, to commit no lower than `ts_hint`.
    pub fn new(ts_hint: u64) -> Request {
        Request {
            ts_hint,
            ..Request::default()
        }
    }

    /// The index of keyspace `name` in the request, added if new.
    pub fn keyspace_index(&mut self, name: &str) -> u32 {
        match self.keyspaces.iter().position(|k| k == name) {
            Some(i) => i as u32,
            None => {
                self.keyspaces.push(name.to_owned());
                (self.keyspaces.len() - 1) as u32
            }
        }
    }

    fn push(
        &mut self,
        kind: strata_format::key::ValueKind,
        keyspace: &str,
        key: &[u8],
        value: &[u8],
    ) {
        let ks = self.keyspace_index(keyspace);
        let mut b = strata_format::batch::BatchBuilder::new();
        b.add(kind, ks, key, value);
        let (ops, n) = b.into_parts();
        self.ops.extend_from_slice(&ops);
        self.count += n;
    }

    /// Adds a put of `value` under `key` in `keyspace`.
    pub fn put(mut self, keyspace: &str, key: &[u8], value: &[u8]) -> Request {
        self.push(strata_format::key::ValueKind::Put, keyspace, key, value);
        self
    }

    /// Adds a put that expires at `expires_at` (an absolute timestamp, so
    /// every replica expires it at the same time).
    pub fn put_expiring(
        mut self,
        keyspace: &str,
        key: &[u8],
        value: &[u8],
        expires_at: u64,
    ) -> Request {
        let stored = [&expires_at.to_be_bytes()[..], value].concat();
        self.push(
            strata_format::key::ValueKind::PutWithTtl,
            keyspace,
            key,
            &stored,
        );
        self
    }

    /// Adds a delete of every key in `[start, end)` of `keyspace`.
    pub fn delete_range(mut self, keyspace: &str, start: &[u8], end: &[u8]) -> Request {
        self.push(
            strata_format::key::ValueKind::RangeDelete,
            keyspace,
            start,
            end,
        );
        self
    }

    /// Adds a delete of `key` in `keyspace`.
    pub fn delete(mut self, keyspace: &str, key: &[u8]) -> Request {
        self.push(strata_format::key::ValueKind::Delete, keyspace, key, &[]);
        self
    }
}
