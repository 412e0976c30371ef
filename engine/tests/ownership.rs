//! The engine deletes, replays and counts only the files it provably owns:
//! names it writes, with numbers its manifest handed out. Everything else
//! in the directory is left as it is, and reported.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use strata_engine::format::log::{LogKind, LogReadOptions, LogReader};
use strata_engine::format::manifest::VersionEdit;
use strata_engine::{Db, Options};

/// The manifest `CURRENT` names, and its number.
fn current_manifest(dir: &Path) -> (String, u64) {
    let name = std::fs::read_to_string(dir.join("CURRENT"))
        .unwrap()
        .trim()
        .to_owned();
    let n = name.strip_prefix("MANIFEST-").unwrap().parse().unwrap();
    (name, n)
}

/// The largest next file number the current manifest records: every file
/// number the database handed out is below it.
fn next_file_number(dir: &Path) -> u64 {
    let (name, number) = current_manifest(dir);
    let bytes = std::fs::read(dir.join(name)).unwrap();
    let opts = LogReadOptions::new(number, LogKind::Manifest);
    let mut reader = LogReader::new(&bytes, &opts).unwrap();
    let mut next = 0;
    while let Some((at, record)) = reader.next_record().unwrap() {
        let edit = VersionEdit::decode(&record, at).unwrap();
        next = next.max(edit.next_file_number.unwrap_or(0));
    }
    next
}

/// Every file of the directory with its bytes.
fn contents(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().into_string().unwrap(),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// The numbers of the files named as the engine names them.
fn engine_numbers(dir: &Path) -> Vec<u64> {
    contents(dir)
        .keys()
        .filter_map(|name| {
            let digits = name
                .strip_suffix(".log")
                .or_else(|| name.strip_suffix(".sst"))
                .or_else(|| name.strip_prefix("MANIFEST-"))?;
            (digits.len() == 6).then(|| digits.parse().ok()).flatten()
        })
        .collect()
}

/// Writes `n` keys (enough to flush and compact with small options).
fn fill(db: &Db, from: u32, n: u32) {
    let ks = db.keyspace("k").unwrap();
    for i in from..from + n {
        ks.put(format!("{i:05}"), format!("value {i} {}", "x".repeat(100)))
            .unwrap();
    }
}

fn check(db: &Db, n: u32) {
    let ks = db.keyspace("k").unwrap();
    let got = common::scan(&ks);
    assert_eq!(got.len(), n as usize);
    for (i, (k, v)) in got.iter().enumerate() {
        assert_eq!(k, format!("{i:05}").as_bytes());
        assert_eq!(v, format!("value {i} {}", "x".repeat(100)).as_bytes());
    }
}

/// A database with data in SSTs and in a WAL, closed.
fn database(dir: &Path) -> Options {
    let opts = common::small_options();
    let db = Db::open(dir, opts.clone()).unwrap();
    fill(&db, 0, 400);
    db.close().unwrap();
    opts
}

fn garbage(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[test]
fn files_the_engine_does_not_own_survive_open_untouched() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = database(dir);
    let next = next_file_number(dir);
    assert!(next < 500, "a fresh database's numbers are small: {next}");
    let foreign: BTreeMap<String, Vec<u8>> = [
        // Names the engine never writes.
        ("backup.tmp".to_owned(), garbage(100, 1)),
        ("1.log".to_owned(), garbage(300, 2)),
        ("0007.sst".to_owned(), garbage(300, 3)),
        ("MANIFEST-1".to_owned(), garbage(50, 4)),
        ("+00001.log".to_owned(), garbage(80, 5)),
        ("notes.txt".to_owned(), b"mine".to_vec()),
        // The engine's names, with numbers its manifest never handed out.
        ("999999.log".to_owned(), garbage(4000, 6)),
        ("999998.sst".to_owned(), garbage(4000, 7)),
        ("MANIFEST-999997".to_owned(), garbage(200, 8)),
    ]
    .into_iter()
    .collect();
    // The engine's names with exactly the numbers the next open would
    // hand out first: the counter steps over them.
    let in_the_way: BTreeMap<String, Vec<u8>> = [
        (format!("{next:06}.log"), garbage(500, 9)),
        (format!("{:06}.sst", next + 1), garbage(500, 10)),
        (format!("MANIFEST-{:06}", next + 2), garbage(500, 11)),
    ]
    .into_iter()
    .collect();
    for (name, bytes) in foreign.iter().chain(&in_the_way) {
        std::fs::write(dir.join(name), bytes).unwrap();
    }

    for round in 0..3u32 {
        let untouched = |when: &str| {
            let now = contents(dir);
            let expected = if round == 0 {
                foreign.iter().chain(&in_the_way).collect::<Vec<_>>()
            } else {
                foreign.iter().collect()
            };
            for (name, bytes) in expected {
                assert_eq!(now.get(name), Some(bytes), "round {round}, {when}: {name}");
            }
        };
        let db = Db::open(dir, opts.clone()).unwrap();
        untouched("open");
        check(&db, 400 + round * 400);
        let mut reported: Vec<String> = foreign.keys().cloned().collect();
        if round == 0 {
            reported.extend(in_the_way.keys().cloned());
            reported.sort();
        }
        assert_eq!(db.stats().foreign_files, reported, "round {round}");
        // New WALs, SSTs and manifests step around them.
        fill(&db, 400 + round * 400, 400);
        db.flush().unwrap();
        db.compact().unwrap();
        check(&db, 800 + round * 400);
        untouched("compact");
        db.close().unwrap();
        untouched("close");
        // File numbers did not jump to the foreign files' numbers.
        for n in engine_numbers(dir) {
            let name_taken = foreign.keys().any(|f| f.contains(&format!("{n:06}")));
            assert!(
                name_taken || n < 1000,
                "round {round}: file number {n} jumped"
            );
        }
        if round == 0 {
            // Now that the counter has passed them, the manifest no longer
            // tells them from the engine's own files (SPEC.md §13.5):
            // their owner takes them away.
            for name in in_the_way.keys() {
                std::fs::remove_file(dir.join(name)).unwrap();
            }
        }
    }
}

#[test]
fn the_engines_own_leftovers_are_removed_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = database(dir);
    let (_, manifest) = current_manifest(dir);
    assert!(manifest > 1);
    // Numbers the database handed out, under names the engine writes and
    // the state no longer references: an SST cut short, an old manifest,
    // a flushed WAL, and the temporary CURRENT.
    let leftovers = [
        format!("{manifest:06}.sst"),
        "MANIFEST-000001".to_owned(),
        "000001.log".to_owned(),
        "CURRENT.tmp".to_owned(),
    ];
    for name in &leftovers {
        std::fs::write(dir.join(name), b"left behind").unwrap();
    }
    let db = Db::open(dir, opts).unwrap();
    check(&db, 400);
    for name in &leftovers {
        assert!(!dir.join(name).exists(), "{name} was not removed");
    }
    assert!(db.stats().foreign_files.is_empty());
    // The open's own switch of CURRENT replaces CURRENT.tmp before the
    // leftovers are removed: the SST is the one counted.
    assert_eq!(db.stats().files_removed_at_open, 1);
    db.close().unwrap();
}

#[test]
fn a_wal_beyond_the_manifests_numbers_holding_records_fails_the_open() {
    use strata_engine::format::batch::BatchBuilder;
    use strata_engine::format::codec::Compression;
    use strata_engine::format::key::ValueKind;
    use strata_engine::format::log::{LogHeader, LogWriter};

    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = database(dir);
    // A WAL named and headed as the engine writes them, with a number the
    // manifest never handed out: written after records the manifest lost.
    let number = next_file_number(dir) + 5;
    let header = LogHeader {
        kind: LogKind::Wal,
        file_number: number,
        file_uid: [7; 16],
        key_id: None,
    };
    let mut w = LogWriter::new(Vec::new(), header, Compression::None, None).unwrap();
    let mut b = BatchBuilder::new();
    b.add(ValueKind::Put, 0, b"late", b"write");
    let mut rec = Vec::new();
    b.encode_into(1 << 40, &mut rec);
    w.add_record(&rec).unwrap();
    let name = format!("{number:06}.log");
    let bytes = w.into_inner();
    std::fs::write(dir.join(&name), &bytes).unwrap();
    let before = contents(dir);
    let err = Db::open(dir, opts.clone()).unwrap_err();
    assert!(err.is_corruption(), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("MANIFEST-") && msg.contains(&name), "{msg}");
    assert_eq!(contents(dir), before, "the failed open changed nothing");
    // Verify finds the same damage, in the manifest.
    let report = Db::verify_dir(dir, &opts).unwrap();
    assert_eq!(report.damaged.len(), 1, "{:?}", report.damaged);
    let damaged = &report.damaged[0];
    assert!(
        damaged.path.to_string_lossy().contains("MANIFEST-"),
        "{damaged:?}"
    );
    assert!(damaged.error.to_string().contains(&name), "{damaged:?}");
    // Moved away, the database opens as it was.
    std::fs::remove_file(dir.join(&name)).unwrap();
    let db = Db::open(dir, opts).unwrap();
    check(&db, 400);
    db.close().unwrap();
}

/// Writes, flushes and compacts on `fs`, without background threads so
/// that the file calls are the same every run.
fn crash_workload(fs: &strata_engine::fs::SimFs) {
    let mut opts = common::small_options();
    opts.fs = std::sync::Arc::new(fs.clone());
    opts.background_threads = false;
    opts.memtable_size = 4 * 1024;
    opts.target_file_size = 4 * 1024;
    let Ok(db) = Db::open("/db", opts) else {
        return;
    };
    let Ok(ks) = db.keyspace("k") else { return };
    for i in 0..600u32 {
        if ks
            .put(
                format!("{:05}", (i * 37) % 500),
                format!("v{i} {}", "y".repeat(60)),
            )
            .is_err()
        {
            return;
        }
        if i % 150 == 149 && db.compact().is_err() {
            return;
        }
    }
    let _ = db.close();
}

#[test]
fn every_file_a_crash_leaves_is_provably_the_engines() {
    use strata_engine::fs::{CrashMode, SimFs};

    // The calls of a first open: a crash there leaves no CURRENT, and
    // nothing in the directory is provably the engine's (SPEC.md §13.5).
    let first_open = {
        let fs = SimFs::new();
        let mut opts = common::small_options();
        opts.fs = std::sync::Arc::new(fs.clone());
        Db::open("/db", opts).unwrap().close().unwrap();
        fs.ops()
    };
    let total = {
        let fs = SimFs::new();
        crash_workload(&fs);
        fs.ops()
    };
    let mut removed = 0;
    let mut cases = 0;
    for at in (first_open + 1..total).step_by(((total - first_open) / 400).max(1) as usize) {
        let fs = SimFs::new();
        fs.crash_at(at, CrashMode::DropUnsynced, at);
        crash_workload(&fs);
        let image = fs.crashed_image().expect("the crash happened");
        let mut opts = common::small_options();
        opts.fs = std::sync::Arc::new(image);
        let db = Db::open("/db", opts).unwrap_or_else(|e| panic!("crash at {at}: {e}"));
        let stats = db.stats();
        assert!(
            stats.foreign_files.is_empty(),
            "crash at call {at}: the engine's own files taken for foreign: {:?}",
            stats.foreign_files
        );
        removed += stats.files_removed_at_open;
        cases += 1;
        db.close().unwrap();
    }
    assert!(cases > 100, "{cases} crash points");
    assert!(removed > 0, "no crash left an orphan to remove");
}

#[test]
fn a_stray_wal_like_file_without_current_is_refused_by_its_name() {
    for (name, len) in [
        ("2.log", 10),
        ("2.log", 4000),
        ("0007.sst", 10),
        ("000002.log", 4000),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        std::fs::write(dir.join(name), garbage(len, 3)).unwrap();
        let err = Db::open(dir, Options::default()).unwrap_err();
        let msg = err.to_string();
        assert!(err.is_corruption(), "{name}: {msg}");
        assert!(msg.contains(&format!(" {name}")), "{name}: {msg}");
        if name == "2.log" {
            assert!(!msg.contains("000002.log"), "{name}: {msg}");
        }
        assert_eq!(std::fs::read(dir.join(name)).unwrap(), garbage(len, 3));
        assert_eq!(
            std::fs::read_dir(dir).unwrap().count(),
            if dir.join("LOCK").exists() { 2 } else { 1 },
            "{name}: nothing was created but the lock"
        );
    }
}

#[test]
fn a_new_database_opens_beside_files_that_are_not_data() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(dir.join("notes.txt"), b"mine").unwrap();
    std::fs::write(dir.join("backup.tmp"), b"mine too").unwrap();
    let db = Db::open(dir, Options::default()).unwrap();
    assert_eq!(
        db.stats().foreign_files,
        vec!["backup.tmp".to_owned(), "notes.txt".to_owned()]
    );
    db.keyspace("k").unwrap().put("a", "b").unwrap();
    db.close().unwrap();
    assert_eq!(std::fs::read(dir.join("notes.txt")).unwrap(), b"mine");
    assert_eq!(std::fs::read(dir.join("backup.tmp")).unwrap(), b"mine too");
}

#[test]
fn describe_dir_tells_leftovers_of_its_own_from_foreign_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = database(dir);
    let (_, manifest) = current_manifest(dir);
    let ours = [format!("{manifest:06}.sst"), "MANIFEST-000001".to_owned()];
    let foreign = [
        "0007.sst".to_owned(),
        "1.log".to_owned(),
        "999999.log".to_owned(),
        "backup.tmp".to_owned(),
    ];
    for name in ours.iter().chain(&foreign) {
        std::fs::write(dir.join(name), garbage(300, 1)).unwrap();
    }
    let d = Db::describe_dir(dir, &opts).unwrap();
    let mut expected = ours.to_vec();
    expected.sort();
    assert_eq!(d.unreferenced, expected);
    assert_eq!(d.foreign, foreign.to_vec());
    assert!(
        d.wals.iter().all(|(p, _)| !p.ends_with("999999.log")),
        "{:?}",
        d.wals
    );
    // What it promised: the next open removes the one and keeps the other.
    let db = Db::open(dir, opts).unwrap();
    assert_eq!(db.stats().foreign_files, foreign.to_vec());
    for name in &ours {
        assert!(!dir.join(name).exists(), "{name}");
    }
    db.close().unwrap();
}

#[test]
fn verify_dir_checks_the_database_files_not_foreign_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = database(dir);
    let clean = Db::verify_dir(dir, &opts).unwrap();
    assert!(clean.is_ok(), "{:?}", clean.damaged);
    std::fs::write(dir.join("999999.log"), garbage(4000, 6)).unwrap();
    std::fs::write(dir.join("1.log"), garbage(300, 2)).unwrap();
    let report = Db::verify_dir(dir, &opts).unwrap();
    assert!(report.is_ok(), "{:?}", report.damaged);
    assert_eq!(
        (report.files_checked, report.bytes_checked),
        (clean.files_checked, clean.bytes_checked),
        "only the database's files are read"
    );
    assert_eq!(
        std::fs::read(dir.join("999999.log")).unwrap(),
        garbage(4000, 6)
    );
}

#[test]
fn a_foreign_file_the_counter_steps_over_stays_foreign_at_every_later_open() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let db = Db::open(dir, common::small_options()).unwrap();
        db.keyspace("data").unwrap().put("k", "v").unwrap();
        db.close().unwrap();
    }
    // Two files under the engine's own names, with the very next numbers
    // it would hand out: not its own.
    let n = next_file_number(dir);
    let foreign = [format!("{n:06}.sst"), format!("{:06}.log", n + 1)];
    for name in &foreign {
        std::fs::write(dir.join(name), format!("not the engine's: {name}")).unwrap();
    }
    for round in 0..4 {
        let db = Db::open(dir, common::small_options()).unwrap();
        let listed = db.stats().foreign_files;
        for name in &foreign {
            assert!(
                listed.contains(name),
                "round {round}: {name} not reported: {listed:?}"
            );
        }
        let ks = db.keyspace("data").unwrap();
        // Enough flushes to move the counter well past both numbers.
        for i in 0..12 {
            ks.put(format!("r{round}-{i}"), [b'x'; 64]).unwrap();
            db.flush().unwrap();
        }
        drop(ks);
        db.close().unwrap();
        assert!(next_file_number(dir) > n + 2, "round {round}");
        for name in &foreign {
            assert_eq!(
                std::fs::read(dir.join(name)).unwrap(),
                format!("not the engine's: {name}").into_bytes(),
                "round {round}: {name}"
            );
        }
    }
    let db = Db::open(dir, common::small_options()).unwrap();
    let ks = db.keyspace("data").unwrap();
    assert_eq!(ks.get("k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(ks.get("r3-11").unwrap().as_deref(), Some(&[b'x'; 64][..]));
}

#[test]
fn a_foreign_number_the_open_itself_steps_over_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    {
        let db = Db::open(dir, common::small_options()).unwrap();
        db.keyspace("data").unwrap().put("k", "v").unwrap();
        // Nothing left to replay: the next open hands out file numbers
        // only for its WAL and its manifest.
        db.flush().unwrap();
        db.close().unwrap();
    }
    // The very numbers the next open takes for its new WAL.
    let n = next_file_number(dir);
    let foreign = [format!("{n:06}.sst"), format!("{:06}.sst", n + 1)];
    for name in &foreign {
        std::fs::write(dir.join(name), format!("not the engine's: {name}")).unwrap();
    }
    // Opens that write nothing but what an open writes.
    for round in 0..3 {
        let db = Db::open(dir, common::small_options()).unwrap();
        let listed = db.stats().foreign_files;
        db.close().unwrap();
        for name in &foreign {
            assert!(
                listed.contains(name),
                "round {round}: {name} not reported: {listed:?}"
            );
            assert!(dir.join(name).exists(), "round {round}: {name} was deleted");
        }
    }
}

/// A second open of a directory this process already has open says so,
/// instead of blaming another process; after the first closes, it opens.
#[test]
fn a_second_open_in_the_same_process_says_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let db = strata_engine::Db::open(dir.path(), Default::default()).unwrap();
    let again = strata_engine::Db::open(dir.path(), Default::default()).unwrap_err();
    assert!(
        matches!(again, strata_engine::Error::AlreadyOpen(_)),
        "{again}"
    );
    assert!(
        again.to_string().contains("already open in this process"),
        "{again}"
    );
    // The same directory through another path is the same database.
    let other = dir.path().join(".").join("x").join("..");
    std::fs::create_dir(dir.path().join("x")).unwrap();
    assert!(matches!(
        strata_engine::Db::open(&other, Default::default()),
        Err(strata_engine::Error::AlreadyOpen(_))
    ));
    db.close().unwrap();
    drop(db);
    strata_engine::Db::open(dir.path(), Default::default()).unwrap();
}
