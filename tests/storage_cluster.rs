//! The storage system on a 3-node Raft cluster (in process, over the
//! simulated network): its writes go through the log and every replica
//! answers the same (items, history, documents, index plans, reads at a
//! timestamp); a follower refuses writes naming the leader; access policies
//! changed at the leader take effect on followers; a node that catches up
//! by snapshot serves the storage system over its new data.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use strata::cluster::ReplicatedStorage;
use strata::engine::Timestamp;
use strata::{
    AccessPolicy, AccessType, DocumentQuery, Effect, Identity, Principal, QueryOptions,
    RetrieveOptions, StorageKey, StorageOptions, StorageSystem, StorageSystemConfig, StorageType,
};
use strata_replication::openraft;
use strata_replication::sim::SimNetwork;
use strata_replication::{Node, NodeId};

fn raft_config() -> Arc<openraft::Config> {
    let c = openraft::Config {
        heartbeat_interval: 40,
        election_timeout_min: 150,
        election_timeout_max: 300,
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(30),
        max_in_snapshot_log_to_keep: 5,
        purge_batch_size: 1,
        ..Default::default()
    };
    Arc::new(c.validate().unwrap())
}

fn builder() -> strata::StorageSystemBuilder {
    let config = StorageSystemConfig {
        access_control: true,
        ..Default::default()
    };
    StorageSystem::builder()
        .with_config(config)
        .with_access_policies(vec![AccessPolicy {
            id: "alice".into(),
            effect: Effect::Allow,
            principals: vec![Principal::Identity("alice".into())],
            storage_types: vec![],
            key_pattern: "*".into(),
            access: vec![AccessType::Read, AccessType::Write, AccessType::List],
        }])
}

struct Nodes {
    net: SimNetwork,
    dir: tempfile::TempDir,
    nodes: BTreeMap<NodeId, Option<Arc<ReplicatedStorage>>>,
}

impl Nodes {
    async fn start(n: u64) -> Nodes {
        let mut c = Nodes {
            net: SimNetwork::new(7),
            dir: tempfile::tempdir().unwrap(),
            nodes: BTreeMap::new(),
        };
        for id in 1..=n {
            c.restart(id).await;
        }
        let members: BTreeMap<NodeId, Node> = (1..=n)
            .map(|id| {
                (
                    id,
                    Node {
                        addr: format!("sim:{id}"),
                    },
                )
            })
            .collect();
        c.node(1)
            .replica()
            .raft()
            .initialize(members)
            .await
            .unwrap();
        c
    }

    fn root(&self, id: NodeId) -> PathBuf {
        self.dir.path().join(format!("node{id}"))
    }

    fn node(&self, id: NodeId) -> Arc<ReplicatedStorage> {
        self.nodes[&id].clone().expect("node is up")
    }

    async fn restart(&mut self, id: NodeId) {
        let s = ReplicatedStorage::start(
            id,
            &self.root(id),
            builder(),
            raft_config(),
            self.net.factory(id),
        )
        .await
        .unwrap();
        self.net.connect(id, s.replica().raft().clone());
        self.nodes.insert(id, Some(Arc::new(s)));
    }

    async fn crash(&mut self, id: NodeId) {
        self.net.disconnect(id);
        if let Some(s) = self.nodes.insert(id, None).flatten() {
            let s = Arc::try_unwrap(s).expect("no other handle");
            s.shutdown().await.unwrap();
        }
    }

    async fn leader(&self) -> NodeId {
        for _ in 0..500 {
            for s in self.nodes.values().flatten() {
                let r = s.replica();
                if r.raft().current_leader().await == Some(r.id()) {
                    return r.id();
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("no leader");
    }

    fn up(&self) -> Vec<Arc<ReplicatedStorage>> {
        self.nodes.values().flatten().cloned().collect()
    }
}

/// Runs storage calls (which block on Raft) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

fn key(s: &str) -> StorageKey {
    StorageKey::new(s)
}

/// What a node's storage system answers, for comparing replicas.
fn answers(s: &ReplicatedStorage) -> String {
    let sys = s.system().unwrap();
    let kv = sys.get_provider(StorageType::Resource).unwrap();
    let mut out = String::new();
    for i in 0..20 {
        let k = key(&format!("r/{i}"));
        let h: Vec<(Timestamp, Option<Vec<u8>>)> = kv
            .history(&k)
            .unwrap()
            .into_iter()
            .map(|v| (v.ts, v.item.map(|i| i.value)))
            .collect();
        out += &format!("{k}: {h:?}\n");
    }
    let docs = sys.get_document_storage(StorageType::Fact).unwrap();
    let q = DocumentQuery::new().with_field_equals("kind", "even");
    let found: Vec<serde_json::Value> = docs
        .query_documents("facts", &q, &QueryOptions::new())
        .unwrap();
    let plan = docs.explain("facts", &q, &QueryOptions::new()).unwrap();
    out += &format!("docs {found:?}\nplan {:?} {:?}\n", plan.kind, plan.index);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_answers_the_same_and_followers_refuse_writes() {
    let c = Nodes::start(3).await;
    let leader = c.node(c.leader().await);
    let last = blocking({
        let leader = leader.clone();
        move || {
            let sys = leader.system().unwrap();
            let kv = sys.get_provider(StorageType::Resource).unwrap();
            for i in 0..40 {
                kv.store(
                    &key(&format!("r/{}", i % 20)),
                    format!("v{i}").as_bytes(),
                    &StorageOptions::new(),
                )
                .unwrap();
            }
            let docs = sys.get_document_storage(StorageType::Fact).unwrap();
            for i in 0..30 {
                let kind = if i % 2 == 0 { "even" } else { "odd" };
                docs.store_document(
                    "facts",
                    &format!("f{i}"),
                    &json!({"n": i, "kind": kind}),
                    &Default::default(),
                )
                .unwrap();
            }
            docs.create_index("facts", "kind").unwrap();
            // A storage transaction over two types commits as one entry.
            sys.transaction(|tx| {
                let opts = StorageOptions::new().with_transaction(tx);
                kv.store(&key("r/0"), b"in-tx", &opts)?;
                sys.get_provider(StorageType::Metadata)?
                    .store(&key("m"), b"in-tx", &opts)?;
                Ok(())
            })
            .unwrap();
            kv.retrieve(&key("r/0"), &RetrieveOptions::new())
                .unwrap()
                .metadata
                .version
                .unwrap()
        }
    })
    .await;
    for s in c.up() {
        s.replica()
            .wait_applied(last, Duration::from_secs(10))
            .await
            .unwrap();
    }
    let expected = blocking({
        let leader = leader.clone();
        move || answers(&leader)
    })
    .await;
    assert!(expected.contains("IndexScan"), "{expected}");
    for s in c.up() {
        let id = s.replica().id();
        let got = blocking(move || answers(&s)).await;
        assert_eq!(got, expected, "node {id}");
    }
    // A follower refuses a write, naming why; nothing changes.
    let follower = c
        .up()
        .into_iter()
        .find(|s| s.replica().id() != leader.replica().id())
        .unwrap();
    let refused = blocking({
        let follower = follower.clone();
        move || {
            follower
                .system()
                .unwrap()
                .get_provider(StorageType::Resource)
                .unwrap()
                .store(&key("r/1"), b"nope", &StorageOptions::new())
        }
    })
    .await;
    let e = refused.unwrap_err();
    assert!(e.is_not_leader(), "{e}");
    // A read at a timestamp on the follower equals the leader's.
    let before = Timestamp(last.as_u64() - 1);
    let read_at = |s: Arc<ReplicatedStorage>| {
        blocking(move || {
            s.system()
                .unwrap()
                .get_provider(StorageType::Resource)
                .unwrap()
                .retrieve(&key("r/0"), &RetrieveOptions::new().at(before))
                .map(|i| i.value)
                .ok()
        })
    };
    assert_eq!(
        read_at(follower.clone()).await,
        read_at(leader.clone()).await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_policies_changed_at_the_leader_hold_on_followers() {
    let c = Nodes::start(3).await;
    let leader = c.node(c.leader().await);
    let alice = Identity::new("alice");
    let ts = blocking({
        let (leader, alice) = (leader.clone(), alice.clone());
        move || {
            let sys = leader.system().unwrap();
            sys.as_identity(&alice)
                .get_provider(StorageType::Resource)
                .unwrap()
                .store(&key("secret/1"), b"s", &StorageOptions::new())
                .unwrap()
                .version
                .unwrap()
        }
    })
    .await;
    let follower = c
        .up()
        .into_iter()
        .find(|s| s.replica().id() != leader.replica().id())
        .unwrap();
    follower
        .replica()
        .wait_applied(ts, Duration::from_secs(10))
        .await
        .unwrap();
    let read = |s: Arc<ReplicatedStorage>, who: Identity| {
        blocking(move || {
            s.system()
                .unwrap()
                .as_identity(&who)
                .get_provider(StorageType::Resource)
                .unwrap()
                .retrieve(&key("secret/1"), &RetrieveOptions::new())
                .map(|i| i.value)
        })
    };
    assert_eq!(read(follower.clone(), alice.clone()).await.unwrap(), b"s");
    // The leader denies alice the secrets; once the follower applied
    // that, it denies her too.
    blocking({
        let leader = leader.clone();
        move || {
            let sys = leader.system().unwrap();
            sys.access_control()
                .unwrap()
                .policies()
                .put_policy(AccessPolicy {
                    id: "no-secrets".into(),
                    effect: Effect::Deny,
                    principals: vec![Principal::Identity("alice".into())],
                    storage_types: vec![],
                    key_pattern: "secret/*".into(),
                    access: vec![AccessType::Read],
                })
                .unwrap();
        }
    })
    .await;
    let applied = leader.replica().state_machine().applied_ts();
    follower
        .replica()
        .wait_applied(applied, Duration::from_secs(10))
        .await
        .unwrap();
    let denied = read(follower.clone(), alice.clone()).await;
    assert!(denied.is_err(), "{denied:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_catches_up_by_snapshot_serves_the_new_data() {
    let mut c = Nodes::start(3).await;
    let leader_id = c.leader().await;
    let lagging = (1..=3).find(|&i| i != leader_id).unwrap();
    let before = c.node(lagging).replica().state_machine().generation();
    let old = blocking({
        let s = c.node(lagging);
        move || s.system().unwrap()
    })
    .await;
    c.crash(lagging).await;
    let leader = c.node(leader_id);
    let last = blocking({
        let leader = leader.clone();
        move || {
            let kv = leader
                .system()
                .unwrap()
                .get_provider(StorageType::Resource)
                .unwrap();
            let mut last = Timestamp(0);
            for i in 0..120 {
                last = kv
                    .store(
                        &key(&format!("r/{}", i % 20)),
                        format!("w{i}").as_bytes(),
                        &StorageOptions::new(),
                    )
                    .unwrap()
                    .version
                    .unwrap();
            }
            last
        }
    })
    .await;
    drop(old);
    c.restart(lagging).await;
    let node = c.node(lagging);
    node.replica()
        .wait_applied(last, Duration::from_secs(20))
        .await
        .unwrap();
    assert!(
        node.replica().state_machine().generation() > before,
        "the node caught up by snapshot"
    );
    let expected = blocking(move || answers(&leader)).await;
    let got = blocking(move || answers(&node)).await;
    assert_eq!(got, expected);
}
