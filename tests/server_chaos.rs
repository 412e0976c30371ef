//! Chaos over HTTP: concurrent clients put, read linearizably and
//! compare-and-set a few keys on a 3-process `strata serve` cluster while
//! nodes are SIGKILLed and restarted at random; the recorded history must
//! be linearizable (the Wing–Gong checker of `strata_replication`) and no
//! acknowledged write may be lost. A few seconds in the normal run;
//! `STRATA_CLUSTER_CHAOS_SECS=N` runs N seconds.

mod server_common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use server_common::{Cluster, ALICE};
use strata_client::{Client, ClientError};
use strata_replication::linearizability::{History, Op, Outcome, Output};

const KEYS: u64 = 6;

/// Whether a failed call certainly did not take effect: no server was
/// reached, the leader refused it before proposing (no leader known), or a
/// transaction lost a conflict (nothing written). Anything else may have
/// applied.
fn refused(e: &ClientError) -> bool {
    match e {
        ClientError::Unreachable(_) => true,
        ClientError::Status {
            status: 503,
            message,
        } => message.starts_with("no leader is known"),
        ClientError::Status {
            status: 409,
            message,
        } => message.contains("conflict"),
        _ => false,
    }
}

/// One client's loop: until `until`, a random operation on a random key,
/// each recorded with its outcome; an operation whose answer never came
/// (a timeout, a dropped connection, a 503 after sending) stays open.
async fn client_loop(
    id: u64,
    urls: Vec<String>,
    history: Arc<History>,
    until: Instant,
    acked: Arc<parking_lot::Mutex<Vec<(String, String, u64)>>>,
) -> u64 {
    // Each client prefers another node, so followers answer too.
    let mut urls = urls;
    urls.rotate_left(id as usize % 3);
    let client = Client::new(urls, ALICE, Duration::from_secs(2)).unwrap();
    let mut x = id.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut done = 0;
    let mut n = 0u64;
    while Instant::now() < until {
        n += 1;
        let k = format!("chaos/k{}", next() % KEYS);
        let value = format!("{id}.{n}");
        match next() % 3 {
            0 => {
                let op = history.invoke(
                    id,
                    Op::Put {
                        key: k.clone().into_bytes(),
                        value: Some(value.clone().into_bytes()),
                    },
                );
                match client.put("resource", &k, value.as_bytes()).await {
                    Ok(ts) => {
                        history.complete(op, Output::Put);
                        acked.lock().push((k, value, ts));
                        done += 1;
                    }
                    Err(ClientError::Status { status, .. }) if status == 401 || status == 400 => {
                        panic!("put refused with {status}")
                    }
                    Err(e) if refused(&e) => history.discard(op),
                    Err(_) => history.abandon(op),
                }
            }
            1 => {
                let op = history.invoke(
                    id,
                    Op::Get {
                        key: k.clone().into_bytes(),
                    },
                );
                match client.get_linearizable("resource", &k).await {
                    Ok(v) => {
                        history.complete(op, Output::Get(v.map(|v| v.0)));
                        done += 1;
                    }
                    // A read changes nothing: one without an answer is
                    // left out.
                    Err(_) => history.discard(op),
                }
            }
            _ => {
                // Compare-and-set from what the key holds now (read
                // linearizably), to a new value.
                let Ok(cur) = client.get_linearizable("resource", &k).await else {
                    continue;
                };
                let expected = cur.map(|v| String::from_utf8(v.0).unwrap());
                let op = history.invoke(
                    id,
                    Op::Cas {
                        key: k.clone().into_bytes(),
                        expected: expected.clone().map(String::into_bytes),
                        new: Some(value.clone().into_bytes()),
                    },
                );
                match client
                    .compare_and_set("resource", &k, expected.as_deref(), &value)
                    .await
                {
                    Ok(swapped) => {
                        history.complete(op, Output::Cas(swapped));
                        done += 1;
                    }
                    Err(e) if refused(&e) => history.discard(op),
                    Err(_) => history.abandon(op),
                }
            }
        }
    }
    done
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_stay_linearizable_while_nodes_are_killed() {
    let secs: u64 = std::env::var("STRATA_CLUSTER_CHAOS_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6);
    let mut c = Cluster::start(3);
    c.leader(1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let history = Arc::new(History::new());
    let acked = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut clients = Vec::new();
    for id in 1..=4 {
        clients.push(tokio::spawn(client_loop(
            id,
            c.urls.clone(),
            history.clone(),
            until,
            acked.clone(),
        )));
    }
    // The killer: a node down at a time, SIGKILLed and restarted after a
    // while, the leader as often as not.
    let mut x: u64 = 0x5eed;
    let mut kills = 0;
    while Instant::now() < until {
        tokio::time::sleep(Duration::from_millis(700 + (x % 900))).await;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let victim = match c.leader(1 + x % 3, Duration::from_millis(500)).await {
            Some(l) if x.is_multiple_of(2) => l,
            _ => 1 + (x >> 8) % 3,
        };
        c.nodes[victim as usize - 1].kill();
        kills += 1;
        tokio::time::sleep(Duration::from_millis(300 + (x >> 16) % 1200)).await;
        c.nodes[victim as usize - 1].start();
    }
    let mut answered = 0;
    for t in clients {
        answered += t.await.unwrap();
    }
    match history.check() {
        Ok(Outcome::Linearizable) => {}
        Ok(other) => panic!(
            "the clients' history is not linearizable:\n{other:#}\n{}",
            c.logs()
        ),
        Err(e) => panic!("a malformed history: {e}"),
    }
    // Every acknowledged write is on every node once they caught up.
    let acked: Vec<(String, String, u64)> = acked.lock().clone();
    let last = acked.iter().map(|a| a.2).max().unwrap_or(0);
    for id in 1..=3 {
        c.wait_applied(id, last, Duration::from_secs(30)).await;
        let n = c.node_only(id, ALICE);
        for (k, v, ts) in &acked {
            let got = n.get_at("resource", k, *ts).await.unwrap();
            assert_eq!(
                got.map(|g| g.0),
                Some(v.clone().into_bytes()),
                "node {id} lost {k} at {ts}"
            );
        }
    }
    eprintln!(
        "{secs} s: {answered} answered operations, {} acknowledged writes, {kills} kills",
        acked.len()
    );
    assert!(answered > 0 && kills > 0);
}
