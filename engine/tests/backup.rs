//! Backups: incremental create while writes go on, list, verify, restore
//! (whole and as of an earlier time), purge; a model check that every
//! restore equals the source's state at the backup's (or the asked)
//! timestamp across flushes and compactions; damage named by verify and
//! refused by restore; SIGKILL in the middle of a backup.
//! `STRATA_BACKUP_KILL_ROUNDS=N` runs N kill rounds instead of 4.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use strata_engine::backup::{BackupEngine, BackupListing};
use strata_engine::{Db, Error, MemoryKeyProvider, Options, Timestamp};

fn opts() -> Options {
    Options {
        history_retention: Duration::from_secs(3600),
        ..common::small_options()
    }
}

use common::{latest, state_of, Rng};

/// A random step of writes: puts, overwrites, deletes, over two keyspaces.
fn churn(db: &Db, rng: &mut Rng, n: usize) {
    let a = db.keyspace("a").unwrap();
    let b = db.keyspace("b").unwrap();
    for _ in 0..n {
        let r = rng.next();
        let ks = if r.is_multiple_of(3) { &b } else { &a };
        let k = format!("k{:05}", (r >> 8) % 4000);
        if r.is_multiple_of(7) {
            ks.delete(&k).unwrap();
        } else {
            ks.put(&k, format!("{r:x}").repeat(1 + (r % 9) as usize))
                .unwrap();
        }
    }
}

#[test]
fn restores_equal_the_state_at_each_backup_and_at_times_between() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), opts()).unwrap();
    let engine = BackupEngine::open(tmp.path().join("backups")).unwrap();
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut backups = Vec::new();
    let mut between = Vec::new();
    for round in 0..5 {
        churn(&db, &mut rng, 1500);
        between.push(db.last_timestamp());
        churn(&db, &mut rng, 500);
        match round % 3 {
            0 => db.flush().unwrap(),
            1 => db.compact().unwrap(),
            _ => {}
        }
        let made = engine.create(&db, &mut |_, _| {}).unwrap();
        backups.push(made.info);
        churn(&db, &mut rng, 200);
    }
    assert!(engine.verify(None, &mut |_, _| {}).unwrap().is_empty());
    let listed = engine.list().unwrap();
    assert_eq!(listed.len(), 5);
    assert!(listed
        .iter()
        .all(|b| matches!(b, BackupListing::Complete(_))));
    for (i, b) in backups.iter().enumerate() {
        let target = tmp.path().join(format!("r{i}"));
        let r = engine
            .restore(b.id, &target, None, &opts(), &mut |_, _| {})
            .unwrap();
        assert_eq!(r.ts, b.ts);
        let want = state_of(&db, &db.snapshot_at(b.ts).unwrap());
        let restored = Db::open(&target, opts()).unwrap();
        assert_eq!(latest(&restored), want, "backup {}", b.id);
        // Whole restores keep the history too.
        let t = between[i];
        assert_eq!(
            state_of(&restored, &restored.snapshot_at(t).unwrap()),
            state_of(&db, &db.snapshot_at(t).unwrap())
        );
        restored.close().unwrap();
        // As of a time between backups, from the backup after it.
        let target = tmp.path().join(format!("at{i}"));
        let r = engine
            .restore(b.id, &target, Some(t), &opts(), &mut |_, _| {})
            .unwrap();
        assert_eq!(r.ts, t);
        let restored = Db::open(&target, opts()).unwrap();
        assert_eq!(
            latest(&restored),
            state_of(&db, &db.snapshot_at(t).unwrap()),
            "backup {} at {t:?}",
            b.id
        );
        // Later writes to the restored database follow the restored ones.
        assert!(restored.keyspace("a").unwrap().put("new", "1").unwrap() > t);
    }
}

#[test]
fn a_backup_after_a_few_changes_copies_only_what_changed() {
    let tmp = tempfile::tempdir().unwrap();
    let o = Options {
        memtable_size: 1 << 20,
        target_file_size: 256 << 10,
        base_level_size: 4 << 20,
        ..opts()
    };
    let db = Db::open(tmp.path().join("db"), o).unwrap();
    let ks = db.keyspace("a").unwrap();
    for i in 0..20_000u32 {
        ks.put(format!("k{i:06}"), [i as u8; 100]).unwrap();
    }
    db.compact().unwrap();
    let engine = BackupEngine::open(tmp.path().join("backups")).unwrap();
    let first = engine.create(&db, &mut |_, _| {}).unwrap();
    // 1% of the keys change.
    for i in (0..20_000u32).step_by(100) {
        ks.put(format!("k{i:06}"), [0xee; 100]).unwrap();
    }
    db.flush().unwrap();
    let second = engine.create(&db, &mut |_, _| {}).unwrap();
    assert!(
        second.bytes_copied * 10 < first.bytes_copied,
        "first {} second {}",
        first.bytes_copied,
        second.bytes_copied
    );
    assert!(second.info.bytes > first.info.bytes / 2);
    // Purging the first keeps what the second shares with it.
    let p = engine.purge(1).unwrap();
    assert_eq!(p.backups, vec![first.info.id]);
    assert!(engine.verify(None, &mut |_, _| {}).unwrap().is_empty());
    let target = tmp.path().join("restored");
    engine
        .restore(second.info.id, &target, None, &opts(), &mut |_, _| {})
        .unwrap();
    let restored = Db::open(&target, opts()).unwrap();
    assert_eq!(latest(&restored), latest(&db));
}

#[test]
fn a_damaged_backup_file_is_named_by_verify_and_refused_by_restore() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), opts()).unwrap();
    churn(&db, &mut Rng(99), 3000);
    db.flush().unwrap();
    churn(&db, &mut Rng(98), 100);
    let engine = BackupEngine::open(tmp.path().join("backups")).unwrap();
    let b = engine.create(&db, &mut |_, _| {}).unwrap().info;
    let catalog = engine.catalog(b.id).unwrap();
    for victim in [
        catalog
            .files
            .iter()
            .find(|f| f.name.ends_with(".sst"))
            .unwrap(),
        catalog
            .files
            .iter()
            .find(|f| f.name.ends_with(".log"))
            .unwrap(),
    ] {
        let path = tmp.path().join("backups").join(&victim.stored_as);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        let problems = engine.verify(Some(b.id), &mut |_, _| {}).unwrap();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].file, victim.stored_as);
        let target = tmp.path().join("restored");
        let e = engine
            .restore(b.id, &target, None, &opts(), &mut |_, _| {})
            .unwrap_err();
        assert!(e.to_string().contains(&victim.stored_as), "{e}");
        assert!(!target.exists());
        // Nothing but the backups, the database and nothing hidden.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
        bytes[at] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
    }
    // A damaged catalog is named too.
    let cat = tmp.path().join("backups/backups/000001.catalog");
    let mut bytes = std::fs::read(&cat).unwrap();
    bytes[20] ^= 4;
    std::fs::write(&cat, &bytes).unwrap();
    let problems = engine.verify(None, &mut |_, _| {}).unwrap();
    assert!(problems[0].file.ends_with(".catalog"), "{problems:?}");
    assert!(engine
        .restore(1, &tmp.path().join("x"), None, &opts(), &mut |_, _| {})
        .is_err());
}

#[test]
fn restores_refuse_a_used_target_a_time_after_the_backup_and_encrypted_backups_need_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let keys = std::sync::Arc::new(MemoryKeyProvider::new(4, [3; 32]));
    let enc = Options {
        key_provider: Some(keys),
        ..opts()
    };
    let db = Db::open(tmp.path().join("db"), enc.clone()).unwrap();
    let ks = db.keyspace("a").unwrap();
    for i in 0..500 {
        ks.put(format!("k{i}"), format!("PLAINTEXT-MARKER-{i}"))
            .unwrap();
    }
    db.flush().unwrap();
    ks.put("last", "PLAINTEXT-MARKER-last").unwrap();
    let engine = BackupEngine::open(tmp.path().join("backups")).unwrap();
    let b = engine.create(&db, &mut |_, _| {}).unwrap().info;
    for dir in ["backups/shared", "backups/backups/000001"] {
        for e in std::fs::read_dir(tmp.path().join(dir)).unwrap() {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            assert!(!bytes.windows(16).any(|w| w == b"PLAINTEXT-MARKER"));
        }
    }
    let used = tmp.path().join("used");
    std::fs::create_dir(&used).unwrap();
    std::fs::write(used.join("f"), "x").unwrap();
    let e = engine
        .restore(b.id, &used, None, &enc, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let e = engine
        .restore(
            b.id,
            &tmp.path().join("later"),
            Some(Timestamp(b.ts.as_u64() + 1)),
            &enc,
            &mut |_, _| {},
        )
        .unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    engine
        .restore(b.id, &empty, None, &enc, &mut |_, _| {})
        .unwrap();
    assert!(Db::open(&empty, opts()).is_err(), "opened without the key");
    let restored = Db::open(&empty, enc.clone()).unwrap();
    assert_eq!(latest(&restored), latest(&db));
    // As of a time, encrypted too.
    let at = tmp.path().join("at");
    engine
        .restore(b.id, &at, Some(b.ts), &enc, &mut |_, _| {})
        .unwrap();
    assert_eq!(latest(&Db::open(&at, enc).unwrap()), latest(&db));
}

const WORKER_ENV: &str = "STRATA_BACKUP_KILL_DIR";

fn worker(dir: &Path) {
    let db = Db::open(dir.join("db"), opts()).unwrap();
    let engine = BackupEngine::open(dir.join("backups")).unwrap();
    let mut rng = Rng(u64::from(std::process::id()) | 1);
    loop {
        churn(&db, &mut rng, 300);
        if rng.next().is_multiple_of(3) {
            db.flush().unwrap();
        }
        let b = engine.create(&db, &mut |_, _| {}).unwrap();
        println!("backup {} {}", b.info.id, b.info.ts.as_u64());
    }
}

#[test]
fn backup_kill_worker_entry() {
    if let Some(dir) = std::env::var_os(WORKER_ENV) {
        worker(Path::new(&dir));
    }
}

/// A child makes backups while writing and is killed at a random moment;
/// the backups it finished verify and restore to the state at their
/// timestamps, the one it was making is listed incomplete, purge removes
/// it, and the next backup works.
#[test]
fn a_backup_killed_midway_leaves_the_earlier_ones_intact() {
    let rounds: usize = std::env::var("STRATA_BACKUP_KILL_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4);
    let tmp = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = Rng(0x51ed ^ u64::from(std::process::id()));
    let mut incomplete_seen = 0;
    for round in 0..rounds {
        let mut child = Command::new(&exe)
            .args([
                "backup_kill_worker_entry",
                "--exact",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_ENV, tmp.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Wait for one finished backup, then kill at a random moment.
        loop {
            let line = lines.next().expect("the worker ended").unwrap();
            if line.starts_with("backup ") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(rng.next() % 150));
        child.kill().unwrap();
        child.wait().unwrap();

        let engine = BackupEngine::open(tmp.path().join("backups")).unwrap();
        let listing = engine.list().unwrap();
        if listing
            .iter()
            .any(|b| matches!(b, BackupListing::Incomplete { .. }))
        {
            incomplete_seen += 1;
        }
        assert!(listing
            .iter()
            .all(|b| !matches!(b, BackupListing::Damaged { .. })));
        assert!(
            engine.verify(None, &mut |_, _| {}).unwrap().is_empty(),
            "round {round}"
        );
        let db = Db::open(tmp.path().join("db"), opts()).unwrap();
        let last = listing
            .iter()
            .rev()
            .find_map(|b| match b {
                BackupListing::Complete(i) => Some(i.clone()),
                _ => None,
            })
            .unwrap();
        let target = tmp.path().join(format!("restored{round}"));
        engine
            .restore(last.id, &target, None, &opts(), &mut |_, _| {})
            .unwrap();
        let restored = Db::open(&target, opts()).unwrap();
        assert_eq!(
            latest(&restored),
            state_of(&db, &db.snapshot_at(last.ts).unwrap()),
            "round {round}"
        );
        drop(restored);
        std::fs::remove_dir_all(&target).unwrap();
        let purged = engine.purge(2).unwrap();
        assert!(engine
            .list()
            .unwrap()
            .iter()
            .all(|b| matches!(b, BackupListing::Complete(_))));
        let _ = purged;
        engine.create(&db, &mut |_, _| {}).unwrap();
        assert!(engine.verify(None, &mut |_, _| {}).unwrap().is_empty());
        db.close().unwrap();
    }
    eprintln!("{incomplete_seen} of {rounds} kills left an incomplete backup");
}

/// A restore as of a time is limited by the history the backup holds, not
/// by a window counted back from the restoring machine's clock; and a
/// shared file gone from the backup directory is copied again by the next
/// backup rather than trusted.
#[test]
fn restores_as_of_a_time_long_after_and_missing_shared_files_are_recopied() {
    let tmp = tempfile::tempdir().unwrap();
    let db = Db::open(tmp.path().join("db"), opts()).unwrap();
    churn(&db, &mut Rng(5), 1000);
    let between = db.last_timestamp();
    churn(&db, &mut Rng(6), 500);
    db.flush().unwrap();
    let engine = BackupEngine::open(tmp.path().join("backups")).unwrap();
    let b = engine.create(&db, &mut |_, _| {}).unwrap().info;
    // A month later, with a day of history configured.
    let later = std::sync::Arc::new(strata_engine::ManualClock::new(Timestamp::now()));
    later.advance(Duration::from_secs(30 * 24 * 3600));
    let restore_opts = Options {
        clock: later,
        history_retention: Duration::from_secs(24 * 3600),
        ..opts()
    };
    let target = tmp.path().join("at");
    engine
        .restore(b.id, &target, Some(between), &restore_opts, &mut |_, _| {})
        .unwrap();
    let restored = Db::open(&target, opts()).unwrap();
    assert_eq!(
        latest(&restored),
        state_of(&db, &db.snapshot_at(between).unwrap())
    );
    drop(restored);
    // A shared file lost: the next backup copies it again.
    let catalog = engine.catalog(b.id).unwrap();
    let shared = catalog
        .files
        .iter()
        .find(|f| f.stored_as.starts_with("shared/"))
        .unwrap();
    std::fs::remove_file(tmp.path().join("backups").join(&shared.stored_as)).unwrap();
    let next = engine.create(&db, &mut |_, _| {}).unwrap();
    assert!(next.bytes_copied >= shared.size);
    assert_eq!(
        engine.verify(Some(next.info.id), &mut |_, _| {}).unwrap(),
        vec![]
    );
}
