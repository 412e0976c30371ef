//! Decodes arbitrary bytes as a manifest record and re-encodes it.
//! The body lives in `src/targets.rs`, shared with the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/targets.rs"]
mod targets;

fuzz_target!(|data: &[u8]| targets::manifest_decode(data));
