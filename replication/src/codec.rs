//! Conversions between openraft's types and the records of
//! `strata_format::raft`, which say how they are stored.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership, Vote};
use std::ops::Bound;

use strata_format::raft::{
    BoundRecord, CheckRecord, CommandBatchRecord, CommandRecord, EntryRecord, LogIdRecord,
    MembershipRecord, PayloadRecord, ResponseRecord, VoteRecord,
};

use crate::types::{Node, NodeId, Request, TxnCheck, TypeConfig};

fn bound_record(b: &Bound<Vec<u8>>) -> BoundRecord {
    match b {
        Bound::Unbounded => BoundRecord::Unbounded,
        Bound::Included(k) => BoundRecord::Included(k.clone()),
        Bound::Excluded(k) => BoundRecord::Excluded(k.clone()),
    }
}

fn bound(b: BoundRecord) -> Bound<Vec<u8>> {
    match b {
        BoundRecord::Unbounded => Bound::Unbounded,
        BoundRecord::Included(k) => Bound::Included(k),
        BoundRecord::Excluded(k) => Bound::Excluded(k),
    }
}

fn check_record(c: &TxnCheck) -> CheckRecord {
    CheckRecord {
        start_ts: c.start_ts,
        serializable: c.serializable,
        reads: c
            .reads
            .iter()
            .map(|(k, key)| (u64::from(*k), key.clone()))
            .collect(),
        ranges: c
            .ranges
            .iter()
            .map(|(k, lo, hi)| (u64::from(*k), bound_record(lo), bound_record(hi)))
            .collect(),
    }
}

/// A decoded check; keyspace indexes beyond `u32` become `u32::MAX`,
/// which names no keyspace and is rejected when applied.
fn check(c: CheckRecord) -> TxnCheck {
    let idx = |k: u64| u32::try_from(k).unwrap_or(u32::MAX);
    TxnCheck {
        start_ts: c.start_ts,
        serializable: c.serializable,
        reads: c.reads.into_iter().map(|(k, key)| (idx(k), key)).collect(),
        ranges: c
            .ranges
            .into_iter()
            .map(|(k, lo, hi)| (idx(k), bound(lo), bound(hi)))
            .collect(),
    }
}

pub(crate) fn log_id_record(id: &LogId<NodeId>) -> LogIdRecord {
    LogIdRecord {
        term: id.leader_id.term,
        node: id.leader_id.node_id,
        index: id.index,
    }
}

pub(crate) fn log_id(r: &LogIdRecord) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(r.term, r.node), r.index)
}

pub(crate) fn vote_record(v: &Vote<NodeId>) -> VoteRecord {
    VoteRecord {
        term: v.leader_id.term,
        node: v.leader_id.voted_for().unwrap_or_default(),
        committed: v.committed,
    }
}

pub(crate) fn vote(r: &VoteRecord) -> Vote<NodeId> {
    let v = Vote::new(r.term, r.node);
    if r.committed {
        Vote::new_committed(r.term, r.node)
    } else {
        v
    }
}

pub(crate) fn membership_record(m: &Membership<NodeId, Node>) -> MembershipRecord {
    MembershipRecord {
        configs: m
            .get_joint_config()
            .iter()
            .map(|s| s.iter().copied().collect())
            .collect(),
        nodes: m.nodes().map(|(id, n)| (*id, n.addr.clone())).collect(),
    }
}

pub(crate) fn membership(r: &MembershipRecord) -> Membership<NodeId, Node> {
    let configs: Vec<BTreeSet<NodeId>> = r
        .configs
        .iter()
        .map(|s| s.iter().copied().collect())
        .collect();
    let nodes: BTreeMap<NodeId, Node> = r
        .nodes
        .iter()
        .map(|(id, addr)| (*id, Node { addr: addr.clone() }))
        .collect();
    Membership::new(configs, nodes)
}

pub(crate) fn stored_membership(
    id: Option<&LogIdRecord>,
    m: &MembershipRecord,
) -> StoredMembership<NodeId, Node> {
    StoredMembership::new(id.map(log_id), membership(m))
}

pub(crate) fn command_record(r: &Request) -> CommandRecord {
    CommandRecord {
        ts_hint: r.ts_hint,
        session: r.session.unwrap_or((0, 0)),
        keyspaces: r.keyspaces.clone(),
        ops: r.ops.clone(),
        count: r.count,
        check: r.check.as_ref().map(check_record),
    }
}

pub(crate) fn request(c: CommandRecord) -> Request {
    Request {
        ts_hint: c.ts_hint,
        session: Some(c.session).filter(|&(client, _)| client != 0),
        keyspaces: c.keyspaces,
        ops: c.ops,
        count: c.count,
        check: c.check.map(check),
    }
}

pub(crate) fn response_record(r: &crate::types::Response) -> Option<ResponseRecord> {
    use crate::types::Response;
    Some(match r {
        Response::Committed { ts } => ResponseRecord::Committed(*ts),
        Response::Rejected(why) => ResponseRecord::Rejected(why.clone()),
        Response::Conflict { keyspace, key } => ResponseRecord::Conflict {
            keyspace: keyspace.clone(),
            key: key.clone(),
        },
        Response::Noop => return None,
    })
}

pub(crate) fn response(r: ResponseRecord) -> crate::types::Response {
    use crate::types::Response;
    match r {
        ResponseRecord::Committed(ts) => Response::Committed { ts },
        ResponseRecord::Rejected(why) => Response::Rejected(why),
        ResponseRecord::Conflict { keyspace, key } => Response::Conflict { keyspace, key },
    }
}

pub(crate) fn encode_entry(e: &Entry<TypeConfig>) -> Vec<u8> {
    let payload = match &e.payload {
        EntryPayload::Blank => PayloadRecord::Blank,
        EntryPayload::Normal(reqs) => PayloadRecord::Normal(match &reqs[..] {
            [one] => command_record(one).encode(),
            many => CommandBatchRecord {
                commands: many.iter().map(command_record).collect(),
            }
            .encode(),
        }),
        EntryPayload::Membership(m) => PayloadRecord::Membership(membership_record(m)),
    };
    EntryRecord {
        log_id: log_id_record(&e.log_id),
        payload,
    }
    .encode()
}

pub(crate) fn decode_entry(bytes: &[u8]) -> strata_format::Result<Entry<TypeConfig>> {
    let r = EntryRecord::decode(bytes)?;
    let payload = match r.payload {
        PayloadRecord::Blank => EntryPayload::Blank,
        PayloadRecord::Normal(b) => EntryPayload::Normal(
            CommandBatchRecord::decode_payload(&b)?
                .into_iter()
                .map(request)
                .collect(),
        ),
        PayloadRecord::Membership(m) => EntryPayload::Membership(membership(&m)),
    };
    Ok(Entry {
        log_id: log_id(&r.log_id),
        payload,
    })
}
