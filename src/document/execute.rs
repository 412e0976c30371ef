//! Running a plan: reading its index ranges (or the collection) in
//! order, fetching and checking each candidate document, and handing the
//! matches to a sink that streams them, keeps the best in a bounded heap,
//! collects them all to sort once, or only counts them.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::ops::Bound;

use serde_json::Value;
use strata_engine::{Entries, Keyspace, Reader};

use super::index::holds_entry;
use super::keys;
use super::plan::{KeyRange, Plan, QueryStats};
use super::query::{DocumentQuery, QueryOptions, SortOrder};
use super::value::{encode, lookup};
use crate::envelope;
use crate::error::{Result, StorageError};
use crate::types::StorageKey;

/// A result kept for an in-memory sort, ordered by its sort key.
struct Ranked {
    key: Vec<u8>,
    descending: bool,
    hit: Hit,
}

impl Ranked {
    /// Result `id` ranked by its position in the order `options` asks.
    fn new(doc: Value, id: &str, options: &QueryOptions, descending: bool) -> Ranked {
        Ranked {
            key: position(&doc, id, options),
            descending,
            hit: Hit {
                id: id.to_owned(),
                doc,
            },
        }
    }
}

impl PartialEq for Ranked {
    fn eq(&self, o: &Self) -> bool {
        self.key == o.key
    }
}
impl Eq for Ranked {}
impl PartialOrd for Ranked {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Ranked {
    fn cmp(&self, o: &Self) -> Ordering {
        let c = self.key.cmp(&o.key);
        if self.descending {
            c.reverse()
        } else {
            c
        }
    }
}

/// Decodes a stored document.
pub(crate) fn decode_doc(collection: &str, id: &str, bytes: &[u8]) -> Result<Value> {
    decode_doc_with_expiry(collection, id, bytes).map(|(doc, _)| doc)
}

/// Decodes a stored document and the expiry its metadata records.
pub(crate) fn decode_doc_with_expiry(
    collection: &str,
    id: &str,
    bytes: &[u8],
) -> Result<(Value, Option<strata_engine::Timestamp>)> {
    // The key is named only in errors: a query decodes many documents.
    let key = || StorageKey::new(format!("{collection}/{id}"));
    let (json, header) = envelope::decode_payload(bytes)
        .map_err(|reason| StorageError::Corrupt { key: key(), reason })?;
    // Checked as UTF-8 in one pass, then parsed as text: faster than
    // serde_json checking each string of the bytes on its own.
    let text = std::str::from_utf8(&json).map_err(|e| StorageError::Corrupt {
        key: key(),
        reason: format!("document is not UTF-8: {e}"),
    })?;
    let doc = serde_json::from_str(text).map_err(|e| StorageError::Corrupt {
        key: key(),
        reason: format!("document is not JSON: {e}"),
    })?;
    Ok((doc, header.expires_at.map(strata_engine::Timestamp)))
}

/// How a plan runs: for a count, or for the page after a position.
#[derive(Default, Clone, Copy)]
pub(crate) struct Run<'a> {
    /// Count the matches (no order, offset or limit); return none.
    pub(crate) count: bool,
    /// Only results after this position (a cursor's), in the query's order.
    pub(crate) after: Option<&'a [u8]>,
}

/// A result.
pub(crate) struct Hit {
    /// The document's id.
    pub(crate) id: String,
    /// The document.
    pub(crate) doc: Value,
}

/// The position of document `id` in the order `options` asks for:
/// `enc(sort value) ‖ id` with a sort field, the id without, so byte order
/// is the results' ascending order.
pub(crate) fn position(doc: &Value, id: &str, options: &QueryOptions) -> Vec<u8> {
    let mut key = match &options.sort_field {
        Some(f) => encode(lookup(doc, f)),
        None => Vec::new(),
    };
    key.extend_from_slice(id.as_bytes());
    key
}

/// The most results a streamed page reserves room for before its first.
const PAGE_RESERVE: usize = 1024;

/// Where the results go: streamed when candidates arrive in order, else a
/// bounded heap, or without a limit a list sorted at the end.
enum Sink {
    Stream {
        skip: usize,
        out: Vec<Hit>,
    },
    Heap(BinaryHeap<Ranked>),
    /// Every result, sorted once at the end: without a limit a heap would
    /// only reorder them at each push.
    All(Vec<Ranked>),
    /// Only `documents_matched` counts.
    Count,
}

/// Runs `plan`, keeping documents `visible` says the caller may read.
#[allow(clippy::too_many_arguments)]
pub(crate) fn execute(
    plan: &Plan,
    src: &mut dyn Reader,
    ks: &Keyspace,
    collection: &str,
    query: &DocumentQuery,
    options: &QueryOptions,
    visible: &dyn Fn(&str) -> Result<bool>,
    run: Run<'_>,
) -> Result<(Vec<Hit>, QueryStats)> {
    let Run { count, after } = run;
    let mut stats = QueryStats {
        plan: plan.public.clone(),
        index_entries_read: 0,
        documents_read: 0,
        stale_entries: 0,
        documents_matched: 0,
        documents_returned: 0,
    };
    // A count counts every match: no order, offset or limit.
    let limit = if count {
        usize::MAX
    } else {
        query.limit.unwrap_or(usize::MAX)
    };
    if limit == 0 {
        return Ok((Vec::new(), stats));
    }
    let covered = count && plan.public.covering;
    let descending = options.sort_order == SortOrder::Descending && options.sort_field.is_some();
    let keep = query.offset.saturating_add(limit);
    let mut sink = if count {
        Sink::Count
    } else if plan.ordered {
        Sink::Stream {
            skip: query.offset,
            // A page is sized up front (growing it reallocates past the
            // allocator's small chunks); an unbounded one grows.
            out: Vec::with_capacity(limit.min(PAGE_RESERVE)),
        }
    } else if keep == usize::MAX {
        Sink::All(Vec::new())
    } else {
        Sink::Heap(BinaryHeap::new())
    };
    // Offers one candidate the caller may read; false when the results
    // are complete.
    let mut offer = |doc: Value, id: &str, decided: bool, stats: &mut QueryStats| -> Result<bool> {
        // A document whose current entry the scan found passes every
        // filter the index decides: the ones a covered count trusts.
        if !decided && !query.matches(&doc) {
            return Ok(true);
        }
        // A page after a cursor: what came up to it is skipped.
        if let Some(after) = after {
            let key = position(&doc, id, options);
            let past = if descending {
                key.as_slice() < after
            } else {
                key.as_slice() > after
            };
            if !past {
                return Ok(true);
            }
        }
        stats.documents_matched += 1;
        match &mut sink {
            Sink::Count => Ok(true),
            Sink::Stream { skip, out } => {
                if *skip > 0 {
                    *skip -= 1;
                } else {
                    out.push(Hit {
                        id: id.to_owned(),
                        doc,
                    });
                }
                Ok(out.len() < limit)
            }
            Sink::Heap(h) => {
                h.push(Ranked::new(doc, id, options, descending));
                if h.len() > keep {
                    h.pop();
                }
                Ok(true)
            }
            Sink::All(all) => {
                all.push(Ranked::new(doc, id, options, descending));
                Ok(true)
            }
        }
    };
    if plan.scans.is_empty() {
        let prefix = keys::docs(collection);
        // In id order, a page after a cursor starts after its id.
        let start = match after {
            Some(id) if options.sort_field.is_none() => {
                let mut k = prefix.clone();
                k.extend_from_slice(id);
                k.push(0);
                k
            }
            _ => prefix.clone(),
        };
        let end = super::value::prefix_successor(&prefix);
        let end = end.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
        for entry in src.range(ks, Bound::Included(&start[..]), end)? {
            let (k, v) = entry?;
            // Ids are UTF-8; a damaged one is shown lossily.
            let id = String::from_utf8_lossy(&k[prefix.len()..]);
            // What the caller may not read is not even counted.
            if !visible(&id)? {
                continue;
            }
            stats.documents_read += 1;
            let doc = decode_doc(collection, &id, &v)?;
            if !offer(doc, &id, false, &mut stats)? {
                break;
            }
        }
    }
    // An intersection fetches only documents whose ids the second index's
    // ranges hold: those ids first, from its entries alone.
    let within: Option<std::collections::HashSet<Vec<u8>>> = match &plan.within {
        None => None,
        Some((_, ranges)) => {
            let mut ids = std::collections::HashSet::new();
            for (lo, hi) in ranges {
                let hi = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
                for entry in src.range(ks, Bound::Included(&lo[..]), hi)? {
                    let (_, id) = entry?;
                    stats.index_entries_read += 1;
                    ids.insert(id.to_vec());
                }
            }
            Some(ids)
        }
    };
    // Copies, not slices of the entries: a slice would keep its whole block
    // alive for the rest of the query.
    let mut seen: std::collections::HashSet<Vec<u8>> = std::collections::HashSet::new();
    // Each candidate's document key, built in one buffer.
    let doc_prefix = keys::docs(collection);
    let mut doc_key = doc_prefix.clone();
    let mut scratch = Vec::new();
    let reverse = descending && plan.public.sorted_by_index;
    'scans: for (info, ranges) in &plan.scans {
        let base_len = keys::entries(collection, info.id).len();
        let ordered_ranges: Vec<&KeyRange> = if reverse {
            ranges.iter().rev().collect()
        } else {
            ranges.iter().collect()
        };
        for (lo, hi) in ordered_ranges {
            // After a cursor, an ordered plan seeks past the entries of
            // the results before it.
            let (mut lo, mut hi) = (lo.clone(), hi.clone());
            if let (Some(seek), Some(after)) = (&plan.seek, after) {
                let mut at = seek.clone();
                at.extend_from_slice(after);
                if reverse {
                    hi = Some(hi.map_or(at.clone(), |h| h.min(at)));
                } else {
                    at.push(0);
                    lo = lo.max(at);
                }
            }
            if hi.as_ref().is_some_and(|h| *h <= lo) {
                continue;
            }
            // The entries iterator owns its view, so the source is free to
            // fetch each document meanwhile.
            let hi = hi.as_deref().map_or(Bound::Unbounded, Bound::Excluded);
            let entries = src.range(ks, Bound::Included(&lo[..]), hi)?;
            let entries: Entries = if reverse {
                Box::new(entries.rev())
            } else {
                entries
            };
            for entry in entries {
                let (k, v) = entry?;
                if within.as_ref().is_some_and(|ids| !ids.contains(&v[..])) {
                    stats.index_entries_read += 1;
                    continue;
                }
                // Borrowed from the entry (a damaged id is shown lossily
                // and then fails the checks that follow): an id is copied
                // only into a result kept or a set of those seen.
                let id = String::from_utf8_lossy(&v);
                if plan.dedupe && seen.contains(id.as_bytes()) {
                    continue;
                }
                if !visible(&id)? {
                    continue;
                }
                stats.index_entries_read += 1;
                if covered {
                    // The entry decides the filters: the document is
                    // not read.
                    stats.documents_matched += 1;
                    if plan.dedupe {
                        seen.insert(id.as_bytes().to_vec());
                    }
                    continue;
                }
                doc_key.truncate(doc_prefix.len());
                doc_key.extend_from_slice(id.as_bytes());
                let Some(bytes) = src.get(ks, &doc_key)? else {
                    stats.stale_entries += 1;
                    continue;
                };
                stats.documents_read += 1;
                let doc = decode_doc(collection, &id, &bytes)?;
                if !holds_entry(info, base_len, &id, &doc, &k, &mut scratch) {
                    stats.stale_entries += 1;
                    continue;
                }
                // Taken once, whichever of its entries comes first.
                if plan.dedupe {
                    seen.insert(id.as_bytes().to_vec());
                }
                if !offer(doc, &id, plan.public.covering, &mut stats)? {
                    break 'scans;
                }
            }
        }
    }
    let results = match sink {
        Sink::Count => Vec::new(),
        Sink::Stream { out, .. } => out,
        Sink::Heap(h) => h
            .into_sorted_vec()
            .into_iter()
            .skip(query.offset)
            .take(limit)
            .map(|r| r.hit)
            .collect(),
        Sink::All(mut all) => {
            // Positions are distinct (they end in the id): unstable is exact.
            all.sort_unstable();
            all.into_iter().skip(query.offset).map(|r| r.hit).collect()
        }
    };
    stats.documents_returned = results.len() as u64;
    Ok((results, stats))
}
