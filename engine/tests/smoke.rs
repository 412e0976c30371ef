mod common;

use std::collections::BTreeMap;

use strata_engine::{Db, Error, Options};

#[test]
fn put_get_delete_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let opts = common::small_options();
    let mut model = BTreeMap::new();
    {
        let db = common::open(dir.path(), &opts);
        let ks = db.keyspace("a").unwrap();
        for i in 0..2000u32 {
            let k = format!("key{:05}", (i * 7919) % 2000).into_bytes();
            let v = format!("value{i}").into_bytes();
            ks.put(&k, &v).unwrap();
            model.insert(k, v);
        }
        for i in (0..2000u32).step_by(3) {
            let k = format!("key{i:05}").into_bytes();
            ks.delete(&k).unwrap();
            model.remove(&k);
        }
        common::check(&ks, &model);
        db.flush().unwrap();
        common::check(&ks, &model);
        db.compact().unwrap();
        common::check(&ks, &model);
        db.close().unwrap();
    }
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("a").unwrap();
    common::check(&ks, &model);
    eprintln!("{:#?}", db.stats());
}

#[test]
fn second_open_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let err = Db::open(dir.path(), Options::default()).unwrap_err();
    assert!(matches!(err, Error::AlreadyOpen(_)), "{err}");
    drop(db);
    Db::open(dir.path(), Options::default()).unwrap();
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Db>();
    assert_send_sync::<strata_engine::Keyspace>();
    fn assert_send<T: Send>() {}
    assert_send::<strata_engine::Iter>();
}

#[test]
fn the_largest_value_round_trips_and_a_larger_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let max = strata_engine::MAX_VALUE_LEN;
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let ks = db.keyspace("big").unwrap();
        let too_big = vec![1u8; max + 1];
        assert!(matches!(ks.put(b"k", &too_big), Err(Error::ValueTooLarge(n)) if n == max + 1));
        drop(too_big);
        let mut value = vec![0u8; max];
        value[max - 1] = 9;
        ks.put(b"k", &value).unwrap();
        ks.put(b"small", b"v").unwrap();
        assert_eq!(ks.get(b"k").unwrap().unwrap().len(), max);
        db.flush().unwrap();
        let got = ks.get(b"k").unwrap().unwrap();
        assert_eq!((got.len(), got[max - 1]), (max, 9));
        db.close().unwrap();
    }
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("big").unwrap();
    let got = ks.get(b"k").unwrap().unwrap();
    assert_eq!((got.len(), got[max - 1]), (max, 9));
    assert_eq!(ks.get(b"small").unwrap().as_deref(), Some(&b"v"[..]));
}

#[test]
fn the_background_sync_interval_syncs_unsynced_writes() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        wal_sync_interval: Some(std::time::Duration::from_millis(5)),
        ..Options::default()
    };
    let db = Db::open(dir.path(), opts).unwrap();
    let ks = db.keyspace("k").unwrap();
    ks.put(b"a", b"b").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while db.stats().wal_syncs == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert!(db.stats().wal_syncs > 0, "no background sync happened");
}

#[test]
fn the_empty_key_survives_flush_compaction_and_iteration() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), Options::default()).unwrap();
    let ks = db.keyspace("k").unwrap();
    ks.put(b"", b"empty").unwrap();
    ks.put(b"a", b"a").unwrap();
    for step in 0..3 {
        assert_eq!(
            ks.get(b"").unwrap().as_deref(),
            Some(&b"empty"[..]),
            "step {step}"
        );
        let keys: Vec<Vec<u8>> = ks.iter().unwrap().map(|r| r.unwrap().0.to_vec()).collect();
        assert_eq!(keys, vec![b"".to_vec(), b"a".to_vec()], "step {step}");
        let back: Vec<Vec<u8>> = ks
            .iter()
            .unwrap()
            .rev()
            .map(|r| r.unwrap().0.to_vec())
            .collect();
        assert_eq!(back, vec![b"a".to_vec(), b"".to_vec()], "step {step}");
        match step {
            0 => db.flush().unwrap(),
            _ => db.compact().unwrap(),
        }
    }
}

#[test]
fn a_dropped_keyspace_never_leaks_into_a_new_one() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Db::open(dir.path(), Options::default()).unwrap();
        let a = db.keyspace("a").unwrap();
        a.put(b"k", b"from a").unwrap();
        drop(a);
        db.drop_keyspace("a").unwrap();
        let b = db.keyspace("b").unwrap();
        assert!(b.get(b"k").unwrap().is_none());
        db.close().unwrap();
    }
    // The WAL still holds a's write: replay must not give it to b.
    let db = Db::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.keyspaces(), vec!["b".to_string()]);
    assert!(db.keyspace("b").unwrap().get(b"k").unwrap().is_none());
    let a = db.keyspace("a").unwrap();
    assert!(a.get(b"k").unwrap().is_none());
}

#[test]
fn a_keyspace_of_another_database_is_refused() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let db1 = Db::open(d1.path(), Options::default()).unwrap();
    let db2 = Db::open(d2.path(), Options::default()).unwrap();
    let foreign = db2.keyspace("x").unwrap();
    db1.keyspace("x").unwrap();
    let mut b = db1.batch();
    b.put(&foreign, b"k", b"v").unwrap();
    assert!(matches!(
        db1.write(b, Default::default()),
        Err(Error::InvalidArgument(_))
    ));
    assert!(foreign.get(b"k").unwrap().is_none());
}

#[test]
fn an_old_iterator_outlives_flushes_moves_and_compactions() {
    let dir = tempfile::tempdir().unwrap();
    let db = Db::open(dir.path(), common::small_options()).unwrap();
    let ks = db.keyspace("k").unwrap();
    for i in 0..3000u32 {
        ks.put(format!("{i:05}"), b"old").unwrap();
    }
    db.flush().unwrap();
    let mut it = ks.iter().unwrap();
    let first = it.next().unwrap().unwrap();
    assert_eq!(&first.0[..], b"00000");
    for round in 0..5u32 {
        for i in 0..3000u32 {
            ks.put(format!("{:05}", (i * 7 + round) % 6000), b"new")
                .unwrap();
        }
        db.flush().unwrap();
    }
    db.compact().unwrap();
    let rest: Vec<_> = it.map(|r| r.unwrap()).collect();
    assert_eq!(rest.len(), 2999);
    assert!(rest.iter().all(|(_, v)| &v[..] == b"old"));
    // The files it pinned are gone once it is.
    let stats = db.stats();
    assert!(stats.keyspace("k").unwrap().compactions > 0);
}
