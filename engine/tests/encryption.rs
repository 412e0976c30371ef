//! Encryption at rest, end to end: nothing readable on disk, tampering
//! detected and reported with the file, key rotation, wrong keys refused.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use strata_engine::format::codec::{EncryptionKey, Keyring};
use strata_engine::format::sst::{Footer, Table, TableReadOptions, FOOTER_LEN};
use strata_engine::{Db, Error, MemoryKeyProvider, Options};

struct Rng(u64);
impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 24) as u8
            })
            .collect()
    }
}

const KEY_A: [u8; 32] = [0xa1; 32];
const KEY_B: [u8; 32] = [0xb2; 32];

fn opts(provider: Option<Arc<MemoryKeyProvider>>) -> Options {
    Options {
        memtable_size: 64 * 1024,
        block_size: 1024,
        key_provider: provider.map(|p| p as _),
        ..Options::default()
    }
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

fn with_ext(dir: &Path, ext: &str) -> Vec<PathBuf> {
    files(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect()
}

/// Every 16-byte window of every file.
fn windows(dir: &Path) -> HashSet<[u8; 16]> {
    let mut set = HashSet::new();
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        for w in bytes.windows(16) {
            set.insert(<[u8; 16]>::try_from(w).unwrap());
        }
    }
    set
}

/// Writes random keys and values through writes, a flush, a compaction,
/// and leaves the last ones in the WAL; returns them.
fn workload(db: &Db, rng: &mut Rng) -> BTreeMap<Vec<u8>, Vec<u8>> {
    let a = db.keyspace("a").unwrap();
    let b = db.keyspace("b").unwrap();
    let mut written = BTreeMap::new();
    for phase in 0..3 {
        for _ in 0..400 {
            let (k, v) = (rng.bytes(24), rng.bytes(40));
            let ks = if written.len() % 2 == 0 { &a } else { &b };
            ks.put(&k, &v).unwrap();
            written.insert(k, v);
        }
        match phase {
            0 => db.flush().unwrap(),
            1 => db.compact().unwrap(),
            _ => {} // left in the WAL
        }
    }
    written
}

fn leaked(dir: &Path, written: &BTreeMap<Vec<u8>, Vec<u8>>) -> usize {
    let all = windows(dir);
    written
        .iter()
        .flat_map(|(k, v)| [&k[..16], &k[8..24], &v[..16], &v[24..40]])
        .filter(|w| all.contains(&<[u8; 16]>::try_from(*w).unwrap()))
        .count()
}

#[test]
fn no_key_or_value_appears_in_any_file() {
    // Without encryption the scan finds the data (it can fail).
    let plain = tempfile::tempdir().unwrap();
    let db = Db::open(plain.path(), opts(None)).unwrap();
    let written = workload(&db, &mut Rng(5));
    drop(db); // a stop with data still in the WAL
    assert!(leaked(plain.path(), &written) > 100);

    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, KEY_A));
    let db = Db::open(dir.path(), opts(Some(provider.clone()))).unwrap();
    let written = workload(&db, &mut Rng(5));
    assert!(!with_ext(dir.path(), "log").is_empty() && !with_ext(dir.path(), "sst").is_empty());
    drop(db);
    assert_eq!(leaked(dir.path(), &written), 0, "plaintext found on disk");
    // And it all reads back after reopening.
    let db = Db::open(dir.path(), opts(Some(provider))).unwrap();
    let (a, b) = (db.keyspace("a").unwrap(), db.keyspace("b").unwrap());
    for (k, v) in &written {
        let got = a.get(k).unwrap().or(b.get(k).unwrap()).unwrap();
        assert_eq!(&got[..], &v[..]);
    }
}

#[test]
fn a_plaintext_keyspace_opts_out_for_its_tables_only() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, KEY_A));
    let mut o = opts(Some(provider));
    o.plaintext_keyspaces = vec!["public".into()];
    let db = Db::open(dir.path(), o).unwrap();
    let public = db.keyspace("public").unwrap();
    let secret = db.keyspace("secret").unwrap();
    let mut rng = Rng(9);
    let (pk, pv, sk, sv) = (rng.bytes(24), rng.bytes(40), rng.bytes(24), rng.bytes(40));
    public.put(&pk, &pv).unwrap();
    secret.put(&sk, &sv).unwrap();
    db.flush().unwrap();
    let stats = db.stats();
    assert_eq!(
        stats.bytes_by_key_id.len(),
        2,
        "{:?}",
        stats.bytes_by_key_id
    );
    drop((public, secret));
    db.close().unwrap();
    let all = windows(dir.path());
    assert!(
        all.contains(&<[u8; 16]>::try_from(&pv[..16]).unwrap()),
        "the public table is plaintext"
    );
    assert!(
        !all.contains(&<[u8; 16]>::try_from(&sv[..16]).unwrap()),
        "the secret one is not"
    );
}

/// Reads every written key: each read is the right value or an error that
/// names a file; returns the errors.
fn read_all(
    dir: &Path,
    provider: Arc<MemoryKeyProvider>,
    written: &BTreeMap<Vec<u8>, Vec<u8>>,
) -> Vec<String> {
    let db = match Db::open(dir, opts(Some(provider))) {
        Ok(db) => db,
        Err(e) => return vec![e.to_string()],
    };
    let (a, b) = (db.keyspace("a").unwrap(), db.keyspace("b").unwrap());
    let mut errors = Vec::new();
    for (k, v) in written {
        for ks in [&a, &b] {
            match ks.get(k) {
                Ok(Some(got)) => assert_eq!(&got[..], &v[..], "different data returned"),
                Ok(None) => {}
                Err(e) => errors.push(e.to_string()),
            }
        }
    }
    for ks in [&a, &b] {
        for r in ks.iter().unwrap() {
            match r {
                Ok((k, got)) => assert_eq!(written.get(&k[..]).map(|v| &v[..]), Some(&got[..])),
                Err(e) => {
                    errors.push(e.to_string());
                    break;
                }
            }
        }
    }
    errors
}

/// The data-block handles of an SST.
fn blocks(path: &Path, provider: &MemoryKeyProvider) -> Vec<(u64, u64)> {
    use strata_engine::EncryptionKeyProvider;
    let data = Bytes::from(std::fs::read(path).unwrap());
    let footer = Footer::decode(&data[data.len() - FOOTER_LEN..], 0, 0).unwrap();
    let id = footer.key_id.unwrap();
    let mut ring = Keyring::new();
    ring.insert(Arc::new(EncryptionKey::new(
        id,
        *provider.key(id).unwrap().bytes(),
    )));
    let number: u64 = path.file_stem().unwrap().to_str().unwrap().parse().unwrap();
    let t = Table::open(
        data,
        &TableReadOptions {
            file_number: number,
            expected_uid: None,
            keyring: Some(&ring),
            expected_key_id: None,
        },
    )
    .unwrap();
    let mut it = t.index_iter();
    it.seek_to_first().unwrap();
    let mut out = Vec::new();
    while it.valid() {
        let h = strata_engine::format::sst::BlockHandle::decode(it.value(), 0).unwrap();
        out.push((h.offset, h.size));
        it.next().unwrap();
    }
    out
}

#[test]
fn tampering_with_tables_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, KEY_A));
    let db = Db::open(dir.path(), opts(Some(provider.clone()))).unwrap();
    let written = workload(&db, &mut Rng(11));
    db.flush().unwrap();
    db.close().unwrap();
    let image = tempfile::tempdir().unwrap();
    let copy = |to: &Path| {
        for f in files(dir.path()) {
            std::fs::copy(&f, to.join(f.file_name().unwrap())).unwrap();
        }
    };
    let ssts = with_ext(dir.path(), "sst");
    assert!(ssts.len() >= 2);
    let (first, second) = (&ssts[0], &ssts[1]);
    let b1 = blocks(first, &provider);
    let b2 = blocks(second, &provider);
    // Two same-size blocks of one file, and of two files.
    let same = b1
        .iter()
        .enumerate()
        .find_map(|(i, x)| b1[i + 1..].iter().find(|y| y.1 == x.1).map(|y| (*x, *y)))
        .expect("equal blocks");
    let cross = b1
        .iter()
        .find_map(|x| b2.iter().find(|y| y.1 == x.1).map(|y| (*x, *y)))
        .expect("equal blocks across files");
    type Tamper = Box<dyn Fn(&Path)>;
    let name = |p: &Path| p.file_name().unwrap().to_str().unwrap().to_string();
    let (f1, f2) = (name(first), name(second));
    let cases: Vec<(&str, String, Tamper)> = vec![
        (
            "swap two blocks",
            f1.clone(),
            Box::new({
                let f1 = f1.clone();
                move |d: &Path| {
                    let p = d.join(&f1);
                    let mut b = std::fs::read(&p).unwrap();
                    let ((o1, n), (o2, _)) = same;
                    let (o1, o2, n) = (o1 as usize, o2 as usize, n as usize);
                    let x = b[o1..o1 + n].to_vec();
                    let y = b[o2..o2 + n].to_vec();
                    b[o1..o1 + n].copy_from_slice(&y);
                    b[o2..o2 + n].copy_from_slice(&x);
                    std::fs::write(&p, b).unwrap();
                }
            }),
        ),
        (
            "block from another file",
            f1.clone(),
            Box::new({
                let (f1, f2) = (f1.clone(), f2.clone());
                move |d: &Path| {
                    let p = d.join(&f1);
                    let mut b = std::fs::read(&p).unwrap();
                    let other = std::fs::read(d.join(&f2)).unwrap();
                    let ((o1, n), (o2, _)) = cross;
                    let (o1, o2, n) = (o1 as usize, o2 as usize, n as usize);
                    b[o1..o1 + n].copy_from_slice(&other[o2..o2 + n]);
                    std::fs::write(&p, b).unwrap();
                }
            }),
        ),
        (
            "truncate",
            f1.clone(),
            Box::new({
                let f1 = f1.clone();
                move |d: &Path| {
                    let p = d.join(&f1);
                    let b = std::fs::read(&p).unwrap();
                    std::fs::write(&p, &b[..b.len() - 1]).unwrap();
                }
            }),
        ),
        (
            "flip a bit",
            f1.clone(),
            Box::new({
                let f1 = f1.clone();
                move |d: &Path| {
                    let p = d.join(&f1);
                    let mut b = std::fs::read(&p).unwrap();
                    let mid = b.len() / 3;
                    b[mid] ^= 0x08;
                    std::fs::write(&p, b).unwrap();
                }
            }),
        ),
    ];
    for (what, file, tamper) in cases {
        for f in files(image.path()) {
            std::fs::remove_file(f).unwrap();
        }
        copy(image.path());
        tamper(image.path());
        let errors = read_all(image.path(), provider.clone(), &written);
        assert!(!errors.is_empty(), "{what}: not detected");
        assert!(
            errors.iter().all(|e| e.contains(&file)),
            "{what}: {errors:?}"
        );
    }
}

#[test]
fn rotation_then_reencrypt_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, KEY_A));
    let db = Db::open(dir.path(), opts(Some(provider.clone()))).unwrap();
    let mut written = workload(&db, &mut Rng(21));
    provider.add_key(2, KEY_B);
    provider.set_current(2).unwrap();
    let a = db.keyspace("a").unwrap();
    for _ in 0..300 {
        let mut rng = Rng(written.len() as u64 + 99);
        let (k, v) = (rng.bytes(24), rng.bytes(40));
        a.put(&k, &v).unwrap();
        written.insert(k, v);
    }
    db.flush().unwrap();
    let before = db.stats().bytes_by_key_id;
    assert!(
        before.contains_key(&Some(1)) && before.contains_key(&Some(2)),
        "{before:?}"
    );
    db.reencrypt().unwrap();
    let after = db.stats().bytes_by_key_id;
    assert_eq!(
        after.keys().copied().collect::<Vec<_>>(),
        vec![Some(2)],
        "{after:?}"
    );
    drop(a);
    db.close().unwrap();
    // The files say so too: every SST footer, WAL and manifest header.
    for f in with_ext(dir.path(), "sst") {
        let b = std::fs::read(&f).unwrap();
        let footer = Footer::decode(&b[b.len() - FOOTER_LEN..], 0, 0).unwrap();
        assert_eq!(footer.key_id, Some(2), "{f:?}");
    }
    for f in files(dir.path()) {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".log") || name.starts_with("MANIFEST-") {
            let h = strata_engine::format::log::peek_header(&std::fs::read(&f).unwrap()).unwrap();
            assert_eq!(h.key_id, Some(2), "{name}");
        }
    }
    // Key 1 can go; everything still reads.
    provider.remove_key(1).unwrap();
    assert!(read_all(dir.path(), provider, &written).is_empty());
}

fn snapshot_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    files(dir)
        .into_iter()
        .map(|f| {
            (
                f.file_name().unwrap().to_str().unwrap().to_string(),
                std::fs::read(&f).unwrap(),
            )
        })
        .collect()
}

#[test]
fn a_wrong_or_missing_key_fails_at_open_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, KEY_A));
    let db = Db::open(dir.path(), opts(Some(provider))).unwrap();
    workload(&db, &mut Rng(31));
    drop(db);
    let before = snapshot_dir(dir.path());
    let attempts: Vec<(&str, Option<Arc<MemoryKeyProvider>>)> = vec![
        (
            "wrong key",
            Some(Arc::new(MemoryKeyProvider::new(1, KEY_B))),
        ),
        ("other id", Some(Arc::new(MemoryKeyProvider::new(2, KEY_A)))),
        ("no provider", None),
    ];
    for (what, p) in attempts {
        match Db::open(dir.path(), opts(p)) {
            Err(Error::Decrypt { path, .. }) => {
                assert!(path.starts_with(dir.path()), "{what}: {path:?}");
            }
            Err(e) => panic!("{what}: expected Decrypt, got {e}"),
            Ok(_) => panic!("{what}: opened"),
        }
        assert_eq!(
            snapshot_dir(dir.path()),
            before,
            "{what}: the directory changed"
        );
    }
}

#[test]
fn a_plaintext_database_opened_with_a_key_encrypts_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), opts(None)).unwrap();
    let written = workload(&db, &mut Rng(41));
    db.close().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(7, KEY_A));
    let db = Db::open(dir.path(), opts(Some(provider.clone()))).unwrap();
    assert!(db.stats().bytes_by_key_id.contains_key(&None));
    db.reencrypt().unwrap();
    assert_eq!(
        db.stats()
            .bytes_by_key_id
            .keys()
            .copied()
            .collect::<Vec<_>>(),
        vec![Some(7)]
    );
    db.close().unwrap();
    assert_eq!(leaked(dir.path(), &written), 0);
    assert!(read_all(dir.path(), provider, &written).is_empty());
}

#[test]
fn rotation_with_nothing_written_since_still_retires_the_old_key() {
    let dir = tempfile::tempdir().unwrap();
    let provider = Arc::new(MemoryKeyProvider::new(1, KEY_A));
    let db = Db::open(dir.path(), opts(Some(provider.clone()))).unwrap();
    let ks = db.keyspace("a").unwrap();
    ks.put(b"k", b"v").unwrap();
    db.flush().unwrap();
    // The WAL in use was created under key 1 and holds nothing.
    provider.add_key(2, KEY_B);
    provider.set_current(2).unwrap();
    db.reencrypt().unwrap();
    ks.put(b"after", b"rotation").unwrap();
    drop(ks);
    db.close().unwrap();
    provider.remove_key(1).unwrap();
    let db = Db::open(dir.path(), opts(Some(provider))).unwrap();
    let ks = db.keyspace("a").unwrap();
    assert_eq!(ks.get(b"k").unwrap().as_deref(), Some(&b"v"[..]));
    assert_eq!(ks.get(b"after").unwrap().as_deref(), Some(&b"rotation"[..]));
}
