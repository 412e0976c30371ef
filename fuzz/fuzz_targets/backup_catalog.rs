//! Decodes arbitrary bytes as a backup catalog and re-encodes it.
//! The body lives in `src/targets.rs`, shared with the corpus replay test.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../src/targets.rs"]
mod targets;

fuzz_target!(|data: &[u8]| targets::backup_catalog(data));
