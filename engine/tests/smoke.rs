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
    assert!(matches!(err, Error::Locked(_)), "{err}");
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
