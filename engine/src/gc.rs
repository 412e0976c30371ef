//! Garbage collection during flushes and compactions: the merge loop that
//! copies what some reader can still see and drops the rest.

use strata_format::key::InternalKeyRef;
use strata_format::range_del::RangeTombstones;

use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::policy::gc::{range_shadowed, GcPoints, GcState};
use crate::table_sink::TableSink;

/// Copies the entries under `cursor` (positioned) to `sink`, dropping what
/// no reader can see: in each stripe between read points only the newest
/// version of a key is kept, and in the lowest stripe not even that one
/// when it is a tombstone (or expired by then) and `bottommost` says no
/// older data of the key can lie below. A version a range tombstone of
/// `dels` (the job's, before collection) hides in its stripe goes too.
/// Copying stops before user key `end` when one is given (a range of a
/// compaction cut into parts). Returns the bytes read.
pub(crate) fn copy_live(
    cursor: &mut dyn Cursor,
    sink: &mut TableSink<'_>,
    points: &GcPoints,
    bottommost: &dyn Fn(&[u8]) -> bool,
    dels: &RangeTombstones,
    end: Option<&[u8]>,
    stop: &dyn Fn() -> bool,
) -> Result<u64> {
    let mut gc = GcState::new();
    let mut read = 0u64;
    let mut steps = 0u32;
    while cursor.valid() {
        steps = steps.wrapping_add(1);
        if steps.is_multiple_of(1024) && stop() {
            return Err(Error::Closed);
        }
        let key = cursor.key();
        let value = cursor.value_ref();
        let k = InternalKeyRef::parse(key).map_err(|e| Error::format("<merge input>", e))?;
        if end.is_some_and(|e| k.user_key >= e) {
            break;
        }
        read += (key.len() + value.len()) as u64;
        if gc
            .decide(points, k.user_key, k.ts, k.kind, value, bottommost)
            .keeps()
            && (dels.is_empty() || !range_shadowed(points, dels, k.user_key, k.ts))
        {
            sink.add(key, value)?;
        }
        cursor.next()?;
    }
    Ok(read)
}
