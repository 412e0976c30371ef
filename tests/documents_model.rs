//! Document queries against a model: random documents (nested fields,
//! missing fields, mixed JSON types) and random queries, with indexes
//! created and dropped along the way, across reopen, flush and
//! compaction, now and at random past timestamps. Every query must return
//! exactly what a full scan of the model returns with the same filter,
//! sort, offset and limit, through whichever plan the planner picks and
//! through a forced collection scan. The oracle here is written apart from
//! the provider's own matcher and order.
//!
//! `STRATA_DOC_MODEL_CASES=N` runs N cases instead of 500.

mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Map, Value};
use strata::document::{
    DocumentOptions, DocumentQuery, FieldFilter, Filter, FilterOp, IndexSpec, PlanKind,
    QueryOptions, SortOrder,
};
use strata::{DeleteOptions, StorageSystem, StorageType, Timestamp};

const FIELDS: [&str; 6] = ["a", "b", "c.d", "e", "l.1", "l"];

// ---- the oracle ----

fn rank(v: Option<&Value>) -> u8 {
    match v {
        None => 0,
        Some(Value::Null) => 1,
        Some(Value::Bool(false)) => 2,
        Some(Value::Bool(true)) => 3,
        Some(Value::Number(_)) => 4,
        Some(Value::String(_)) => 5,
        Some(Value::Array(_)) => 6,
        Some(Value::Object(_)) => 7,
    }
}

fn cmp_num(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    let int = |n: &serde_json::Number| {
        n.as_i64()
            .map(i128::from)
            .or_else(|| n.as_u64().map(i128::from))
            .or_else(|| {
                let f = n.as_f64()?;
                (f.fract() == 0.0 && f.abs() < 1e30).then_some(f as i128)
            })
    };
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a
            .as_f64()
            .unwrap()
            .partial_cmp(&b.as_f64().unwrap())
            .unwrap(),
    }
}

fn cmp(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => cmp_num(x, y),
        (Some(Value::String(x)), Some(Value::String(y))) => x.cmp(y),
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            for (p, q) in x.iter().zip(y) {
                let o = cmp(Some(p), Some(q));
                if o.is_ne() {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Some(Value::Object(x)), Some(Value::Object(y))) => {
            let xs: BTreeMap<&String, &Value> = x.iter().collect();
            let ys: BTreeMap<&String, &Value> = y.iter().collect();
            for ((kx, vx), (ky, vy)) in xs.iter().zip(&ys) {
                let o = kx.cmp(ky).then_with(|| cmp(Some(vx), Some(vy)));
                if o.is_ne() {
                    return o;
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ => rank(a).cmp(&rank(b)),
    }
}

fn get<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |v, seg| match v {
        Value::Object(m) => m.get(seg),
        Value::Array(a) => a.get(seg.parse::<usize>().ok()?),
        _ => None,
    })
}

fn kind(v: &Value) -> u8 {
    match rank(Some(v)) {
        2 | 3 => 2,
        r => r,
    }
}

/// A value and, for an array, its elements: what a filter on the field
/// may match.
fn parts(v: &Value) -> Vec<&Value> {
    let mut out = vec![v];
    if let Value::Array(a) = v {
        out.extend(a.iter());
    }
    out
}

fn passes(f: &FieldFilter, doc: &Value) -> bool {
    let v = get(doc, &f.field);
    let any = |test: &dyn Fn(&Value) -> bool| v.is_some_and(|v| parts(v).into_iter().any(test));
    let eq = |x: &Value| any(&|c| cmp(Some(c), Some(x)).is_eq());
    let ranged = |x: &Value, ok: fn(Ordering) -> bool| {
        any(&|c| kind(c) == kind(x) && ok(cmp(Some(c), Some(x))))
    };
    match &f.op {
        FilterOp::Equals(x) => eq(x),
        FilterOp::NotEquals(x) => !eq(x),
        FilterOp::EqualsWhole(x) => v.is_some() && cmp(v, Some(x)).is_eq(),
        FilterOp::GreaterThan(x) => ranged(x, Ordering::is_gt),
        FilterOp::GreaterOrEqual(x) => ranged(x, Ordering::is_ge),
        FilterOp::LessThan(x) => ranged(x, Ordering::is_lt),
        FilterOp::LessOrEqual(x) => ranged(x, Ordering::is_le),
        FilterOp::In(xs) => xs.iter().any(eq),
        FilterOp::Exists(want) => v.is_some() == *want,
        FilterOp::Prefix(p) => any(&|c| matches!(c, Value::String(s) if s.starts_with(p.as_str()))),
    }
}

/// An index of the model: its fields and whether it is unique.
type Spec = (&'static [&'static str], bool);

const SPECS: [Spec; 11] = [
    (&["a"], false),
    (&["b"], false),
    (&["c.d"], false),
    (&["e"], false),
    (&["l.1"], false),
    (&["l"], false),
    (&["b", "a"], false),
    (&["c.d", "b"], false),
    (&["l", "b"], false),
    (&["b", "c.d"], true),
    (&["e"], true),
];

fn spec_of((fields, unique): Spec) -> IndexSpec {
    let mut s = IndexSpec::on(fields[0]);
    for f in &fields[1..] {
        s = s.then(*f);
    }
    if unique {
        s = s.unique();
    }
    s
}

/// The value combinations `doc` gives an index on `fields` (a missing
/// field as `None`); `None` when two of the fields hold arrays.
fn combos(doc: &Value, fields: &[&str]) -> Option<Vec<Vec<Option<Value>>>> {
    let mut out: Vec<Vec<Option<Value>>> = vec![Vec::new()];
    let mut arrays = 0;
    for f in fields {
        let vals: Vec<Option<Value>> = match get(doc, f) {
            None => vec![None],
            Some(v) => {
                arrays += usize::from(v.is_array());
                parts(v).into_iter().cloned().map(Some).collect()
            }
        };
        out = out
            .into_iter()
            .flat_map(|c| {
                vals.iter().map(move |v| {
                    let mut c = c.clone();
                    c.push(v.clone());
                    c
                })
            })
            .collect();
    }
    (arrays <= 1).then_some(out)
}

/// Whether documents `a` and `b` may not both be in a unique index on
/// `fields`: a combination of present values they share.
fn clash(a: &Value, b: &Value, fields: &[&str]) -> bool {
    let (Some(ca), Some(cb)) = (combos(a, fields), combos(b, fields)) else {
        return false;
    };
    ca.iter()
        .filter(|c| c.iter().all(Option::is_some))
        .any(|x| {
            cb.iter().any(|y| {
                x.iter()
                    .zip(y)
                    .all(|(p, q)| cmp(p.as_ref(), q.as_ref()).is_eq())
            })
        })
}

/// Whether the model accepts `doc` as `id` under the indexes `specs`.
fn accepts(model: &BTreeMap<String, Value>, specs: &[Spec], id: &str, doc: &Value) -> bool {
    specs.iter().all(|(fields, unique)| {
        combos(doc, fields).is_some()
            && !(*unique
                && model
                    .iter()
                    .any(|(other, d)| other != id && clash(doc, d, fields)))
    })
}

fn passes_tree(t: &Filter, doc: &Value) -> bool {
    match t {
        Filter::And(bs) => bs.iter().all(|b| passes_tree(b, doc)),
        Filter::Or(bs) => bs.iter().any(|b| passes_tree(b, doc)),
        Filter::Not(b) => !passes_tree(b, doc),
        Filter::Field(f) => passes(f, doc),
    }
}

fn expected(model: &BTreeMap<String, Value>, q: &DocumentQuery, o: &QueryOptions) -> Vec<Value> {
    let mut hits: Vec<(&String, &Value)> = model
        .iter()
        .filter(|(_, d)| q.filters.iter().all(|f| passes(f, d)))
        .filter(|(_, d)| q.filter.as_ref().is_none_or(|t| passes_tree(t, d)))
        .collect();
    if let Some(field) = &o.sort_field {
        hits.sort_by(|(ia, a), (ib, b)| cmp(get(a, field), get(b, field)).then_with(|| ia.cmp(ib)));
        if o.sort_order == SortOrder::Descending {
            hits.reverse();
        }
    }
    hits.into_iter()
        .skip(q.offset)
        .take(q.limit.unwrap_or(usize::MAX))
        .map(|(_, d)| d.clone())
        .collect()
}

// ---- generators ----

/// Scalars from small pools, so that documents and operands collide often
/// (equal values, range bounds hit exactly).
fn arb_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        4 => (-2i64..3).prop_map(|i| json!(i)),
        1 => (-2i64..3).prop_map(|i| json!(i as f64)),
        1 => (-2i64..2).prop_map(|i| json!(i as f64 + 0.5)),
        1 => prop_oneof![Just(u64::MAX), Just(1u64 << 53), Just((1u64 << 53) + 1)].prop_map(|u| json!(u)),
        1 => Just(json!(i64::MIN)),
        3 => "[ab]{0,2}".prop_map(Value::String),
        1 => "[a\\x00]{0,3}".prop_map(Value::String),
    ]
}

fn arb_value() -> impl Strategy<Value = Value> {
    arb_scalar().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            prop::collection::btree_map("[dx]", inner, 0..3)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn arb_doc() -> impl Strategy<Value = Value> {
    (
        proptest::option::of(arb_value()),
        proptest::option::of(arb_scalar()),
        proptest::option::of(prop_oneof![
            arb_scalar().prop_map(|d| json!({ "d": d })),
            Just(json!({})),
            arb_scalar(),
        ]),
        proptest::option::of(arb_value()),
        proptest::option::of(prop::collection::vec(arb_scalar(), 0..3)),
    )
        .prop_map(|(a, b, c, e, l)| {
            let mut m = Map::new();
            for (k, v) in [
                ("a", a),
                ("b", b),
                ("c", c),
                ("e", e),
                ("l", l.map(Value::Array)),
            ] {
                if let Some(v) = v {
                    m.insert(k.into(), v);
                }
            }
            Value::Object(m)
        })
}

fn arb_filter() -> impl Strategy<Value = FieldFilter> {
    let field = prop::sample::select(&FIELDS[..]);
    let op = prop_oneof![
        3 => arb_scalar().prop_map(FilterOp::Equals),
        1 => arb_value().prop_map(FilterOp::Equals),
        1 => arb_scalar().prop_map(FilterOp::NotEquals),
        1 => arb_value().prop_map(FilterOp::EqualsWhole),
        1 => arb_scalar().prop_map(FilterOp::GreaterThan),
        1 => arb_scalar().prop_map(FilterOp::GreaterOrEqual),
        1 => arb_scalar().prop_map(FilterOp::LessThan),
        1 => arb_value().prop_map(FilterOp::LessOrEqual),
        1 => prop::collection::vec(arb_scalar(), 0..4).prop_map(FilterOp::In),
        1 => any::<bool>().prop_map(FilterOp::Exists),
        1 => "[ab\\x00]{0,2}".prop_map(FilterOp::Prefix),
    ];
    (field, op).prop_map(|(f, op)| FieldFilter {
        field: f.into(),
        op,
    })
}

#[derive(Debug, Clone)]
struct Query {
    query: DocumentQuery,
    sort: Option<(&'static str, SortOrder)>,
    /// Index into the timestamps recorded so far (a past read), if any.
    past: Option<prop::sample::Index>,
}

/// Trees of AND, OR and NOT over field filters, two levels deep at most.
fn arb_tree() -> impl Strategy<Value = Filter> {
    arb_filter()
        .prop_map(Filter::Field)
        .prop_recursive(2, 8, 3, |inner| {
            prop_oneof![
                3 => prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::Or),
                1 => prop::collection::vec(inner.clone(), 0..3).prop_map(Filter::And),
                1 => inner.prop_map(Filter::negate),
            ]
        })
}

fn arb_query() -> impl Strategy<Value = Query> {
    (
        prop::collection::vec(arb_filter(), 0..3),
        proptest::option::of(arb_tree()),
        proptest::option::of(0usize..6),
        prop_oneof![3 => Just(0usize), 1 => 1usize..3],
        proptest::option::of((
            prop::sample::select(&FIELDS[..]),
            prop_oneof![Just(SortOrder::Ascending), Just(SortOrder::Descending)],
        )),
        proptest::option::of(any::<prop::sample::Index>()),
    )
        .prop_map(|(filters, tree, limit, offset, sort, past)| {
            let mut query = DocumentQuery::new().with_offset(offset);
            if let Some(t) = tree {
                query = query.with_where(t);
            }
            for f in filters {
                query = query.with_filter(f);
            }
            if let Some(l) = limit {
                query = query.with_limit(l);
            }
            Query { query, sort, past }
        })
}

#[derive(Debug, Clone)]
enum Op {
    Store(u8, Value),
    Delete(u8),
    CreateIndex(Spec),
    DropIndex(Spec),
    Reopen,
    FlushAndCompact,
    Query(Query),
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0u8..16, arb_doc()).prop_map(|(i, d)| Op::Store(i, d)),
        2 => (0u8..16).prop_map(Op::Delete),
        3 => prop::sample::select(&SPECS[..]).prop_map(Op::CreateIndex),
        1 => prop::sample::select(&SPECS[..]).prop_map(Op::DropIndex),
        1 => Just(Op::Reopen),
        1 => Just(Op::FlushAndCompact),
        10 => arb_query().prop_map(Op::Query),
    ]
}

type History = Vec<(Timestamp, BTreeMap<String, Value>)>;

/// Records the state as of the newest commit (none before the first).
fn record(storage: &StorageSystem, history: &mut History, model: &BTreeMap<String, Value>) {
    let ts = storage.db().last_timestamp();
    if ts > Timestamp::ZERO {
        history.push((ts, model.clone()));
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut storage = common::open_unsynced(dir.path());
    let mut docs = storage.get_document_storage(StorageType::Fact).unwrap();
    let mut model: BTreeMap<String, Value> = BTreeMap::new();
    let mut history: History = Vec::new();
    let mut indexed: Vec<Spec> = Vec::new();
    let o = DocumentOptions::new();
    for op in ops {
        match op {
            Op::Store(i, d) => {
                let id = format!("{i:02}");
                let r = docs.store_document("c", &id, &d, &o);
                // Arrays in two fields of one index, or values a unique
                // index holds for another document: refused, nothing
                // changes.
                let ok = accepts(&model, &indexed, &id, &d);
                prop_assert_eq!(r.is_ok(), ok, "{:?} {}", r, d);
                if ok {
                    model.insert(id, d);
                    record(&storage, &mut history, &model);
                }
            }
            Op::Delete(i) => {
                let id = format!("{i:02}");
                let existed = docs
                    .delete_document("c", &id, &DeleteOptions::new())
                    .unwrap();
                prop_assert_eq!(existed, model.remove(&id).is_some());
                record(&storage, &mut history, &model);
            }
            Op::CreateIndex(spec) => {
                let r = docs.create_index_with("c", &spec_of(spec));
                // One index per list of fields; a build over documents the
                // index cannot take fails and leaves no index.
                let exists = indexed.iter().any(|x| x.0 == spec.0);
                let builds = model.iter().all(|(id, d)| accepts(&model, &[spec], id, d));
                prop_assert_eq!(r.is_ok(), !exists && builds, "{:?}", r);
                if r.is_ok() {
                    indexed.push(spec);
                }
            }
            Op::DropIndex(spec) => {
                let r = docs.drop_index_with("c", &spec_of(spec));
                let exists = indexed.iter().any(|x| x.0 == spec.0);
                prop_assert_eq!(r.is_ok(), exists, "{:?}", r);
                indexed.retain(|x| x.0 != spec.0);
            }
            Op::Reopen => {
                drop(docs);
                storage.close().unwrap();
                drop(storage);
                storage = common::open_unsynced(dir.path());
                docs = storage.get_document_storage(StorageType::Fact).unwrap();
            }
            Op::FlushAndCompact => {
                storage.db().flush().unwrap();
                storage.db().compact().unwrap();
            }
            Op::Query(q) => {
                let mut options = QueryOptions::new();
                if let Some((f, order)) = q.sort {
                    options = options.with_sort_field(f, order);
                }
                let state = match (&q.past, history.is_empty()) {
                    (Some(ix), false) => {
                        let (ts, state) = &history[ix.index(history.len())];
                        options = options.at(*ts);
                        state
                    }
                    _ => &model,
                };
                let want = expected(state, &q.query, &options);
                let plan = docs.explain("c", &q.query, &options).unwrap();
                let (got, stats) = docs
                    .query_documents_with_stats::<Value>("c", &q.query, &options)
                    .unwrap();
                prop_assert_eq!(&got, &want, "plan: {}", plan);
                // Writers keep indexes exact: no entry outlives or
                // misstates its document.
                prop_assert_eq!(stats.stale_entries, 0, "{:?}", stats);
                let scan = options.clone().force_scan();
                prop_assert_eq!(
                    docs.explain("c", &q.query, &scan).unwrap().kind,
                    PlanKind::CollectionScan
                );
                let got: Vec<Value> = docs.query_documents("c", &q.query, &scan).unwrap();
                prop_assert_eq!(&got, &want, "forced scan");
                // A count ignores offset and limit, and reads no document
                // when the index decides every filter.
                let mut all = q.query.clone().with_offset(0);
                all.limit = None;
                let (n, stats) = docs
                    .count_documents_with_stats("c", &q.query, &options)
                    .unwrap();
                prop_assert_eq!(
                    n as usize,
                    expected(state, &all, &options).len(),
                    "count, plan {}",
                    stats.plan
                );
                if stats.plan.covering {
                    prop_assert_eq!(stats.documents_read, 0);
                }
                // Paged by the query's limit, the pages are the whole result.
                if let Some(size) = q.query.limit.filter(|l| *l > 0 && q.query.offset == 0) {
                    let mut paged = Vec::new();
                    let mut o = options.clone();
                    for _ in 0..100 {
                        let page = docs.query_page::<Value>("c", &q.query, &o).unwrap();
                        prop_assert!(page.documents.len() <= size);
                        paged.extend(page.documents);
                        match page.next {
                            Some(c) => o = o.after(c),
                            None => break,
                        }
                    }
                    prop_assert_eq!(
                        &paged,
                        &expected(state, &all, &options),
                        "pages, plan {}",
                        stats.plan
                    );
                }
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("STRATA_DOC_MODEL_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn queries_equal_a_full_scan_of_the_model(ops in prop::collection::vec(arb_op(), 1..60)) {
        run(ops)?;
    }
}

/// The planner actually uses indexes in this suite: a query shaped for
/// each index kind runs as an index scan.
#[test]
fn the_model_queries_reach_every_index_plan() {
    let dir = tempfile::tempdir().unwrap();
    let storage = common::open_unsynced(dir.path());
    let docs = storage.get_document_storage(StorageType::Fact).unwrap();
    docs.create_index("c", "a").unwrap();
    let plans = [
        DocumentQuery::new().with_field_equals("a", 1),
        DocumentQuery::new().with_field_in("a", [1, 2]),
        DocumentQuery::new().with_field_greater_than("a", 1),
        DocumentQuery::new().with_field_prefix("a", "x"),
        DocumentQuery::new().with_field_exists("a", false),
    ];
    for q in plans {
        let p = docs.explain("c", &q, &QueryOptions::new()).unwrap();
        assert_eq!(p.kind, PlanKind::IndexScan, "{q:?}: {p}");
    }
    let sorted = QueryOptions::new().with_sort_field("a", SortOrder::Descending);
    let p = docs
        .explain("c", &DocumentQuery::new().with_limit(3), &sorted)
        .unwrap();
    assert!(p.sorted_by_index, "{p}");
}
