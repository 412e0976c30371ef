//! Which blob files a compaction empties: those most of whose bytes no SST
//! points to any more. A compaction that meets a pointer into one copies
//! the value into a blob file of its own (SPEC §13.8), and once nothing
//! points into the old file it is deleted.
//!
//! Garbage in a blob file is known exactly: the bytes SSTs point to in it
//! are recorded per SST, and a value overwritten or deleted stops being
//! counted when the compaction that drops its pointer is installed.

use std::collections::BTreeSet;

use strata_format::blob::BLOB_HEADER_LEN;

/// The blob files to empty, of `usage` (number, size in bytes with the
/// header, bytes SSTs point to): those whose dead share of their records'
/// bytes is at least `ratio`.
pub(crate) fn victims(usage: &[(u64, u64, u64)], ratio: f64) -> BTreeSet<u64> {
    usage
        .iter()
        .filter(|&&(_, size, live)| {
            let records = size.saturating_sub(BLOB_HEADER_LEN as u64);
            let dead = records.saturating_sub(live);
            records > 0 && dead as f64 >= ratio * records as f64
        })
        .map(|&(n, _, _)| n)
        .collect()
}

#[cfg(test)]
mod tests {
    use std::fmt::Write as _;

    use super::super::datadriven::{self, Case};
    use super::*;

    /// `victims ratio=R`, one `number size live` line per blob file:
    /// prints the files to empty.
    fn run(c: &Case) -> String {
        let usage: Vec<(u64, u64, u64)> = c
            .input
            .iter()
            .map(|line| {
                let v: Vec<u64> = line
                    .split_whitespace()
                    .map(|x| c.parse("number", x))
                    .collect();
                match v[..] {
                    [n, size, live] => (n, size, live),
                    _ => c.fail(format!("bad line {line:?}")),
                }
            })
            .collect();
        let picked = victims(&usage, c.get("ratio"));
        if picked.is_empty() {
            return "none\n".into();
        }
        let mut out = String::new();
        for n in picked {
            let _ = writeln!(out, "empty {n}");
        }
        out
    }

    #[test]
    fn blob_testdata() {
        datadriven::run("blob.txt", |c| match c.cmd.as_str() {
            "victims" => run(c),
            _ => c.fail("unknown command"),
        });
    }
}
