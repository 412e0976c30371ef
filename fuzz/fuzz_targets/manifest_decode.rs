//! Decodes arbitrary bytes as a manifest record; what decodes must encode
//! back to the same record.
#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_format::manifest::VersionEdit;

fuzz_target!(|data: &[u8]| {
    if let Ok(edit) = VersionEdit::decode(data, 0) {
        let again = VersionEdit::decode(&edit.encode(), 0).expect("re-encoded record decodes");
        assert_eq!(again, edit);
    }
});
