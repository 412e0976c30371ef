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
