//! The `strata` inspection and manual-use subcommands, run as a user would
//! on a small database, with a damaged file and a wrong key.

mod common;

use common::strata;

use std::path::Path;

fn files(dir: &Path, ext: &str) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path().to_string_lossy().into_owned())
        .filter(|p| p.ends_with(ext) || (ext == "MANIFEST" && p.contains("MANIFEST")))
        .collect();
    v.sort();
    v
}

#[test]
fn put_get_scan_history_delete_compact_stats_inspect() {
    let tmp = tempfile::tempdir().unwrap();
    // `put` creates the database, as `create_if_missing` does; reads need
    // one.
    let dir = tmp.path().join("db");
    let d = dir.to_str().unwrap();
    let (code, _, err) = strata(&["get", d, "people", "ada"]);
    assert_eq!(code, 3, "{err}");
    assert!(!dir.exists());
    for (k, v) in [("ada", "lovelace"), ("alan", "turing"), ("grace", "hopper")] {
        let (code, out, err) = strata(&["put", d, "people", k, v]);
        assert_eq!(code, 0, "{out}{err}");
        // Timestamps print as ISO-8601 times.
        let when = out.trim().strip_prefix("written at ").unwrap();
        assert!(
            when.len() > 20 && when.ends_with('Z') && when.contains('T'),
            "{out}"
        );
    }
    let (code, out, _) = strata(&["put", d, "people", "ada", "byron", "--raw-timestamps"]);
    assert_eq!(code, 0);
    let first_ts: u64 = out.trim().rsplit(' ').next().unwrap().parse().unwrap();
    // A time that is not one is a usage error.
    let (code, _, err) = strata(&["get", d, "people", "ada", "--at", "yesterday"]);
    assert_eq!(code, 2, "{err}");
    let (code, out, _) = strata(&["get", d, "people", "ada"]);
    assert_eq!((code, out.trim()), (0, "byron"));
    let (code, out, _) = strata(&[
        "get",
        d,
        "people",
        "ada",
        "--at",
        &(first_ts - 1).to_string(),
    ]);
    assert_eq!((code, out.trim()), (0, "lovelace"));
    let (code, _, err) = strata(&["get", d, "people", "nobody"]);
    assert_eq!(code, 1, "{err}");
    let (code, out, _) = strata(&["scan", d, "people", "--from", "al", "--limit", "5"]);
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        vec!["alan = turing", "grace = hopper"]
    );
    let (_, out, _) = strata(&["scan", d, "people", "--reverse", "--limit", "1"]);
    assert_eq!(out.trim(), "grace = hopper");
    let (_, out, _) = strata(&["history", d, "people", "ada"]);
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].ends_with("put byron") && lines[1].ends_with("put lovelace"));
    let (code, _, _) = strata(&["delete", d, "people", "alan"]);
    assert_eq!(code, 0);
    let (code, _, _) = strata(&["get", d, "people", "alan"]);
    assert_eq!(code, 1);
    let (code, _, err) = strata(&["get", d, "nosuch", "k"]);
    assert_eq!(code, 3);
    assert!(err.contains("no keyspace"), "{err}");

    let (code, out, _) = strata(&["compact", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("people: 1 tables"), "{out}");
    let (code, out, _) = strata(&["stats", d]);
    assert_eq!(code, 0);
    assert!(
        out.contains("# TYPE strata_engine_sst_bytes gauge"),
        "{out}"
    );
    assert!(
        out.contains("strata_engine_sst_files{keyspace=\"people\""),
        "{out}"
    );

    let (code, out, err) = strata(&["inspect", d]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("keyspace \"people\""), "{out}");
    assert!(out.contains("keys ada .. grace"), "{out}");
    assert!(out.contains("bytes under key none (plaintext)"), "{out}");
    let sst = &files(&dir, ".sst")[0];
    let (code, out, err) = strata(&["inspect", "sst", sst, "--entries"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("properties: "), "{out}");
    assert!(out.contains("ada @"), "{out}");
    let wal = files(&dir, ".log").pop().unwrap();
    let (code, out, err) = strata(&["inspect", "wal", &wal]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("records; ends"), "{out}");
    let manifest = &files(&dir, "MANIFEST")[0];
    let (code, out, err) = strata(&["inspect", "manifest", manifest]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("VersionEdit"), "{out}");

    // A damaged table: inspect and verify say so, cleanly.
    let mut bytes = std::fs::read(sst).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0x08;
    std::fs::write(sst, bytes).unwrap();
    let (code, out, _) = strata(&["verify", d]);
    assert_eq!(code, 1, "{out}");
    let (code, _, err) = strata(&["inspect", "sst", sst, "--entries"]);
    assert_eq!(code, 3, "{err}");
    assert!(!err.contains("panicked"), "{err}");
    // --help has examples.
    for cmd in [
        "bench",
        "inspect",
        "get",
        "put",
        "delete",
        "scan",
        "history",
        "verify",
        "compact",
        "stats",
        "checkpoint",
        "backup",
    ] {
        let (code, out, _) = strata(&[cmd, "--help"]);
        assert_eq!(code, 0);
        assert!(
            out.contains("Example"),
            "{cmd} --help has no example:\n{out}"
        );
    }
}

#[test]
fn an_encrypted_database_needs_its_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    let keys = tmp.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key_file = keys.join("1.key");
    std::fs::write(&key_file, "42".repeat(32)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let k = keys.to_str().unwrap();
    let (code, _, err) = strata(&[
        "put",
        d,
        "s",
        "k",
        "secret",
        "--key-dir",
        k,
        "--key-id",
        "1",
    ]);
    assert_eq!(code, 0, "{err}");
    let (code, out, _) = strata(&["get", d, "s", "k", "--key-dir", k]);
    assert_eq!((code, out.trim()), (0, "secret"));
    // Without the key, or with another: a clean error, no backtrace.
    let (code, _, err) = strata(&["get", d, "s", "k"]);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains("key"), "{err}");
    let other = tmp.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    let wrong = other.join("1.key");
    std::fs::write(&wrong, "17".repeat(32)).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrong, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let (code, _, err) = strata(&["get", d, "s", "k", "--key-dir", other.to_str().unwrap()]);
    assert_eq!(code, 3, "{err}");
    assert!(
        !err.contains("panicked") && !err.contains("RUST_BACKTRACE"),
        "{err}"
    );
    let (code, out, err) = strata(&["verify", d, "--key-dir", k]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = strata(&["verify", d]);
    assert_eq!(code, 3, "{err}");
}

#[test]
fn inspect_tells_leftovers_of_the_database_from_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    std::fs::create_dir_all(&dir).unwrap();
    let d = dir.to_str().unwrap();
    let (code, out, err) = strata(&["put", d, "people", "ada", "lovelace"]);
    assert_eq!(code, 0, "{out}{err}");
    // An old manifest's name, with a number the database handed out; and
    // files that are not the database's.
    std::fs::write(dir.join("MANIFEST-000001"), b"old").unwrap();
    std::fs::write(dir.join("1.log"), b"mine").unwrap();
    std::fs::write(dir.join("999999.sst"), b"mine").unwrap();
    let (code, out, err) = strata(&["inspect", d]);
    assert_eq!(code, 0, "{out}{err}");
    let line = |name: &str| {
        out.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .unwrap_or_else(|| panic!("{name} not listed:\n{out}"))
            .to_owned()
    };
    assert!(line("MANIFEST-000001").starts_with("unreferenced"), "{out}");
    assert!(line("1.log").starts_with("foreign"), "{out}");
    assert!(line("999999.sst").starts_with("foreign"), "{out}");
    // A reading command changes nothing; the next open for writing
    // removes the database's own leftover and nothing else.
    let (code, _, err) = strata(&["get", d, "people", "ada"]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.join("MANIFEST-000001").exists());
    let (code, _, err) = strata(&["put", d, "people", "alan", "turing"]);
    assert_eq!(code, 0, "{err}");
    assert!(!dir.join("MANIFEST-000001").exists());
    assert_eq!(std::fs::read(dir.join("1.log")).unwrap(), b"mine");
    assert_eq!(std::fs::read(dir.join("999999.sst")).unwrap(), b"mine");
}
