//! A small data-driven test runner in the style of Pebble's `datadriven`
//! package, so a policy's decisions are pinned as readable text files
//! (`testdata/*.txt`) and a deliberate policy change shows up as a diff.
//!
//! A file is a sequence of cases separated by blank lines; `#` lines
//! between cases are comments. A case is a command line (`name key=value
//! key=a,b flag`), optional input lines, a `----` line, and the expected
//! output, which ends at the next blank line:
//!
//! ```text
//! # An L0 at its trigger is compacted into L1.
//! define l0_trigger=2
//! L0: 2:b-d/10 1:a-c/10
//! ----
//! ...
//! ```
//!
//! With `STRATA_REWRITE=1` in the environment the expected outputs are
//! replaced by the actual ones instead of compared.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;

/// One case of a test file, handed to the test's handler.
pub(crate) struct Case {
    /// `file:line` of the command, for failure messages.
    pub(crate) pos: String,
    /// The command line as written.
    pub(crate) line: String,
    /// The command (first word of the command line).
    pub(crate) cmd: String,
    /// `key=value` arguments in order; a bare word has an empty value.
    pub(crate) args: Vec<(String, String)>,
    /// The input lines between the command and `----`.
    pub(crate) input: Vec<String>,
}

impl Case {
    /// Fails the test at this case's position.
    pub(crate) fn fail(&self, msg: impl std::fmt::Display) -> ! {
        panic!("{}: {}: {msg}", self.pos, self.line)
    }

    /// The raw value of argument `key`, if given.
    pub(crate) fn raw(&self, key: &str) -> Option<&str> {
        self.args
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// True when `key` was given (with or without a value).
    pub(crate) fn has(&self, key: &str) -> bool {
        self.raw(key).is_some()
    }

    /// Argument `key` parsed, or `default` when absent.
    pub(crate) fn get_or<T: FromStr>(&self, key: &str, default: T) -> T {
        match self.raw(key) {
            None => default,
            Some(v) => self.parse(key, v),
        }
    }

    /// Argument `key` parsed; fails the test when absent.
    pub(crate) fn get<T: FromStr>(&self, key: &str) -> T {
        match self.raw(key) {
            None => self.fail(format!("missing argument {key}")),
            Some(v) => self.parse(key, v),
        }
    }

    /// Argument `key` as a comma-separated list (empty when absent).
    pub(crate) fn list<T: FromStr>(&self, key: &str) -> Vec<T> {
        match self.raw(key) {
            None | Some("") => Vec::new(),
            Some(v) => v.split(',').map(|x| self.parse(key, x)).collect(),
        }
    }

    /// Parses `v`, failing the test with the argument's name.
    pub(crate) fn parse<T: FromStr>(&self, what: &str, v: &str) -> T {
        v.parse()
            .unwrap_or_else(|_| self.fail(format!("cannot parse {what}={v:?}")))
    }
}

/// Where the expected output of one case sits in the file's lines.
struct Slot {
    /// Index of the first output line.
    start: usize,
    /// Index one past the last output line.
    end: usize,
    actual: String,
}

/// Runs every case of `testdata/<name>` through `handler`, which returns
/// the case's output, and compares (or, with `STRATA_REWRITE`, rewrites)
/// the expected outputs. Fails with `file:line`, expected and actual for
/// every mismatch.
pub(crate) fn run(name: &str, mut handler: impl FnMut(&Case) -> String) {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "src/policy/testdata", name]
        .iter()
        .collect();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let rewrite = std::env::var("STRATA_REWRITE").is_ok_and(|v| !v.is_empty() && v != "0");
    let lines: Vec<&str> = text.lines().collect();
    let mut slots = Vec::new();
    let mut failures = String::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim_end();
        if l.is_empty() || l.starts_with('#') {
            i += 1;
            continue;
        }
        let pos = format!("{}:{}", path.display(), i + 1);
        let mut words = l.split_whitespace();
        let cmd = words.next().unwrap_or_default().to_string();
        let args = words
            .map(|w| match w.split_once('=') {
                Some((k, v)) => (k.to_string(), v.to_string()),
                None => (w.to_string(), String::new()),
            })
            .collect();
        let mut input = Vec::new();
        i += 1;
        while i < lines.len() && lines[i].trim_end() != "----" {
            if lines[i].trim().is_empty() {
                panic!("{}:{}: blank line before ----", path.display(), i + 1);
            }
            input.push(lines[i].trim_end().to_string());
            i += 1;
        }
        if i == lines.len() {
            panic!("{pos}: {l}: no ---- line");
        }
        i += 1;
        let start = i;
        while i < lines.len() && !lines[i].trim().is_empty() {
            i += 1;
        }
        let expected: String = lines[start..i]
            .iter()
            .map(|l| format!("{}\n", l.trim_end()))
            .collect();
        let case = Case {
            pos,
            line: l.to_string(),
            cmd,
            args,
            input,
        };
        let actual: String = handler(&case)
            .lines()
            .map(|l| format!("{}\n", l.trim_end()))
            .collect();
        if actual.lines().any(|l| l.is_empty()) {
            case.fail("output has a blank line, which would end the case");
        }
        if actual != expected {
            let _ = write!(
                failures,
                "\n{}: {}\nexpected:\n{expected}actual:\n{actual}",
                case.pos, case.line
            );
        }
        slots.push(Slot {
            start,
            end: i,
            actual,
        });
    }
    if rewrite {
        let mut out = String::new();
        let mut next = 0;
        for s in &slots {
            for l in &lines[next..s.start] {
                out.push_str(l);
                out.push('\n');
            }
            out.push_str(&s.actual);
            next = s.end;
        }
        for l in &lines[next..] {
            out.push_str(l);
            out.push('\n');
        }
        if out != text {
            std::fs::write(&path, out)
                .unwrap_or_else(|e| panic!("cannot rewrite {}: {e}", path.display()));
        }
        return;
    }
    if !failures.is_empty() {
        panic!("{failures}\n(STRATA_REWRITE=1 accepts the actual outputs)");
    }
}

mod tests {
    use super::*;

    #[test]
    fn runner_parses_and_compares() {
        let mut seen = Vec::new();
        run("datadriven.txt", |c| {
            seen.push(c.cmd.clone());
            match c.cmd.as_str() {
                "echo" => c.input.join("\n"),
                "sum" => c.list::<u64>("of").iter().sum::<u64>().to_string(),
                "args" => c.args.iter().map(|(k, v)| format!("{k}={v:?}\n")).collect(),
                _ => c.fail("unknown command"),
            }
        });
        assert_eq!(seen, ["echo", "sum", "args", "echo"]);
    }
}
