//! Where a compaction is cut into key ranges merged in parallel.
//!
//! A full compaction (`Db::compact`) merges every level at once on one
//! thread unless it is cut. Cuts fall on user keys, so every version of a
//! key stays in one range and each range keeps or drops versions exactly
//! as the whole merge would. They are taken from the input level holding
//! the most bytes (its files do not overlap and sort by key), at the
//! smallest key of a file, so each range gets about the same share of that
//! level's bytes; the other levels are assumed to spread alike.
//!
//! A cut never falls inside or at the end of a range tombstone the job
//! writes. A table's key range reaches to the end of its tombstones, so a
//! tombstone of one range ending at the next range's first key would give
//! two tables of the level that key, and a point read looks in only one.

use super::compaction::PickFile;

/// Up to `parts - 1` user keys, ascending, cutting `inputs` (files by
/// level) into ranges `[cut_i, cut_i+1)` of about equal bytes and none
/// under `min_bytes` by that estimate; empty when one range is best.
/// `tombstones` are the `[start, end)` ranges of the range tombstones the
/// job writes: no cut `c` has `start < c <= end`.
pub(crate) fn split_points<F: PickFile>(
    inputs: &[(usize, F)],
    parts: usize,
    min_bytes: u64,
    tombstones: &[(&[u8], &[u8])],
) -> Vec<Vec<u8>> {
    let total: u64 = inputs.iter().map(|(_, f)| f.size()).sum();
    let parts = parts.min(usize::try_from(total / min_bytes.max(1)).unwrap_or(usize::MAX));
    if parts < 2 {
        return Vec::new();
    }
    // The level with the most bytes (the deeper one on a tie). L0's files
    // overlap, so their keys say nothing of where bytes lie: with only L0
    // as input there is no cut.
    let mut by_level: Vec<(usize, u64)> = Vec::new();
    for (level, f) in inputs {
        match by_level.iter_mut().find(|(l, _)| l == level) {
            Some((_, b)) => *b += f.size(),
            None => by_level.push((*level, f.size())),
        }
    }
    let Some(&(level, bytes)) = by_level
        .iter()
        .filter(|(l, _)| *l > 0)
        .max_by_key(|(l, b)| (*b, *l))
    else {
        return Vec::new();
    };
    let mut files: Vec<&F> = inputs
        .iter()
        .filter(|(l, _)| *l == level)
        .map(|(_, f)| f)
        .collect();
    files.sort_by(|a, b| a.smallest_user_key().cmp(b.smallest_user_key()));
    let lowest = inputs
        .iter()
        .map(|(_, f)| f.smallest_user_key())
        .min()
        .unwrap_or_default();
    let share = bytes / parts as u64;
    let mut cuts: Vec<Vec<u8>> = Vec::new();
    let mut acc = 0u64;
    for pair in files.windows(2) {
        acc += pair[0].size();
        let next = pair[1].smallest_user_key();
        let want = share * (cuts.len() as u64 + 1);
        let ascending = cuts.last().is_none_or(|c| next > c.as_slice());
        let clear = tombstones.iter().all(|(s, e)| next <= *s || next > *e);
        if acc >= want && ascending && next > lowest && clear {
            cuts.push(next.to_vec());
            if cuts.len() + 1 == parts {
                break;
            }
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::super::compaction::tests::parse_file;
    use super::super::datadriven::{self, Case};
    use super::*;

    /// `split parts=N min=M dels=a-c,x-z`, the input files one `Ln:
    /// files` line per level: prints the cuts.
    fn split(c: &Case) -> String {
        let mut inputs = Vec::new();
        for line in &c.input {
            let Some((level, files)) = line.split_once(':') else {
                c.fail(format!("bad line {line:?}"));
            };
            let level: usize = c.parse("level", level.trim().trim_start_matches('L'));
            for f in files.split_whitespace() {
                inputs.push((level, parse_file(c, f)));
            }
        }
        let dels: String = c.get_or("dels", String::new());
        let dels: Vec<(&[u8], &[u8])> = dels
            .split(',')
            .filter(|d| !d.is_empty())
            .map(|d| {
                let (s, e) = d
                    .split_once('-')
                    .unwrap_or_else(|| c.fail(format!("bad range {d:?}")));
                (s.as_bytes(), e.as_bytes())
            })
            .collect();
        let cuts = split_points(&inputs, c.get("parts"), c.get_or("min", 1), &dels);
        if cuts.is_empty() {
            return "one range\n".into();
        }
        let mut out = String::new();
        for cut in cuts {
            let _ = writeln!(out, "cut at {}", String::from_utf8_lossy(&cut));
        }
        out
    }

    #[test]
    fn split_testdata() {
        datadriven::run("split.txt", |c| match c.cmd.as_str() {
            "split" => split(c),
            _ => c.fail("unknown command"),
        });
    }
}
