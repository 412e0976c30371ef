//! Seeded schedules of message loss, delay, partitions and crashes on an
//! in-process cluster, while three clients put, read (linearizably) and
//! compare-and-swap a few keys concurrently. Afterwards the clients'
//! history must be linearizable (a Wing–Gong search over it), every
//! acknowledged write is on every replica at the same timestamp, every
//! replica holds the same versions, and no write applied twice. Time is
//! tokio's paused clock, so a schedule takes milliseconds.
//! `STRATA_RAFT_SEEDS=N` runs N schedules instead of 200, from number
//! `STRATA_RAFT_SEED_FIRST` (0).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_agree, Cluster, KS};
use strata_engine::{Isolation, Timestamp, TxnOptions};
use strata_replication::linearizability::{History, Op, Outcome, Output};
use strata_replication::sim::Faults;
use strata_replication::{NodeId, ReplicaError, Request};

const CLIENTS: u64 = 3;
const KEYS: u64 = 3;

/// Compare-and-swap of `key` from `expected` to `new`, as a transaction
/// at whichever node leads: `Some(swapped)`, or `None` when the client
/// never learned the outcome.
async fn cas(c: &Cluster, key: &[u8], expected: Option<Vec<u8>>, new: &[u8]) -> Option<bool> {
    let mut target = c.up().first()?.id();
    for _ in 0..8 {
        let Some(r) = c.up().into_iter().find(|r| r.id() == target) else {
            target = c.up().first()?.id();
            continue;
        };
        let opts = TxnOptions::new(Isolation::Serializable);
        let run = r.transaction(&opts, |t| {
            if t.get(KS, key)? == expected {
                t.put(KS, key, new);
                Ok(true)
            } else {
                Ok(false)
            }
        });
        match tokio::time::timeout(Duration::from_millis(500), run).await {
            Ok(Ok((swapped, _))) => return Some(swapped),
            // Refused before it was proposed: nothing applied, so it can
            // be sent to the leader.
            Ok(Err(ReplicaError::NotLeader { leader: Some(l) })) => target = l,
            // Proposed, maybe applied: the outcome stays unknown.
            _ => return None,
        }
    }
    None
}

/// A client: its id, its acknowledged writes (key, value, commit
/// timestamp), and the value it last saw of each key.
struct Client {
    id: u64,
    acked: Vec<(Vec<u8>, Vec<u8>, Timestamp)>,
    seen: Vec<Option<Vec<u8>>>,
}

/// One client's operation in round `round`: a put, a linearizable read or
/// a compare-and-swap of one of the keys, recorded in `history`. Every
/// value written is new, so each is written once.
async fn client_op(
    c: &Cluster,
    history: &History,
    seed: u64,
    round: u32,
    draw: u64,
    me: &mut Client,
) -> u64 {
    let client = me.id;
    let (acked, last_seen) = (&mut me.acked, &mut me.seen);
    let k = draw % KEYS;
    let key = format!("k{k}").into_bytes();
    let value = format!("{client}.{round}").into_bytes();
    match (draw / KEYS) % 10 {
        0..=3 => {
            let id = history.invoke(
                client,
                Op::Put {
                    key: key.clone(),
                    value: Some(value.clone()),
                },
            );
            // The client's session: a retry of a write whose answer was
            // lost is answered, not applied again.
            let req = Request::new(0)
                .put(KS, &key, &value)
                .with_session((seed << 8) | client, u64::from(round) + 1);
            match c.write(req).await {
                Some(ts) => {
                    history.complete(id, Output::Put);
                    acked.push((key, value.clone(), ts));
                    last_seen[k as usize] = Some(value);
                }
                None => history.abandon(id),
            }
            0
        }
        4..=6 => {
            let id = history.invoke(client, Op::Get { key: key.clone() });
            match c.linearizable_get(&key).await {
                Some(got) => {
                    last_seen[k as usize] = got.clone();
                    history.complete(id, Output::Get(got));
                    1
                }
                None => {
                    history.abandon(id);
                    0
                }
            }
        }
        _ => {
            let expected = last_seen[k as usize].clone();
            let id = history.invoke(
                client,
                Op::Cas {
                    key: key.clone(),
                    expected: expected.clone(),
                    new: Some(value.clone()),
                },
            );
            match cas(c, &key, expected, &value).await {
                Some(swapped) => {
                    history.complete(id, Output::Cas(swapped));
                    if swapped {
                        last_seen[k as usize] = Some(value);
                    }
                    1
                }
                None => {
                    history.abandon(id);
                    0
                }
            }
        }
    }
}

/// One seeded schedule: faults, partitions and crashes between rounds of
/// concurrent client operations; then heal and check.
async fn schedule(seed: u64) -> [u64; 4] {
    let mut c = Cluster::start(3, seed).await;
    c.leader(Duration::from_secs(10)).await.expect("a leader");
    c.net.set_faults(Faults {
        drop_request_per_mille: 30,
        drop_reply_per_mille: 30,
        max_delay: Duration::from_millis(15),
    });
    let history = History::new();
    let mut clients: Vec<Client> = (1..=CLIENTS)
        .map(|id| Client {
            id,
            acked: Vec::new(),
            seen: vec![None; KEYS as usize],
        })
        .collect();
    let mut down: Option<NodeId> = None;
    let (mut answered_reads, mut crashes, mut partitions) = (0u64, 0u64, 0u64);
    for round in 0..30u32 {
        match c.net.draw() % 20 {
            0 => {
                let a = 1 + c.net.draw() % 3;
                let rest: Vec<NodeId> = (1..=3).filter(|&x| x != a).collect();
                c.net.partition(&[&[a], &rest]);
                partitions += 1;
            }
            1 | 4 | 5 => c.net.heal(),
            2 if down.is_none() => {
                let id = 1 + c.net.draw() % 3;
                c.crash(id).await;
                down = Some(id);
                crashes += 1;
            }
            3 => {
                if let Some(id) = down.take() {
                    c.restart(id).await;
                }
            }
            _ => {}
        }
        let draws: Vec<u64> = (0..CLIENTS).map(|_| c.net.draw()).collect();
        let [c0, c1, c2] = &mut clients[..] else {
            unreachable!()
        };
        let (r0, r1, r2) = tokio::join!(
            client_op(&c, &history, seed, round, draws[0], c0),
            client_op(&c, &history, seed, round, draws[1], c1),
            client_op(&c, &history, seed, round, draws[2], c2),
        );
        answered_reads += r0 + r1 + r2;
    }
    match history.check() {
        Ok(Outcome::Linearizable) => {}
        Ok(outcome) => {
            panic!("seed {seed}: the clients' history is not linearizable:\n{outcome:#}")
        }
        Err(e) => panic!("seed {seed}: a malformed history: {e}"),
    }
    let unknown = history.entries().iter().filter(|e| e.ret.is_none()).count() as u64;
    let mut keys: BTreeSet<Vec<u8>> = (0..KEYS).map(|k| format!("k{k}").into_bytes()).collect();
    c.net.heal();
    c.net.set_faults(Faults::default());
    if let Some(id) = down.take() {
        c.restart(id).await;
    }
    c.leader(Duration::from_secs(20))
        .await
        .expect("a leader after healing");
    // One more write, so every replica has something to apply past all.
    // Patiently: a healed cluster may still be electing.
    let Some(last) = c
        .write_tries(
            Request::new(0)
                .put(KS, b"final", b"1")
                .with_session(seed << 8, 1),
            200,
        )
        .await
    else {
        let mut states = Vec::new();
        for r in c.up() {
            let m = r.raft().metrics().borrow().clone();
            let direct = r.write(Request::new(0).put(KS, b"probe", b"1")).await;
            states.push(format!(
                "node {}: {:?} leader {:?} applied {:?} running {:?}; a write there: {direct:?}",
                r.id(),
                m.state,
                m.current_leader,
                m.last_applied,
                m.running_state
            ));
        }
        panic!(
            "seed {seed}: the healed cluster takes no writes:\n{}",
            states.join("\n")
        );
    };
    keys.insert(b"final".to_vec());
    assert_agree(&c, last, &keys).await;
    for r in c.up() {
        let ks = r.state_machine().db().keyspace(KS).unwrap();
        for (k, v, ts) in clients.iter().flat_map(|c| &c.acked) {
            assert_eq!(
                ks.get_at(k, *ts).unwrap().as_deref(),
                Some(&v[..]),
                "seed {seed}: node {} lost an acknowledged write",
                r.id()
            );
        }
    }
    // No write was applied twice: each value is in one version at most.
    for r in c.up() {
        let d = common::dump(r, &keys);
        let mut seen = BTreeSet::new();
        for versions in d.values() {
            for (_, v) in versions {
                if let Some(v) = v {
                    assert!(
                        seen.insert(v.clone()),
                        "seed {seed}: node {} applied a write twice: {d:?}",
                        r.id()
                    );
                }
            }
        }
    }
    for id in 1..=3 {
        c.crash(id).await;
    }
    [unknown, crashes, partitions, answered_reads]
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn seeded_fault_schedules_keep_every_acknowledged_write() {
    let seeds: u64 = std::env::var("STRATA_RAFT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut totals = [0u64; 4];
    let first: u64 = std::env::var("STRATA_RAFT_SEED_FIRST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    for seed in first..first + seeds {
        let got = schedule(0x5eed_0000 + seed).await;
        for (t, g) in totals.iter_mut().zip(got) {
            *t += g;
        }
    }
    let [unknown, crashes, partitions, reads] = totals;
    eprintln!(
        "{seeds} schedules: {unknown} operations of unknown outcome, {crashes} crashes, \
         {partitions} partitions, {reads} answered reads and compare-and-swaps"
    );
    if seeds >= 20 {
        assert!(
            unknown > 0 && crashes > 0 && partitions > 0 && reads > 0,
            "{totals:?}"
        );
    }
}
