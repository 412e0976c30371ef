//! The compaction picker: which files of which keyspace to compact next.
//!
//! Each level of each keyspace gets a score: L0 its file count over
//! `l0_compaction_trigger` (its files overlap, so reads pay per file), level
//! n ≥ 1 its bytes over its target size `base_level_size · ratio^(n-1)`.
//! The highest score of at least 1 is compacted; on a tie the first one
//! found wins (keyspaces by id, levels from the top). L0 is compacted as a
//! whole together with the L1 files it overlaps. Level n gives one file,
//! round-robin through the key space so every part of the level is
//! rewritten in turn: the first file past the level's compact pointer (or
//! the first file once the pointer is past the last), after which the
//! pointer moves to that file's largest key. The files of level n+1 it
//! overlaps join it. A single input file with nothing below to merge with
//! is moved down without being rewritten (`trivial`).
//!
//! The picker sees only the file shapes it needs ([`PickFile`]), so it runs
//! on a version's `Arc<FileMeta>`s and on plain test files alike.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::levels::FileMeta;
use crate::options::Options;

/// What the picker needs of a file: its number (to name it), its size (for
/// level scores) and its user-key range (for overlaps and the round-robin
/// pointer). Lets the picker run without a file system.
pub(crate) trait PickFile: Clone {
    /// The file's number, to name it in a pick.
    fn number(&self) -> u64;
    /// The file's size in bytes, which a level's score adds up.
    fn size(&self) -> u64;
    /// The smallest user key in the file.
    fn smallest_user_key(&self) -> &[u8];
    /// The largest user key in the file.
    fn largest_user_key(&self) -> &[u8];

    /// True when the file's user-key range meets `[lo, hi]`: such a file
    /// must be merged with inputs covering that range.
    fn overlaps(&self, lo: &[u8], hi: &[u8]) -> bool {
        self.smallest_user_key() <= hi && self.largest_user_key() >= lo
    }
}

/// The engine's files, as a version holds them.
impl PickFile for Arc<FileMeta> {
    fn number(&self) -> u64 {
        self.number
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn smallest_user_key(&self) -> &[u8] {
        FileMeta::smallest_user_key(self)
    }

    fn largest_user_key(&self) -> &[u8] {
        FileMeta::largest_user_key(self)
    }
}

/// The options the picker reads, so callers and tests need not build a
/// whole [`Options`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PickerOptions {
    /// L0 files that make L0's score 1.
    pub l0_compaction_trigger: usize,
    /// Target size of L1.
    pub base_level_size: u64,
    /// Size ratio between adjacent levels.
    pub level_size_ratio: u64,
}

impl PickerOptions {
    /// The picker's part of a database's options.
    pub(crate) fn from_options(opts: &Options) -> Self {
        PickerOptions {
            l0_compaction_trigger: opts.l0_compaction_trigger,
            base_level_size: opts.base_level_size,
            level_size_ratio: opts.level_size_ratio,
        }
    }

    /// The target size of `level` (levels ≥ 1), as
    /// [`Options::level_target`] computes it: a level's score is its size
    /// over this.
    pub(crate) fn level_target(&self, level: usize) -> u64 {
        let mut t = self.base_level_size;
        for _ in 1..level {
            t = t.saturating_mul(self.level_size_ratio);
        }
        t
    }
}

/// One decided compaction: the caller turns it into a job on the version
/// it picked from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pick<F> {
    /// The keyspace whose levels were picked from.
    pub keyspace: u32,
    /// The score that won (at least 1).
    pub score: f64,
    /// Input files with their levels: the picked level's files first (L0
    /// newest first), then the overlapping files of the level below, in
    /// that level's order.
    pub inputs: Vec<(usize, F)>,
    /// The level the outputs go to: one below the picked level.
    pub output_level: usize,
    /// Move the single input down without rewriting it: nothing below
    /// overlaps it.
    pub trivial: bool,
}

impl<F: PickFile> fmt::Display for Pick<F> {
    /// `keyspace 0: L1 -> L2 score=1.50 inputs=L1:7 L2:3,4 trivial=false`,
    /// for logs and test files.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "keyspace {}: L{} -> L{} score={:.2} inputs=",
            self.keyspace,
            self.output_level - 1,
            self.output_level,
            self.score
        )?;
        let mut level = None;
        for (l, file) in &self.inputs {
            if level == Some(*l) {
                write!(f, ",{}", file.number())?;
            } else {
                if level.is_some() {
                    f.write_str(" ")?;
                }
                write!(f, "L{l}:{}", file.number())?;
                level = Some(*l);
            }
        }
        write!(f, " trivial={}", self.trivial)
    }
}

/// The bytes of one level, which its score is computed from.
pub(crate) fn level_bytes<F: PickFile>(files: &[F]) -> u64 {
    files.iter().map(|f| f.size()).sum()
}

/// The score of `level` (not the last one) among `levels`: how urgently it
/// needs compacting; at least 1 means it must be.
pub(crate) fn score<F: PickFile>(levels: &[Vec<F>], level: usize, opts: &PickerOptions) -> f64 {
    if level == 0 {
        levels[0].len() as f64 / opts.l0_compaction_trigger as f64
    } else {
        level_bytes(&levels[level]) as f64 / opts.level_target(level) as f64
    }
}

/// The user-key range `[smallest, largest]` covered by `files` (empty keys
/// for no file): what the level below must be merged over.
pub(crate) fn key_range<F: PickFile>(files: &[(usize, F)]) -> (Vec<u8>, Vec<u8>) {
    let lo = files
        .iter()
        .map(|(_, f)| f.smallest_user_key())
        .min()
        .unwrap_or_default()
        .to_vec();
    let hi = files
        .iter()
        .map(|(_, f)| f.largest_user_key())
        .max()
        .unwrap_or_default()
        .to_vec();
    (lo, hi)
}

/// The files of one level (`None`: a level that does not exist) whose
/// user-key range meets `[lo, hi]`, in the level's order: those a
/// compaction over that range must take in.
pub(crate) fn overlapping<F: PickFile>(files: &[F], lo: &[u8], hi: &[u8]) -> Vec<F> {
    files
        .iter()
        .filter(|f| f.overlaps(lo, hi))
        .cloned()
        .collect()
}

/// Picks the most urgent compaction over `keyspaces` (id and levels, by id
/// ascending: the order ties are broken in; L0 newest first, deeper levels
/// sorted by key), or none when no level scores at least 1. A pick from
/// level n ≥ 1 advances that level's entry in `pointers` (keyed by
/// keyspace id and level) to the picked file's largest user key.
pub(crate) fn pick<'a, F: PickFile + 'a>(
    keyspaces: impl IntoIterator<Item = (u32, &'a [Vec<F>])>,
    opts: &PickerOptions,
    pointers: &mut HashMap<(u32, usize), Vec<u8>>,
) -> Option<Pick<F>> {
    let mut best: Option<(f64, u32, &'a [Vec<F>], usize)> = None;
    for (id, levels) in keyspaces {
        // The last level has nowhere to go.
        let last = levels.len().saturating_sub(1);
        for level in 0..last {
            let score = score(levels, level, opts);
            if score >= 1.0 && best.as_ref().is_none_or(|b| score > b.0) {
                best = Some((score, id, levels, level));
            }
        }
    }
    let (score, keyspace, levels, level) = best?;
    let mut inputs: Vec<(usize, F)> = if level == 0 {
        levels[0].iter().map(|f| (0, f.clone())).collect()
    } else {
        let files = &levels[level];
        let pointer = pointers
            .get(&(keyspace, level))
            .map_or(&[][..], Vec::as_slice);
        let f = files
            .iter()
            .find(|f| f.smallest_user_key() > pointer)
            .or_else(|| files.first())?
            .clone();
        pointers.insert((keyspace, level), f.largest_user_key().to_vec());
        vec![(level, f)]
    };
    let (lo, hi) = key_range(&inputs);
    let below = overlapping(
        levels.get(level + 1).map_or(&[][..], Vec::as_slice),
        &lo,
        &hi,
    );
    let trivial = below.is_empty() && inputs.len() == 1;
    inputs.extend(below.into_iter().map(|f| (level + 1, f)));
    Some(Pick {
        keyspace,
        score,
        inputs,
        output_level: level + 1,
        trivial,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::{BTreeMap, HashSet};
    use std::fmt::Write as _;

    use proptest::prelude::*;

    use super::*;
    use crate::policy::datadriven::{self, Case};

    /// A file as the tests describe it: `number:smallest-largest/size`.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub(crate) struct TestFile {
        number: u64,
        size: u64,
        smallest: Vec<u8>,
        largest: Vec<u8>,
    }

    impl PickFile for TestFile {
        fn number(&self) -> u64 {
            self.number
        }
        fn size(&self) -> u64 {
            self.size
        }
        fn smallest_user_key(&self) -> &[u8] {
            &self.smallest
        }
        fn largest_user_key(&self) -> &[u8] {
            &self.largest
        }
    }

    impl fmt::Display for TestFile {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(
                f,
                "{}:{}-{}/{}",
                self.number,
                String::from_utf8_lossy(&self.smallest),
                String::from_utf8_lossy(&self.largest),
                self.size
            )
        }
    }

    pub(crate) fn parse_file(c: &Case, spec: &str) -> TestFile {
        let bad = || {
            c.fail(format!(
                "bad file {spec:?}: want number:smallest-largest/size"
            ))
        };
        let (number, rest) = spec.split_once(':').unwrap_or_else(bad);
        let (range, size) = rest.split_once('/').unwrap_or_else(bad);
        let (lo, hi) = range.split_once('-').unwrap_or_else(bad);
        if lo > hi {
            c.fail(format!("file {spec:?}: smallest key above largest"));
        }
        TestFile {
            number: c.parse("file number", number),
            size: c.parse("file size", size),
            smallest: lo.as_bytes().to_vec(),
            largest: hi.as_bytes().to_vec(),
        }
    }

    /// The state a compaction test file builds up.
    #[derive(Default)]
    struct State {
        opts: Option<PickerOptions>,
        keyspaces: BTreeMap<u32, Vec<Vec<TestFile>>>,
        pointers: HashMap<(u32, usize), Vec<u8>>,
    }

    impl State {
        /// `define l0_trigger=N base=N ratio=N levels=N` with lines
        /// `keyspace ID` and `Ln: file file ...`.
        fn define(&mut self, c: &Case) -> String {
            let opts = PickerOptions {
                l0_compaction_trigger: c.get_or("l0_trigger", 4),
                base_level_size: c.get_or("base", 1000),
                level_size_ratio: c.get_or("ratio", 10),
            };
            let num_levels: usize = c.get_or("levels", 4);
            self.opts = Some(opts);
            self.keyspaces.clear();
            self.pointers.clear();
            let mut ks = 0;
            for line in &c.input {
                if let Some(id) = line.strip_prefix("keyspace ") {
                    ks = c.parse("keyspace", id.trim());
                    self.keyspaces
                        .entry(ks)
                        .or_insert_with(|| vec![Vec::new(); num_levels]);
                    continue;
                }
                let Some((level, files)) = line.split_once(':') else {
                    c.fail(format!("bad line {line:?}"));
                };
                let level: usize = c.parse("level", level.trim().trim_start_matches('L'));
                if level >= num_levels {
                    c.fail(format!("L{level} beyond levels={num_levels}"));
                }
                let files: Vec<_> = files.split_whitespace().map(|f| parse_file(c, f)).collect();
                if level > 0 {
                    for w in files.windows(2) {
                        if w[0].largest >= w[1].smallest {
                            c.fail(format!(
                                "L{level}: {} and {} overlap or are out of order",
                                w[0], w[1]
                            ));
                        }
                    }
                }
                self.keyspaces
                    .entry(ks)
                    .or_insert_with(|| vec![Vec::new(); num_levels])[level] = files;
            }
            self.describe(&opts)
        }

        fn describe(&self, opts: &PickerOptions) -> String {
            let mut out = String::new();
            for (id, levels) in &self.keyspaces {
                let _ = writeln!(out, "keyspace {id}");
                let last = levels.len() - 1;
                for (level, files) in levels.iter().enumerate() {
                    let _ = write!(out, "  L{level}:");
                    if level == 0 {
                        let _ = write!(out, " files={}", files.len());
                    } else {
                        let _ = write!(
                            out,
                            " bytes={} target={}",
                            level_bytes(files),
                            opts.level_target(level)
                        );
                    }
                    if level == last {
                        let _ = writeln!(out, " (last)");
                    } else {
                        let _ = writeln!(out, " score={:.2}", score(levels, level, opts));
                    }
                }
            }
            out
        }

        /// `pick`: the decision, and the pointer it moved.
        fn pick(&mut self, c: &Case) -> String {
            let opts = self.opts.unwrap_or_else(|| c.fail("pick before define"));
            let before = self.pointers.clone();
            let picked = pick(
                self.keyspaces.iter().map(|(id, l)| (*id, l.as_slice())),
                &opts,
                &mut self.pointers,
            );
            let mut out = match picked {
                None => "none\n".to_string(),
                Some(p) => format!("{p}\n"),
            };
            let mut moved: Vec<_> = self
                .pointers
                .iter()
                .filter(|(k, v)| before.get(k) != Some(v))
                .collect();
            moved.sort();
            for ((ks, level), key) in moved {
                let _ = writeln!(
                    out,
                    "pointer keyspace {ks} L{level} = {}",
                    String::from_utf8_lossy(key)
                );
            }
            out
        }

        /// `set-pointer keyspace=ID level=N key=K`.
        fn set_pointer(&mut self, c: &Case) -> String {
            let key: String = c.get("key");
            self.pointers
                .insert((c.get_or("keyspace", 0), c.get("level")), key.into_bytes());
            "ok\n".into()
        }
    }

    #[test]
    fn compaction_testdata() {
        let mut st = State::default();
        datadriven::run("compaction.txt", |c| match c.cmd.as_str() {
            "define" => st.define(c),
            "pick" => st.pick(c),
            "set-pointer" => st.set_pointer(c),
            _ => c.fail("unknown command"),
        });
    }

    #[test]
    fn level_target_matches_options() {
        for (base, ratio) in [(1, 2), (256 << 20, 10), (u64::MAX / 3, 7)] {
            let opts = Options {
                base_level_size: base,
                level_size_ratio: ratio,
                ..Options::default()
            };
            let p = PickerOptions::from_options(&opts);
            for level in 1..12 {
                assert_eq!(p.level_target(level), opts.level_target(level));
            }
        }
    }

    #[test]
    fn key_range_of_nothing_is_empty() {
        let none: [(usize, TestFile); 0] = [];
        assert_eq!(key_range(&none), (Vec::new(), Vec::new()));
    }

    /// The engine's picker as it was written inline in `DbInner::pick`
    /// (with `Levels::overlapping` and the old `key_range`), over test
    /// files: the reference the pure picker must agree with.
    mod old {
        use super::*;

        pub(super) struct Job {
            pub ks: u32,
            pub inputs: Vec<(usize, TestFile)>,
            pub output_level: usize,
            pub trivial: bool,
        }

        fn overlaps(f: &TestFile, lo: &[u8], hi: &[u8]) -> bool {
            f.smallest.as_slice() <= hi && f.largest.as_slice() >= lo
        }

        fn level_bytes(levels: &[Vec<TestFile>], level: usize) -> u64 {
            levels
                .get(level)
                .map_or(0, |l| l.iter().map(|f| f.size).sum())
        }

        fn overlapping(
            levels: &[Vec<TestFile>],
            level: usize,
            lo: &[u8],
            hi: &[u8],
        ) -> Vec<TestFile> {
            levels
                .get(level)
                .map(|files| {
                    files
                        .iter()
                        .filter(|f| overlaps(f, lo, hi))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default()
        }

        fn key_range(files: &[(usize, TestFile)]) -> (Vec<u8>, Vec<u8>) {
            let lo = files
                .iter()
                .map(|(_, f)| f.smallest.as_slice())
                .min()
                .unwrap_or_default()
                .to_vec();
            let hi = files
                .iter()
                .map(|(_, f)| f.largest.as_slice())
                .max()
                .unwrap_or_default()
                .to_vec();
            (lo, hi)
        }

        pub(super) fn pick(
            vs: &BTreeMap<u32, Vec<Vec<TestFile>>>,
            live: &HashSet<u32>,
            opts: &Options,
            pointers: &mut HashMap<(u32, usize), Vec<u8>>,
        ) -> Option<Job> {
            let mut best: Option<(f64, u32, &Vec<Vec<TestFile>>, usize)> = None;
            for (id, levels) in vs {
                if !live.contains(id) {
                    continue;
                }
                let last = levels.len() - 1;
                for level in 0..last {
                    let score = if level == 0 {
                        levels[0].len() as f64 / opts.l0_compaction_trigger as f64
                    } else {
                        level_bytes(levels, level) as f64 / opts.level_target(level) as f64
                    };
                    if score >= 1.0 && best.as_ref().is_none_or(|b| score > b.0) {
                        best = Some((score, *id, levels, level));
                    }
                }
            }
            let (_, ks, levels, level) = best?;
            let mut inputs: Vec<(usize, TestFile)> = if level == 0 {
                levels[0].iter().map(|f| (0, f.clone())).collect()
            } else {
                let files = &levels[level];
                let pointer = pointers.get(&(ks, level)).cloned().unwrap_or_default();
                let f = files
                    .iter()
                    .find(|f| f.smallest.as_slice() > pointer.as_slice())
                    .or_else(|| files.first())?
                    .clone();
                pointers.insert((ks, level), f.largest.clone());
                vec![(level, f)]
            };
            let (lo, hi) = key_range(&inputs);
            let below = overlapping(levels, level + 1, &lo, &hi);
            let trivial = below.is_empty() && inputs.len() == 1;
            inputs.extend(below.into_iter().map(|f| (level + 1, f)));
            Some(Job {
                ks,
                inputs,
                output_level: level + 1,
                trivial,
            })
        }
    }

    /// Short keys over a small alphabet, so ranges meet and ties happen.
    fn key() -> impl Strategy<Value = Vec<u8>> {
        prop::collection::vec(b'a'..b'f', 1..3)
    }

    /// One keyspace's levels: L0 files with any ranges, deeper levels with
    /// disjoint sorted ranges; sizes from a few values so scores tie.
    fn keyspace_levels() -> impl Strategy<Value = Vec<Vec<TestFile>>> {
        (2usize..6)
            .prop_flat_map(|n| {
                let l0 = prop::collection::vec((key(), key(), 0usize..4), 0..7);
                let deeper = prop::collection::vec(
                    (
                        prop::collection::btree_set(key(), 0..12),
                        prop::collection::vec((0usize..4, any::<bool>()), 12),
                    ),
                    n - 1,
                );
                (l0, deeper)
            })
            .prop_map(|(l0, deeper)| {
                const SIZES: [u64; 4] = [1, 50, 100, 200];
                let mut number = 0;
                let mut next = || {
                    number += 1;
                    number
                };
                let mut levels = Vec::new();
                levels.push(
                    l0.into_iter()
                        .map(|(a, b, s)| TestFile {
                            number: next(),
                            size: SIZES[s],
                            smallest: a.clone().min(b.clone()),
                            largest: a.max(b),
                        })
                        .collect(),
                );
                for (keys, shapes) in deeper {
                    // Sorted distinct keys, cut into files of one key or
                    // two: disjoint ranges in key order.
                    let keys: Vec<_> = keys.into_iter().collect();
                    let mut files = Vec::new();
                    let mut i = 0;
                    for (s, single) in shapes {
                        let width = if single { 1 } else { 2 };
                        let Some(k) = keys.get(i..i + width) else {
                            break;
                        };
                        files.push(TestFile {
                            number: next(),
                            size: SIZES[s],
                            smallest: k[0].clone(),
                            largest: k[width - 1].clone(),
                        });
                        i += width;
                    }
                    levels.push(files);
                }
                levels
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// The pure picker decides exactly as the engine's inline picker
        /// did, including the pointers it leaves, over successive picks.
        #[test]
        fn pick_matches_old_picker(
            keyspaces in prop::collection::btree_map(0u32..5, keyspace_levels(), 1..4),
            twins in prop::collection::vec((0u32..5, 5u32..8), 0..3),
            dead in prop::collection::hash_set(0u32..8, 0..2),
            trigger in 1usize..5,
            base in prop_oneof![3 => prop::sample::select(vec![50u64, 100, 200]), 1 => 1u64..1200],
            ratio in 2u64..6,
            start in prop::collection::vec((0u32..5, 1usize..5, key()), 0..6),
            rounds in 1usize..5,
        ) {
            let opts = Options {
                l0_compaction_trigger: trigger,
                base_level_size: base,
                level_size_ratio: ratio,
                ..Options::default()
            };
            // Copies of a keyspace under a higher id tie with it.
            let mut keyspaces = keyspaces;
            for (from, to) in twins {
                if let Some(levels) = keyspaces.get(&from).cloned() {
                    keyspaces.insert(to, levels);
                }
            }
            let live: HashSet<u32> = keyspaces.keys().copied().filter(|k| !dead.contains(k)).collect();
            let mut old_pointers: HashMap<(u32, usize), Vec<u8>> =
                start.into_iter().map(|(ks, l, k)| ((ks, l), k)).collect();
            let mut new_pointers = old_pointers.clone();
            let popts = PickerOptions::from_options(&opts);
            for _ in 0..rounds {
                let old = old::pick(&keyspaces, &live, &opts, &mut old_pointers);
                let new = pick(
                    keyspaces
                        .iter()
                        .filter(|(id, _)| live.contains(id))
                        .map(|(id, l)| (*id, l.as_slice())),
                    &popts,
                    &mut new_pointers,
                );
                match (old, new) {
                    (None, None) => {}
                    (Some(o), Some(n)) => {
                        prop_assert_eq!(o.ks, n.keyspace);
                        prop_assert_eq!(&o.inputs, &n.inputs);
                        prop_assert_eq!(o.output_level, n.output_level);
                        prop_assert_eq!(o.trivial, n.trivial);
                    }
                    (o, n) => prop_assert!(
                        false,
                        "old picked {:?}, new picked {:?}",
                        o.map(|o| o.inputs),
                        n.map(|n| n.to_string())
                    ),
                }
                prop_assert_eq!(&old_pointers, &new_pointers);
            }
        }
    }
}
