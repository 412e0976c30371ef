//! The state machine: a Strata database (`data-<n>/`, named by the file
//! `DATA`) written only by applying committed entries, and its snapshots,
//! which are engine checkpoints (`snapshots/<id>/`, named by `SNAPSHOT`).
//!
//! Every entry is applied by one `Db::write_at` at its commit timestamp
//! `max(ts_hint, previous + 1)` (blank and membership entries at
//! `previous + 1`): a function of the log alone, so every replica commits
//! each entry at the same timestamp. The same write puts the applied log
//! id and timestamp, and a membership entry's membership, in the reserved
//! keyspace `_raft`: after a crash the database holds a prefix of the
//! applied entries with the bookkeeping that says which.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, LogId, OptionalSend, RaftSnapshotBuilder, SnapshotMeta, StorageError, StorageIOError,
    StoredMembership,
};
use parking_lot::Mutex;
use strata_engine::{Db, Keyspace, Options, Timestamp};
use strata_format::raft::{AppliedRecord, LogIdRecord, MembershipRecord, PartialRecord};

use crate::codec;
use crate::types::{Node, NodeId, Response, TypeConfig};

mod apply;

/// The keyspace of the state machine's own records.
pub const RAFT_KEYSPACE: &str = "_raft";
const APPLIED: &[u8] = b"applied";
/// How far a batch entry was applied, while it is applied in part.
const PARTIAL: &[u8] = b"partial";
const MEMBERSHIP: &[u8] = b"membership";
const MEMBERSHIP_LOG_ID: &[u8] = b"membership_log_id";

/// The largest timestamp hint a command may carry: above it the
/// timestamps left could run out.
const MAX_HINT: u64 = u64::MAX - (1 << 40);
/// The largest command (its operations' bytes): a larger one is rejected
/// on every replica rather than failing the engine's batch limit on one.
const MAX_COMMAND_BYTES: usize = 64 << 20;
/// How far (in time) a transaction's start may lie behind the entry that
/// commits it: older ones are answered `Conflict` (run again). Replicas
/// keep at least [`MIN_HISTORY`] of history, so the versions the check
/// reads are there on every replica that applies the entry within that.
const MAX_TXN_AGE: std::time::Duration = std::time::Duration::from_secs(60);
/// The least history window of a state machine's database.
const MIN_HISTORY: std::time::Duration = std::time::Duration::from_secs(3600);

/// A snapshot's files: a checkpoint directory of the state machine's
/// database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotFiles {
    dir: PathBuf,
}

impl SnapshotFiles {
    /// The snapshot in checkpoint directory `dir` (a network hands the
    /// receiving state machine the directory it wrote the files to).
    pub fn new(dir: PathBuf) -> SnapshotFiles {
        SnapshotFiles { dir }
    }

    /// The checkpoint directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

struct Data {
    db: Db,
    generation: u64,
    raft: Keyspace,
    applied: Option<LogId<NodeId>>,
    /// The commit timestamp of the last applied entry.
    applied_ts: u64,
    membership: StoredMembership<NodeId, Node>,
    /// A batch entry applied in part: its id and how many commands.
    partial: Option<(LogId<NodeId>, u64)>,
}

/// The state machine of one node. Cheap to clone (openraft builds
/// snapshots from a clone).
#[derive(Clone)]
pub struct StateMachine {
    root: PathBuf,
    opts: Options,
    data: Arc<Mutex<Data>>,
    /// The commit timestamp of the last applied entry, for readers that
    /// wait for a timestamp to be applied.
    applied_tx: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("root", &self.root)
            .finish()
    }
}

fn sm_read(e: impl std::error::Error + Send + Sync + 'static) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(&e).into()
}

fn sm_write(e: impl std::error::Error + Send + Sync + 'static) -> StorageError<NodeId> {
    StorageIOError::write_state_machine(&e).into()
}

fn io(path: &Path, e: std::io::Error) -> strata_engine::Error {
    strata_engine::Error::io(path, e)
}

/// Writes `text` to `path` durably (a temporary file renamed over it).
fn write_pointer(dir: &Path, name: &str, text: &str) -> strata_engine::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        f.write_all(text.as_bytes()).map_err(|e| io(&tmp, e))?;
        f.sync_all().map_err(|e| io(&tmp, e))?;
    }
    std::fs::rename(&tmp, &path).map_err(|e| io(&path, e))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(dir, e))
}

fn read_pointer(dir: &Path, name: &str) -> strata_engine::Result<Option<String>> {
    let path = dir.join(name);
    match std::fs::read_to_string(&path) {
        Ok(s) => Ok(Some(s.trim().to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path, e)),
    }
}

/// Copies the database directory `from` into the new directory `to`:
/// SSTs hard-linked when possible (they never change), everything else
/// copied (an open may rewrite a WAL's tail or the manifest).
pub(crate) fn copy_db_dir(from: &Path, to: &Path) -> strata_engine::Result<()> {
    std::fs::create_dir_all(to).map_err(|e| io(to, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| io(from, e))? {
        let entry = entry.map_err(|e| io(from, e))?;
        let name = entry.file_name();
        let (src, dst) = (entry.path(), to.join(&name));
        if name == "LOCK" {
            continue;
        }
        let linked =
            name.to_string_lossy().ends_with(".sst") && std::fs::hard_link(&src, &dst).is_ok();
        if !linked {
            std::fs::copy(&src, &dst).map_err(|e| io(&src, e))?;
            std::fs::File::open(&dst)
                .and_then(|f| f.sync_all())
                .map_err(|e| io(&dst, e))?;
        }
    }
    std::fs::File::open(to)
        .and_then(|d| d.sync_all())
        .map_err(|e| io(to, e))
}

/// What the `_raft` keyspace says: the applied log id, its commit
/// timestamp, the membership.
type Bookkeeping = (Option<LogId<NodeId>>, u64, StoredMembership<NodeId, Node>);

/// Reads the bookkeeping of a state-machine database.
fn bookkeeping(raft: &Keyspace) -> strata_engine::Result<Bookkeeping> {
    let format = |e| strata_engine::Error::InvalidArgument(format!("{RAFT_KEYSPACE}: {e}"));
    let (applied, ts) = match raft.get(APPLIED)? {
        Some(v) => {
            let r = AppliedRecord::decode(&v).map_err(format)?;
            (Some(codec::log_id(&r.log_id)), r.ts)
        }
        None => (None, 0),
    };
    let m_id = match raft.get(MEMBERSHIP_LOG_ID)? {
        Some(v) => Some(LogIdRecord::decode(&v).map_err(format)?),
        None => None,
    };
    let m = match raft.get(MEMBERSHIP)? {
        Some(v) => MembershipRecord::decode(&v).map_err(format)?,
        None => MembershipRecord::default(),
    };
    Ok((applied, ts, codec::stored_membership(m_id.as_ref(), &m)))
}

/// Removes what snapshot transfers a crash interrupted left behind: the
/// `incoming-<hex>` staging directories this state machine names (no
/// transfer runs before it opens).
fn remove_staging(root: &Path) -> strata_engine::Result<()> {
    for entry in std::fs::read_dir(root).map_err(|e| io(root, e))? {
        let entry = entry.map_err(|e| io(root, e))?;
        let name = entry.file_name();
        let Some(hex) = name.to_str().and_then(|n| n.strip_prefix("incoming-")) else {
            continue;
        };
        if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) && entry.path().is_dir() {
            std::fs::remove_dir_all(entry.path()).map_err(|e| io(entry.path().as_path(), e))?;
        }
    }
    Ok(())
}

impl StateMachine {
    /// Opens (creating) the state machine of the node rooted at `root`.
    pub fn open(root: &Path, mut opts: Options) -> strata_engine::Result<StateMachine> {
        // Transactions are checked against history (see `MAX_TXN_AGE`).
        opts.history_retention = opts.history_retention.max(MIN_HISTORY);
        std::fs::create_dir_all(root.join("snapshots")).map_err(|e| io(root, e))?;
        remove_staging(root)?;
        let generation = match read_pointer(root, "DATA")? {
            Some(s) => s
                .strip_prefix("data-")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| {
                    strata_engine::Error::InvalidArgument(format!(
                        "{}: DATA names {s:?}, not data-<n>",
                        root.display()
                    ))
                })?,
            None => {
                write_pointer(root, "DATA", "data-1")?;
                1
            }
        };
        let data = Self::open_data(root, &opts, generation)?;
        let (applied_tx, _) = tokio::sync::watch::channel(data.applied_ts);
        Ok(StateMachine {
            root: root.to_path_buf(),
            opts,
            data: Arc::new(Mutex::new(data)),
            applied_tx: Arc::new(applied_tx),
        })
    }

    fn open_data(root: &Path, opts: &Options, generation: u64) -> strata_engine::Result<Data> {
        let db = Db::open(root.join(format!("data-{generation}")), opts.clone())?;
        let raft = db.keyspace(RAFT_KEYSPACE)?;
        let (applied, mut applied_ts, membership) = bookkeeping(&raft)?;
        let format = |e| strata_engine::Error::InvalidArgument(format!("{RAFT_KEYSPACE}: {e}"));
        let partial = match raft.get(PARTIAL)? {
            Some(v) => {
                let r = PartialRecord::decode(&v).map_err(format)?;
                applied_ts = applied_ts.max(r.ts);
                Some((codec::log_id(&r.log_id), r.applied))
            }
            None => None,
        };
        Ok(Data {
            db,
            generation,
            raft,
            applied,
            applied_ts,
            membership,
            partial,
        })
    }

    /// The state machine's database (for reads: write to it only through
    /// the log).
    pub fn db(&self) -> Db {
        self.data.lock().db.clone()
    }

    /// The number of the data directory in use (`data-<n>`): it changes
    /// when a snapshot is installed, and handles on the old database then
    /// fail with `Closed`.
    pub fn generation(&self) -> u64 {
        self.data.lock().generation
    }

    /// The commit timestamp of the last applied entry: reads at or below
    /// it see what every replica sees at that time.
    pub fn applied_ts(&self) -> Timestamp {
        Timestamp(self.data.lock().applied_ts)
    }

    /// Follows the commit timestamp of the last applied entry.
    pub fn subscribe_applied(&self) -> tokio::sync::watch::Receiver<u64> {
        self.applied_tx.subscribe()
    }

    fn snapshot_dir(&self, id: &str) -> PathBuf {
        self.root.join("snapshots").join(id)
    }

    /// The meta of the snapshot in `dir` with id `id`, read from its
    /// bookkeeping.
    fn snapshot_meta(
        &self,
        dir: &Path,
        id: &str,
    ) -> strata_engine::Result<SnapshotMeta<NodeId, Node>> {
        let db = Db::open_read_only(dir, self.opts.clone())?;
        let raft = db.keyspace(RAFT_KEYSPACE)?;
        let (applied, _, membership) = bookkeeping(&raft)?;
        Ok(SnapshotMeta {
            last_log_id: applied,
            last_membership: membership,
            snapshot_id: id.to_owned(),
        })
    }

    /// Makes snapshot `id` the current one and removes the others.
    fn set_current_snapshot(&self, id: &str) -> strata_engine::Result<()> {
        write_pointer(&self.root, "SNAPSHOT", id)?;
        let dir = self.root.join("snapshots");
        for entry in std::fs::read_dir(&dir).map_err(|e| io(&dir, e))? {
            let entry = entry.map_err(|e| io(&dir, e))?;
            if entry.file_name().to_string_lossy() != id {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        // Off the async worker: a flush and a checkpoint block.
        let sm = self.clone();
        tokio::task::spawn_blocking(move || sm.build_snapshot_blocking())
            .await
            .map_err(|e| {
                sm_write(std::io::Error::other(format!(
                    "the snapshot task failed: {e}"
                )))
            })?
    }
}

impl StateMachine {
    fn build_snapshot_blocking(&self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let d = self.data.lock();
        let (term, index) = d.applied.map_or((0, 0), |l| (l.leader_id.term, l.index));
        // Two builds at one applied entry get different ids.
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos());
        let id = format!("{term}-{index}-{nonce:x}");
        let dir = self.snapshot_dir(&id);
        let err =
            |e: strata_engine::Error| StorageError::from(StorageIOError::write_snapshot(None, &e));
        // The lock keeps applies (and installs) out: the checkpoint holds
        // exactly the bookkeeping below. The data is made durable first:
        // openraft purges the log up to the snapshot, and applies are not
        // synced, so a power loss must not take the data below it.
        d.db.flush().map_err(err)?;
        d.db.checkpoint(&dir).map_err(err)?;
        let meta = SnapshotMeta {
            last_log_id: d.applied,
            last_membership: d.membership.clone(),
            snapshot_id: id.clone(),
        };
        self.set_current_snapshot(&id).map_err(err)?;
        drop(d);
        Ok(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFiles { dir }),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = StateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, Node>), StorageError<NodeId>> {
        let d = self.data.lock();
        Ok((d.applied, d.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Vec<Response>>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        // Off the async worker: applies write to the engine.
        let entries: Vec<Entry<TypeConfig>> = entries.into_iter().collect();
        let (data, tx) = (self.data.clone(), self.applied_tx.clone());
        tokio::task::spawn_blocking(move || {
            let mut d = data.lock();
            let mut out = Vec::with_capacity(entries.len());
            for e in &entries {
                out.push(Self::apply_entry(&mut d, e)?);
            }
            tx.send_replace(d.applied_ts);
            Ok(out)
        })
        .await
        .map_err(|e| sm_write(std::io::Error::other(format!("the apply task failed: {e}"))))?
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<SnapshotFiles>, StorageError<NodeId>> {
        // A fresh directory per transfer, so nothing of an earlier one
        // mixes in.
        let n = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |t| t.as_nanos());
        let dir = self.root.join(format!("incoming-{n:x}"));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(Box::new(SnapshotFiles { dir }))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, Node>,
        snapshot: Box<SnapshotFiles>,
    ) -> Result<(), StorageError<NodeId>> {
        let err = |e: strata_engine::Error| {
            StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e))
        };
        // The id names a directory: a plain name only (it comes from the
        // leader, over the network).
        if !strata_format::backup::is_plain_name(&meta.snapshot_id) {
            return Err(err(strata_engine::Error::InvalidArgument(format!(
                "snapshot id {:?} is not a plain name",
                meta.snapshot_id
            ))));
        }
        // Held throughout: applies, builds and other installs wait, so the
        // pointers move in one order.
        let mut d = self.data.lock();
        let next = d.generation + 1;
        let data_dir = self.root.join(format!("data-{next}"));
        let _ = std::fs::remove_dir_all(&data_dir);
        copy_db_dir(snapshot.dir(), &data_dir).map_err(err)?;
        // Opened and checked before `DATA` names it: a copy that does not
        // open, or holds another state, never becomes the node's data.
        let fresh = match Self::open_data(&self.root, &self.opts, next) {
            Ok(f) if f.applied == meta.last_log_id => f,
            Ok(f) => {
                let _ = f.db.close();
                let _ = std::fs::remove_dir_all(&data_dir);
                return Err(err(strata_engine::Error::InvalidArgument(format!(
                    "snapshot {} holds {:?}, its meta says {:?}",
                    meta.snapshot_id, f.applied, meta.last_log_id
                ))));
            }
            Err(e) => {
                let _ = std::fs::remove_dir_all(&data_dir);
                return Err(err(e));
            }
        };
        let keep = self.snapshot_dir(&meta.snapshot_id);
        if snapshot.dir() != keep {
            let _ = std::fs::remove_dir_all(&keep);
            copy_db_dir(snapshot.dir(), &keep).map_err(err)?;
            let snaps = self.root.join("snapshots");
            std::fs::File::open(&snaps)
                .and_then(|f| f.sync_all())
                .map_err(|e| err(io(&snaps, e)))?;
        }
        write_pointer(&self.root, "DATA", &format!("data-{next}")).map_err(err)?;
        let old = std::mem::replace(&mut *d, fresh);
        let _ = old.db.close();
        let _ = std::fs::remove_dir_all(self.root.join(format!("data-{}", old.generation)));
        self.applied_tx.send_replace(d.applied_ts);
        self.set_current_snapshot(&meta.snapshot_id).map_err(err)?;
        drop(d);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let Some(id) = read_pointer(&self.root, "SNAPSHOT").map_err(sm_read)? else {
            return Ok(None);
        };
        if !strata_format::backup::is_plain_name(&id) {
            return Err(sm_read(strata_engine::Error::InvalidArgument(format!(
                "SNAPSHOT names {id:?}, not a plain name"
            ))));
        }
        let dir = self.snapshot_dir(&id);
        let meta = self.snapshot_meta(&dir, &id).map_err(sm_read)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(SnapshotFiles { dir }),
        }))
    }
}
