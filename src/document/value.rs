//! JSON values as documents hold them: nested field lookup, the one total
//! order across JSON types, and the order-preserving byte encoding that
//! index keys and in-memory sorts share.
//!
//! The order (SPEC §17.3): a missing field < `null` < `false` < `true` <
//! numbers < strings < arrays < objects. Numbers compare by exact value,
//! whatever their JSON form (`1`, `1.0` and `1e0` are equal, and integers
//! beyond 2^53 keep their order). Strings compare by their UTF-8 bytes.
//! Arrays compare element by element, a prefix first. Objects compare as
//! their entries sorted by key, each entry by key then value.
//!
//! [`encode`] maps a value to bytes whose lexicographic order is exactly
//! this order, and no encoding is a prefix of another's, so an index key
//! (encoding followed by the document id) sorts by value, then id.

use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// Type tags, in the order of the types. The container end marker (0) is
/// below every tag, so a shorter array or object sorts first.
const END: u8 = 0x00;
const ENTRY: u8 = 0x01;
pub(crate) const TAG_MISSING: u8 = 0x10;
const TAG_NULL: u8 = 0x20;
const TAG_FALSE: u8 = 0x30;
const TAG_TRUE: u8 = 0x31;
const TAG_NUMBER: u8 = 0x40;
pub(crate) const TAG_STRING: u8 = 0x50;
const TAG_ARRAY: u8 = 0x60;
const TAG_OBJECT: u8 = 0x70;

/// Deepest nesting a stored document may have: serde_json refuses to
/// parse beyond 127 levels, so a deeper document could not be read back.
pub(crate) const MAX_DEPTH: usize = 100;

/// The kinds of JSON values; range predicates match only values of the
/// operand's kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    Null,
    Bool,
    Number,
    String,
    Array,
    Object,
}

/// The kind of `v`.
pub(crate) fn kind(v: &Value) -> Kind {
    match v {
        Value::Null => Kind::Null,
        Value::Bool(_) => Kind::Bool,
        Value::Number(_) => Kind::Number,
        Value::String(_) => Kind::String,
        Value::Array(_) => Kind::Array,
        Value::Object(_) => Kind::Object,
    }
}

/// The key-range of encodings of kind `k`: `[lo, hi)`.
pub(crate) fn kind_range(k: Kind) -> (u8, u8) {
    match k {
        Kind::Null => (TAG_NULL, TAG_NULL + 1),
        Kind::Bool => (TAG_FALSE, TAG_TRUE + 1),
        Kind::Number => (TAG_NUMBER, TAG_NUMBER + 1),
        Kind::String => (TAG_STRING, TAG_STRING + 1),
        Kind::Array => (TAG_ARRAY, TAG_ARRAY + 1),
        Kind::Object => (TAG_OBJECT, TAG_OBJECT + 1),
    }
}

/// Checks a field path: dot-separated, non-empty segments.
pub(crate) fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("an empty field path".into());
    }
    if path.len() > 1024 {
        return Err(format!(
            "a field path of {} bytes (at most 1024)",
            path.len()
        ));
    }
    if path.split('.').any(str::is_empty) {
        return Err(format!("field path {path:?} has an empty segment"));
    }
    Ok(())
}

/// The value at `path` (`a.b.c`) in `doc`: object members by name, array
/// elements by decimal index. `None` when any step is missing.
pub(crate) fn lookup<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    let mut v = doc;
    for seg in path.split('.') {
        v = match v {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => {
                // Decimal digits only (`usize::from_str` also takes "+1").
                if !seg.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                a.get(seg.parse::<usize>().ok()?)?
            }
            _ => return None,
        };
    }
    Some(v)
}

/// `doc` with only the field paths `fields`: each found value placed at
/// its path as nested objects (an array element's index becomes an
/// object key), missing paths left out.
pub(crate) fn project(doc: &Value, fields: &[String]) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    for f in fields {
        let Some(v) = lookup(doc, f) else {
            continue;
        };
        let mut at = &mut out;
        let segs: Vec<&str> = f.split('.').collect();
        for (i, seg) in segs.iter().enumerate() {
            let Value::Object(m) = at else {
                // A shorter path already placed a whole value here, which
                // holds this one.
                break;
            };
            if i + 1 == segs.len() {
                m.insert((*seg).to_owned(), v.clone());
                break;
            }
            at = m
                .entry((*seg).to_owned())
                .or_insert_with(|| Value::Object(serde_json::Map::new()));
        }
    }
    out
}

/// A number as (its nearest `f64`, the exact integer distance to it), a
/// pair that orders numbers exactly: rounding to nearest is monotonic, and
/// values with the same rounding differ by their distance to it.
fn number_key(n: &Number) -> (f64, i32) {
    let exact = |i: i128| -> (f64, i32) {
        let r = i as f64;
        // |i - r| is at most half a unit in the last place of r, below
        // 2^11 for any 64-bit integer.
        (r, (i - r as i128) as i32)
    };
    if let Some(i) = n.as_i64() {
        exact(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        exact(i128::from(u))
    } else {
        let f = n.as_f64().unwrap_or(0.0);
        (if f == 0.0 { 0.0 } else { f }, 0)
    }
}

fn compare_numbers(a: &Number, b: &Number) -> Ordering {
    let (ra, da) = number_key(a);
    let (rb, db) = number_key(b);
    ra.total_cmp(&rb).then(da.cmp(&db))
}

fn tag(v: &Value) -> u8 {
    match v {
        Value::Null => TAG_NULL,
        Value::Bool(false) => TAG_FALSE,
        Value::Bool(true) => TAG_TRUE,
        Value::Number(_) => TAG_NUMBER,
        Value::String(_) => TAG_STRING,
        Value::Array(_) => TAG_ARRAY,
        Value::Object(_) => TAG_OBJECT,
    }
}

/// The documented order over values; `None` is a missing field, below
/// every value. (Queries sort by encodings; this states the order the
/// encoding must follow.)
#[cfg(test)]
pub(crate) fn compare(a: Option<&Value>, b: Option<&Value>) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(a), Some(b)) => compare_values(a, b),
    }
}

/// Two values in the documented order.
pub(crate) fn compare_values(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare_values(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => compare_objects(x, y),
        _ => tag(a).cmp(&tag(b)),
    }
}

fn sorted_entries(m: &Map<String, Value>) -> Vec<(&String, &Value)> {
    let mut e: Vec<_> = m.iter().collect();
    e.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    e
}

fn compare_objects(x: &Map<String, Value>, y: &Map<String, Value>) -> Ordering {
    let (ex, ey) = (sorted_entries(x), sorted_entries(y));
    for ((kx, vx), (ky, vy)) in ex.iter().zip(&ey) {
        let o = kx
            .as_bytes()
            .cmp(ky.as_bytes())
            .then_with(|| compare_values(vx, vy));
        if o != Ordering::Equal {
            return o;
        }
    }
    ex.len().cmp(&ey.len())
}

/// The order-preserving encoding of a value (`None`: a missing field).
pub(crate) fn encode(v: Option<&Value>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_to(v, &mut out);
    out
}

/// [`encode`], appended to `out`.
pub(crate) fn encode_to(v: Option<&Value>, out: &mut Vec<u8>) {
    match v {
        None => out.push(TAG_MISSING),
        Some(v) => encode_into(v, out),
    }
}

/// Appends a string's bytes with NUL escaped (`00` → `00 FF`) and the
/// terminator `00 01`, which sorts below any continuation.
pub(crate) fn escape_into(s: &[u8], out: &mut Vec<u8>) {
    for &b in s {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
}

fn encode_into(v: &Value, out: &mut Vec<u8>) {
    out.push(tag(v));
    match v {
        Value::Null | Value::Bool(_) => {}
        Value::Number(n) => {
            let (r, d) = number_key(n);
            let bits = r.to_bits();
            let ordered = if bits >> 63 == 1 {
                !bits
            } else {
                bits | (1 << 63)
            };
            out.extend_from_slice(&ordered.to_be_bytes());
            out.extend_from_slice(&((d as u32) ^ (1 << 31)).to_be_bytes());
        }
        Value::String(s) => {
            escape_into(s.as_bytes(), out);
            out.extend_from_slice(&[0x00, 0x01]);
        }
        Value::Array(a) => {
            for e in a {
                encode_into(e, out);
            }
            out.push(END);
        }
        Value::Object(m) => {
            for (k, e) in sorted_entries(m) {
                out.push(ENTRY);
                escape_into(k.as_bytes(), out);
                out.extend_from_slice(&[0x00, 0x01]);
                encode_into(e, out);
            }
            out.push(END);
        }
    }
}

/// The nesting depth of a value (a scalar is 0).
pub(crate) fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// The smallest byte string greater than every string starting with
/// `prefix`; `None` when there is none (all `FF`).
pub(crate) fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut p = prefix.to_vec();
    while let Some(last) = p.pop() {
        if last < 0xFF {
            p.push(last + 1);
            return Some(p);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn arb_number() -> impl Strategy<Value = Value> {
        prop_oneof![
            (-5i64..5).prop_map(|i| json!(i)),
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|u| json!(u)),
            prop_oneof![
                Just(9_007_199_254_740_992u64),
                Just(9_007_199_254_740_993u64),
                Just(u64::MAX),
                Just(u64::MAX - 1),
                Just(i64::MAX as u64),
                Just(i64::MAX as u64 + 1),
            ]
            .prop_map(|u| json!(u)),
            prop_oneof![
                Just(-0.0f64),
                Just(0.5),
                Just(-2.5),
                Just(9_007_199_254_740_992.0),
                Just(1.8446744073709552e19),
                Just(-9.223372036854776e18),
                Just(1e300),
            ]
            .prop_map(|f| json!(f)),
            (-1000.0f64..1000.0).prop_map(|f| json!(f)),
        ]
    }

    pub(crate) fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            arb_number(),
            "[a\\x00\\x01\\u{ff}é]{0,4}".prop_map(Value::String),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[ab\\x00]{0,2}", inner, 0..3)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn encoding_order_is_the_value_order(
            a in proptest::option::of(arb_value()),
            b in proptest::option::of(arb_value()),
        ) {
            let (ea, eb) = (encode(a.as_ref()), encode(b.as_ref()));
            prop_assert_eq!(ea.cmp(&eb), compare(a.as_ref(), b.as_ref()));
            // Prefix-free: an index key's id never blends into the value.
            if ea != eb {
                prop_assert!(!ea.starts_with(&eb) && !eb.starts_with(&ea));
            }
        }

        #[test]
        fn suffixes_do_not_change_the_order(
            a in arb_value(), b in arb_value(), sa in "[\\x00-\\xff]{0,3}", sb in "[\\x00-\\xff]{0,3}",
        ) {
            let mut ea = encode(Some(&a));
            let mut eb = encode(Some(&b));
            let o = ea.cmp(&eb);
            ea.extend_from_slice(sa.as_bytes());
            eb.extend_from_slice(sb.as_bytes());
            if o != Ordering::Equal {
                prop_assert_eq!(ea.cmp(&eb), o);
            }
        }

        #[test]
        fn string_prefixes_are_encoding_prefixes(p in "[a\\x00]{0,3}", s in "[a\\x00]{0,5}") {
            let mut ep = vec![TAG_STRING];
            escape_into(p.as_bytes(), &mut ep);
            let es = encode(Some(&Value::String(s.clone())));
            prop_assert_eq!(es.starts_with(&ep), s.starts_with(&p));
        }
    }

    #[test]
    fn numbers_compare_exactly_across_forms() {
        let n = |s: &str| serde_json::from_str::<Value>(s).unwrap();
        assert_eq!(compare_values(&n("1"), &n("1.0")), Ordering::Equal);
        assert_eq!(compare_values(&n("-0.0"), &n("0")), Ordering::Equal);
        assert_eq!(
            compare_values(&n("9007199254740993"), &n("9007199254740992")),
            Ordering::Greater
        );
        assert_eq!(
            compare_values(&n("18446744073709551615"), &n("1.8446744073709552e19")),
            Ordering::Less
        );
        assert_eq!(compare_values(&n("-1"), &n("0.5")), Ordering::Less);
        assert_eq!(encode(Some(&n("2"))), encode(Some(&n("2.0"))));
    }

    #[test]
    fn types_order_by_the_documented_rule() {
        let order = [
            None,
            Some(json!(null)),
            Some(json!(false)),
            Some(json!(true)),
            Some(json!(-1e300)),
            Some(json!(7)),
            Some(json!("")),
            Some(json!("a")),
            Some(json!([])),
            Some(json!([1])),
            Some(json!({})),
            Some(json!({"a": 1})),
        ];
        for w in order.windows(2) {
            assert_eq!(compare(w[0].as_ref(), w[1].as_ref()), Ordering::Less);
        }
    }

    #[test]
    fn lookup_follows_objects_and_array_indexes() {
        let d = json!({"a": {"b": [10, {"c": "x"}]}, "n": null});
        assert_eq!(lookup(&d, "a.b.0"), Some(&json!(10)));
        assert_eq!(lookup(&d, "a.b.1.c"), Some(&json!("x")));
        assert_eq!(lookup(&d, "n"), Some(&Value::Null));
        assert_eq!(lookup(&d, "a.b.2"), None);
        assert_eq!(lookup(&d, "a.b.+1"), None);
        assert_eq!(lookup(&d, "a.x"), None);
        assert_eq!(lookup(&d, "n.x"), None);
        assert!(check_path("a..b").is_err());
        assert!(check_path("").is_err());
        assert!(check_path("a.b").is_ok());
    }
}
