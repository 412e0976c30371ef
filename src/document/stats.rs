//! Index statistics for the planner (SPEC §17.6): per index, its entries,
//! its distinct values, and an equi-depth histogram of the entries' keys,
//! gathered by one scan of the index (`analyze`, and after every build)
//! and stored beside the definition. The planner turns them into an
//! estimate of the entries each candidate reads.

use serde::{Deserialize, Serialize};
use strata_engine::{Keyspace, Reader};

use super::keys;
use super::value::prefix_successor;
use crate::error::{Result, StorageError};
use crate::types::StorageKey;

/// Buckets of a histogram: each holds about `entries / BUCKETS` entries.
pub const BUCKETS: usize = 32;
/// Bytes of a key kept as a bucket bound (longer ones are cut, which only
/// blurs an estimate).
const BOUND_BYTES: usize = 64;

/// What `analyze` found in one index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexStatistics {
    /// The index's fields (`a, b`).
    pub index: String,
    /// Its entries (a multikey document has several).
    pub entries: u64,
    /// Distinct values (entry keys without the document id).
    pub distinct: u64,
    /// Bucket bounds, hex of the entry keys after the index's prefix and
    /// without the id: `bounds[i]..=bounds[i + 1]` holds bucket `i`.
    pub bounds: Vec<String>,
}

/// The part of an entry key that is its value: after the index prefix,
/// without the document id (kept by unique entries).
fn value_part<'a>(key: &'a [u8], base_len: usize, id: &[u8]) -> &'a [u8] {
    let v = &key[base_len.min(key.len())..];
    v.strip_suffix(id).unwrap_or(v)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// Scans the entries of index `index_id` (named `name`) and sums them up,
/// in memory bounded by the histogram: a first pass counts, a second
/// takes the bounds at the quantiles.
pub(crate) fn gather(
    src: &mut dyn Reader,
    ks: &Keyspace,
    collection: &str,
    index_id: u64,
    name: String,
) -> Result<IndexStatistics> {
    let base = keys::entries(collection, index_id);
    let mut entries = 0u64;
    let mut distinct = 0u64;
    let mut last: Option<Vec<u8>> = None;
    for e in src.prefix(ks, &base)? {
        let (k, id) = e?;
        entries += 1;
        let v = value_part(&k, base.len(), &id);
        if last.as_deref() != Some(v) {
            distinct += 1;
            last = Some(v.to_vec());
        }
    }
    let mut bounds = Vec::new();
    if entries > 0 {
        let step = entries.div_ceil(BUCKETS as u64).max(1);
        let mut last_key = Vec::new();
        for (n, e) in (0u64..).zip(src.prefix(ks, &base)?) {
            let (k, id) = e?;
            let v = value_part(&k, base.len(), &id);
            let cut = &v[..v.len().min(BOUND_BYTES)];
            if n.is_multiple_of(step) {
                bounds.push(hex(cut));
            }
            last_key = cut.to_vec();
        }
        bounds.push(hex(&last_key));
    }
    Ok(IndexStatistics {
        index: name,
        entries,
        distinct,
        bounds,
    })
}

/// Decodes stored statistics.
pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Result<IndexStatistics> {
    serde_json::from_slice(bytes).map_err(|e| StorageError::Corrupt {
        key: StorageKey::new(String::from_utf8_lossy(key)),
        reason: format!("index statistics: {e}"),
    })
}

/// Encodes statistics for storage.
pub(crate) fn encode(s: &IndexStatistics) -> Vec<u8> {
    // Strings and numbers always serialize.
    serde_json::to_vec(s).unwrap_or_default()
}

/// Statistics as the planner uses them: the bounds decoded once.
pub(crate) struct Histogram {
    /// The index's entries.
    pub(crate) entries: u64,
    distinct: u64,
    bounds: Vec<Vec<u8>>,
}

impl IndexStatistics {
    /// The planner's form (bounds that do not decode are left out, which
    /// only blurs estimates).
    pub(crate) fn histogram(&self) -> Histogram {
        Histogram {
            entries: self.entries,
            distinct: self.distinct,
            bounds: self.bounds.iter().filter_map(|b| unhex(b)).collect(),
        }
    }
}

impl Histogram {
    /// About how many entries the key range `[lo, hi)` of the index whose
    /// entry keys start with `base` holds.
    pub(crate) fn estimate(&self, base: &[u8], lo: &[u8], hi: Option<&[u8]>) -> u64 {
        if self.entries == 0 {
            return 0;
        }
        let strip = |k: &[u8]| -> Vec<u8> {
            if k.len() >= base.len() && k[..base.len()] == *base {
                k[base.len()..].to_vec()
            } else if k < base {
                Vec::new()
            } else {
                vec![0xff; BOUND_BYTES + 1]
            }
        };
        let lo = strip(lo);
        let hi = hi.map(strip);
        let bounds = &self.bounds;
        if bounds.len() < 2 {
            return self.entries;
        }
        let per_bucket = self.entries as f64 / (bounds.len() - 1) as f64;
        // A value's share when the range falls inside one bucket.
        let per_value = (self.entries as f64 / self.distinct.max(1) as f64).min(per_bucket);
        let mut total = 0.0;
        for w in bounds.windows(2) {
            let (b0, b1) = (&w[0], &w[1]);
            // The first key past the bucket; a bound cut to BOUND_BYTES
            // stands for every key it starts.
            let b1_end = if b1.len() >= BOUND_BYTES {
                prefix_successor(b1)
            } else {
                Some([b1.as_slice(), &[0]].concat())
            };
            let below = hi.as_ref().is_some_and(|h| h.as_slice() <= b0.as_slice());
            let above = b1_end
                .as_ref()
                .is_some_and(|e| lo.as_slice() >= e.as_slice());
            if below || above {
                continue;
            }
            let covers_start = lo.as_slice() <= b0.as_slice();
            let covers_end = match (&hi, &b1_end) {
                (None, _) => true,
                (Some(h), Some(e)) => h.as_slice() >= e.as_slice(),
                (Some(_), None) => false,
            };
            // A bucket the range only cuts: half of it, or one value's
            // share when that is less.
            total += if covers_start && covers_end {
                per_bucket
            } else {
                per_value.max(1.0).min(per_bucket / 2.0)
            };
        }
        (total.round() as u64).clamp(1, self.entries)
    }
}

/// The stored statistics of index `index_id`, if `analyze` ran, in the
/// planner's form.
pub(crate) fn read(
    src: &mut dyn Reader,
    ks: &Keyspace,
    collection: &str,
    index_id: u64,
) -> Result<Option<Histogram>> {
    let k = keys::statistics(collection, index_id);
    src.get(ks, &k)?
        .map(|b| decode(&k, &b).map(|s| s.histogram()))
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(keys: &[&[u8]], distinct: u64) -> Histogram {
        IndexStatistics {
            index: "f".into(),
            entries: 1000,
            distinct,
            bounds: keys.iter().map(|k| hex(k)).collect(),
        }
        .histogram()
    }

    #[test]
    fn estimates_follow_the_buckets_and_a_heavy_value_spans_several() {
        // Ten buckets of 100: the value 5 fills buckets 2..=6 (500 entries).
        let bounds: Vec<&[u8]> = vec![
            b"\x01", b"\x02", b"\x05", b"\x05", b"\x05", b"\x05", b"\x05", b"\x07", b"\x08",
            b"\x09", b"\x0a",
        ];
        let s = stats(&bounds, 10);
        let base = b"B/";
        let k = |v: &[u8]| [&base[..], v].concat();
        // Equality on the heavy value: about half the index.
        let heavy = s.estimate(base, &k(b"\x05"), Some(&k(b"\x06")));
        assert!((400..=700).contains(&heavy), "{heavy}");
        // Equality on a light one: a value's share.
        let light = s.estimate(base, &k(b"\x08\x01"), Some(&k(b"\x08\x02")));
        assert!(light <= 100, "{light}");
        // Everything.
        assert_eq!(s.estimate(base, &k(b""), None), 1000);
        // Outside the values.
        assert!(s.estimate(base, &k(b"\x0b"), None) <= 1);
    }

    #[test]
    fn hex_round_trips_and_refuses_odd_text() {
        assert_eq!(unhex(&hex(b"\x00\xffab")).unwrap(), b"\x00\xffab");
        assert!(unhex("abc").is_none());
        assert!(unhex("zz").is_none());
    }
}
