//! `strata verify` run as a user would: a sound database, a damaged file,
//! a missing directory, a database in use.

mod common;

use common::strata;

use strata::engine::{Db, Options};

#[test]
fn verify_reports_sound_and_damaged_databases() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("db");
    {
        let db = Db::open(&dir, Options::default()).unwrap();
        let ks = db.keyspace("k").unwrap();
        for i in 0..500 {
            ks.put(format!("key{i:04}"), format!("value{i}")).unwrap();
        }
        db.flush().unwrap();
        ks.put("late", "in the WAL").unwrap();
        db.close().unwrap();
    }
    let d = dir.to_str().unwrap();
    let (code, out, _) = strata(&["verify", d]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("all sound"), "{out}");

    // While the database is open, the check is refused cleanly.
    {
        let _db = Db::open(&dir, Options::default()).unwrap();
        let (code, _, err) = strata(&["verify", d]);
        assert_eq!(code, 3);
        assert!(err.contains("locked"), "{err}");
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{err}"
        );
    }

    let sst = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "sst"))
        .unwrap();
    let mut bytes = std::fs::read(&sst).unwrap();
    bytes[100] ^= 0x01;
    std::fs::write(&sst, bytes).unwrap();
    let (code, out, _) = strata(&["verify", d]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("DAMAGED") && out.contains(sst.file_name().unwrap().to_str().unwrap()),
        "{out}"
    );

    let (code, _, err) = strata(&["verify", tmp.path().join("nope").to_str().unwrap()]);
    assert_eq!(code, 3);
    assert!(err.contains("no such directory"), "{err}");
}
