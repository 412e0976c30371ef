//! `strata bench` run as a user would, on a small load.

mod common;

use common::strata;

#[test]
fn bench_runs_every_workload_and_writes_json_and_svg() {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("r.json");
    let svg = tmp.path().join("r.svg");
    let (code, out, err) = strata(&[
        "bench",
        "--num",
        "3000",
        "--threads",
        "2",
        "--json",
        json.to_str().unwrap(),
        "--plot",
        svg.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}\n{err}");
    for w in [
        "fillseq",
        "fillrandom",
        "overwrite",
        "readrandom",
        "readmissing",
        "readhot",
        "seekrandom",
        "readseq",
        "readreverse",
        "fillsync",
        "readwhilewriting",
        "txn",
        "ycsb-a",
        "ycsb-b",
        "ycsb-c",
        "ycsb-d",
        "ycsb-e",
        "ycsb-f",
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(w)),
            "no line for {w} in\n{out}"
        );
    }
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 19);
    for r in results {
        assert!(r["ops_per_sec"].as_f64().unwrap() > 0.0, "{r}");
        assert!(
            r["p99_us"].as_f64().unwrap() >= r["p50_us"].as_f64().unwrap(),
            "{r}"
        );
    }
    let fill = results
        .iter()
        .find(|r| r["workload"] == "fillrandom")
        .unwrap();
    let s_amp = fill["space_amp"].as_f64().unwrap();
    assert!(s_amp > 0.5 && s_amp < 3.0, "space amplification {s_amp}");
    let picture = std::fs::read_to_string(&svg).unwrap();
    assert!(
        picture.starts_with("<svg") && picture.contains("fillrandom"),
        "{}",
        &picture[..200.min(picture.len())]
    );
    // No workload reported an error.
    assert!(!out.contains("error"));
}

#[test]
fn bench_refuses_unknown_names_cleanly() {
    let (code, _, err) = strata(&["bench", "--workloads", "fillrandom,nonsense"]);
    assert_eq!(code, 3);
    assert!(err.contains("unknown workload \"nonsense\""), "{err}");
    let (code, _, err) = strata(&["bench", "--engine", "rocksdb", "--num", "10"]);
    assert_eq!(code, 3);
    assert!(err.contains("rocksdb"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}
