//! The records of a replicated node (SPEC §18): what its Raft log, vote and
//! state-machine bookkeeping hold on disk. Each is `version (u8 = 1) ‖
//! tag (u8) ‖ fields`, with varints and length-prefixed bytes (§2); the
//! decoders take untrusted bytes and bound every count by the bytes left.
//!
//! The records are independent of the Raft library: the replication crate
//! converts its types to and from them.

use crate::coding::{put_bytes, put_varint64, Cursor};
use crate::error::Result;

/// The version byte every record starts with.
pub const VERSION: u8 = 1;

/// Tags of the record kinds (the byte after the version).
pub mod tag {
    /// A log id: term, leader node, index.
    pub const LOG_ID: u8 = 1;
    /// A vote: term, node, committed.
    pub const VOTE: u8 = 2;
    /// A log entry without payload (a new leader's first entry).
    pub const ENTRY_BLANK: u8 = 3;
    /// A log entry carrying a command.
    pub const ENTRY_NORMAL: u8 = 4;
    /// A log entry carrying a membership.
    pub const ENTRY_MEMBERSHIP: u8 = 5;
    /// A membership on its own (what the state machine last applied).
    pub const MEMBERSHIP: u8 = 6;
    /// A write command: a batch at a timestamp hint.
    pub const COMMAND_WRITE: u8 = 7;
    /// What the state machine applied last: a log id and its commit
    /// timestamp.
    pub const APPLIED: u8 = 8;
    /// A transaction's command: a batch, and what it read, checked when
    /// applied.
    pub const COMMAND_TXN: u8 = 9;
    /// What applying a client's request answered, kept so a retry of the
    /// same request gets the same answer without applying it again.
    pub const RESPONSE: u8 = 10;
    /// Several commands proposed together in one entry, applied in order,
    /// each at its own commit timestamp.
    pub const COMMAND_BATCH: u8 = 11;
    /// How far the state machine applied a batch entry before a crash:
    /// the entry's log id, the commands applied, the last one's commit
    /// timestamp.
    pub const PARTIAL: u8 = 12;
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResponseRecord {
    /// Committed at this timestamp.
    Committed(u64),
    /// Could not apply on any replica.
    Rejected(String),
    /// A transaction's check found a newer version of a key.
    Conflict {
        /// The keyspace.
        keyspace: String,
        /// The key.
        key: Vec<u8>,
    },
}

impl ResponseRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = start(tag::RESPONSE);
        match self {
            ResponseRecord::Committed(ts) => {
                out.push(0);
                put_varint64(&mut out, *ts);
            }
            ResponseRecord::Rejected(why) => {
                out.push(1);
                put_bytes(&mut out, why.as_bytes());
            }
            ResponseRecord::Conflict { keyspace, key } => {
                out.push(2);
                put_bytes(&mut out, keyspace.as_bytes());
                put_bytes(&mut out, key);
            }
        }
        out
    }

    /// Decodes a response record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft response")?;
        expect_tag(&c, t, tag::RESPONSE)?;
        let text = |c: &mut Cursor<'_>| -> Result<String> {
            let at = c.offset();
            String::from_utf8(c.length_prefixed()?.to_vec())
                .map_err(|_| crate::error::Error::corruption("raft response: not UTF-8", at))
        };
        let r = match c.u8()? {
            0 => ResponseRecord::Committed(c.varint64()?),
            1 => ResponseRecord::Rejected(text(&mut c)?),
            2 => ResponseRecord::Conflict {
                keyspace: text(&mut c)?,
                key: c.length_prefixed()?.to_vec(),
            },
            k => return Err(c.error(&format!("response kind {k}"))),
        };
        done(&c)?;
        Ok(r)
    }
}

/// A bound of a scanned key range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundRecord {
    /// No bound.
    Unbounded,
    /// Up to and including the key.
    Included(Vec<u8>),
    /// Up to the key, not including it.
    Excluded(Vec<u8>),
}

/// What a transaction read, for the check at apply time: it commits only
/// if nothing it wrote (and, serializable, nothing it read or scanned) has
/// a version newer than its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// The commit timestamp its reads saw.
    pub start_ts: u64,
    /// Serializable (reads and scans checked) rather than snapshot
    /// isolation (writes checked).
    pub serializable: bool,
    /// The keys it read: (keyspace index, key).
    pub reads: Vec<(u64, Vec<u8>)>,
    /// The ranges it scanned: (keyspace index, lower, upper).
    pub ranges: Vec<(u64, BoundRecord, BoundRecord)>,
}

impl BoundRecord {
    fn put(&self, out: &mut Vec<u8>) {
        match self {
            BoundRecord::Unbounded => out.push(0),
            BoundRecord::Included(k) => {
                out.push(1);
                put_bytes(out, k);
            }
            BoundRecord::Excluded(k) => {
                out.push(2);
                put_bytes(out, k);
            }
        }
    }

    fn get(c: &mut Cursor<'_>) -> Result<Self> {
        Ok(match c.u8()? {
            0 => BoundRecord::Unbounded,
            1 => BoundRecord::Included(c.length_prefixed()?.to_vec()),
            2 => BoundRecord::Excluded(c.length_prefixed()?.to_vec()),
            _ => return Err(c.error("a bound is neither 0, 1 nor 2")),
        })
    }
}

impl CheckRecord {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint64(out, self.start_ts);
        out.push(u8::from(self.serializable));
        put_varint64(out, self.reads.len() as u64);
        for (ks, key) in &self.reads {
            put_varint64(out, *ks);
            put_bytes(out, key);
        }
        put_varint64(out, self.ranges.len() as u64);
        for (ks, lo, hi) in &self.ranges {
            put_varint64(out, *ks);
            lo.put(out);
            hi.put(out);
        }
    }

    fn get(c: &mut Cursor<'_>) -> Result<Self> {
        let start_ts = c.varint64()?;
        let serializable = match c.u8()? {
            0 => false,
            1 => true,
            _ => return Err(c.error("serializable is neither 0 nor 1")),
        };
        let n = c.len(c.remaining())?;
        let mut reads = Vec::with_capacity(n);
        for _ in 0..n {
            reads.push((c.varint64()?, c.length_prefixed()?.to_vec()));
        }
        let n = c.len(c.remaining())?;
        let mut ranges = Vec::with_capacity(n);
        for _ in 0..n {
            let ks = c.varint64()?;
            let lo = BoundRecord::get(c)?;
            let hi = BoundRecord::get(c)?;
            ranges.push((ks, lo, hi));
        }
        Ok(CheckRecord {
            start_ts,
            serializable,
            reads,
            ranges,
        })
    }
}

/// The id of a log entry: the term and node of the leader that made it,
/// and its index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogIdRecord {
    /// The leader's term.
    pub term: u64,
    /// The leader's node id.
    pub node: u64,
    /// The entry's index.
    pub index: u64,
}

/// A vote: for `node` in `term`; `committed` once a quorum granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VoteRecord {
    /// The term.
    pub term: u64,
    /// The node voted for.
    pub node: u64,
    /// Whether a quorum granted it.
    pub committed: bool,
}

/// A cluster membership: the voter sets (two during a joint change) and
/// every node with its address.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MembershipRecord {
    /// The voter sets.
    pub configs: Vec<Vec<u64>>,
    /// Every node (voters and learners) with its address.
    pub nodes: Vec<(u64, String)>,
}

/// A log entry's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadRecord {
    /// Nothing (a new leader's first entry).
    Blank,
    /// An application command's bytes (a [`CommandRecord`]).
    Normal(Vec<u8>),
    /// A membership change.
    Membership(MembershipRecord),
}

/// One Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryRecord {
    /// Its id.
    pub log_id: LogIdRecord,
    /// Its payload.
    pub payload: PayloadRecord,
}

/// A replicated write: a batch of operations over keyspaces named in the
/// record (keyspace ids are local to each replica), applied at a commit
/// timestamp no lower than `ts_hint`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandRecord {
    /// The lowest commit timestamp the leader allows.
    pub ts_hint: u64,
    /// The client's id and the request's sequence number within it (0, 0:
    /// none): a retried request is answered, not applied again.
    pub session: (u64, u64),
    /// The keyspaces the operations name, by index.
    pub keyspaces: Vec<String>,
    /// The operations: `kind (u8) ‖ keyspace index (varint) ‖ key (bytes)
    /// ‖ value (bytes)` each, as in a WAL batch (§8.1).
    pub ops: Vec<u8>,
    /// How many operations `ops` holds.
    pub count: u64,
    /// For a transaction, what it read (checked when applied).
    pub check: Option<CheckRecord>,
}

/// What the state machine applied last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppliedRecord {
    /// The entry's id.
    pub log_id: LogIdRecord,
    /// The commit timestamp it was applied at.
    pub ts: u64,
}

/// The commands of an entry proposed together (tag 11): applied in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommandBatchRecord {
    /// The commands, each stored as a command record.
    pub commands: Vec<CommandRecord>,
}

/// A batch entry applied in part (tag 12): written with each command of a
/// batch but the last, so a restart applies the rest and only the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartialRecord {
    /// The batch entry's id.
    pub log_id: LogIdRecord,
    /// How many of its commands are applied.
    pub applied: u64,
    /// The commit timestamp of the last one applied.
    pub ts: u64,
}

fn start(tag: u8) -> Vec<u8> {
    vec![VERSION, tag]
}

fn open<'a>(bytes: &'a [u8], what: &'a str) -> Result<(Cursor<'a>, u8)> {
    let mut c = Cursor::new(bytes, 0, what);
    let v = c.u8()?;
    if v != VERSION {
        return Err(crate::error::Error::UnsupportedVersion {
            what: what.to_owned(),
            found: u32::from(v),
            supported: u32::from(VERSION),
        });
    }
    let t = c.u8()?;
    Ok((c, t))
}

fn done(c: &Cursor<'_>) -> Result<()> {
    if c.is_empty() {
        Ok(())
    } else {
        Err(c.error("bytes after the record"))
    }
}

fn expect_tag(c: &Cursor<'_>, found: u8, want: u8) -> Result<()> {
    if found == want {
        Ok(())
    } else {
        Err(c.error(&format!("tag {found}, expected {want}")))
    }
}

impl LogIdRecord {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint64(out, self.term);
        put_varint64(out, self.node);
        put_varint64(out, self.index);
    }

    fn get(c: &mut Cursor<'_>) -> Result<Self> {
        Ok(LogIdRecord {
            term: c.varint64()?,
            node: c.varint64()?,
            index: c.varint64()?,
        })
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = start(tag::LOG_ID);
        self.put(&mut out);
        out
    }

    /// Decodes a log id record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft log id")?;
        expect_tag(&c, t, tag::LOG_ID)?;
        let r = Self::get(&mut c)?;
        done(&c)?;
        Ok(r)
    }
}

impl VoteRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = start(tag::VOTE);
        put_varint64(&mut out, self.term);
        put_varint64(&mut out, self.node);
        out.push(u8::from(self.committed));
        out
    }

    /// Decodes a vote record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft vote")?;
        expect_tag(&c, t, tag::VOTE)?;
        let term = c.varint64()?;
        let node = c.varint64()?;
        let committed = match c.u8()? {
            0 => false,
            1 => true,
            _ => return Err(c.error("committed is neither 0 nor 1")),
        };
        done(&c)?;
        Ok(VoteRecord {
            term,
            node,
            committed,
        })
    }
}

impl MembershipRecord {
    fn put(&self, out: &mut Vec<u8>) {
        put_varint64(out, self.configs.len() as u64);
        for set in &self.configs {
            put_varint64(out, set.len() as u64);
            for id in set {
                put_varint64(out, *id);
            }
        }
        put_varint64(out, self.nodes.len() as u64);
        for (id, addr) in &self.nodes {
            put_varint64(out, *id);
            put_bytes(out, addr.as_bytes());
        }
    }

    fn get(c: &mut Cursor<'_>) -> Result<Self> {
        // Every element takes at least one byte: counts are bounded by
        // what is left.
        let n = c.len(c.remaining())?;
        let mut configs = Vec::with_capacity(n);
        for _ in 0..n {
            let m = c.len(c.remaining())?;
            let mut set = Vec::with_capacity(m);
            for _ in 0..m {
                set.push(c.varint64()?);
            }
            configs.push(set);
        }
        let n = c.len(c.remaining())?;
        let mut nodes = Vec::with_capacity(n);
        for _ in 0..n {
            let id = c.varint64()?;
            let at = c.offset();
            let addr = std::str::from_utf8(c.length_prefixed()?)
                .map_err(|_| crate::error::Error::corruption("raft node address: not UTF-8", at))?;
            nodes.push((id, addr.to_owned()));
        }
        Ok(MembershipRecord { configs, nodes })
    }

    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = start(tag::MEMBERSHIP);
        self.put(&mut out);
        out
    }

    /// Decodes a membership record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft membership")?;
        expect_tag(&c, t, tag::MEMBERSHIP)?;
        let r = Self::get(&mut c)?;
        done(&c)?;
        Ok(r)
    }
}

impl EntryRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let t = match self.payload {
            PayloadRecord::Blank => tag::ENTRY_BLANK,
            PayloadRecord::Normal(_) => tag::ENTRY_NORMAL,
            PayloadRecord::Membership(_) => tag::ENTRY_MEMBERSHIP,
        };
        let mut out = start(t);
        self.log_id.put(&mut out);
        match &self.payload {
            PayloadRecord::Blank => {}
            PayloadRecord::Normal(b) => put_bytes(&mut out, b),
            PayloadRecord::Membership(m) => m.put(&mut out),
        }
        out
    }

    /// Decodes an entry record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft entry")?;
        let log_id = LogIdRecord::get(&mut c)?;
        let payload = match t {
            tag::ENTRY_BLANK => PayloadRecord::Blank,
            tag::ENTRY_NORMAL => PayloadRecord::Normal(c.length_prefixed()?.to_vec()),
            tag::ENTRY_MEMBERSHIP => PayloadRecord::Membership(MembershipRecord::get(&mut c)?),
            _ => return Err(c.error(&format!("tag {t} is not an entry"))),
        };
        done(&c)?;
        Ok(EntryRecord { log_id, payload })
    }
}

impl CommandRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let t = match self.check {
            Some(_) => tag::COMMAND_TXN,
            None => tag::COMMAND_WRITE,
        };
        let mut out = start(t);
        put_varint64(&mut out, self.ts_hint);
        put_varint64(&mut out, self.session.0);
        put_varint64(&mut out, self.session.1);
        put_varint64(&mut out, self.keyspaces.len() as u64);
        for k in &self.keyspaces {
            put_bytes(&mut out, k.as_bytes());
        }
        put_varint64(&mut out, self.count);
        put_bytes(&mut out, &self.ops);
        if let Some(check) = &self.check {
            check.put(&mut out);
        }
        out
    }

    /// Decodes a command record (its operations are decoded when applied,
    /// by the batch decoder).
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft command")?;
        if t != tag::COMMAND_TXN {
            expect_tag(&c, t, tag::COMMAND_WRITE)?;
        }
        let ts_hint = c.varint64()?;
        let session = (c.varint64()?, c.varint64()?);
        let n = c.len(c.remaining())?;
        let mut keyspaces = Vec::with_capacity(n);
        for _ in 0..n {
            let at = c.offset();
            let name = std::str::from_utf8(c.length_prefixed()?).map_err(|_| {
                crate::error::Error::corruption("raft command keyspace: not UTF-8", at)
            })?;
            keyspaces.push(name.to_owned());
        }
        let count = c.varint64()?;
        let ops = c.length_prefixed()?.to_vec();
        let check = match t {
            tag::COMMAND_TXN => Some(CheckRecord::get(&mut c)?),
            _ => None,
        };
        done(&c)?;
        Ok(CommandRecord {
            ts_hint,
            session,
            keyspaces,
            ops,
            count,
            check,
        })
    }
}

impl AppliedRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = start(tag::APPLIED);
        self.log_id.put(&mut out);
        put_varint64(&mut out, self.ts);
        out
    }

    /// Decodes an applied record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft applied")?;
        expect_tag(&c, t, tag::APPLIED)?;
        let log_id = LogIdRecord::get(&mut c)?;
        let ts = c.varint64()?;
        done(&c)?;
        Ok(AppliedRecord { log_id, ts })
    }
}

impl CommandBatchRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = start(tag::COMMAND_BATCH);
        put_varint64(&mut out, self.commands.len() as u64);
        for cmd in &self.commands {
            put_bytes(&mut out, &cmd.encode());
        }
        out
    }

    /// Decodes a batch record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft command batch")?;
        expect_tag(&c, t, tag::COMMAND_BATCH)?;
        // Each command takes at least its length byte.
        let n = c.len(c.remaining())?;
        let mut commands = Vec::with_capacity(n);
        for _ in 0..n {
            commands.push(CommandRecord::decode(c.length_prefixed()?)?);
        }
        done(&c)?;
        Ok(CommandBatchRecord { commands })
    }

    /// The commands of a normal entry's payload: one command record, or a
    /// batch of them.
    pub fn decode_payload(bytes: &[u8]) -> Result<Vec<CommandRecord>> {
        match bytes.get(1) {
            Some(&tag::COMMAND_BATCH) => Ok(Self::decode(bytes)?.commands),
            _ => Ok(vec![CommandRecord::decode(bytes)?]),
        }
    }
}

impl PartialRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = start(tag::PARTIAL);
        self.log_id.put(&mut out);
        put_varint64(&mut out, self.applied);
        put_varint64(&mut out, self.ts);
        out
    }

    /// Decodes a partial record.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let (mut c, t) = open(bytes, "raft partial apply")?;
        expect_tag(&c, t, tag::PARTIAL)?;
        let log_id = LogIdRecord::get(&mut c)?;
        let applied = c.varint64()?;
        let ts = c.varint64()?;
        done(&c)?;
        Ok(PartialRecord {
            log_id,
            applied,
            ts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Vec<u8>> {
        let id = LogIdRecord {
            term: 3,
            node: 2,
            index: 400,
        };
        let m = MembershipRecord {
            configs: vec![vec![1, 2, 3], vec![2, 3, 4]],
            nodes: vec![(1, "127.0.0.1:1".into()), (4, "127.0.0.1:4".into())],
        };
        let cmd = CommandRecord {
            ts_hint: 77,
            session: (5, 9),
            keyspaces: vec!["a".into(), "b".into()],
            ops: vec![1, 0, 1, b'k', 1, b'v'],
            count: 1,
            check: None,
        };
        let txn = CommandRecord {
            check: Some(CheckRecord {
                start_ts: 70,
                serializable: true,
                reads: vec![(0, b"r".to_vec()), (1, vec![])],
                ranges: vec![
                    (
                        0,
                        BoundRecord::Included(b"a".to_vec()),
                        BoundRecord::Excluded(b"m".to_vec()),
                    ),
                    (1, BoundRecord::Unbounded, BoundRecord::Unbounded),
                ],
            }),
            ..cmd.clone()
        };
        vec![
            id.encode(),
            VoteRecord {
                term: 9,
                node: 1,
                committed: true,
            }
            .encode(),
            m.encode(),
            cmd.encode(),
            txn.encode(),
            EntryRecord {
                log_id: id,
                payload: PayloadRecord::Blank,
            }
            .encode(),
            EntryRecord {
                log_id: id,
                payload: PayloadRecord::Normal(cmd.encode()),
            }
            .encode(),
            EntryRecord {
                log_id: id,
                payload: PayloadRecord::Membership(m),
            }
            .encode(),
            AppliedRecord { log_id: id, ts: 5 }.encode(),
            CommandBatchRecord {
                commands: vec![cmd.clone(), txn.clone()],
            }
            .encode(),
            PartialRecord {
                log_id: id,
                applied: 1,
                ts: 6,
            }
            .encode(),
            ResponseRecord::Committed(7).encode(),
            ResponseRecord::Rejected("no".into()).encode(),
            ResponseRecord::Conflict {
                keyspace: "a".into(),
                key: b"k".to_vec(),
            }
            .encode(),
        ]
    }

    /// Decodes `b` with the decoder its tag names; re-encodes what decodes.
    fn round_trip(b: &[u8]) -> Option<Vec<u8>> {
        let t = *b.get(1)?;
        match t {
            tag::LOG_ID => LogIdRecord::decode(b).ok().map(|r| r.encode()),
            tag::VOTE => VoteRecord::decode(b).ok().map(|r| r.encode()),
            tag::MEMBERSHIP => MembershipRecord::decode(b).ok().map(|r| r.encode()),
            tag::COMMAND_WRITE | tag::COMMAND_TXN => {
                CommandRecord::decode(b).ok().map(|r| r.encode())
            }
            tag::APPLIED => AppliedRecord::decode(b).ok().map(|r| r.encode()),
            tag::COMMAND_BATCH => CommandBatchRecord::decode(b).ok().map(|r| r.encode()),
            tag::PARTIAL => PartialRecord::decode(b).ok().map(|r| r.encode()),
            tag::RESPONSE => ResponseRecord::decode(b).ok().map(|r| r.encode()),
            _ => EntryRecord::decode(b).ok().map(|r| r.encode()),
        }
    }

    #[test]
    fn every_record_round_trips() {
        for s in samples() {
            assert_eq!(round_trip(&s), Some(s.clone()));
        }
    }

    #[test]
    fn every_cut_is_an_error_and_damage_never_panics() {
        for s in samples() {
            for n in 0..s.len() {
                assert_eq!(round_trip(&s[..n]), None, "cut at {n} of {s:?}");
            }
            for i in 0..s.len() {
                for bit in 0..8 {
                    let mut b = s.clone();
                    b[i] ^= 1 << bit;
                    // Decodes to something that re-encodes to itself, or is
                    // an error: never a panic.
                    if let Some(again) = round_trip(&b) {
                        assert_eq!(round_trip(&again), Some(again.clone()));
                    }
                }
            }
        }
    }

    #[test]
    fn other_versions_and_tags_are_refused() {
        let mut b = samples()[0].clone();
        b[0] = 2;
        assert!(LogIdRecord::decode(&b).is_err());
        let b = samples()[1].clone();
        assert!(LogIdRecord::decode(&b).is_err(), "a vote is not a log id");
        assert!(EntryRecord::decode(&samples()[0]).is_err());
    }
}
