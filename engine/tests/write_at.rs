//! `Db::write_at`: a batch committed at a timestamp decided elsewhere.

mod common;

use strata_engine::{Db, Error, Timestamp, WriteOptions};

#[test]
fn a_batch_commits_at_the_given_timestamp_and_only_after_the_last() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), common::small_options()).unwrap();
    let ks = db.keyspace("data").unwrap();
    let first = ks.put("a", "1").unwrap();
    // Not after the last commit: refused, nothing written.
    let mut b = db.batch();
    b.put(&ks, "b", "stale").unwrap();
    let e = db.write_at(b, first, WriteOptions::default()).unwrap_err();
    assert!(matches!(e, Error::InvalidArgument(_)), "{e}");
    assert_eq!(ks.get("b").unwrap(), None);
    // After it: committed at exactly that timestamp.
    let at = Timestamp(first.as_u64() + 1000);
    let mut b = db.batch();
    b.put(&ks, "b", "2").unwrap();
    b.delete(&ks, "a").unwrap();
    assert_eq!(db.write_at(b, at, WriteOptions { sync: true }).unwrap(), at);
    assert_eq!(db.last_timestamp(), at);
    let h = ks.history("b").unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].ts, at);
    assert_eq!(ks.get("a").unwrap(), None);
    // Later commits follow it.
    assert!(ks.put("c", "3").unwrap() > at);
    drop(ks);
    db.close().unwrap();
    let db = Db::open(dir.path(), common::small_options()).unwrap();
    let ks = db.keyspace("data").unwrap();
    assert_eq!(ks.history("b").unwrap()[0].ts, at);
    assert_eq!(ks.get("a").unwrap(), None);
    assert!(db.last_timestamp() > at);
}
