//! The Hermitage anomaly suite (ept/hermitage), each sequence driven step by
//! step with two or three transactions, at both isolation levels.
//! Serializable prevents every anomaly; snapshot isolation prevents all but
//! write skew (G2-item) and anti-dependency cycles (G2), and the tests assert
//! exactly that, so a change in either direction is caught.

use strata_engine::{Db, Error, Isolation, Keyspace, Options, Transaction};

const BOTH: [Isolation; 2] = [Isolation::Snapshot, Isolation::Serializable];

struct Setup {
    _dir: tempfile::TempDir,
    db: Db,
    ks: Keyspace,
}

/// `{1: 10, 2: 20}`.
fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("test").unwrap();
    ks.put("1", "10").unwrap();
    ks.put("2", "20").unwrap();
    Setup { _dir: dir, db, ks }
}

fn r(tx: &mut Transaction, ks: &Keyspace, key: &str) -> Option<String> {
    tx.get(ks, key)
        .unwrap()
        .map(|v| String::from_utf8(v.to_vec()).unwrap())
}

fn w(tx: &mut Transaction, ks: &Keyspace, key: &str, value: &str) {
    tx.put(ks, key, value).unwrap();
}

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

/// A predicate read: every (key, value) whose value satisfies `pred`.
fn scan(tx: &mut Transaction, ks: &Keyspace, pred: impl Fn(u32) -> bool) -> Vec<(String, u32)> {
    tx.range::<&str, _>(ks, ..)
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (
                String::from_utf8(k.to_vec()).unwrap(),
                std::str::from_utf8(&v).unwrap().parse().unwrap(),
            )
        })
        .filter(|(_, v)| pred(*v))
        .collect()
}

fn conflict(result: Result<strata_engine::Timestamp, Error>) -> bool {
    match result {
        Err(Error::Conflict { keyspace, .. }) => {
            assert_eq!(keyspace, "test");
            true
        }
        Ok(_) => false,
        Err(e) => panic!("unexpected error {e}"),
    }
}

fn state(ks: &Keyspace) -> Vec<(String, String)> {
    ks.iter()
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect()
}

fn kv(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn g0_write_cycles() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        w(&mut t1, &t.ks, "1", "11");
        w(&mut t2, &t.ks, "1", "12");
        w(&mut t1, &t.ks, "2", "21");
        assert!(!conflict(t1.commit()));
        assert_eq!(state(&t.ks), kv(&[("1", "11"), ("2", "21")]));
        w(&mut t2, &t.ks, "2", "22");
        // First committer wins: T2 aborts, never an interleaved mix.
        assert!(conflict(t2.commit()), "{iso:?}");
        assert_eq!(state(&t.ks), kv(&[("1", "11"), ("2", "21")]));
    }
}

#[test]
fn g1a_aborted_reads() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        w(&mut t1, &t.ks, "1", "101");
        assert_eq!(r(&mut t2, &t.ks, "1"), s("10"));
        t1.rollback();
        assert_eq!(r(&mut t2, &t.ks, "1"), s("10"));
        assert!(!conflict(t2.commit()));
    }
}

#[test]
fn g1b_intermediate_reads() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        w(&mut t1, &t.ks, "1", "101");
        assert_eq!(r(&mut t2, &t.ks, "1"), s("10"));
        w(&mut t1, &t.ks, "1", "11");
        assert!(!conflict(t1.commit()));
        assert_eq!(r(&mut t2, &t.ks, "1"), s("10"));
        assert!(!conflict(t2.commit()));
    }
}

#[test]
fn g1c_circular_information_flow() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        w(&mut t1, &t.ks, "1", "11");
        w(&mut t2, &t.ks, "2", "22");
        assert_eq!(r(&mut t1, &t.ks, "2"), s("20"));
        assert_eq!(r(&mut t2, &t.ks, "1"), s("10"));
        assert!(!conflict(t1.commit()));
        // T2 read what T1 wrote after T2 began: a cycle serializability
        // forbids; snapshot isolation lets both commit.
        let aborted = conflict(t2.commit());
        assert_eq!(aborted, iso == Isolation::Serializable, "{iso:?}");
    }
}

#[test]
fn otv_observed_transaction_vanishes() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        w(&mut t1, &t.ks, "1", "11");
        w(&mut t1, &t.ks, "2", "19");
        w(&mut t2, &t.ks, "1", "12");
        assert!(!conflict(t1.commit()));
        let mut t3 = t.db.begin(iso).unwrap();
        assert_eq!(r(&mut t3, &t.ks, "1"), s("11"));
        w(&mut t2, &t.ks, "2", "18");
        assert_eq!(r(&mut t3, &t.ks, "2"), s("19"));
        assert!(conflict(t2.commit()));
        assert_eq!(r(&mut t3, &t.ks, "2"), s("19"));
        assert_eq!(r(&mut t3, &t.ks, "1"), s("11"));
        assert!(!conflict(t3.commit()));
    }
}

#[test]
fn pmp_predicate_many_preceders() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        assert!(scan(&mut t1, &t.ks, |v| v == 30).is_empty());
        w(&mut t2, &t.ks, "3", "30");
        assert!(!conflict(t2.commit()));
        assert!(scan(&mut t1, &t.ks, |v| v % 3 == 0).is_empty());
        assert!(!conflict(t1.commit()));
    }
}

#[test]
fn pmp_write_predicate() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        // T1: update all value += 10.
        for (k, v) in scan(&mut t1, &t.ks, |_| true) {
            w(&mut t1, &t.ks, &k, &(v + 10).to_string());
        }
        // T2: delete where value = 20.
        for (k, _) in scan(&mut t2, &t.ks, |v| v == 20) {
            t2.delete(&t.ks, k).unwrap();
        }
        assert!(!conflict(t1.commit()));
        assert!(conflict(t2.commit()), "{iso:?}");
        assert_eq!(state(&t.ks), kv(&[("1", "20"), ("2", "30")]));
    }
}

#[test]
fn p4_lost_update() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        assert_eq!(r(&mut t1, &t.ks, "1"), s("10"));
        assert_eq!(r(&mut t2, &t.ks, "1"), s("10"));
        w(&mut t1, &t.ks, "1", "11");
        w(&mut t2, &t.ks, "1", "11");
        assert!(!conflict(t1.commit()));
        assert!(conflict(t2.commit()), "{iso:?}");
    }
}

#[test]
fn g_single_read_skew() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        assert_eq!(r(&mut t1, &t.ks, "1"), s("10"));
        assert_eq!(r(&mut t2, &t.ks, "1"), s("10"));
        assert_eq!(r(&mut t2, &t.ks, "2"), s("20"));
        w(&mut t2, &t.ks, "1", "12");
        w(&mut t2, &t.ks, "2", "18");
        assert!(!conflict(t2.commit()));
        assert_eq!(r(&mut t1, &t.ks, "2"), s("20"));
        assert!(!conflict(t1.commit()));
    }
}

#[test]
fn g_single_predicate_and_write_predicate() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        assert_eq!(scan(&mut t1, &t.ks, |v| v % 5 == 0).len(), 2);
        w(&mut t2, &t.ks, "1", "12");
        w(&mut t2, &t.ks, "2", "18");
        assert!(!conflict(t2.commit()));
        assert!(scan(&mut t1, &t.ks, |v| v % 3 == 0).is_empty());
        // T1 deletes where value = 20 (in its snapshot): T2 wrote key 2.
        for (k, _) in scan(&mut t1, &t.ks, |v| v == 20) {
            t1.delete(&t.ks, k).unwrap();
        }
        assert!(conflict(t1.commit()), "{iso:?}");
    }
}

#[test]
fn g2_item_write_skew() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        for tx in [&mut t1, &mut t2] {
            assert_eq!(r(tx, &t.ks, "1"), s("10"));
            assert_eq!(r(tx, &t.ks, "2"), s("20"));
        }
        w(&mut t1, &t.ks, "1", "11");
        w(&mut t2, &t.ks, "2", "21");
        assert!(!conflict(t1.commit()));
        // Snapshot isolation allows write skew; serializable does not.
        assert_eq!(
            conflict(t2.commit()),
            iso == Isolation::Serializable,
            "{iso:?}"
        );
    }
}

#[test]
fn g2_anti_dependency_cycles() {
    for iso in BOTH {
        let t = setup();
        let (mut t1, mut t2) = (t.db.begin(iso).unwrap(), t.db.begin(iso).unwrap());
        assert_eq!(scan(&mut t1, &t.ks, |v| v % 3 == 0).len(), 0);
        assert_eq!(scan(&mut t2, &t.ks, |v| v % 3 == 0).len(), 0);
        w(&mut t1, &t.ks, "3", "30");
        w(&mut t2, &t.ks, "4", "42");
        assert!(!conflict(t1.commit()));
        assert_eq!(
            conflict(t2.commit()),
            iso == Isolation::Serializable,
            "{iso:?}"
        );
    }
}

#[test]
fn g2_fekete_read_only_anomaly() {
    for iso in BOTH {
        let t = setup();
        let mut t1 = t.db.begin(iso).unwrap();
        assert_eq!(scan(&mut t1, &t.ks, |_| true).len(), 2);
        let mut t2 = t.db.begin(iso).unwrap();
        w(&mut t2, &t.ks, "2", "25");
        assert!(!conflict(t2.commit()));
        let mut t3 = t.db.begin(iso).unwrap();
        assert_eq!(
            scan(&mut t3, &t.ks, |_| true),
            vec![("1".to_string(), 10), ("2".to_string(), 25)]
        );
        assert!(!conflict(t3.commit()));
        w(&mut t1, &t.ks, "1", "0");
        assert_eq!(
            conflict(t1.commit()),
            iso == Isolation::Serializable,
            "{iso:?}"
        );
    }
}

#[test]
fn a_conflict_leaves_no_trace_and_dropping_rolls_back() {
    let t = setup();
    let mut t1 = t.db.begin(Isolation::Serializable).unwrap();
    w(&mut t1, &t.ks, "9", "90");
    drop(t1);
    assert_eq!(state(&t.ks), kv(&[("1", "10"), ("2", "20")]));
    let (mut a, mut b) = (
        t.db.begin(Isolation::Snapshot).unwrap(),
        t.db.begin(Isolation::Snapshot).unwrap(),
    );
    w(&mut a, &t.ks, "1", "a");
    w(&mut b, &t.ks, "1", "b");
    w(&mut b, &t.ks, "5", "b");
    a.commit().unwrap();
    match b.commit() {
        Err(Error::Conflict { keyspace, key }) => {
            assert_eq!((keyspace.as_str(), key.as_slice()), ("test", &b"1"[..]));
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(state(&t.ks), kv(&[("1", "a"), ("2", "20")]));
    // Nothing is left in the conflict log once no transaction runs.
    assert_eq!(t.db.conflict_records(), 0);
}

#[test]
fn transactions_read_their_own_writes_in_iterators() {
    let t = setup();
    let mut tx = t.db.begin(Isolation::Serializable).unwrap();
    w(&mut tx, &t.ks, "0", "own");
    w(&mut tx, &t.ks, "2", "changed");
    tx.delete(&t.ks, "1").unwrap();
    w(&mut tx, &t.ks, "3", "new");
    let fwd: Vec<(String, String)> = tx
        .range::<&str, _>(&t.ks, ..)
        .unwrap()
        .map(|e| {
            let (k, v) = e.unwrap();
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    let expected = kv(&[("0", "own"), ("2", "changed"), ("3", "new")]);
    assert_eq!(fwd, expected);
    let mut back: Vec<(String, String)> = tx
        .range::<&str, _>(&t.ks, ..)
        .unwrap()
        .rev()
        .map(|e| {
            let (k, v) = e.unwrap();
            (
                String::from_utf8(k.to_vec()).unwrap(),
                String::from_utf8(v.to_vec()).unwrap(),
            )
        })
        .collect();
    back.reverse();
    assert_eq!(back, expected);
    // From both ends at once.
    let mut it = tx.range::<&str, _>(&t.ks, ..).unwrap();
    let a = it.next().unwrap().unwrap();
    let z = it.next_back().unwrap().unwrap();
    let mid: Vec<_> = it.map(|e| e.unwrap().0).collect();
    assert_eq!((&a.0[..], &z.0[..]), (&b"0"[..], &b"3"[..]));
    assert_eq!(mid, vec![bytes_of("2")]);
    assert_eq!(r(&mut tx, &t.ks, "1"), None);
    tx.commit().unwrap();
    assert_eq!(state(&t.ks), expected);
}

fn bytes_of(s: &str) -> strata_engine::Value {
    strata_engine::Value::copy_from_slice(s.as_bytes())
}
