//! The `strata` commands that change nothing work on a database on a
//! read-only mount (a tmpfs remounted read-only; needs root to mount, and
//! skips with a reason otherwise).

mod common;

use common::strata;

#[test]
fn reading_commands_work_on_a_read_only_mount() {
    let Some(mount) = strata_engine::fs::TmpfsMount::new() else {
        return;
    };
    let db = mount.path().join("db");
    std::fs::create_dir(&db).unwrap();
    let d = db.to_str().unwrap();
    assert_eq!(strata(&["put", d, "people", "ada", "lovelace"]).0, 0);
    assert_eq!(strata(&["compact", d]).0, 0);
    assert_eq!(strata(&["put", d, "people", "alan", "turing"]).0, 0);
    let backups = mount.path().join("backups");
    let b = backups.to_str().unwrap();
    assert_eq!(strata(&["backup", "create", d, b]).0, 0);
    assert!(mount.remount_read_only(), "remount read-only failed");
    // Backups on a read-only mount list, verify and restore elsewhere.
    let elsewhere = tempfile::tempdir().unwrap();
    let target = elsewhere.path().join("restored");
    for args in [
        vec!["backup", "list", b],
        vec!["backup", "verify", b],
        vec!["backup", "restore", b, "1", target.to_str().unwrap()],
    ] {
        let (code, out, err) = strata(&args);
        assert_eq!(code, 0, "{args:?}: {out}{err}");
    }
    let (code, out, _) = strata(&["get", target.to_str().unwrap(), "people", "alan"]);
    assert_eq!((code, out.trim()), (0, "turing"));
    let (code, out, err) = strata(&["get", d, "people", "ada"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("lovelace"));
    let (code, out, err) = strata(&["get", d, "people", "alan"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("turing"));
    for args in [
        vec!["scan", d, "people"],
        vec!["history", d, "people", "ada"],
        vec!["verify", d],
        vec!["inspect", d],
        vec!["stats", d],
    ] {
        let (code, _, err) = strata(&args);
        assert_eq!(code, 0, "{args:?}: {err}");
        assert!(!err.contains("Read-only file system"), "{args:?}: {err}");
    }
    // A write says why it cannot happen.
    let (code, _, err) = strata(&["put", d, "people", "grace", "hopper"]);
    assert_ne!(code, 0);
    assert!(!err.is_empty());
}
