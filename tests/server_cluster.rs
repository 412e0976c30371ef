//! `strata serve` as real processes on 127.0.0.1: a 3-node cluster takes
//! writes through any node, survives the SIGKILL of its leader (a new one
//! takes writes within 3 s, every acknowledged write stays readable), and
//! the killed node catches up and serves the same history and the same
//! reads at a time; requests without the right token, rights, size or
//! shape are refused with their status and change nothing; documents and
//! blobs over HTTP.

mod server_common;

use std::time::{Duration, Instant};

use server_common::{Cluster, ALICE, BOB, CLUSTER_TOKEN};
use strata_client::Client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_process_cluster_survives_the_sigkill_of_its_leader() {
    let mut c = Cluster::start(3);
    // Every node must know the leader: the writes below go through each.
    let first = c
        .leader_known_to_all(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let client = c.client(ALICE);
    let mut acked: Vec<(String, String, u64)> = Vec::new();
    for i in 0..30 {
        let (k, v) = (format!("k{}", i % 7), format!("v{i}"));
        // Through any node: followers redirect to the leader.
        let ts = c
            .client_of(1 + i % 3, ALICE)
            .put("resource", &k, v.as_bytes())
            .await
            .unwrap();
        acked.push((k, v, ts));
    }
    // SIGKILL the leader; a new one takes writes within 3 s.
    c.nodes[first as usize - 1].kill();
    let killed_at = Instant::now();
    let survivors: Vec<u64> = (1..=3).filter(|&i| i != first).collect();
    let ts = loop {
        let probe = Client::new(
            survivors.iter().map(|&i| c.urls[i as usize - 1].clone()),
            ALICE,
            Duration::from_millis(500),
        )
        .unwrap();
        if let Ok(ts) = probe.put("resource", "after-failover", b"1").await {
            break ts;
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(10),
            "no write accepted after the leader's kill\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let failover = killed_at.elapsed();
    assert!(
        failover < Duration::from_secs(3),
        "failover took {failover:?}"
    );
    acked.push(("after-failover".into(), "1".into(), ts));
    for i in 30..50 {
        let (k, v) = (format!("k{}", i % 7), format!("v{i}"));
        let ts = client.put("resource", &k, v.as_bytes()).await.unwrap();
        acked.push((k, v, ts));
    }
    // Every acknowledged write is readable on each survivor, at its time.
    for &id in &survivors {
        let n = c.node_only(id, ALICE);
        for (k, v, ts) in &acked {
            let got = n.get_at("resource", k, *ts).await.unwrap();
            assert_eq!(
                got.map(|g| g.0),
                Some(v.as_bytes().to_vec()),
                "node {id}, {k} at {ts}"
            );
        }
    }
    // The killed node restarts, catches up, and serves the same history.
    c.nodes[first as usize - 1].start();
    let last = acked.iter().map(|a| a.2).max().unwrap();
    let back = c.node_only(first, ALICE);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = back.cluster().await {
            if s.applied_ts >= last {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "node {first} did not catch up\n{}",
            c.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let keys: Vec<String> = (0..7).map(|i| format!("k{i}")).collect();
    let mut seen = Vec::new();
    for id in 1..=3 {
        let n = c.node_only(id, ALICE);
        let mut all = Vec::new();
        for k in &keys {
            all.push(n.history("resource", k).await.unwrap());
            // Reads at a time agree on every node.
            for (_, _, ts) in acked.iter().step_by(5) {
                all.push(vec![strata_client::Version {
                    ts: *ts,
                    value: n
                        .get_at("resource", k, *ts)
                        .await
                        .unwrap()
                        .map(|v| String::from_utf8(v.0).unwrap()),
                    value_hex: None,
                    deleted: false,
                }]);
            }
        }
        seen.push(all);
    }
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    eprintln!("failover: {failover:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused_with_their_status_and_change_nothing() {
    let c = Cluster::start(1);
    c.leader(1, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no leader\n{}", c.logs()));
    let alice = c.client(ALICE);
    alice.put("resource", "public/a", b"1").await.unwrap();
    let status = |r: strata_client::Result<(u16, Vec<u8>)>| r.unwrap().0;
    // No token, an unknown token: 401.
    let none = Client::new(c.urls.clone(), "", Duration::from_secs(5)).unwrap();
    assert_eq!(
        status(none.raw("GET", "/v1/kv/resource/public/a", None).await),
        401
    );
    let wrong = c.client("not-a-token");
    assert_eq!(
        status(
            wrong
                .raw("PUT", "/v1/kv/resource/public/a", Some(b"x".to_vec()))
                .await
        ),
        401
    );
    // The cluster token is not a client token, nor a client's a peer's.
    let peer = c.client(CLUSTER_TOKEN);
    assert_eq!(
        status(peer.raw("GET", "/v1/kv/resource/public/a", None).await),
        401
    );
    assert_eq!(
        status(alice.raw("POST", "/raft/vote", Some(vec![1, 2, 3])).await),
        401
    );
    // Bob may read public keys only: 403 for the rest, nothing written.
    let bob = c.client(BOB);
    assert_eq!(
        status(bob.raw("GET", "/v1/kv/resource/public/a", None).await),
        200
    );
    assert_eq!(
        status(
            bob.raw("PUT", "/v1/kv/resource/public/a", Some(b"bob".to_vec()))
                .await
        ),
        403
    );
    assert_eq!(
        status(bob.raw("DELETE", "/v1/kv/resource/public/a", None).await),
        403
    );
    assert_eq!(
        status(
            bob.raw(
                "POST",
                "/v1/cluster/voters",
                Some(br#"{"ids":[1]}"#.to_vec())
            )
            .await
        ),
        403
    );
    // Too large a body: 413. Malformed JSON, unknown fields, bad paths
    // and queries: 400. An unknown route: 404.
    let big = vec![b'x'; 70_000];
    assert_eq!(
        status(
            alice
                .raw("PUT", "/v1/kv/resource/public/a", Some(big))
                .await
        ),
        413
    );
    assert_eq!(
        status(
            alice
                .raw("POST", "/v1/batch", Some(b"{not json".to_vec()))
                .await
        ),
        400
    );
    assert_eq!(
        status(
            alice
                .raw(
                    "POST",
                    "/v1/batch",
                    Some(br#"{"ops":[],"extra":1}"#.to_vec())
                )
                .await
        ),
        400
    );
    assert_eq!(
        status(
            alice
                .raw(
                    "POST",
                    "/v1/batch",
                    Some(br#"{"ops":[{"op":"put","type":"nope","key":"k","value":"v"}]}"#.to_vec())
                )
                .await
        ),
        400
    );
    assert_eq!(status(alice.raw("GET", "/v1/kv/nope/k", None).await), 400);
    assert_eq!(
        status(
            alice
                .raw("GET", "/v1/kv/resource/public/a?at=yesterday", None)
                .await
        ),
        400
    );
    assert_eq!(
        status(
            alice
                .raw("GET", "/v1/kv/resource/public/a?history=maybe", None)
                .await
        ),
        400
    );
    assert_eq!(
        status(alice.raw("DELETE", "/v1/cluster/voters/x", None).await),
        400
    );
    assert_eq!(status(alice.raw("GET", "/v1/nothing", None).await), 404);
    // Nothing changed.
    let h = alice.history("resource", "public/a").await.unwrap();
    assert_eq!(h.len(), 1, "{h:?}");
    assert_eq!(h[0].value.as_deref(), Some("1"));
    // A conditional batch that fails writes nothing; one that holds
    // writes all.
    assert!(!alice
        .compare_and_set("resource", "public/a", Some("0"), "2")
        .await
        .unwrap());
    assert!(alice
        .compare_and_set("resource", "public/a", Some("1"), "2")
        .await
        .unwrap());
    assert!(alice
        .compare_and_set("resource", "public/new", None, "n")
        .await
        .unwrap());
    assert!(!alice
        .compare_and_set("resource", "public/new", None, "m")
        .await
        .unwrap());
    assert_eq!(
        alice.get("resource", "public/a").await.unwrap().unwrap().0,
        b"2"
    );
    // Documents: stored, indexed, queried with the library's JSON forms.
    for i in 0..20 {
        let kind = if i % 4 == 0 { "rare" } else { "common" };
        alice
            .put_document(
                "fact",
                "events",
                &format!("e{i}"),
                &serde_json::json!({"n": i, "kind": kind}),
            )
            .await
            .unwrap();
    }
    alice.create_index("fact", "events", "kind").await.unwrap();
    let q = serde_json::json!({"filters": [{"field": "kind", "op": "equals", "value": "rare"}]});
    let found = alice
        .query("fact", "events", &q, &serde_json::json!({}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.len(), 5, "{found:?}");
    let plan = alice
        .explain("fact", "events", &q, &serde_json::json!({}))
        .await
        .unwrap();
    assert_eq!(plan["index"], "kind", "{plan}");
    // Counts, projections, OR trees and unique indexes over HTTP.
    assert_eq!(
        alice
            .count("fact", "events", &q, &serde_json::json!({}))
            .await
            .unwrap(),
        5
    );
    let tree = serde_json::json!({"where": {"or": [
        {"field": "kind", "op": "equals", "value": "rare"},
        {"field": "n", "op": "less_than", "value": 2},
    ]}});
    let found = alice
        .query(
            "fact",
            "events",
            &tree,
            &serde_json::json!({"projection": ["n"]}),
        )
        .await
        .unwrap();
    assert!(found
        .iter()
        .all(|d| d.as_object().unwrap().len() == 1 && d["n"].is_number()));
    // Pages over HTTP: two of four, then the rest.
    let body = |cursor: Option<&str>| {
        let mut options = serde_json::json!({"sort_field": "n"});
        if let Some(c) = cursor {
            options["cursor"] = c.into();
        }
        serde_json::json!({"query": {"limit": 4}, "options": options})
            .to_string()
            .into_bytes()
    };
    let (code, first) = alice
        .raw("POST", "/v1/page/fact/events", Some(body(None)))
        .await
        .unwrap();
    assert_eq!(code, 200);
    let first: serde_json::Value = serde_json::from_slice(&first).unwrap();
    assert_eq!(first["documents"].as_array().unwrap().len(), 4);
    let next = first["next"].as_str().unwrap().to_owned();
    let (_, second) = alice
        .raw("POST", "/v1/page/fact/events", Some(body(Some(&next))))
        .await
        .unwrap();
    let second: serde_json::Value = serde_json::from_slice(&second).unwrap();
    assert_eq!(second["documents"][0]["n"], 4, "{second}");
    let (code, _) = alice
        .raw("POST", "/v1/page/fact/events", Some(body(Some("0102"))))
        .await
        .unwrap();
    assert_eq!(code, 400);
    let (code, analyzed) = alice
        .raw("POST", "/v1/analyze/fact/events", None)
        .await
        .unwrap();
    assert_eq!(code, 200);
    let analyzed: serde_json::Value = serde_json::from_slice(&analyzed).unwrap();
    assert_eq!(analyzed[0]["entries"], 20, "{analyzed}");
    let unique = serde_json::json!({"fields": ["n"], "unique": true});
    let (code, _) = alice
        .raw(
            "POST",
            "/v1/indexes/fact/events",
            Some(unique.to_string().into_bytes()),
        )
        .await
        .unwrap();
    assert_eq!(code, 200);
    let dup = alice
        .put_document("fact", "events", "dup", &serde_json::json!({"n": 3}))
        .await
        .unwrap_err();
    assert_eq!(dup.status(), Some(409), "{dup}");
    assert_eq!(
        alice
            .get_document("fact", "events", "e4")
            .await
            .unwrap()
            .unwrap()["n"],
        4
    );
    assert_eq!(
        status(
            alice
                .raw("POST", "/v1/query/fact/events", Some(b"[1,2]".to_vec()))
                .await
        ),
        400
    );
    // Blobs stream past the body limit, up to their own.
    let blob: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let meta = alice.put_blob("files/big", blob.clone()).await.unwrap();
    assert_eq!(meta["size"], 300_000, "{meta}");
    assert_eq!(alice.get_blob("files/big").await.unwrap().unwrap(), blob);
    let huge = vec![1u8; 1_100_000];
    assert_eq!(
        status(alice.raw("PUT", "/v1/blobs/files/huge", Some(huge)).await),
        413
    );
    assert_eq!(alice.get_blob("files/huge").await.unwrap(), None);
    // An upload that stalls past the blob time bound stores nothing (not
    // the part that arrived).
    {
        use std::io::Write;
        let addr = c.urls[0].trim_start_matches("http://").to_owned();
        let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
        write!(
            tcp,
            "PUT /v1/blobs/files/stalled HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {ALICE}\r\nContent-Length: 400000\r\n\r\n"
        )
        .unwrap();
        tcp.write_all(&[7u8; 100_000]).unwrap();
        tokio::time::sleep(Duration::from_millis(2500)).await;
        drop(tcp);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let stored = alice.get_blob("files/stalled").await.unwrap();
        assert!(
            stored.is_none(),
            "a cut upload stored {} bytes",
            stored.map_or(0, |b| b.len())
        );
    }
    // A learner must be a configured peer: the cluster token goes there.
    let evil = br#"{"id":9,"addr":"198.51.100.7:1"}"#.to_vec();
    assert_eq!(
        status(alice.raw("POST", "/v1/cluster/learners", Some(evil)).await),
        400
    );
    // Errors the HTTP layer answers itself are JSON too.
    let (code, body) = alice
        .raw("GET", "/v1/kv/resource/public/a?history=maybe", None)
        .await
        .unwrap();
    assert_eq!(code, 400);
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert!(v["error"].is_string(), "{v}");
    // Without a token even an unknown path is 401.
    assert_eq!(status(none.raw("GET", "/v1/nothing", None).await), 401);
    assert_eq!(
        status(bob.raw("GET", "/v1/blobs/files/big", None).await),
        403
    );
    // The command line talks to the server too.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .args(["remote", "--remote", &c.urls[0], "--token", ALICE])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, _) = cli(&["put", "resource", "cli/k", "from the shell"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        cli(&["get", "resource", "cli/k"]),
        (Some(0), "from the shell\n".into())
    );
    assert_eq!(cli(&["get", "resource", "cli/none"]).0, Some(1));
    assert!(cli(&["history", "resource", "cli/k"])
        .1
        .contains("from the shell"));
    let denied = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
        .args([
            "remote", "--remote", &c.urls[0], "--token", BOB, "put", "resource", "cli/k", "x",
        ])
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("403"));
    // Metrics carry the engine's, the storage system's and Raft's figures.
    let m = alice.metrics().await.unwrap();
    for name in ["strata_engine_", "strata_storage_", "strata_raft_term"] {
        assert!(m.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_over_https_replicates_and_refuses_clients_that_do_not_trust_it() {
    let c = Cluster::start_tls(3);
    let leader = c
        .leader_known_to_all(Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("no leader over HTTPS\n{}", c.logs()));
    assert!(c.urls.iter().all(|u| u.starts_with("https://")));
    // Writes through a follower are redirected to the leader's https URL,
    // and reach every node over the nodes' own HTTPS connections.
    let follower = (1..=3).find(|&i| i != leader).unwrap();
    let ts = c
        .client_of(follower, ALICE)
        .put("resource", "secret/k", b"over tls")
        .await
        .unwrap();
    for id in 1..=3 {
        c.wait_applied(id, ts, Duration::from_secs(20)).await;
        let got = c
            .node_only(id, ALICE)
            .get_at("resource", "secret/k", ts)
            .await
            .unwrap();
        assert_eq!(got.map(|g| g.0), Some(b"over tls".to_vec()), "node {id}");
    }
    // A client that does not trust the CA, or speaks plain HTTP, gets no
    // answer, and its write is not applied.
    let fixture = |n: &str| std::fs::read(server_common::fixture(n)).unwrap();
    let timeout = Duration::from_secs(3);
    let strangers = [
        Client::with_ca(c.urls.clone(), ALICE, timeout, &fixture("other-ca.pem")).unwrap(),
        Client::new(c.urls.clone(), ALICE, timeout).unwrap(),
        Client::new(
            c.urls.iter().map(|u| u.replacen("https", "http", 1)),
            ALICE,
            timeout,
        )
        .unwrap(),
    ];
    for (i, s) in strangers.iter().enumerate() {
        let err = s
            .put("resource", "secret/k", b"stranger")
            .await
            .expect_err("an untrusted or plain connection was answered");
        assert_eq!(err.status(), None, "client {i}: {err}");
    }
    let now = c.client(ALICE);
    let probe = now.put("resource", "probe", b"1").await.unwrap();
    let hist = now.history("resource", "secret/k").await.unwrap();
    assert_eq!(hist.len(), 1, "{hist:?}");
    assert!(hist[0].ts < probe);
    // The token is still required over HTTPS.
    let wrong = c.client("not-a-token-at-all");
    let err = wrong.get("resource", "secret/k").await.unwrap_err();
    assert_eq!(err.status(), Some(401));
    // Blobs stream from a reader through a follower's client to the
    // leader, and from a follower into a writer, checked against the hash.
    let blob: Vec<u8> = (0..900_000u32).map(|i| (i * 13 % 253) as u8).collect();
    let via_follower = c.client_of(follower, ALICE);
    let meta = via_follower
        .put_blob_stream("files/streamed", std::io::Cursor::new(blob.clone()))
        .await
        .unwrap();
    // A write after it, once the follower applied it, means the follower
    // has the blob too.
    let after = via_follower
        .put("resource", "after-blob", b"1")
        .await
        .unwrap();
    c.wait_applied(follower, after, Duration::from_secs(20))
        .await;
    let mut out = Vec::new();
    let got = c
        .node_only(follower, ALICE)
        .get_blob_to("files/streamed", None, &mut out)
        .await
        .unwrap()
        .expect("the streamed blob");
    assert_eq!(out, blob);
    assert_eq!(got.size, blob.len() as u64);
    assert_eq!(
        Some(got.content_hash.as_str()),
        meta["content_hash"].as_str()
    );
    assert_eq!(
        c.node_only(follower, ALICE)
            .get_blob_to("files/none", None, &mut Vec::new())
            .await
            .unwrap(),
        None
    );
    // A reader that fails cuts the upload: nothing is stored.
    let err = via_follower
        .put_blob_stream("files/cut", FailingReader(200_000))
        .await
        .unwrap_err();
    assert_eq!(err.status(), None, "{err}");
    // Above the bound, 413, nothing stored.
    let err = via_follower
        .put_blob_stream("files/huge", std::io::Cursor::new(vec![7u8; 1_500_000]))
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(413), "{err}");
    for k in ["files/cut", "files/huge"] {
        assert_eq!(now.get_blob(k).await.unwrap(), None, "{k}");
    }
    // The command line reaches HTTPS nodes given the CA, and not without.
    let cli = |ca: Option<&str>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_strata"));
        cmd.args(["remote", "--remote", &c.urls[0], "--token", ALICE]);
        if let Some(ca) = ca {
            cmd.arg("--ca").arg(server_common::fixture(ca));
        }
        let out = cmd.args(["get", "resource", "secret/k"]).output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    assert_eq!(cli(Some("ca.pem")), (Some(0), "over tls\n".into()));
    // Blobs stream from and into files through the command line.
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in.bin"), dir.path().join("out.bin"));
    std::fs::write(&src, &blob[..300_000]).unwrap();
    // Node `id` first; the others known, so the token may go to them.
    let on_node = |id: u64, args: &[&std::ffi::OsStr]| {
        let mut urls = c.urls.clone();
        urls.rotate_left(id as usize - 1);
        std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("remote")
            .args(urls.iter().flat_map(|u| ["--remote", u.as_str()]))
            .args(["--token", ALICE, "--ca"])
            .arg(server_common::fixture("ca.pem"))
            .args(args)
            .output()
            .unwrap()
            .status
            .code()
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    // Given a follower, the upload finds the leader itself.
    assert_eq!(
        on_node(
            follower,
            &[os("put-blob"), os("files/cli"), src.as_os_str()]
        ),
        Some(0)
    );
    assert_eq!(
        on_node(leader, &[os("get-blob"), os("files/cli"), dst.as_os_str()]),
        Some(0)
    );
    assert_eq!(std::fs::read(&dst).unwrap(), &blob[..300_000]);
    let absent = dir.path().join("absent.bin");
    assert_eq!(
        on_node(
            leader,
            &[os("get-blob"), os("files/nothing"), absent.as_os_str()]
        ),
        Some(1)
    );
    assert!(!absent.exists());
    assert!(!dir.path().join("absent.bin.part").exists());
    assert_eq!(cli(Some("other-ca.pem")).0, Some(3));
    assert_eq!(cli(None).0, Some(3));
}

/// Yields this many bytes, then fails.
struct FailingReader(usize);

impl tokio::io::AsyncRead for FailingReader {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        if self.0 == 0 {
            return std::task::Poll::Ready(Err(std::io::Error::other("the source broke")));
        }
        let n = self.0.min(buf.remaining()).min(50_000);
        buf.put_slice(&vec![1u8; n]);
        self.0 -= n;
        std::task::Poll::Ready(Ok(()))
    }
}
