//! Walks arbitrary bytes as a data block: seeks, forward and backward.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use strata_format::block::Block;
use strata_format::key::compare_internal;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (probe, block) = rest.split_at((split as usize).min(rest.len()) / 8);
    let Ok(block) = Block::new(Bytes::copy_from_slice(block), 0) else {
        return;
    };
    let mut it = block.iter(compare_internal);
    let mut steps = 0usize;
    if it.seek_to_first().is_ok() {
        while it.valid() && it.next().is_ok() {
            steps += 1;
        }
    }
    assert!(steps <= block.size(), "more entries than bytes");
    if it.seek_to_last().is_ok() {
        while it.valid() && it.prev().is_ok() {}
    }
    let _ = it.seek(probe);
});
