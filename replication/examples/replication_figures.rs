//! Figures of replicated Strata, measured in one run so that the ratios
//! against a single node are fair on a noisy machine:
//!
//! 1. write throughput and latency of three in-process replicas over the
//!    simulated network (no faults) against one `Db` with synced writes,
//!    for the same batch sizes and writers;
//! 2. failover: the time from the leader's shutdown until a new leader
//!    acknowledges a write;
//! 3. the catch-up of a new learner by snapshot transfer of a large state.
//!
//! ```text
//! cargo run --release -p strata-replication --example replication_figures -- [--quick]
//! ```
//!
//! Data goes under the system's temporary directory (or
//! `STRATA_FIGURES_DIR`): a real disk, since syncs are what is measured.
//! `--quick` measures for shorter and transfers ~100 MB instead of ~1 GB.
//!
//! What bounds the replicated writes: openraft 0.9's core appends each
//! proposed entry to the log and waits for that append's sync before it
//! takes the next client write, so concurrent writers do not share a sync
//! on the leader (followers do: one append-entries message carries every
//! entry pending). A replicated `Replica::write` therefore costs a leader
//! sync of its own, then a follower's, where the single node's group
//! commit shares one sync among every writer waiting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openraft::metrics::Metric;
use strata_engine::{Db, Options, WriteOptions};
use strata_replication::sim::SimNetwork;
use strata_replication::{Node, NodeId, Replica, ReplicaError, Request};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

const KS: &str = "kv";
const KEY_LEN: usize = 16;
const VALUE_LEN: usize = 100;

/// A fast generator of incompressible bytes.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(&self.next().to_le_bytes());
        }
        v.truncate(n);
        v
    }
}

/// The 16-byte key of writer `w`'s `i`th write.
fn key(w: usize, i: u64) -> Vec<u8> {
    let k = format!("w{w:03}-{i:011}").into_bytes();
    debug_assert_eq!(k.len(), KEY_LEN);
    k
}

fn node(id: NodeId) -> Node {
    Node {
        addr: format!("sim:{id}"),
    }
}

/// What writers did over some time: the writes (puts) and the latency
/// of each write call.
#[derive(Default)]
struct Run {
    writes: u64,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Run {
    /// Adds the writers' `(writes, latencies)` over `elapsed`.
    fn add(&mut self, runs: Vec<(u64, Vec<Duration>)>, elapsed: Duration) {
        for (w, l) in runs {
            self.writes += w;
            self.latencies.extend(l);
        }
        self.elapsed += elapsed;
    }

    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    /// The `p` quantile of the latencies, in milliseconds.
    fn pct(&mut self, p: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        self.latencies.sort_unstable();
        let i = ((self.latencies.len() - 1) as f64 * p).round() as usize;
        self.latencies[i].as_secs_f64() * 1e3
    }
}

/// Writers `first..first + writers` (threads) writing batches of `batch`
/// synced puts to `db` for `secs`.
fn single_node(
    db: &Db,
    run: &mut Run,
    (batch, first, writers): (usize, usize, usize),
    secs: Duration,
) -> Result<()> {
    let ks = db.keyspace(KS)?;
    let start = Instant::now();
    let deadline = start + secs;
    let handles: Vec<_> = (first..first + writers)
        .map(|w| {
            let (db, ks) = (db.clone(), ks.clone());
            std::thread::spawn(move || -> Result<(u64, Vec<Duration>)> {
                let mut noise = Noise(0x5eed + w as u64);
                let (mut i, mut lat) = (0u64, Vec::new());
                while Instant::now() < deadline {
                    let mut b = db.batch();
                    for _ in 0..batch {
                        b.put(&ks, key(w, i), noise.bytes(VALUE_LEN))?;
                        i += 1;
                    }
                    let t = Instant::now();
                    db.write(b, WriteOptions { sync: true })?;
                    lat.push(t.elapsed());
                }
                Ok((i, lat))
            })
        })
        .collect();
    let mut runs = Vec::new();
    for h in handles {
        runs.push(h.join().map_err(|_| "a writer thread panicked")??);
    }
    run.add(runs, start.elapsed());
    Ok(())
}

/// An in-process cluster of `n` replicas over one simulated network.
struct Cluster {
    net: SimNetwork,
    dir: PathBuf,
    config: Arc<openraft::Config>,
    nodes: BTreeMap<NodeId, Replica>,
}

impl Cluster {
    async fn start(dir: PathBuf, n: u64, config: openraft::Config) -> Result<Cluster> {
        let mut c = Cluster {
            net: SimNetwork::new(7),
            dir,
            config: Arc::new(config.validate()?),
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            c.start_node(id).await?;
        }
        let members: BTreeMap<NodeId, Node> = (1..=n).map(|id| (id, node(id))).collect();
        c.nodes[&1].raft().initialize(members).await?;
        Ok(c)
    }

    async fn start_node(&mut self, id: NodeId) -> Result<()> {
        let root = self.dir.join(format!("node{id}"));
        let r = Replica::start(
            id,
            &root,
            Options::default(),
            self.config.clone(),
            self.net.factory(id),
        )
        .await?;
        self.net.connect(id, r.raft().clone());
        self.nodes.insert(id, r);
        Ok(())
    }

    /// The leader, once every node agrees on one and it takes a write.
    async fn leader(&self) -> Result<NodeId> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let mut seen = std::collections::BTreeSet::new();
            for r in self.nodes.values() {
                seen.insert(r.raft().current_leader().await);
            }
            if let [Some(l)] = seen.into_iter().collect::<Vec<_>>()[..] {
                if let Some(r) = self.nodes.get(&l) {
                    let req = Request::new(0).put(KS, b"settled", b"1");
                    if let Ok(ts) = r.write(req).await {
                        for r in self.nodes.values() {
                            r.wait_applied(ts, Duration::from_secs(30)).await?;
                        }
                        return Ok(l);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Err("no leader within 30 s".into())
    }

    async fn shutdown(self) -> Result<()> {
        for (_, r) in self.nodes {
            r.shutdown().await?;
        }
        Ok(())
    }
}

/// Writers `first..first + writers` (tasks) writing batches of `batch`
/// puts through the leader for `secs`.
async fn replicated(
    leader: &Replica,
    run: &mut Run,
    (batch, first, writers): (usize, usize, usize),
    secs: Duration,
) -> Result<()> {
    let start = Instant::now();
    let deadline = start + secs;
    let tasks: Vec<_> = (first..first + writers)
        .map(|w| {
            let r = leader.clone();
            tokio::spawn(async move {
                let mut noise = Noise(0x5eed + w as u64);
                let (mut i, mut lat) = (0u64, Vec::new());
                while Instant::now() < deadline {
                    let mut req = Request::new(0);
                    for _ in 0..batch {
                        req = req.put(KS, &key(w, i), &noise.bytes(VALUE_LEN));
                        i += 1;
                    }
                    let t = Instant::now();
                    r.write(req).await?;
                    lat.push(t.elapsed());
                }
                Ok::<_, ReplicaError>((i, lat))
            })
        })
        .collect();
    let mut runs = Vec::new();
    for t in tasks {
        runs.push(t.await??);
    }
    run.add(runs, start.elapsed());
    Ok(())
}

async fn throughput(base: &Path, rounds: usize, secs: Duration) -> Result<()> {
    println!(
        "\n1. Writes: 3 replicas over SimNetwork (no faults; openraft's default \
         config) vs one Db with sync writes; {KEY_LEN}-byte keys, {VALUE_LEN}-byte \
         values; per cell {rounds} rounds of {} s each, the two alternating; \
         writes/s counts puts, latency is per write call",
        secs.as_secs_f64()
    );
    println!(
        "{:>5} {:>7} | {:>11} {:>8} {:>8} | {:>11} {:>8} {:>8} | {:>6}",
        "batch",
        "writers",
        "single w/s",
        "p50 ms",
        "p99 ms",
        "repl. w/s",
        "p50 ms",
        "p99 ms",
        "ratio"
    );
    let cluster = Cluster::start(base.join("cluster"), 3, openraft::Config::default()).await?;
    let leader = cluster.nodes[&cluster.leader().await?].clone();
    let mut ratios = Vec::new();
    for (n, (batch, writers)) in [(1, 1), (1, 16), (100, 1), (100, 16)]
        .into_iter()
        .enumerate()
    {
        let db = Db::open(base.join(format!("single-{n}")), Options::default())?;
        let (mut s, mut r) = (Run::default(), Run::default());
        for round in 0..rounds {
            let shape = (batch, round * writers, writers);
            let (db2, mut s2) = (db.clone(), std::mem::take(&mut s));
            s = tokio::task::spawn_blocking(move || {
                single_node(&db2, &mut s2, shape, secs).map(|()| s2)
            })
            .await??;
            replicated(&leader, &mut r, shape, secs).await?;
        }
        db.close()?;
        let ratio = r.per_sec() / s.per_sec();
        ratios.push(ratio);
        println!(
            "{:>5} {:>7} | {:>11.0} {:>8.2} {:>8.2} | {:>11.0} {:>8.2} {:>8.2} | {:>5.2}x",
            batch,
            writers,
            s.per_sec(),
            s.pct(0.5),
            s.pct(0.99),
            r.per_sec(),
            r.pct(0.5),
            r.pct(0.99),
            ratio
        );
    }
    let min = ratios.iter().cloned().fold(f64::INFINITY, f64::min);
    println!("   lowest ratio replicated/single: {min:.2}x (target >= 0.5x)");
    cluster.shutdown().await
}

/// Writes through whichever surviving node leads until one is
/// acknowledged; returns the node that took it.
async fn first_write(c: &Cluster, i: u64) -> Result<NodeId> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        for r in c.nodes.values() {
            let req = Request::new(0).put(KS, &key(999, i), b"failover");
            match tokio::time::timeout(Duration::from_secs(1), r.write(req)).await {
                Ok(Ok(_)) => return Ok(r.id()),
                Ok(Err(ReplicaError::NotLeader { .. })) | Ok(Err(ReplicaError::Raft(_))) => {}
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err("no write acknowledged within 60 s of the leader's shutdown".into())
}

async fn failover(base: &Path, rounds: usize) -> Result<()> {
    let config = openraft::Config::default();
    println!(
        "\n2. Failover: the leader shut down (Raft::shutdown, disconnected), \
         time until a new leader acknowledges a write; openraft's defaults: \
         heartbeat {} ms, election timeout {}-{} ms",
        config.heartbeat_interval, config.election_timeout_min, config.election_timeout_max
    );
    let mut c = Cluster::start(base.join("failover"), 3, config).await?;
    let mut times = Vec::new();
    for round in 0..rounds {
        // Settled: every node applied a write through the leader.
        let old = c.leader().await?;
        let t0 = Instant::now();
        c.net.disconnect(old);
        let gone = c.nodes.remove(&old).ok_or("the leader is not a node")?;
        let stopped = tokio::spawn(gone.shutdown());
        let new = first_write(&c, round as u64).await?;
        let took = t0.elapsed();
        times.push(took);
        println!(
            "   round {}: node {old} -> node {new}: {:.0} ms",
            round + 1,
            took.as_secs_f64() * 1e3
        );
        stopped.await??;
        // The old leader comes back as a follower for the next round.
        c.start_node(old).await?;
    }
    let max = times.iter().max().copied().unwrap_or_default();
    println!(
        "   max {:.0} ms over {rounds} rounds (target < 3000 ms)",
        max.as_secs_f64() * 1e3
    );
    c.shutdown().await
}

/// The bytes of the files in `dir`.
fn dir_bytes(dir: &Path) -> Result<u64> {
    let mut n = 0;
    for e in std::fs::read_dir(dir)? {
        n += e?.metadata()?.len();
    }
    Ok(n)
}

async fn snapshot_transfer(base: &Path, target_bytes: u64) -> Result<()> {
    const VALUE: usize = 16 << 10;
    const PER_WRITE: usize = 256;
    const WRITERS: usize = 4;
    let config = openraft::Config {
        snapshot_policy: openraft::SnapshotPolicy::Never,
        max_in_snapshot_log_to_keep: 0,
        ..Default::default()
    };
    println!(
        "\n3. Snapshot transfer: a one-node cluster filled with ~{} MB of random \
         {} KiB values through Raft, snapshotted and its log purged; then a \
         learner added from empty (chunks of {} KiB)",
        target_bytes / 1_000_000,
        VALUE >> 10,
        strata_replication::snapshot_transfer::DEFAULT_CHUNK_BYTES >> 10
    );
    let mut c = Cluster::start(base.join("snapshot"), 1, config).await?;
    c.leader().await?;
    let leader = c.nodes[&1].clone();
    let writes = target_bytes.div_ceil((VALUE * PER_WRITE) as u64);
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t = Instant::now();
    let tasks: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (r, next) = (leader.clone(), next.clone());
            tokio::spawn(async move {
                let mut noise = Noise(0xf111 + w as u64);
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= writes {
                        return Ok::<_, ReplicaError>(());
                    }
                    let mut req = Request::new(0);
                    for j in 0..PER_WRITE as u64 {
                        let k = key(w, i * PER_WRITE as u64 + j);
                        req = req.put(KS, &k, &noise.bytes(VALUE));
                    }
                    r.write(req).await?;
                }
            })
        })
        .collect();
    for task in tasks {
        task.await??;
    }
    let filled = t.elapsed();
    let raft = leader.raft();
    let last = raft
        .metrics()
        .borrow()
        .last_applied
        .ok_or("nothing applied")?;
    raft.trigger().snapshot().await?;
    let long = Some(Duration::from_secs(3600));
    raft.wait(long)
        .ge(Metric::Snapshot(Some(last)), "the snapshot")
        .await?;
    raft.trigger().purge_log(last.index).await?;
    raft.wait(long)
        .ge(Metric::Purged(Some(last)), "the purge")
        .await?;
    let root = c.dir.join("node1");
    let id = std::fs::read_to_string(root.join("SNAPSHOT"))?;
    let bytes = dir_bytes(&root.join("snapshots").join(id.trim()))?;
    println!(
        "   filled {:.0} MB in {:.1} s ({:.0} MB/s through Raft); snapshot {:.0} MB at index {}",
        (writes as usize * VALUE * PER_WRITE) as f64 / 1e6,
        filled.as_secs_f64(),
        (writes as usize * VALUE * PER_WRITE) as f64 / 1e6 / filled.as_secs_f64(),
        bytes as f64 / 1e6,
        last.index
    );
    c.start_node(2).await?;
    let learner = c.nodes[&2].clone();
    let t0 = Instant::now();
    raft.add_learner(2, node(2), false).await?;
    let target = raft
        .metrics()
        .borrow()
        .last_log_index
        .ok_or("no log index")?;
    let mut installed = None;
    loop {
        let m = learner.raft().metrics().borrow().clone();
        if installed.is_none() && m.snapshot.is_some() {
            installed = Some(t0.elapsed());
        }
        if m.last_applied.is_some_and(|l| l.index >= target) {
            break;
        }
        if t0.elapsed() > Duration::from_secs(3600) {
            return Err("the learner did not catch up within an hour".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = t0.elapsed();
    println!(
        "   learner applied index {target}: {:.2} s after add_learner (snapshot \
         installed at {:.2} s): {:.0} MB/s",
        took.as_secs_f64(),
        installed.unwrap_or(took).as_secs_f64(),
        bytes as f64 / 1e6 / took.as_secs_f64()
    );
    // The learner holds what the leader holds.
    let count =
        |r: &Replica| -> Result<usize> { Ok(r.state_machine().db().keyspace(KS)?.iter()?.count()) };
    let (have, want) = (count(&learner)?, count(&leader)?);
    if have != want {
        return Err(format!("the learner holds {have} keys, the leader {want}").into());
    }
    c.shutdown().await
}

fn main() -> Result<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let base = match std::env::var_os("STRATA_FIGURES_DIR") {
        Some(d) => tempfile::tempdir_in(d)?,
        None => tempfile::tempdir()?,
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "Strata replication figures (one run{}; {cores} cores; data under {})",
        if quick { ", --quick" } else { "" },
        base.path().display()
    );
    let (rounds, secs, bytes) = if quick {
        (2, Duration::from_secs(1), 100_000_000)
    } else {
        (5, Duration::from_secs(1), 1_000_000_000)
    };
    rt.block_on(async {
        throughput(base.path(), rounds, secs).await?;
        failover(base.path(), 5).await?;
        snapshot_transfer(base.path(), bytes).await
    })
}
