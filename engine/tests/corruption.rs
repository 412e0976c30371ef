//! Damage to every kind of file (crash scenario S10 of the reliability
//! checklist): flipping a byte, truncating, or zero-filling a 4 KiB page of
//! an SST, a WAL, the manifest or CURRENT gives either the right data or an
//! error naming the damaged file, never different data, never a panic. And
//! `Db::verify` reports every damaged file at once.
//!
//! Every byte of every file is flipped and every length cut, on an
//! in-memory file system.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strata_engine::fs::{FileSystem, SimFs};
use strata_engine::{Db, MemoryKeyProvider, Options, WriteOptions};

const DIR: &str = "/db";

type Model = BTreeMap<(String, Vec<u8>), Vec<u8>>;

fn options(fs: &SimFs, encrypted: bool) -> Options {
    let mut o = common::small_options();
    o.fs = Arc::new(fs.clone());
    o.block_size = 256;
    o.memtable_size = 4 * 1024;
    if encrypted {
        o.key_provider = Some(Arc::new(MemoryKeyProvider::new(3, [9; 32])));
    }
    o
}

/// A database with SSTs on two levels, a WAL with synced writes, a
/// manifest and CURRENT, closed cleanly; and what it holds.
fn build(encrypted: bool) -> (SimFs, Model) {
    let fs = SimFs::new();
    let db = Db::open(DIR, options(&fs, encrypted)).unwrap();
    let mut model = Model::new();
    for (round, name) in ["one", "two", "one"].iter().enumerate() {
        let ks = db.keyspace(name).unwrap();
        for i in 0..60 {
            let k = format!("key{:03}", (i * 7 + round * 3) % 90).into_bytes();
            let v = format!("value-{round}-{i}-{}", "z".repeat(i % 13)).into_bytes();
            let mut b = db.batch();
            b.put(&ks, &k, &v).unwrap();
            db.write(b, WriteOptions { sync: true }).unwrap();
            model.insert((name.to_string(), k), v);
        }
        if round == 0 {
            db.compact().unwrap();
        } else if round == 1 {
            db.flush().unwrap();
        }
    }
    db.close().unwrap();
    (fs, model)
}

fn read_all(db: &Db) -> strata_engine::Result<Model> {
    let mut m = Model::new();
    for name in db.keyspaces() {
        let ks = db.keyspace(&name)?;
        for r in ks.iter()? {
            let (k, v) = r?;
            m.insert((name.clone(), k.to_vec()), v.to_vec());
        }
    }
    Ok(m)
}

/// Opens `image` and reads everything: the right data, or an error that
/// names `file`.
fn check(image: &SimFs, encrypted: bool, model: &Model, file: &str, what: &str) {
    let result = Db::open(DIR, options(image, encrypted)).and_then(|db| {
        let got = read_all(&db)?;
        let point = model
            .iter()
            .step_by(11)
            .map(|((ks, k), _)| db.keyspace(ks)?.get(k).map(|v| v.map(|v| v.to_vec())))
            .collect::<strata_engine::Result<Vec<_>>>()?;
        Ok((got, point))
    });
    match result {
        Ok((got, point)) => {
            assert!(&got == model, "{what}: different data returned");
            let expected: Vec<_> = model.values().step_by(11).cloned().map(Some).collect();
            assert_eq!(point, expected, "{what}: point reads");
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains(file),
                "{what}: error does not name {file}: {msg}"
            );
        }
    }
}

fn damage_every_file(encrypted: bool) {
    let (fs, model) = build(encrypted);
    let files = fs.list(Path::new(DIR)).unwrap();
    let kinds = ["sst", "log", "MANIFEST", "CURRENT"];
    for kind in kinds {
        assert!(
            files.iter().any(|f| f.contains(kind)),
            "no {kind} file in {files:?}"
        );
    }
    let mut cases = 0;
    for name in &files {
        let path = Path::new(DIR).join(name);
        let original = fs.read(&path).unwrap();
        let mutate = |bytes: Vec<u8>, what: String| {
            let image = fs.snapshot();
            image.overwrite(&path, bytes).unwrap();
            check(&image, encrypted, &model, name, &format!("{name}: {what}"));
        };
        for at in 0..original.len() {
            let mut bad = original.clone();
            bad[at] ^= 0xff;
            mutate(bad, format!("byte {at} flipped"));
            cases += 1;
        }
        for len in 0..original.len() {
            mutate(original[..len].to_vec(), format!("cut to {len}"));
            cases += 1;
        }
        for page in 0..original.len().div_ceil(4096) {
            let mut bad = original.clone();
            let end = ((page + 1) * 4096).min(bad.len());
            bad[page * 4096..end].fill(0);
            mutate(bad, format!("page {page} zeroed"));
            cases += 1;
        }
    }
    eprintln!("{cases} damaged images of {} files", files.len());
    assert!(cases > 500, "{cases} cases");
}

#[test]
fn damage_to_any_file_is_an_error_naming_it_or_harmless() {
    damage_every_file(false);
}

#[test]
fn damage_to_any_encrypted_file_is_an_error_naming_it_or_harmless() {
    damage_every_file(true);
}

#[test]
fn verify_reports_every_damaged_file_at_once() {
    let (fs, model) = build(false);
    let opts = options(&fs, false);
    {
        let db = Db::open(DIR, opts.clone()).unwrap();
        let report = db.verify().unwrap();
        assert!(report.is_ok(), "{:?}", report.damaged);
        assert!(report.files_checked >= 4);
        assert!(report.entries_checked > 0);
        assert_eq!(read_all(&db).unwrap(), model);
        db.close().unwrap();
    }
    // Damage two SSTs after the open has checked them: the running
    // database's verify finds both.
    let db = Db::open(DIR, opts).unwrap();
    let ssts: Vec<String> = fs
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .collect();
    assert!(ssts.len() >= 2, "{ssts:?}");
    for name in &ssts[..2] {
        let path = Path::new(DIR).join(name);
        let mut bytes = fs.read(&path).unwrap();
        let mid = bytes.len() / 3;
        bytes[mid] ^= 0x01;
        fs.overwrite(&path, bytes).unwrap();
    }
    let report = db.verify().unwrap();
    let mut damaged: Vec<String> = report
        .damaged
        .iter()
        .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    damaged.sort();
    assert_eq!(damaged, ssts[..2].to_vec());
    for d in &report.damaged {
        assert!(d.error.is_corruption(), "{}", d.error);
    }
}

#[test]
fn verify_dir_checks_a_closed_database_without_changing_it() {
    let (fs, _) = build(true);
    let opts = options(&fs, true);
    let clean = Db::verify_dir(DIR, &opts).unwrap();
    assert!(clean.is_ok(), "{:?}", clean.damaged);
    assert!(clean.files_checked >= 4 && clean.entries_checked > 0);
    let before = fs.snapshot();

    let ssts: Vec<String> = fs
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".sst"))
        .collect();
    let damage = |name: &str| {
        let path = Path::new(DIR).join(name);
        let mut bytes = fs.read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x20;
        fs.overwrite(&path, bytes).unwrap();
    };
    damage(&ssts[0]);
    damage(&ssts[1]);
    let names = |r: &strata_engine::VerifyReport| {
        let mut v: Vec<String> = r
            .damaged
            .iter()
            .map(|d| d.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let report = Db::verify_dir(DIR, &opts).unwrap();
    assert_eq!(names(&report), ssts[..2].to_vec());

    // With the manifest damaged too, the tables are still checked alone.
    let manifest = fs
        .list(Path::new(DIR))
        .unwrap()
        .into_iter()
        .find(|n| n.starts_with("MANIFEST"))
        .unwrap();
    damage(&manifest);
    let report = Db::verify_dir(DIR, &opts).unwrap();
    let mut expected = vec![manifest, ssts[0].clone(), ssts[1].clone()];
    expected.sort();
    assert_eq!(names(&report), expected);

    // Nothing was written, and an open database is refused.
    for name in before.list(Path::new(DIR)).unwrap() {
        assert!(
            fs.read(&Path::new(DIR).join(&name)).is_ok(),
            "{name} removed"
        );
    }
    let (fs, _) = build(false);
    let db = Db::open(DIR, options(&fs, false)).unwrap();
    assert!(matches!(
        Db::verify_dir(DIR, &options(&fs, false)),
        Err(strata_engine::Error::AlreadyOpen(_))
    ));
    drop(db);
}
