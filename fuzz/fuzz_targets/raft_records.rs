//! Decodes arbitrary bytes as each record of a replicated node and
//! re-encodes what decodes. The body lives in `src/targets.rs`, shared with
//! the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/targets.rs"]
mod targets;

fuzz_target!(|data: &[u8]| targets::raft_records(data));
