//! `strata checkpoint` and `strata backup`, run as a user would on a
//! plaintext and an encrypted database: copies that open with `get`,
//! incremental backups, list, verify (and a damaged file named), restore
//! whole and `--at` an ISO-8601 time, purge; exit codes 0 / 1 / 2 / 3.

mod common;

use common::strata;

/// `strata` with `extra` arguments (the key options) after `args`.
fn run(args: &[&str], extra: &[&str]) -> (i32, String, String) {
    let all: Vec<&str> = args.iter().chain(extra).copied().collect();
    strata(&all)
}

fn check_database(encrypted: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let p = |s: &str| tmp.path().join(s).to_string_lossy().into_owned();
    let (db, backups) = (p("db"), p("backups"));
    let keys = p("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key_file = tmp.path().join("keys/1.key");
    std::fs::write(&key_file, "5a".repeat(32)).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let key_args: Vec<&str> = if encrypted {
        vec!["--key-dir", &keys]
    } else {
        vec![]
    };
    let k = &key_args[..];
    for i in 0..20 {
        let (code, out, err) = run(&["put", &db, "people", &format!("p{i:02}"), "v1"], k);
        assert_eq!(code, 0, "{out}{err}");
    }
    // A time between the first and the second values.
    std::thread::sleep(std::time::Duration::from_millis(20));
    let between = strata::engine::Timestamp::now().to_iso8601();
    std::thread::sleep(std::time::Duration::from_millis(20));
    for i in 0..5 {
        run(&["put", &db, "people", &format!("p{i:02}"), "v2"], k);
    }

    // A checkpoint opens as a database of its own.
    let (code, out, err) = run(&["checkpoint", &db, &p("cp")], k);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("checkpoint at 20"), "{out}");
    let (code, out, _) = run(&["get", &p("cp"), "people", "p03"], k);
    assert_eq!((code, out.trim()), (0, "v2"));
    let (code, _, err) = run(&["checkpoint", &db, &p("cp")], k);
    assert_eq!(code, 3, "an existing target: {err}");

    // Two backups; the second after a change.
    let (code, out, err) = run(&["backup", "create", &db, &backups], k);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("backup 1 at 20"), "{out}");
    run(&["put", &db, "people", "late", "x"], k);
    let (code, out, err) = run(&["backup", "create", &db, &backups], k);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("backup 2 "), "{out}");
    let (code, out, _) = strata(&["backup", "list", &backups]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 2, "{out}");
    assert!(out.contains("created 20"), "{out}");
    let (code, out, _) = strata(&["backup", "verify", &backups]);
    assert_eq!(code, 0, "{out}");

    // Restore whole, and as of the time between.
    let (code, out, err) = run(&["backup", "restore", &backups, "2", &p("r2")], k);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run(&["get", &p("r2"), "people", "late"], k);
    assert_eq!((code, out.trim()), (0, "x"));
    let (code, out, err) = run(
        &[
            "backup",
            "restore",
            &backups,
            "2",
            &p("r-at"),
            "--at",
            &between,
        ],
        k,
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("20 keys"), "{out}");
    let (code, out, _) = run(&["get", &p("r-at"), "people", "p03"], k);
    assert_eq!((code, out.trim()), (0, "v1"));
    let (code, _, _) = run(&["get", &p("r-at"), "people", "late"], k);
    assert_eq!(code, 1);
    let (code, _, err) = run(
        &[
            "backup",
            "restore",
            &backups,
            "2",
            &p("bad"),
            "--at",
            "noon",
        ],
        k,
    );
    assert_eq!(code, 2, "usage: {err}");
    if encrypted {
        // Without the key the restored copy does not open.
        let (code, _, _) = strata(&["get", &p("r2"), "people", "late"]);
        assert_eq!(code, 3);
    }

    // Damage: verify names the file (exit 1), restore refuses it (exit 3).
    // A shared file backup 1 lists.
    let catalog =
        std::fs::read_to_string(tmp.path().join("backups/backups/000001.catalog")).unwrap();
    let stored = catalog
        .lines()
        .find_map(|l| l.split(' ').nth(4).filter(|s| s.starts_with("shared/")))
        .unwrap();
    let victim = tmp.path().join("backups").join(stored);
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    std::fs::write(&victim, &bytes).unwrap();
    let name = victim.file_name().unwrap().to_string_lossy().into_owned();
    let (code, out, _) = strata(&["backup", "verify", &backups, "1"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&name), "{out}");
    let (code, _, err) = run(&["backup", "restore", &backups, "1", &p("r1")], k);
    assert_eq!(code, 3, "{err}");
    assert!(err.contains(&name), "{err}");
    assert!(!tmp.path().join("r1").exists());
    bytes[mid] ^= 0x10;
    std::fs::write(&victim, &bytes).unwrap();

    // Purge keeps the newest; what it shares survives.
    let (code, out, _) = strata(&["backup", "purge", &backups, "--keep", "1"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("removed 1 backups"), "{out}");
    let (code, out, _) = strata(&["backup", "list", &backups]);
    assert_eq!((code, out.lines().count()), (0, 1), "{out}");
    let (code, out, _) = strata(&["backup", "verify", &backups]);
    assert_eq!(code, 0, "{out}");
    // A directory that is not a backup directory cannot be opened.
    let (code, _, _) = strata(&["backup", "list", &p("nothing")]);
    assert_eq!(code, 3);
}

#[test]
fn checkpoint_and_backups_of_a_plaintext_database() {
    check_database(false);
}

#[test]
fn checkpoint_and_backups_of_an_encrypted_database() {
    check_database(true);
}
