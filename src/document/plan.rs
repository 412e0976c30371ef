//! The query planner: which index (if any) answers a query, and why.
//!
//! Every plan fetches each candidate document; one found through an index
//! entry is checked to still hold that entry. The whole filter is checked
//! on it too, except where the index decides every filter exactly
//! (`covering`), and a count with such an index reads no document.
//! Running a plan is `execute`'s.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::candidate::{candidate, prefix_range, Candidate};
use super::index::IndexInfo;
use super::keys;
use super::query::{DocumentQuery, FieldFilter, Filter, QueryOptions};
use super::stats::Histogram;

/// How a query reads its candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanKind {
    /// Every document of the collection, in id order.
    CollectionScan,
    /// The entries of one index in a key range, each leading to a document.
    IndexScan,
    /// The entries of several index scans, one per branch of an OR, each
    /// document taken once.
    IndexUnion,
    /// The entries of two indexes; only documents in both are read.
    IndexIntersection,
}

/// What [`explain`](super::DocumentStorageProvider::explain) says about a
/// query: the plan and why it was chosen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryPlan {
    /// Scan or index.
    pub kind: PlanKind,
    /// The indexed field used.
    pub index: Option<String>,
    /// The part of the index read, e.g. `= "document"` or `> 5`.
    pub bounds: Option<String>,
    /// Whether the index gives the requested order, so that reading stops
    /// after `offset + limit` results.
    pub sorted_by_index: bool,
    /// Whether results are sorted in memory (keeping at most
    /// `offset + limit` of them when there is a limit).
    pub in_memory_sort: bool,
    /// The index's entries decide every filter: a count reads no
    /// document, and a query checks only that each entry is still its
    /// document's.
    #[serde(default)]
    pub covering: bool,
    /// The indexes the planner weighed for the query's conjunction.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<PlanCandidate>,
    /// Why this plan.
    pub reason: String,
}

impl fmt::Display for QueryPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.index) {
            (PlanKind::IndexScan, Some(field)) => write!(
                f,
                "INDEX SCAN on {field} {}",
                self.bounds.as_deref().unwrap_or("(all)")
            )?,
            (PlanKind::IndexUnion, Some(fields)) => write!(
                f,
                "INDEX UNION on {fields} {}",
                self.bounds.as_deref().unwrap_or("(all)")
            )?,
            (PlanKind::IndexIntersection, Some(fields)) => write!(
                f,
                "INDEX INTERSECTION on {fields} {}",
                self.bounds.as_deref().unwrap_or("(all)")
            )?,
            _ => f.write_str("COLLECTION SCAN")?,
        }
        if self.sorted_by_index {
            f.write_str(", order from the index")?;
        }
        if self.in_memory_sort {
            f.write_str(", sorted in memory")?;
        }
        if self.covering {
            f.write_str(", covering")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// One index the planner weighed, as explain shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanCandidate {
    /// The index's fields.
    pub index: String,
    /// The part of it the query would read.
    pub bounds: String,
    /// Its heuristic score (used without statistics).
    pub score: u32,
    /// The entries its ranges hold, by the index's statistics.
    pub estimated_entries: Option<u64>,
    /// The estimate with a limit taken into account, for one that streams
    /// in the results' order.
    pub estimated_cost: Option<u64>,
}

/// What running a query read and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryStats {
    /// The plan that ran.
    pub plan: QueryPlan,
    /// Index entries read.
    pub index_entries_read: u64,
    /// Documents read and decoded.
    pub documents_read: u64,
    /// Index entries whose document is gone or no longer has the entry's
    /// value (expired by a TTL; otherwise a sign of damage).
    pub stale_entries: u64,
    /// Documents that passed the filter (and access control).
    pub documents_matched: u64,
    /// Documents returned.
    pub documents_returned: u64,
}

/// A key range `[lo, hi)` (`hi` `None`: to the end).
pub(crate) type KeyRange = (Vec<u8>, Option<Vec<u8>>);

/// A chosen plan: what explain shows, and how to read.
pub(crate) struct Plan {
    pub(crate) public: QueryPlan,
    /// The index scans to read, in order (none: a collection scan; more
    /// than one: the union of an OR's branches).
    pub(crate) scans: Vec<(IndexInfo, Vec<KeyRange>)>,
    /// An intersection's second index: only documents whose ids its
    /// ranges hold are fetched.
    pub(crate) within: Option<(IndexInfo, Vec<KeyRange>)>,
    /// Candidates arrive in the final order: stream, stop at the limit.
    pub(crate) ordered: bool,
    /// A document may have several entries in the ranges (a multikey
    /// index read beyond one value's entries, or a union): each is taken
    /// once.
    pub(crate) dedupe: bool,
    /// For a plan whose entries come in the results' order: the key that,
    /// followed by a result's position (`Hit::key`), is its entry's key,
    /// so a page can start reading after a cursor.
    pub(crate) seek: Option<Vec<u8>>,
}

/// A ready index as the planner sees it.
pub(crate) struct Usable {
    /// Its definition.
    pub(crate) info: IndexInfo,
    /// Its statistics, if `analyze` ran.
    pub(crate) stats: Option<Histogram>,
    /// A document gave it an array: a document may have several entries,
    /// and the index's order is not its fields' order of values.
    pub(crate) multikey: bool,
}

impl Usable {
    /// An index the query neither filters nor sorts on, whose marker and
    /// statistics were not read: no candidate comes from it, and its
    /// statistics are needed only to weigh an intersection, which takes
    /// two candidates from the query's top-level AND (the caller then reads
    /// every index's).
    pub(crate) fn unread(info: IndexInfo) -> Usable {
        Usable {
            info,
            stats: None,
            multikey: false,
        }
    }
}

/// What a candidate is estimated to cost: the entries it reads, or for
/// one that streams in the results' order with a limit, at most twice the
/// results it must reach (an estimate: the filters it does not decide may
/// skip some).
fn cost(c: &Candidate, want: Option<usize>, sort: Option<&str>) -> Option<u64> {
    let est = c.estimate?;
    let streams = c.sorted || (sort.is_none() && c.id_ordered);
    Some(match want {
        Some(n) if streams => est.min((n as u64).saturating_mul(2)),
        _ => est,
    })
}

/// The best candidate among the ready indexes for `filters` (a
/// conjunction), and every candidate as explain shows it. With statistics
/// for every candidate the cheapest estimate wins; otherwise the highest
/// score. Ties go to one that gives the sort order.
fn best_candidate(
    collection: &str,
    ready: &[Usable],
    filters: &[&FieldFilter],
    sort: Option<&str>,
    want: Option<usize>,
) -> (Option<Candidate>, Vec<Candidate>, Vec<PlanCandidate>) {
    let mut all: Vec<Candidate> = ready
        .iter()
        .filter_map(|u| candidate(collection, u, filters, sort))
        .collect();
    let by_cost = !all.is_empty() && all.iter().all(|c| c.estimate.is_some());
    let shown = all
        .iter()
        .map(|c| PlanCandidate {
            index: c.info.name(),
            bounds: c.bounds.clone(),
            score: c.score,
            estimated_entries: c.estimate,
            estimated_cost: cost(c, want, sort),
        })
        .collect();
    let mut best: Option<usize> = None;
    for (i, c) in all.iter().enumerate() {
        let better = best.is_none_or(|b| {
            let b = &all[b];
            if by_cost {
                let (cc, bc) = (cost(c, want, sort), cost(b, want, sort));
                cc < bc || (cc == bc && c.sorted && !b.sorted)
            } else {
                c.score > b.score || (c.score == b.score && c.sorted && !b.sorted)
            }
        });
        if better {
            best = Some(i);
        }
    }
    let best = best.map(|i| all.remove(i));
    (best, all, shown)
}

/// What reading an index entry costs against fetching a document.
const ENTRY_COST: f64 = 0.25;

/// An intersection of `best` with a second index when the statistics say
/// it pays: the ids in the smaller candidate's entries are gathered
/// (entries only), the larger one's entries are read, and only documents
/// in both are fetched. Its cost is `ENTRY_COST` per entry of both plus
/// the documents expected in both (the fields taken as independent); it
/// must beat `best` alone by a fifth.
fn intersection(
    ready: &[Usable],
    sort: Option<&str>,
    want: Option<usize>,
    best: &Candidate,
    others: Vec<Candidate>,
    shown: &[PlanCandidate],
) -> Option<Plan> {
    let alone = cost(best, want, sort)? as f64;
    let docs = ready
        .iter()
        .filter(|u| !u.multikey)
        .filter_map(|u| u.stats.as_ref().map(|s| s.entries))
        .max()? as f64;
    let eb = best.estimate? as f64;
    let (both, partner) = others
        .into_iter()
        .filter_map(|c| {
            let ec = c.estimate? as f64;
            Some((ENTRY_COST * (eb + ec) + eb * ec / docs.max(1.0), c))
        })
        .min_by(|x, y| x.0.total_cmp(&y.0))?;
    if both >= alone * 0.8 {
        return None;
    }
    let (scan, set) = if partner.estimate >= best.estimate {
        (partner, best.clone())
    } else {
        (best.clone(), partner)
    };
    let ordered = scan.sorted || (sort.is_none() && scan.id_ordered);
    Some(Plan {
        public: QueryPlan {
            kind: PlanKind::IndexIntersection,
            index: Some(format!("{} & {}", scan.info.name(), set.info.name())),
            bounds: Some(format!("{} & {}", scan.bounds, set.bounds)),
            sorted_by_index: scan.sorted,
            in_memory_sort: !ordered,
            covering: false,
            candidates: shown.to_vec(),
            reason: format!(
                "by the statistics, reading the entries of both indexes and only the documents \
                 in both costs about {both:.0}, against {alone:.0} for {} alone",
                best.info.name()
            ),
        },
        seek: if ordered { scan.seek.clone() } else { None },
        // The second index only gives a set of ids.
        dedupe: scan.repeats,
        ordered,
        within: Some((set.info, set.ranges)),
        scans: vec![(scan.info, scan.ranges)],
    })
}

/// The field filters an OR branch ANDs at its top.
fn branch_leaves<'a>(b: &'a Filter, out: &mut Vec<&'a FieldFilter>) {
    match b {
        Filter::Field(f) => out.push(f),
        Filter::And(bs) => bs.iter().for_each(|b| branch_leaves(b, out)),
        Filter::Or(_) | Filter::Not(_) => {}
    }
}

/// Chooses a plan for `query` given the ready indexes.
pub(crate) fn plan(
    collection: &str,
    query: &DocumentQuery,
    options: &QueryOptions,
    ready: &[Usable],
) -> Plan {
    let sort = options.sort_field.as_deref();
    let scan = |reason: String| {
        let ordered = sort.is_none();
        Plan {
            public: QueryPlan {
                kind: PlanKind::CollectionScan,
                index: None,
                bounds: None,
                sorted_by_index: false,
                in_memory_sort: !ordered,
                covering: false,
                candidates: Vec::new(),
                reason,
            },
            scans: Vec::new(),
            within: None,
            ordered,
            dedupe: false,
            seek: None,
        }
    };
    if options.force_scan {
        return scan("an index was ruled out by force_scan".into());
    }
    let conj = query.conjuncts();
    let (leaves, ors) = (&conj.leaves, &conj.ors);
    let want = query.limit.map(|l| l.saturating_add(query.offset));
    let (best, others, candidates) = best_candidate(collection, ready, leaves, sort, want);
    if let Some(c) = best {
        if let Some(plan) = intersection(ready, sort, want, &c, others, &candidates) {
            return plan;
        }
        let reason = match cost(&c, want, sort) {
            Some(n) if candidates.len() > 1 => format!(
                "{}; by the statistics about {n} entries, the fewest of {} candidates",
                c.reason,
                candidates.len()
            ),
            Some(n) => format!("{}; by the statistics about {n} entries", c.reason),
            None => c.reason.into(),
        };
        let ordered = c.sorted || (sort.is_none() && c.id_ordered);
        let covering = c.exact && conj.complete;
        return Plan {
            public: QueryPlan {
                kind: PlanKind::IndexScan,
                index: Some(c.info.name()),
                bounds: Some(c.bounds),
                sorted_by_index: c.sorted,
                in_memory_sort: !ordered,
                covering,
                candidates,
                reason,
            },
            seek: if ordered { c.seek } else { None },
            scans: vec![(c.info, c.ranges)],
            within: None,
            ordered,
            dedupe: c.repeats,
        };
    }
    // An OR whose every branch (with the filters ANDed around it) can use
    // an index is read as the union of those scans, each document once.
    for branches in ors {
        let mut chosen = Vec::new();
        for b in branches.iter() {
            let mut filters = leaves.clone();
            let mut inner = Vec::new();
            branch_leaves(b, &mut inner);
            filters.extend(inner);
            match best_candidate(collection, ready, &filters, None, None).0 {
                Some(c) => chosen.push(c),
                None => break,
            }
        }
        if chosen.len() == branches.len() && !chosen.is_empty() {
            let names: Vec<String> = chosen.iter().map(|c| c.info.name()).collect();
            let bounds: Vec<&str> = chosen.iter().map(|c| c.bounds.as_str()).collect();
            return Plan {
                public: QueryPlan {
                    kind: PlanKind::IndexUnion,
                    index: Some(names.join(" | ")),
                    bounds: Some(bounds.join(" | ")),
                    sorted_by_index: false,
                    in_memory_sort: true,
                    covering: false,
                    candidates: Vec::new(),
                    reason: "every branch of an OR can use an index: their entries are \
                             read and each document taken once"
                        .into(),
                },
                scans: chosen.into_iter().map(|c| (c.info, c.ranges)).collect(),
                within: None,
                ordered: false,
                dedupe: true,
                seek: None,
            };
        }
    }
    if let Some(s) = sort {
        let by_sort = ready.iter().find(|u| {
            u.info.format >= 2 && !u.multikey && u.info.field == s && u.info.more_fields.is_empty()
        });
        if let Some(u) = by_sort {
            if query.limit.is_some() {
                let base = keys::entries(collection, u.info.id);
                return Plan {
                    public: QueryPlan {
                        kind: PlanKind::IndexScan,
                        index: Some(s.to_owned()),
                        bounds: None,
                        sorted_by_index: true,
                        in_memory_sort: false,
                        covering: false,
                        candidates: Vec::new(),
                        reason: "no filter can use an index; the sort field's index gives \
                                 the order, so reading stops at the limit"
                            .into(),
                    },
                    scans: vec![(u.info.clone(), vec![prefix_range(base.clone())])],
                    within: None,
                    ordered: true,
                    dedupe: false,
                    seek: Some(base),
                };
            }
            return scan(
                "no filter can use an index, and without a limit a scan reads each \
                 document once where the sort field's index would read all of them out of order"
                    .into(),
            );
        }
    }
    let old: Vec<String> = ready
        .iter()
        .filter(|u| u.info.format < 2)
        .map(|u| u.info.name())
        .collect();
    let indexed: Vec<String> = ready.iter().map(|u| u.info.name()).collect();
    scan(if indexed.is_empty() {
        "the collection has no ready index".into()
    } else if !old.is_empty() {
        format!(
            "no filter can use an index (indexed: {}); the indexes on {} hold whole values \
             only (made before multikey entries): drop and create them again",
            indexed.join("; "),
            old.join("; ")
        )
    } else if leaves.is_empty() && ors.is_empty() {
        "no filter to narrow the read".into()
    } else {
        format!(
            "no filter can use an index (indexed: {})",
            indexed.join("; ")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::index::IndexState;
    use crate::document::query::SortOrder;

    fn usable(fields: &[&str], format: u32, multikey: bool) -> Usable {
        Usable {
            stats: None,
            info: IndexInfo {
                field: fields[0].into(),
                more_fields: fields[1..].iter().map(|f| f.to_string()).collect(),
                unique: false,
                format,
                id: 7,
                state: IndexState::Ready,
            },
            multikey,
        }
    }

    #[test]
    fn whole_value_indexes_made_before_multikey_entries_are_not_used() {
        let q = DocumentQuery::new().with_field_equals("a", 1);
        let p = plan("c", &q, &QueryOptions::new(), &[usable(&["a"], 1, false)]);
        assert_eq!(p.public.kind, PlanKind::CollectionScan);
        assert!(p.public.reason.contains("drop and create"), "{}", p.public);
        let p = plan("c", &q, &QueryOptions::new(), &[usable(&["a"], 2, false)]);
        assert_eq!(p.public.kind, PlanKind::IndexScan);
    }

    #[test]
    fn more_equalities_and_a_range_on_the_next_field_win() {
        let q = DocumentQuery::new()
            .with_field_equals("a", 1)
            .with_field_greater_than("b", 2);
        let ready = [usable(&["a"], 2, false), usable(&["a", "b"], 2, false)];
        let p = plan("c", &q, &QueryOptions::new(), &ready);
        assert_eq!(p.public.index.as_deref(), Some("a, b"));
        assert_eq!(p.public.bounds.as_deref(), Some("a = 1, b > 2"));
        // A multikey index gives no order; one that is not, does.
        let sorted = QueryOptions::new().with_sort_field("b", SortOrder::Ascending);
        let p = plan("c", &q, &sorted, &[usable(&["a", "b"], 2, false)]);
        assert!(p.public.sorted_by_index && p.ordered);
        let p = plan("c", &q, &sorted, &[usable(&["a", "b"], 2, true)]);
        assert!(!p.public.sorted_by_index && !p.ordered && p.dedupe);
        // The sort field followed by another field does not give (value,
        // id) order.
        let q = DocumentQuery::new().with_field_equals("a", 1);
        let p = plan("c", &q, &sorted, &[usable(&["a", "b", "x"], 2, false)]);
        assert!(!p.public.sorted_by_index);
    }

    #[test]
    fn a_multikey_scan_dedupes_only_where_a_document_can_repeat() {
        let multi = [usable(&["tags"], 2, true)];
        let o = QueryOptions::new();
        // One value's entries: an array's distinct elements each give one,
        // so a document is there at most once.
        let eq = DocumentQuery::new().with_field_equals("tags", "x");
        assert!(!plan("c", &eq, &o, &multi).dedupe);
        // A range or a list spans several values: two elements of one
        // array can both be in it.
        let range = DocumentQuery::new().with_field_greater_than("tags", "a");
        assert!(plan("c", &range, &o, &multi).dedupe);
        let list = DocumentQuery::new().with_field_in("tags", ["a", "b"]);
        assert!(plan("c", &list, &o, &multi).dedupe);
        // Equality on the first field of a compound multikey index leaves
        // the array field open.
        let compound = [usable(&["kind", "tags"], 2, true)];
        let first = DocumentQuery::new().with_field_equals("kind", "k");
        assert!(plan("c", &first, &o, &compound).dedupe);
        let both = first.clone().with_field_equals("tags", "x");
        assert!(!plan("c", &both, &o, &compound).dedupe);
        // A time equals a number and strings: two ranges.
        let t = strata_engine::Timestamp(1_700_000_000_000_000_000);
        let at = DocumentQuery::new().with_field_equals("tags", t);
        assert!(plan("c", &at, &o, &multi).dedupe);
    }
}
