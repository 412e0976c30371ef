//! Helpers shared by the root crate's integration tests.
#![allow(dead_code)]

use std::process::Command;

/// Runs the `strata` binary as a user would: exit code, stdout, stderr.
pub fn strata(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
