//! Conversions between openraft's types and the records of
//! `strata_format::raft`, which say how they are stored.

use std::collections::{BTreeMap, BTreeSet};

use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Membership, StoredMembership, Vote};
use strata_format::raft::{
    CommandRecord, EntryRecord, LogIdRecord, MembershipRecord, PayloadRecord, VoteRecord,
};

use crate::types::{Node, NodeId, Request, TypeConfig};

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
        keyspaces: r.keyspaces.clone(),
        ops: r.ops.clone(),
        count: r.count,
    }
}

pub(crate) fn request(c: CommandRecord) -> Request {
    Request {
        ts_hint: c.ts_hint,
        keyspaces: c.keyspaces,
        ops: c.ops,
        count: c.count,
    }
}

pub(crate) fn encode_entry(e: &Entry<TypeConfig>) -> Vec<u8> {
    let payload = match &e.payload {
        EntryPayload::Blank => PayloadRecord::Blank,
        EntryPayload::Normal(r) => PayloadRecord::Normal(command_record(r).encode()),
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
        PayloadRecord::Normal(b) => EntryPayload::Normal(request(CommandRecord::decode(&b)?)),
        PayloadRecord::Membership(m) => EntryPayload::Membership(membership(&m)),
    };
    Ok(Entry {
        log_id: log_id(&r.log_id),
        payload,
    })
}
