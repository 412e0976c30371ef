//! How one index can answer a query's conjunction: equality on a prefix
//! of its fields, then a list, a range, a string prefix or `missing` on
//! the next; the key ranges that reads, the bounds explain shows, and what
//! the statistics estimate it holds.

use std::cmp::Ordering;

use serde_json::Value;

use super::index::IndexInfo;
use super::keys;
use super::plan::{KeyRange, Usable};
use super::query::{FieldFilter, FilterOp};
use super::time;
use super::value::{
    compare_values, encode, escape_into, kind, kind_range, prefix_successor, TAG_MISSING,
    TAG_STRING,
};

/// One way to use an index for a query.
#[derive(Clone)]
pub(super) struct Candidate {
    pub(super) info: IndexInfo,
    /// A document may have several entries in the ranges: the index is
    /// multikey and some field is not fixed by an equality. With every
    /// field fixed, the one range holds a document at most once: its entry
    /// keys are without repeats, and prefix-free encodings let only one of
    /// them start with the fixed values.
    pub(super) repeats: bool,
    pub(super) ranges: Vec<KeyRange>,
    pub(super) bounds: String,
    /// Higher is more selective (a heuristic: ten per field matched by
    /// equality, then what the next field's filter is worth: a list 4, a
    /// range 3, `missing` 2, none 1 when every field was matched, else 0).
    pub(super) score: u32,
    /// Within the ranges, in order, entries come in id order.
    pub(super) id_ordered: bool,
    /// The entries come in the sort's order (value, then id).
    pub(super) sorted: bool,
    /// The key every entry starts with before the part that orders it:
    /// the equalities' prefix (sorted: then the sort value and id follow),
    /// or the one range's start (id-ordered: then the id follows).
    pub(super) seek: Option<Vec<u8>>,
    /// The entries the ranges hold, by the index's statistics.
    pub(super) estimate: Option<u64>,
    /// Every filter is decided by the entries' keys alone (the positions
    /// of the filters the ranges decide exactly cover all of them).
    pub(super) exact: bool,
    pub(super) reason: &'static str,
}

pub(super) fn prefix_range(p: Vec<u8>) -> KeyRange {
    let hi = prefix_successor(&p);
    (p, hi)
}

fn with_base(base: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut k = base.to_vec();
    k.extend_from_slice(tail);
    k
}

fn show(v: &Value) -> String {
    if let Some(t) = time::as_time(v) {
        return t.to_iso8601();
    }
    let s = v.to_string();
    if s.len() > 80 {
        format!("{}…", s.chars().take(80).collect::<String>())
    } else {
        s
    }
}

/// The filters' operand of `Equals` on `field`, unless it is a time (a
/// time matches numbers and strings: no single key holds it).
fn equality<'q>(filters: &[&'q FieldFilter], field: &str) -> Option<(usize, &'q Value)> {
    filters.iter().enumerate().find_map(|(i, f)| match &f.op {
        FilterOp::Equals(v) if f.field == field && time::as_time(v).is_none() => Some((i, v)),
        _ => None,
    })
}

/// The key ranges the range filters (and string prefixes) on `field`
/// allow after `prefix`, those of the first range filter's kind
/// intersected; for a multikey index only the first filter's, since each
/// filter may be met by a different element. `None` without range filters.
fn range_on(
    prefix: &[u8],
    filters: &[&FieldFilter],
    field: &str,
    multikey: bool,
    consumed: &mut Vec<usize>,
) -> Option<(Vec<KeyRange>, Vec<String>)> {
    let mut lo: Option<Vec<u8>> = None;
    let mut hi: Option<Vec<u8>> = None;
    let mut shown = Vec::new();
    let mut range_kind = None;
    for (i, f) in filters.iter().enumerate().filter(|(_, f)| f.field == field) {
        let (op_kind, l, h, text) = match &f.op {
            FilterOp::GreaterThan(v) => {
                let e = with_base(prefix, &encode(Some(v)));
                (
                    kind(v),
                    prefix_successor(&e),
                    None,
                    format!("> {}", show(v)),
                )
            }
            FilterOp::GreaterOrEqual(v) => {
                let e = with_base(prefix, &encode(Some(v)));
                (kind(v), Some(e), None, format!(">= {}", show(v)))
            }
            FilterOp::LessThan(v) => {
                let e = with_base(prefix, &encode(Some(v)));
                (kind(v), None, Some(e), format!("< {}", show(v)))
            }
            FilterOp::LessOrEqual(v) => {
                let e = with_base(prefix, &encode(Some(v)));
                (
                    kind(v),
                    None,
                    prefix_successor(&e),
                    format!("<= {}", show(v)),
                )
            }
            FilterOp::Prefix(p) => {
                let mut e = with_base(prefix, &[TAG_STRING]);
                escape_into(p.as_bytes(), &mut e);
                let h = prefix_successor(&e);
                (
                    super::value::Kind::String,
                    Some(e),
                    h,
                    format!("prefix {}", show(&Value::String(p.clone()))),
                )
            }
            _ => continue,
        };
        if *range_kind.get_or_insert(op_kind) != op_kind || (multikey && !shown.is_empty()) {
            continue;
        }
        if let Some(l) = l {
            lo = Some(lo.map_or(l.clone(), |x: Vec<u8>| x.max(l)));
        }
        if let Some(h) = h {
            hi = Some(hi.map_or(h.clone(), |x: Vec<u8>| x.min(h)));
        }
        shown.push(text);
        consumed.push(i);
    }
    let k = range_kind?;
    let (klo, khi) = kind_range(k);
    let lo = lo
        .unwrap_or_else(|| with_base(prefix, &[klo]))
        .max(with_base(prefix, &[klo]));
    let hi = hi
        .unwrap_or_else(|| with_base(prefix, &[khi]))
        .min(with_base(prefix, &[khi]));
    let ranges = if lo < hi {
        vec![(lo, Some(hi))]
    } else {
        Vec::new()
    };
    Some((ranges, shown))
}

/// The best use of index `u` for `query`: equality on a prefix of its
/// fields, then a list of values, a range or `missing` on the next one.
pub(super) fn candidate(
    collection: &str,
    u: &Usable,
    filters: &[&FieldFilter],
    sort: Option<&str>,
) -> Option<Candidate> {
    // Whole-value entries cannot answer element-wise filters.
    if u.info.format < 2 {
        return None;
    }
    let fields: Vec<&str> = u.info.fields().collect();
    let named = fields.len() > 1;
    let label = |field: &str, text: String| {
        if named {
            format!("{field} {text}")
        } else {
            text
        }
    };
    let mut prefix = keys::entries(collection, u.info.id);
    let mut shown = Vec::new();
    let mut eq = 0;
    // The filters the ranges decide exactly.
    let mut consumed = Vec::new();
    while let Some((i, v)) = fields.get(eq).and_then(|f| equality(filters, f)) {
        consumed.push(i);
        prefix.extend_from_slice(&encode(Some(v)));
        shown.push(label(fields[eq], format!("= {}", show(v))));
        eq += 1;
    }
    let next = fields.get(eq).copied();
    let mut id_ordered = false;
    let (ranges, k, reason): (Vec<KeyRange>, u32, &'static str) = match next {
        None => {
            id_ordered = true;
            (
                vec![prefix_range(prefix.clone())],
                1,
                "equality on every field of the index reads only the matching entries",
            )
        }
        Some(g) => {
            if let Some((ranges, text, _)) = time_candidate(&prefix, filters, g) {
                shown.push(label(g, text));
                (
                    ranges,
                    3,
                    "a range on an indexed field reads only the entries inside it",
                )
            } else if let Some((i, vs)) =
                filters.iter().enumerate().find_map(|(i, f)| match &f.op {
                    FilterOp::In(vs)
                        if f.field == g && !vs.iter().any(|v| time::as_time(v).is_some()) =>
                    {
                        Some((i, vs))
                    }
                    _ => None,
                })
            {
                consumed.push(i);
                let mut vs: Vec<&Value> = vs.iter().collect();
                vs.sort_by(|a, b| compare_values(a, b));
                vs.dedup_by(|a, b| compare_values(a, b) == Ordering::Equal);
                let ranges = vs
                    .iter()
                    .map(|v| prefix_range(with_base(&prefix, &encode(Some(v)))))
                    .collect();
                let listed: Vec<String> = vs.iter().map(|v| show(v)).collect();
                shown.push(label(g, format!("in [{}]", listed.join(", "))));
                (
                    ranges,
                    4,
                    "a list of values on an indexed field reads only their entries",
                )
            } else if let Some((ranges, texts)) =
                range_on(&prefix, filters, g, u.multikey, &mut consumed)
            {
                shown.push(label(g, texts.join(" and ")));
                (
                    ranges,
                    3,
                    "a range on an indexed field reads only the entries inside it",
                )
            } else if let Some(i) = filters
                .iter()
                .position(|f| f.field == g && f.op == FilterOp::Exists(false))
            {
                consumed.push(i);
                shown.push(label(g, "missing".into()));
                id_ordered = eq + 1 == fields.len();
                (
                    vec![prefix_range(with_base(&prefix, &[TAG_MISSING]))],
                    2,
                    "documents missing an indexed field are together in its index",
                )
            } else if eq > 0 {
                (
                    vec![prefix_range(prefix.clone())],
                    0,
                    "equality on the first fields of a compound index reads only their entries",
                )
            } else {
                return None;
            }
        }
    };
    id_ordered &= ranges.len() <= 1;

    // The index orders by the field after the equalities, then by id, when
    // that field is its last and no document gave it an array; with every
    // field fixed, id order is the order of any of them.
    let sorted = !u.multikey
        && sort.is_some_and(|s| {
            (next == Some(s) && eq + 1 == fields.len())
                || (next.is_none() && fields.contains(&s) && id_ordered)
        });
    let seek = if sorted {
        Some(prefix.clone())
    } else if id_ordered {
        ranges.first().map(|r| r.0.clone())
    } else {
        None
    };
    let estimate = u.stats.as_ref().map(|st| {
        let base = keys::entries(collection, u.info.id);
        ranges
            .iter()
            .map(|(lo, hi)| st.estimate(&base, lo, hi.as_deref()))
            .sum()
    });
    Some(Candidate {
        estimate,
        info: u.info.clone(),
        repeats: u.multikey && next.is_some(),
        ranges,
        bounds: shown.join(", "),
        score: 10 * eq as u32 + k,
        seek,
        id_ordered,
        sorted,
        exact: {
            consumed.sort_unstable();
            consumed.dedup();
            consumed.len() == filters.len()
        },
        reason,
    })
}

/// The index ranges that hold every value the time filters on `field`
/// can match (SPEC §17.3): raw timestamps, exactly, in the number range,
/// and ISO-8601 strings between the local dates the instants can have;
/// with the bounds shown and a score. `None` without time filters.
fn time_candidate(
    base: &[u8],
    filters: &[&FieldFilter],
    field: &str,
) -> Option<(Vec<KeyRange>, String, u8)> {
    // Inclusive bounds on the raw timestamp.
    let (mut lo, mut hi) = (0u64, u64::MAX);
    let mut shown = Vec::new();
    for f in filters.iter().filter(|f| f.field == field) {
        if let FilterOp::In(vs) = &f.op {
            // Only a list of times narrows the index (a superset, from the
            // earliest to the latest: each document read is checked
            // against the filter anyway); a list mixing times and other
            // values gives no range here.
            let ts: Vec<u64> = vs
                .iter()
                .map_while(time::as_time)
                .map(|t| t.as_u64())
                .collect();
            if !ts.is_empty() && ts.len() == vs.len() {
                let (a, b) = (ts.iter().min(), ts.iter().max());
                if let (Some(a), Some(b)) = (a, b) {
                    lo = lo.max(*a);
                    hi = hi.min(*b);
                    let shown_vs: Vec<String> = vs.iter().map(show).collect();
                    shown.push(format!("in [{}]", shown_vs.join(", ")));
                }
            }
            continue;
        }
        let (op, v) = match &f.op {
            FilterOp::Equals(v) => ("=", v),
            FilterOp::GreaterThan(v) => (">", v),
            FilterOp::GreaterOrEqual(v) => (">=", v),
            FilterOp::LessThan(v) => ("<", v),
            FilterOp::LessOrEqual(v) => ("<=", v),
            _ => continue,
        };
        let Some(t) = time::as_time(v) else {
            continue;
        };
        let t = t.as_u64();
        match op {
            "=" => {
                lo = lo.max(t);
                hi = hi.min(t);
            }
            ">" => lo = lo.max(t.saturating_add(1)),
            ">=" => lo = lo.max(t),
            "<" => hi = hi.min(t.saturating_sub(1)),
            _ => hi = hi.min(t),
        }
        shown.push(format!("{op} {}", show(v)));
    }
    if shown.is_empty() {
        return None;
    }
    if lo > hi {
        return Some((Vec::new(), shown.join(" and "), 3));
    }
    let num = |n: u64| with_base(base, &encode(Some(&Value::from(n))));
    let numbers = (num(lo), prefix_successor(&num(hi)));
    let date = |t: u64, days| {
        with_base(
            base,
            &encode(Some(&Value::String(time::date_bound(
                strata_engine::Timestamp(t),
                days,
            )))),
        )
    };
    let (slo, shi) = kind_range(super::value::Kind::String);
    // A string's encoding ends in a terminator: drop it, so the bound is
    // a prefix of every string starting with the date.
    // Near the epoch a local date can come before 1970-01-01, which the
    // date bound cannot say: read the strings from their start.
    let two_days = strata_engine::Timestamp::ZERO
        .saturating_add(std::time::Duration::from_secs(2 * 86_400))
        .as_u64();
    let strings_lo = if lo < two_days {
        with_base(base, &[slo])
    } else {
        let mut l = date(lo, -1);
        l.truncate(l.len() - 2);
        l.max(with_base(base, &[slo]))
    };
    let strings_hi = if hi == u64::MAX {
        with_base(base, &[shi])
    } else {
        let mut h = date(hi, 2);
        h.truncate(h.len() - 2);
        h.min(with_base(base, &[shi]))
    };
    let mut ranges = vec![numbers];
    if strings_lo < strings_hi {
        ranges.push((strings_lo, Some(strings_hi)));
    }
    // Scored as a range: even an equality reads two ranges.
    Some((ranges, shown.join(" and "), 3))
}
