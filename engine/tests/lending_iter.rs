//! The lending steps of an iterator (`next_ref`, `next_back_ref`) return
//! exactly what its owned steps return, in both directions and mixed, over
//! memtables, L0 and deeper levels, separated values, TTL entries, point and
//! range tombstones, and at past timestamps.

mod common;

use std::collections::BTreeMap;
use std::ops::Bound;
use std::time::Duration;

use common::Rng;
use strata_engine::{Iter, Keyspace, Options, Timestamp};

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

fn owned(it: Iter) -> Pairs {
    it.map(|r| {
        let (k, v) = r.unwrap();
        (k.to_vec(), v.to_vec())
    })
    .collect()
}

fn lent_forward(mut it: Iter) -> Pairs {
    let mut out = Vec::new();
    while let Some(r) = it.next_ref() {
        let (k, v) = r.unwrap();
        out.push((k.to_vec(), v.to_vec()));
    }
    out
}

fn lent_backward(mut it: Iter) -> Pairs {
    let mut out = Vec::new();
    while let Some(r) = it.next_back_ref() {
        let (k, v) = r.unwrap();
        out.push((k.to_vec(), v.to_vec()));
    }
    out.reverse();
    out
}

/// Steps both ends, choosing each step's end and whether it lends from
/// `rng`, until they meet.
fn mixed(mut it: Iter, rng: &mut Rng) -> Pairs {
    let (mut front, mut back) = (Vec::new(), Vec::new());
    loop {
        let from_back = rng.below(2) == 0;
        let lend = rng.below(2) == 0;
        let got = match (from_back, lend) {
            (false, true) => it
                .next_ref()
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))),
            (true, true) => it
                .next_back_ref()
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))),
            (false, false) => it.next().map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))),
            (true, false) => it
                .next_back()
                .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec()))),
        };
        match got {
            Some(pair) if from_back => back.push(pair.unwrap()),
            Some(pair) => front.push(pair.unwrap()),
            None => break,
        }
    }
    back.reverse();
    front.extend(back);
    front
}

fn bounds(rng: &mut Rng) -> (Bound<Vec<u8>>, Bound<Vec<u8>>) {
    let one = |rng: &mut Rng| {
        let key = format!("k{:03}", rng.below(400)).into_bytes();
        match rng.below(3) {
            0 => Bound::Included(key),
            1 => Bound::Excluded(key),
            _ => Bound::Unbounded,
        }
    };
    (one(rng), one(rng))
}

/// Every way of stepping `ks` over a range at `ts` gives `expected`.
fn check_all_ways(ks: &Keyspace, ts: Timestamp, expected: &Pairs, rng: &mut Rng) {
    let at = || ks.range_at::<&[u8], _>(.., ts).unwrap();
    assert_eq!(&owned(at()), expected, "owned, at {ts:?}");
    assert_eq!(&lent_forward(at()), expected, "lent forward, at {ts:?}");
    assert_eq!(&lent_backward(at()), expected, "lent backward, at {ts:?}");
    for _ in 0..3 {
        assert_eq!(&mixed(at(), rng), expected, "mixed, at {ts:?}");
    }
    for _ in 0..20 {
        let (lo, hi) = bounds(rng);
        let range = (lo.clone(), hi.clone());
        let sub = || ks.range_at::<Vec<u8>, _>(range.clone(), ts).unwrap();
        let want = owned(sub());
        assert_eq!(lent_forward(sub()), want, "lent forward {lo:?}..{hi:?}");
        assert_eq!(lent_backward(sub()), want, "lent backward {lo:?}..{hi:?}");
        assert_eq!(mixed(sub(), rng), want, "mixed {lo:?}..{hi:?}");
    }
}

#[test]
fn lent_entries_equal_owned_ones_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let opts = Options {
        // A third of the values are stored apart from the tree.
        blob_threshold: Some(64),
        // Past timestamps stay readable through the compactions.
        history_retention: Duration::from_secs(3600),
        ..common::small_options()
    };
    let db = common::open(dir.path(), &opts);
    let ks = db.keyspace("ks").unwrap();
    let mut rng = Rng(0x5eed_1e4d_1234_5678);
    let mut model: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    // Keys whose newest version expires during the test, hiding any older
    // version.
    let mut expiring = Vec::new();
    let mut past = Vec::new();
    for step in 0..6000u64 {
        let key = format!("k{:03}", rng.below(400)).into_bytes();
        match rng.below(20) {
            0..=2 => {
                ks.delete(&key).unwrap();
                model.remove(&key);
            }
            3 => {
                let end = format!("k{:03}", rng.below(400)).into_bytes();
                if key < end {
                    ks.delete_range(key.clone()..end.clone()).unwrap();
                    let doomed: Vec<_> = model.range(key..end).map(|(k, _)| k.clone()).collect();
                    for k in doomed {
                        model.remove(&k);
                    }
                }
            }
            4 => {
                ks.put_with_ttl(&key, b"fleeting", Duration::from_millis(1))
                    .unwrap();
                model.remove(&key);
                expiring.push(key);
            }
            5 => {
                let value = format!("lasting {step}").into_bytes();
                ks.put_with_ttl(&key, &value, Duration::from_secs(3600))
                    .unwrap();
                model.insert(key, value);
            }
            _ => {
                let len = rng.below(120) as usize;
                let value: Vec<u8> = (0..len).map(|i| (step as usize + i) as u8).collect();
                ks.put(&key, &value).unwrap();
                model.insert(key, value);
            }
        }
        // Leave data in the memtable, in L0 and deeper levels at once.
        match step {
            2000 => db.compact().unwrap(),
            4000 => db.flush().unwrap(),
            _ => {}
        }
        if step % 1500 == 0 {
            past.push(ks.last_commit_ts());
        }
    }
    // Let the short TTLs run out.
    std::thread::sleep(Duration::from_millis(20));
    let expected: Pairs = model.into_iter().collect();
    assert!(expected.len() > 100, "the workload left too little to scan");
    check_all_ways(&ks, Timestamp::now(), &expected, &mut rng);
    for ts in past {
        let then = owned(ks.range_at::<&[u8], _>(.., ts).unwrap());
        check_all_ways(&ks, ts, &then, &mut rng);
    }
    // Nothing the lending steps leave behind changes what a new scan sees.
    db.compact().unwrap();
    check_all_ways(&ks, Timestamp::now(), &expected, &mut rng);
    assert!(!expiring.is_empty());
}
