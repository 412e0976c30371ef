//! Applying committed entries: each command at the timestamp the log
//! decides, with its transaction check and its client session, in one
//! `write_at` together with the bookkeeping that makes it exactly-once
//! (SPEC §18.2). A batch entry's commands apply one after another, each at
//! its own timestamp; a partial record between them tells a restart where
//! to resume.

use openraft::{Entry, EntryPayload, StorageError, StorageIOError, StoredMembership};
use strata_engine::{Db, Keyspace, Timestamp, WriteBatch, WriteOptions};
use strata_format::batch::OpIter;
use strata_format::key::ValueKind;
use strata_format::raft::{AppliedRecord, PartialRecord};

use super::{
    sm_write, Data, StateMachine, APPLIED, MAX_COMMAND_BYTES, MAX_HINT, MAX_TXN_AGE, MEMBERSHIP,
    MEMBERSHIP_LOG_ID, PARTIAL, RAFT_KEYSPACE,
};
use crate::codec;
use crate::types::{NodeId, Request, Response, TxnCheck, TypeConfig};

/// Why a transaction's check could not decide.
enum CheckFail {
    /// The command is malformed: rejected on every replica.
    Invalid(String),
    /// The engine failed on this replica: a storage error.
    Engine(strata_engine::Error),
}

impl From<strata_engine::Error> for CheckFail {
    fn from(e: strata_engine::Error) -> Self {
        CheckFail::Engine(e)
    }
}

/// The key of a client's session record.
fn session_key(client: u64) -> Vec<u8> {
    [&b"session/"[..], &client.to_be_bytes()].concat()
}

/// A client's last applied request number and its response.
fn read_session(raft: &Keyspace, client: u64) -> Result<Option<(u64, Response)>, String> {
    let Some(v) = raft.get(session_key(client)).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let (seq, n) = strata_format::coding::get_varint64(&v).ok_or("a damaged session record")?;
    let r = strata_format::raft::ResponseRecord::decode(&v[n..]).map_err(|e| e.to_string())?;
    Ok(Some((seq, codec::response(r))))
}

impl StateMachine {
    /// Adds `req`'s operations to `b`; an error names what is malformed.
    fn decode_into(db: &Db, req: &Request, b: &mut WriteBatch) -> Result<(), String> {
        let mut spaces = Vec::with_capacity(req.keyspaces.len());
        for name in &req.keyspaces {
            if name == RAFT_KEYSPACE {
                return Err(format!("keyspace {RAFT_KEYSPACE} is reserved"));
            }
            spaces.push(db.keyspace(name).map_err(|e| e.to_string())?);
        }
        for op in OpIter::new(&req.ops, req.count, 0) {
            let op = op.map_err(|e| e.to_string())?;
            let ks = spaces
                .get(op.keyspace as usize)
                .ok_or_else(|| format!("keyspace index {} out of range", op.keyspace))?;
            match op.kind {
                ValueKind::Put => b.put(ks, op.key, op.value),
                ValueKind::Delete => b.delete(ks, op.key),
                ValueKind::PutWithTtl => {
                    let (at, value) = op
                        .value
                        .split_first_chunk::<8>()
                        .ok_or("a TTL value without its expiry")?;
                    b.put_expiring(ks, op.key, value, Timestamp(u64::from_be_bytes(*at)))
                }
                ValueKind::RangeDelete => b.delete_range(ks, op.key..op.value),
                k => return Err(format!("operation kind {k:?} cannot be replicated")),
            }
            .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// The commit timestamp of `key`'s newest version in `ks` (a delete
    /// included), 0 when it has none.
    fn last_write(ks: &Keyspace, key: &[u8]) -> Result<u64, CheckFail> {
        Ok(ks.history(key)?.first().map_or(0, |v| v.ts.as_u64()))
    }

    /// The first key in `range` of `ks` written after `start` (present at
    /// `start` or at `now`, the state the entry applies to).
    fn written_in_range(
        db: &Db,
        ks: &Keyspace,
        range: (std::ops::Bound<Vec<u8>>, std::ops::Bound<Vec<u8>>),
        start: u64,
        now: u64,
    ) -> Result<Option<Vec<u8>>, CheckFail> {
        let mut keys = std::collections::BTreeSet::new();
        // Both reads at a timestamp of the log, so expiry is judged the
        // same on every replica.
        for at in [start, now] {
            let snap = db.snapshot_at(Timestamp(at))?;
            for r in snap.range(ks, range.clone())? {
                keys.insert(r?.0.to_vec());
            }
        }
        for k in keys {
            if Self::last_write(ks, &k)? > start {
                return Ok(Some(k));
            }
        }
        Ok(None)
    }

    /// Checks a transaction against the state its entry applies to (`now`,
    /// the same on every replica): `Some(conflict)` when something it wrote
    /// (or, serializable, read or scanned) changed after its start.
    fn check_txn(
        db: &Db,
        req: &Request,
        check: &TxnCheck,
        now: u64,
    ) -> Result<Option<Response>, CheckFail> {
        let start = check.start_ts;
        let ks_of = |i: u32| -> Result<(String, Keyspace), CheckFail> {
            let name = req
                .keyspaces
                .get(i as usize)
                .ok_or_else(|| CheckFail::Invalid(format!("keyspace index {i} out of range")))?;
            Ok((name.clone(), db.keyspace(name)?))
        };
        let conflict = |keyspace: String, key: Vec<u8>| Some(Response::Conflict { keyspace, key });
        if start < Timestamp(now).saturating_sub(MAX_TXN_AGE).as_u64() {
            // Too old to check the same way everywhere: run it again.
            return Ok(conflict(String::new(), Vec::new()));
        }
        for op in OpIter::new(&req.ops, req.count, 0) {
            let op = op.map_err(|e| CheckFail::Invalid(e.to_string()))?;
            let (name, ks) = ks_of(op.keyspace)?;
            if op.kind == ValueKind::RangeDelete {
                let range = (
                    std::ops::Bound::Included(op.key.to_vec()),
                    std::ops::Bound::Excluded(op.value.to_vec()),
                );
                if let Some(k) = Self::written_in_range(db, &ks, range, start, now)? {
                    return Ok(conflict(name, k));
                }
            } else if Self::last_write(&ks, op.key)? > start {
                return Ok(conflict(name, op.key.to_vec()));
            }
        }
        if check.serializable {
            for (i, key) in &check.reads {
                let (name, ks) = ks_of(*i)?;
                if Self::last_write(&ks, key)? > start {
                    return Ok(conflict(name, key.clone()));
                }
            }
            for (i, lo, hi) in &check.ranges {
                let (name, ks) = ks_of(*i)?;
                let range = (lo.clone(), hi.clone());
                if let Some(k) = Self::written_in_range(db, &ks, range, start, now)? {
                    return Ok(conflict(name, k));
                }
            }
        }
        Ok(None)
    }

    /// Applies one entry; returns the responses of its commands.
    pub(super) fn apply_entry(
        d: &mut Data,
        e: &Entry<TypeConfig>,
    ) -> Result<Vec<Response>, StorageError<NodeId>> {
        let next = d.applied_ts + 1;
        match &e.payload {
            EntryPayload::Blank => {
                Self::finish_entry(d, e, next, d.db.batch())?;
                Ok(Vec::new())
            }
            EntryPayload::Membership(m) => {
                d.membership = StoredMembership::new(Some(e.log_id), m.clone());
                let mut b = d.db.batch();
                b.put(&d.raft, MEMBERSHIP, codec::membership_record(m).encode())
                    .map_err(sm_write)?;
                b.put(
                    &d.raft,
                    MEMBERSHIP_LOG_ID,
                    codec::log_id_record(&e.log_id).encode(),
                )
                .map_err(sm_write)?;
                Self::finish_entry(d, e, next, b)?;
                Ok(Vec::new())
            }
            EntryPayload::Normal(reqs) if reqs.is_empty() => {
                Self::finish_entry(d, e, next, d.db.batch())?;
                Ok(Vec::new())
            }
            EntryPayload::Normal(reqs) => {
                let n = reqs.len();
                // Commands applied before a crash interrupted the entry are
                // not applied again (nobody waits for their answers now).
                let skip = match d.partial {
                    Some((id, k)) if id == e.log_id => (k as usize).min(n - 1),
                    _ => 0,
                };
                let mut out = vec![Response::Rejected("applied before a restart".into()); skip];
                for (j, req) in reqs.iter().enumerate().skip(skip) {
                    let (ts, r, mut b) = Self::apply_command(d, req)?;
                    if j + 1 < n {
                        let partial = PartialRecord {
                            log_id: codec::log_id_record(&e.log_id),
                            applied: j as u64 + 1,
                            ts,
                        };
                        b.put(&d.raft, PARTIAL, partial.encode())
                            .map_err(sm_write)?;
                        d.db.write_at(b, Timestamp(ts), WriteOptions { sync: false })
                            .map_err(|err| {
                                StorageError::from(StorageIOError::apply(e.log_id, &err))
                            })?;
                        d.applied_ts = ts;
                        d.partial = Some((e.log_id, j as u64 + 1));
                    } else {
                        if n > 1 {
                            b.delete(&d.raft, PARTIAL).map_err(sm_write)?;
                        }
                        Self::finish_entry(d, e, ts, b)?;
                    }
                    out.push(r);
                }
                Ok(out)
            }
        }
    }

    /// Writes `b` with the applied record of `e` at `ts`.
    fn finish_entry(
        d: &mut Data,
        e: &Entry<TypeConfig>,
        ts: u64,
        mut b: WriteBatch,
    ) -> Result<(), StorageError<NodeId>> {
        let applied = AppliedRecord {
            log_id: codec::log_id_record(&e.log_id),
            ts,
        };
        b.put(&d.raft, APPLIED, applied.encode())
            .map_err(sm_write)?;
        d.db.write_at(b, Timestamp(ts), WriteOptions { sync: false })
            .map_err(|err| StorageError::from(StorageIOError::apply(e.log_id, &err)))?;
        d.applied = Some(e.log_id);
        d.applied_ts = ts;
        d.partial = None;
        Ok(())
    }

    /// One command's commit timestamp, response and writes (its data, or
    /// only its session record when it does not apply).
    fn apply_command(
        d: &mut Data,
        req: &Request,
    ) -> Result<(u64, Response, WriteBatch), StorageError<NodeId>> {
        let prev = d.applied_ts;
        let mut b = d.db.batch();
        let in_range = req.ts_hint <= MAX_HINT;
        let ts = if in_range {
            req.ts_hint.max(prev + 1)
        } else {
            prev + 1
        };
        // A request applied before is answered as it was then.
        let seen = match req.session {
            Some((client, seq)) => match read_session(&d.raft, client) {
                Ok(Some((last, r))) if last == seq => Some(r),
                Ok(Some((last, _))) if last > seq => Some(Response::Rejected(format!(
                    "request {seq} of client {client} is older than its request {last}"
                ))),
                Ok(_) => None,
                Err(why) => Some(Response::Rejected(why)),
            },
            None => None,
        };
        if let Some(r) = seen {
            // Only the bookkeeping is written.
            return Ok((ts, r, b));
        }
        let checked = match &req.check {
            _ if !in_range => Err(format!("timestamp hint {} out of range", req.ts_hint)),
            _ if req.ops.len() > MAX_COMMAND_BYTES => Err(format!(
                "a command of {} bytes (at most {MAX_COMMAND_BYTES})",
                req.ops.len()
            )),
            Some(check) if check.start_ts > prev => Err(format!(
                "start {} is after the state it applies to",
                check.start_ts
            )),
            Some(check) => match Self::check_txn(&d.db, req, check, prev) {
                Ok(r) => Ok(r),
                Err(CheckFail::Invalid(why)) => Err(why),
                Err(CheckFail::Engine(err)) => return Err(sm_write(err)),
            },
            None => Ok(None),
        };
        let outcome = match checked {
            Ok(None) => Self::decode_into(&d.db, req, &mut b).map(|()| Response::Committed { ts }),
            Ok(Some(conflict)) => Ok(conflict),
            Err(why) => Err(why),
        };
        let r = match outcome {
            Ok(r @ Response::Committed { .. }) => r,
            // The same on every replica: only the bookkeeping.
            Ok(r) => {
                b.clear();
                r
            }
            Err(why) => {
                b.clear();
                Response::Rejected(why)
            }
        };
        if let (Some((client, seq)), Some(rec)) = (req.session, codec::response_record(&r)) {
            let mut v = Vec::new();
            strata_format::coding::put_varint64(&mut v, seq);
            v.extend_from_slice(&rec.encode());
            b.put(&d.raft, session_key(client), v).map_err(sm_write)?;
        }
        Ok((ts, r, b))
    }
}
