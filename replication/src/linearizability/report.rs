//! How histories and verdicts print: for people reading a failing test.

use std::fmt;

use super::{Entry, Op, Outcome, Output, Report};

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Linearizable => f.write_str("linearizable"),
            Outcome::Violation(report) => report.fmt(f),
            Outcome::Undecided { key } => write!(
                f,
                "undecided: the search for key {} ran out of steps",
                Bytes(key)
            ),
        }
    }
}

/// Steps of the prefix, and operations around where it stops, shown unless
/// the alternate form asks for everything.
const SHOWN: usize = 20;

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let all = f.alternate();
        let pending = self.history.iter().filter(|e| e.ret.is_none()).count();
        writeln!(
            f,
            "the history of key {} is not linearizable ({} operations, {} without a reply)",
            Bytes(&self.key),
            self.history.len(),
            pending
        )?;
        let mut in_prefix = vec![false; self.history.len()];
        for &i in &self.prefix {
            in_prefix[i] = true;
        }
        let linearized = self
            .prefix
            .iter()
            .filter(|&&i| self.history[i].ret.is_some())
            .count();
        writeln!(
            f,
            "longest linearizable prefix: {} of {} answered operations, {} unanswered ones \
             (=> the value after each):",
            linearized,
            self.history.len() - pending,
            self.prefix.len() - linearized
        )?;
        let skip = if all {
            0
        } else {
            self.prefix.len().saturating_sub(SHOWN)
        };
        if skip > 0 {
            writeln!(f, "  ... {skip} steps before these")?;
        }
        let mut value: Option<Vec<u8>> = None;
        for (n, &i) in self.prefix.iter().enumerate() {
            let entry = &self.history[i];
            value = apply(&value, &entry.op, entry.output.as_ref());
            if n >= skip {
                writeln!(f, "  #{i:<5} {}  => {}", Line(entry), Value(&value))?;
            }
        }
        // Where the search got stuck: the earliest reply left out.
        let first_left = (0..self.history.len())
            .filter(|&i| !in_prefix[i])
            .filter_map(|i| Some((self.history[i].ret?, i)))
            .min();
        let stuck = first_left.map_or(u64::MAX, |(ret, _)| ret);
        if let Some((_, i)) = first_left {
            writeln!(f, "the earliest reply it leaves out:")?;
            writeln!(f, "  #{i:<5} {}", Line(&self.history[i]))?;
        }
        // From the earliest call among the answered steps shown; unanswered
        // writes called before stay, as they may take effect any time.
        let from = self.prefix[skip..]
            .iter()
            .map(|&i| &self.history[i])
            .filter(|e| e.ret.is_some())
            .map(|e| e.call)
            .min()
            .unwrap_or(0);
        let shown = |e: &Entry| {
            let relevant = match e.ret {
                Some(ret) => ret >= from,
                None => e.call >= from || !matches!(e.op, Op::Get { .. }),
            };
            all || (e.call <= stuck && relevant)
        };
        writeln!(f, "operations in call order (* marks those in the prefix):")?;
        // A few operations called after it, for context.
        let mut later = SHOWN / 4;
        let (mut before, mut after) = (0, 0);
        for (i, entry) in self.history.iter().enumerate() {
            if !shown(entry) {
                if entry.call <= stuck {
                    before += 1;
                    continue;
                }
                if later == 0 {
                    after += 1;
                    continue;
                }
                later -= 1;
            }
            if before > 0 {
                writeln!(f, "  ... {before} earlier")?;
                before = 0;
            }
            let mark = if in_prefix[i] { '*' } else { ' ' };
            writeln!(f, "{mark} #{i:<5} {}", Line(entry))?;
        }
        if before > 0 {
            writeln!(f, "  ... {before} earlier")?;
        }
        if after > 0 {
            writeln!(f, "  ... {after} called later")?;
        }
        Ok(())
    }
}

/// The register's value after `op`, answered with `output` (`None`:
/// unknown), from `value`; for reports, which replay a found prefix.
fn apply(value: &Option<Vec<u8>>, op: &Op, output: Option<&Output>) -> Option<Vec<u8>> {
    match op {
        Op::Get { .. } => value.clone(),
        Op::Put { value: new, .. } => new.clone(),
        Op::Cas { expected, new, .. } => {
            let swapped = match output {
                Some(Output::Cas(swapped)) => *swapped,
                _ => value == expected,
            };
            if swapped {
                new.clone()
            } else {
                value.clone()
            }
        }
    }
}

/// Bytes as a person reads them: quoted UTF-8 when printable, else hex.
pub(super) struct Bytes<'a>(pub(super) &'a [u8]);

impl fmt::Display for Bytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match std::str::from_utf8(self.0) {
            Ok(s) if !s.chars().any(char::is_control) => write!(f, "{s:?}"),
            _ => {
                f.write_str("0x")?;
                self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

/// A register value: its bytes, or `absent`.
struct Value<'a>(&'a Option<Vec<u8>>);

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(v) => Bytes(v).fmt(f),
            None => f.write_str("absent"),
        }
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Get { key } => write!(f, "get {}", Bytes(key)),
            Op::Put { key, value: None } => write!(f, "delete {}", Bytes(key)),
            Op::Put {
                key,
                value: Some(v),
            } => write!(f, "put {} = {}", Bytes(key), Bytes(v)),
            Op::Cas { key, expected, new } => write!(
                f,
                "cas {} {} -> {}",
                Bytes(key),
                Value(expected),
                Value(new)
            ),
        }
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Output::Get(v) => Value(v).fmt(f),
            Output::Put => f.write_str("ok"),
            Output::Cas(true) => f.write_str("swapped"),
            Output::Cas(false) => f.write_str("not swapped"),
        }
    }
}

/// An entry as one line of a report: client, interval, operation, answer.
pub(super) struct Line<'a>(pub(super) &'a Entry);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.0;
        let interval = match e.ret {
            Some(ret) => format!("{}..{}", e.call, ret),
            None => format!("{}..", e.call),
        };
        write!(f, "client {:<3} {:<13} {}", e.client, interval, e.op)?;
        match &e.output {
            Some(output) => write!(f, "  -> {output}"),
            None => f.write_str("  -> (no reply)"),
        }
    }
}
