use std::collections::BTreeMap;
use std::time::Instant;

use super::report::{Bytes, Line};
use super::*;

fn v(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

fn get(key: &str) -> Op {
    Op::Get {
        key: key.as_bytes().to_vec(),
    }
}

fn put(key: &str, value: Option<Vec<u8>>) -> Op {
    Op::Put {
        key: key.as_bytes().to_vec(),
        value,
    }
}

fn cas(key: &str, expected: Option<Vec<u8>>, new: Option<Vec<u8>>) -> Op {
    Op::Cas {
        key: key.as_bytes().to_vec(),
        expected,
        new,
    }
}

/// An answered operation.
fn done(client: u64, call: u64, ret: u64, op: Op, output: Output) -> Entry {
    Entry {
        client,
        call,
        ret: Some(ret),
        op,
        output: Some(output),
    }
}

/// An operation without a reply.
fn lost(client: u64, call: u64, op: Op) -> Entry {
    Entry {
        client,
        call,
        ret: None,
        op,
        output: None,
    }
}

fn verdict(history: &[Entry]) -> Outcome {
    check(history).unwrap()
}

fn assert_ok(history: &[Entry]) {
    let outcome = verdict(history);
    assert!(outcome.is_linearizable(), "{outcome}");
}

fn assert_violation(history: &[Entry]) -> Report {
    match verdict(history) {
        Outcome::Violation(report) => report,
        other => panic!("expected a violation, got {other}"),
    }
}

#[test]
fn sequential_history_is_linearizable() {
    assert_ok(&[
        done(1, 0, 1, get("x"), Output::Get(None)),
        done(1, 2, 3, put("x", v("1")), Output::Put),
        done(2, 4, 5, get("x"), Output::Get(v("1"))),
        done(1, 6, 7, cas("x", v("1"), v("2")), Output::Cas(true)),
        done(2, 8, 9, cas("x", v("1"), v("3")), Output::Cas(false)),
        done(1, 10, 11, get("x"), Output::Get(v("2"))),
        done(2, 12, 13, put("x", None), Output::Put),
        done(1, 14, 15, get("x"), Output::Get(None)),
        done(2, 16, 17, cas("x", None, v("4")), Output::Cas(true)),
        done(1, 18, 19, get("x"), Output::Get(v("4"))),
    ]);
    assert_ok(&[]);
}

#[test]
fn overlapping_operations_take_effect_in_any_order() {
    // Both writes overlap both reads, which see them in the opposite order
    // to their calls.
    assert_ok(&[
        done(1, 0, 10, put("x", v("1")), Output::Put),
        done(2, 0, 10, put("x", v("2")), Output::Put),
        done(3, 1, 2, get("x"), Output::Get(v("2"))),
        done(4, 3, 4, get("x"), Output::Get(v("1"))),
        done(3, 5, 6, get("x"), Output::Get(v("1"))),
    ]);
    // A read overlapping a write may see either value.
    for seen in [None, v("1")] {
        assert_ok(&[
            done(1, 0, 5, put("x", v("1")), Output::Put),
            done(2, 1, 3, get("x"), Output::Get(seen)),
        ]);
    }
    // Equal times overlap: a return at 5 does not precede a call at 5.
    assert_ok(&[
        done(1, 0, 5, get("x"), Output::Get(v("1"))),
        done(2, 5, 6, put("x", v("1")), Output::Put),
    ]);
}

#[test]
fn stale_read_is_a_violation() {
    let report = assert_violation(&[
        done(1, 0, 1, put("x", v("1")), Output::Put),
        done(1, 2, 3, put("x", v("2")), Output::Put),
        done(2, 4, 5, get("x"), Output::Get(v("1"))),
    ]);
    assert_eq!(report.key(), b"x");
    assert_eq!(report.history().len(), 3);
    assert_eq!(report.longest_prefix(), &[0, 1]);
    let text = report.to_string();
    assert!(text.contains("key \"x\""), "{text}");
    assert!(text.contains("client 2"), "{text}");
    assert!(text.contains("4..5"), "{text}");
    assert!(text.contains("get \"x\"  -> \"1\""), "{text}");
}

#[test]
fn lost_write_is_a_violation() {
    // An acknowledged write that a later read does not see.
    assert_violation(&[
        done(1, 0, 1, put("x", v("1")), Output::Put),
        done(2, 2, 3, get("x"), Output::Get(None)),
    ]);
    // Two overlapping writes both done, and then the value changes.
    assert_violation(&[
        done(1, 0, 5, put("x", v("1")), Output::Put),
        done(2, 1, 6, put("x", v("2")), Output::Put),
        done(3, 7, 8, get("x"), Output::Get(v("1"))),
        done(3, 9, 10, get("x"), Output::Get(v("2"))),
    ]);
}

#[test]
fn swaps_must_agree_with_the_value() {
    // Swapped although the value was not the expected one.
    assert_violation(&[
        done(1, 0, 1, put("x", v("1")), Output::Put),
        done(2, 2, 3, cas("x", None, v("2")), Output::Cas(true)),
    ]);
    // Not swapped although it was.
    assert_violation(&[
        done(1, 0, 1, put("x", v("1")), Output::Put),
        done(2, 2, 3, cas("x", v("1"), v("2")), Output::Cas(false)),
    ]);
    // Two increments from the same value cannot both swap.
    assert_violation(&[
        done(1, 0, 1, put("x", v("0")), Output::Put),
        done(1, 2, 5, cas("x", v("0"), v("1")), Output::Cas(true)),
        done(2, 3, 6, cas("x", v("0"), v("1")), Output::Cas(true)),
    ]);
    // A failed swap overlapping a write may have seen the value before it.
    assert_ok(&[
        done(1, 0, 1, put("x", v("1")), Output::Put),
        done(1, 2, 5, put("x", v("2")), Output::Put),
        done(2, 3, 6, cas("x", v("2"), v("3")), Output::Cas(false)),
        done(2, 7, 8, get("x"), Output::Get(v("2"))),
    ]);
}

#[test]
fn unanswered_write_may_or_may_not_take_effect() {
    let base = [
        done(1, 0, 1, put("x", v("1")), Output::Put),
        lost(2, 2, put("x", v("2"))),
    ];
    for reads in [
        vec![None, None],
        vec![v("1"), v("1")],
        vec![v("2"), v("2")],
        vec![v("1"), v("2")],
    ] {
        let mut history = base.to_vec();
        for (n, seen) in reads.into_iter().enumerate() {
            let t = 10 + 2 * n as u64;
            if let Some(seen) = seen {
                history.push(done(3, t, t + 1, get("x"), Output::Get(Some(seen))));
            }
        }
        assert_ok(&history);
    }
    // Once seen it stays.
    let mut history = base.to_vec();
    history.push(done(3, 10, 11, get("x"), Output::Get(v("2"))));
    history.push(done(3, 12, 13, get("x"), Output::Get(v("1"))));
    assert_violation(&history);
    // Unanswered swaps and reads too.
    assert_ok(&[
        done(1, 0, 1, put("x", v("1")), Output::Put),
        lost(2, 2, cas("x", v("1"), v("2"))),
        lost(3, 2, get("x")),
        done(1, 3, 4, get("x"), Output::Get(v("1"))),
        done(1, 5, 6, get("x"), Output::Get(v("2"))),
    ]);
    // A swap that never took effect cannot have swapped a later value.
    assert_violation(&[
        lost(2, 2, cas("x", v("1"), v("2"))),
        done(1, 3, 4, get("x"), Output::Get(v("2"))),
    ]);
}

#[test]
fn unanswered_write_cannot_be_seen_before_its_call() {
    let report = assert_violation(&[
        done(1, 0, 1, get("x"), Output::Get(v("2"))),
        lost(2, 5, put("x", v("2"))),
    ]);
    assert!(report.longest_prefix().is_empty());
    let text = report.to_string();
    assert!(text.contains("5..  "), "{text}");
    assert!(text.contains("(no reply)"), "{text}");
}

#[test]
fn keys_are_independent() {
    // As one register this would fail: y reads absent after x was written.
    let mut history = vec![
        done(1, 0, 1, put("x", v("1")), Output::Put),
        done(2, 2, 3, get("y"), Output::Get(None)),
        done(2, 4, 5, put("y", v("2")), Output::Put),
        done(3, 0, 10, put("x", v("3")), Output::Put),
        done(1, 6, 7, get("x"), Output::Get(v("1"))),
        done(3, 11, 12, get("y"), Output::Get(v("2"))),
        done(4, 11, 12, get("x"), Output::Get(v("1"))),
    ];
    assert_ok(&history);
    // A stale read of y is reported with y's operations alone.
    history.push(done(4, 13, 14, get("y"), Output::Get(None)));
    let report = assert_violation(&history);
    assert_eq!(report.key(), b"y");
    assert_eq!(report.history().len(), 4);
    assert!(report.history().iter().all(|e| e.op.key() == b"y"));
}

#[test]
fn malformed_entries_are_refused() {
    let bad = [
        done(1, 5, 4, get("x"), Output::Get(None)),
        done(1, 0, 1, get("x"), Output::Put),
        Entry {
            output: None,
            ..done(1, 0, 1, get("x"), Output::Get(None))
        },
        Entry {
            ret: None,
            ..done(1, 0, 1, get("x"), Output::Get(None))
        },
    ];
    for entry in bad {
        let history = [done(1, 0, 1, get("y"), Output::Get(None)), entry];
        assert_eq!(check(&history).unwrap_err().index, 1);
    }
}

#[test]
fn reports_print_bytes_readably() {
    assert_eq!(Bytes(b"ab c").to_string(), "\"ab c\"");
    assert_eq!(Bytes(&[0, 0xff]).to_string(), "0x00ff");
    assert_eq!(Bytes(b"a\nb").to_string(), "0x610a62");
    assert_eq!(Bytes(b"").to_string(), "\"\"");
    let entry = done(7, 3, 9, cas("\u{1}k", None, v("é")), Output::Cas(true));
    assert_eq!(
        Line(&entry).to_string(),
        "client 7   3..9          cas 0x016b absent -> \"é\"  -> swapped"
    );
}

#[test]
fn recorder_orders_calls_and_returns() {
    let history = std::sync::Arc::new(History::new());
    let threads: Vec<_> = (0..4u64)
        .map(|client| {
            let history = history.clone();
            std::thread::spawn(move || {
                for i in 0..50u64 {
                    let key = format!("k{}", i % 3);
                    let id = history.invoke(client, put(&key, v(&format!("{client}-{i}"))));
                    if i % 10 == 9 {
                        history.abandon(id);
                    } else {
                        history.complete(id, Output::Put);
                    }
                    let id = history.invoke(client, get(&key));
                    drop(id);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let entries = history.entries();
    assert_eq!(entries.len(), 400);
    let mut times: Vec<u64> = entries.iter().map(|e| e.call).collect();
    times.extend(entries.iter().filter_map(|e| e.ret));
    let count = times.len();
    times.sort_unstable();
    times.dedup();
    assert_eq!(times.len(), count, "times are distinct");
    assert!(entries.iter().all(|e| e.ret.is_none_or(|r| r > e.call)));
    assert_eq!(entries.iter().filter(|e| e.ret.is_some()).count(), 180);
    assert!(history.check().unwrap().is_linearizable());

    // One client's operations follow each other.
    let history = History::new();
    let a = history.invoke(1, put("x", v("1")));
    history.complete(a, Output::Put);
    let b = history.invoke(1, get("x"));
    history.complete(b, Output::Get(None));
    assert!(matches!(history.check(), Ok(Outcome::Violation(_))));
}

/// xorshift64: tests replay from their seeds without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, per_mille: u64) -> bool {
        self.below(1000) < per_mille
    }
}

/// Options of a simulated history.
struct Sim {
    clients: u64,
    ops: usize,
    keys: u64,
    values: u64,
    /// Of each 1000 operations, how many get no reply.
    lost_per_mille: u64,
    /// The longest an operation takes.
    latency: u64,
}

/// Runs clients against a true atomic register map: each operation takes
/// effect at a point drawn uniformly from its interval (an unanswered one
/// later, or never), and answers from the map as of that point.
fn simulate(rng: &mut Rng, sim: &Sim) -> Vec<Entry> {
    let mut history = Vec::with_capacity(sim.ops);
    // Each client's next call time.
    let mut clock: Vec<u64> = (0..sim.clients).map(|_| rng.below(10)).collect();
    // (effect time, index) of the operations that take effect.
    let mut effects = Vec::new();
    for i in 0..sim.ops {
        let client = rng.below(sim.clients);
        let call = clock[client as usize];
        let ret = call + 1 + rng.below(sim.latency);
        clock[client as usize] = ret + 1 + rng.below(10);
        let key = format!("k{}", rng.below(sim.keys));
        let value = |rng: &mut Rng| match rng.below(sim.values + 1) {
            0 => None,
            n => v(&n.to_string()),
        };
        let op = match rng.below(3) {
            0 => get(&key),
            1 => put(&key, value(rng)),
            _ => cas(&key, value(rng), value(rng)),
        };
        let lost = rng.chance(sim.lost_per_mille);
        let at = if lost {
            (rng.chance(500)).then(|| call + rng.below(5 * sim.latency))
        } else {
            Some(call + rng.below(ret - call + 1))
        };
        if let Some(at) = at {
            effects.push((at, i));
        }
        history.push(Entry {
            client,
            call,
            ret: (!lost).then_some(ret),
            op,
            output: None,
        });
    }
    effects.sort_unstable();
    let mut map: BTreeMap<Vec<u8>, Vec<u8>> = BTreeMap::new();
    for (_, i) in effects {
        let entry = &mut history[i];
        let output = run(&mut map, &entry.op);
        if entry.ret.is_some() {
            entry.output = Some(output);
        }
    }
    history
}

/// Applies an operation to a register map, answering it.
fn run(map: &mut BTreeMap<Vec<u8>, Vec<u8>>, op: &Op) -> Output {
    let set = |map: &mut BTreeMap<Vec<u8>, Vec<u8>>, key: &[u8], value: &Option<Vec<u8>>| {
        match value {
            Some(value) => map.insert(key.to_vec(), value.clone()),
            None => map.remove(key),
        };
    };
    match op {
        Op::Get { key } => Output::Get(map.get(key).cloned()),
        Op::Put { key, value } => {
            set(map, key, value);
            Output::Put
        }
        Op::Cas { key, expected, new } => {
            let swap = map.get(key) == expected.as_ref();
            if swap {
                set(map, key, new);
            }
            Output::Cas(swap)
        }
    }
}

#[test]
fn simulated_histories_are_linearizable_until_corrupted() {
    let start = Instant::now();
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..40 {
        let sim = Sim {
            clients: 1 + rng.below(6),
            ops: 50 + rng.below(150) as usize,
            keys: 1 + rng.below(3),
            values: 1 + rng.below(4),
            lost_per_mille: rng.below(150),
            latency: 40,
        };
        let mut history = simulate(&mut rng, &sim);
        let outcome = verdict(&history);
        assert!(outcome.is_linearizable(), "round {round}: {outcome:#}");

        // A read of a value never written.
        let reads: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].output, Some(Output::Get(_))))
            .collect();
        if reads.is_empty() {
            continue;
        }
        let i = reads[rng.below(reads.len() as u64) as usize];
        history[i].output = Some(Output::Get(v("never written")));
        let report = assert_violation(&history);
        assert_eq!(report.key(), history[i].op.key());
        assert!(report.to_string().contains("never written"));
    }
    eprintln!("simulated histories: {:?}", start.elapsed());
}

#[test]
fn long_contended_history_checks_quickly() {
    let mut rng = Rng(0x0bad_cafe_0000_0007);
    // (clients, values, unanswered per mille, latency): five clients as the
    // fault tests run them, on few values and on values written once; then
    // ten always overlapping each other.
    let cases = [(5, 3, 15, 40), (5, 1_000_000, 50, 40), (10, 2, 30, 1000)];
    for (clients, values, lost, latency) in cases {
        let mut history = simulate(
            &mut rng,
            &Sim {
                clients,
                ops: 2000,
                keys: 1,
                values,
                lost_per_mille: lost,
                latency,
            },
        );
        let unanswered = history.iter().filter(|e| e.ret.is_none()).count();
        let start = Instant::now();
        let outcome = verdict(&history);
        assert!(outcome.is_linearizable(), "{outcome}");
        eprintln!(
            "2000 operations, {clients} clients, {values} values, {unanswered} unanswered: {:?}",
            start.elapsed()
        );
        if values < 1000 {
            continue;
        }
        // Refuting takes visiting every state before the violation.
        let i = (1000..2000)
            .find(|&i| matches!(history[i].output, Some(Output::Get(_))))
            .unwrap();
        history[i].output = Some(Output::Get(v("never written")));
        let start = Instant::now();
        assert!(matches!(verdict(&history), Outcome::Violation(_)));
        eprintln!("  and with a read corrupted: {:?}", start.elapsed());
    }
}

/// Whether some order of all answered operations and any of the others,
/// consistent with real time, explains every answer: by enumeration.
fn brute_force(history: &[Entry]) -> bool {
    fn go(history: &[Entry], placed: &mut [bool], map: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> bool {
        let waiting = |placed: &[bool], j: usize| !placed[j] && history[j].ret.is_some();
        if !(0..history.len()).any(|j| waiting(placed, j)) {
            return true;
        }
        for i in 0..history.len() {
            if placed[i] {
                continue;
            }
            let call = history[i].call;
            if (0..history.len())
                .any(|j| waiting(placed, j) && history[j].ret.is_some_and(|r| r < call))
            {
                continue;
            }
            let saved = map.clone();
            let output = run(map, &history[i].op);
            if history[i].output.as_ref().is_none_or(|o| *o == output) {
                placed[i] = true;
                if go(history, placed, map) {
                    return true;
                }
                placed[i] = false;
            }
            *map = saved;
        }
        false
    }
    go(
        history,
        &mut vec![false; history.len()],
        &mut BTreeMap::new(),
    )
}

#[test]
fn agrees_with_brute_force_on_small_histories() {
    let mut rng = Rng(0x1357_9bdf_2468_ace0);
    let (mut yes, mut no) = (0, 0);
    for case in 0..3000 {
        let history = if rng.chance(500) {
            // Realistic answers, often linearizable.
            let sim = Sim {
                clients: 1 + rng.below(4),
                ops: 1 + rng.below(7) as usize,
                keys: 1 + rng.below(2),
                values: 1 + rng.below(2),
                lost_per_mille: rng.below(400),
                latency: 40,
            };
            simulate(&mut rng, &sim)
        } else {
            // Random answers, on short times so ties are common.
            let n = 1 + rng.below(7);
            let value = |rng: &mut Rng| match rng.below(3) {
                0 => None,
                n => v(&n.to_string()),
            };
            (0..n)
                .map(|_| {
                    let key = if rng.chance(800) { "a" } else { "b" };
                    let call = rng.below(10);
                    let ret = (!rng.chance(200)).then(|| call + rng.below(6));
                    let (op, output) = match rng.below(3) {
                        0 => (get(key), Output::Get(value(&mut rng))),
                        1 => (put(key, value(&mut rng)), Output::Put),
                        _ => (
                            cas(key, value(&mut rng), value(&mut rng)),
                            Output::Cas(rng.chance(500)),
                        ),
                    };
                    Entry {
                        client: rng.below(3),
                        call,
                        ret,
                        op,
                        output: ret.map(|_| output),
                    }
                })
                .collect()
        };
        let expected = brute_force(&history);
        let outcome = verdict(&history);
        assert_eq!(
            outcome.is_linearizable(),
            expected,
            "case {case}: {history:#?}\n{outcome}"
        );
        if let Outcome::Violation(report) = &outcome {
            // The reported prefix is itself linearizable.
            let prefix: Vec<Entry> = report
                .longest_prefix()
                .iter()
                .map(|&i| report.history()[i].clone())
                .collect();
            let mut map = BTreeMap::new();
            for e in &prefix {
                let output = run(&mut map, &e.op);
                assert!(e.output.as_ref().is_none_or(|o| *o == output), "{report}");
            }
        }
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    assert!(yes > 500 && no > 500, "{yes} linearizable, {no} not");
}

#[test]
fn step_budget_bounds_the_search() {
    // Twelve overlapping writes of distinct values, then a read of none of
    // them: refuting it means trying every subset of the writes.
    let mut history: Vec<Entry> = (0..12)
        .map(|c| done(c, 0, 100, put("x", v(&c.to_string())), Output::Put))
        .collect();
    history.push(done(99, 101, 102, get("x"), Output::Get(v("other"))));
    let tight = Config { max_steps: 1000 };
    assert_eq!(
        check_with(&history, &tight).unwrap(),
        Outcome::Undecided { key: b"x".to_vec() }
    );
    assert!(matches!(verdict(&history), Outcome::Violation(_)));
    // A violation on another key is still reported.
    history.push(done(1, 0, 1, put("y", v("1")), Output::Put));
    history.push(done(1, 2, 3, get("y"), Output::Get(None)));
    let outcome = check_with(&history, &tight).unwrap();
    assert!(
        matches!(&outcome, Outcome::Violation(r) if r.key() == b"y"),
        "{outcome}"
    );
}
