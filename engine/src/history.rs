//! Listing the versions of one key.

use strata_format::key::{encode_internal_key, InternalKeyRef, ValueKind, MAX_TIMESTAMP};

use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::keyspace::Version;
use crate::timestamp::Timestamp;
use crate::view::{ttl_expiry, ReadView};

/// The versions of `key` visible in `view`, newest first, down to the one in
/// effect at `oldest`. A range tombstone covering the key is a version
/// without a value at its timestamp, unless the key has a version of its
/// own there (a write of the same batch, which the tombstone does not
/// hide).
pub(crate) fn versions(view: &ReadView, key: &[u8], oldest: u64) -> Result<Vec<Version>> {
    let mut ranged = view
        .range_tombstones()?
        .all_covering(key)?
        .into_iter()
        .peekable();
    let deleted = |ts: u64| Version {
        ts: Timestamp(ts),
        value: None,
        expires_at: None,
    };
    let mut c = view.merged_cursor()?;
    let mut start = Vec::with_capacity(key.len() + 9);
    encode_internal_key(&mut start, key, MAX_TIMESTAMP, ValueKind::MAX);
    c.seek(&start)?;
    let mut out = Vec::new();
    while c.valid() {
        let k = InternalKeyRef::parse(c.key()).map_err(|e| Error::format("<merged view>", e))?;
        if k.user_key != key {
            break;
        }
        if k.ts <= view.ts() {
            // Range tombstones newer than this version come first.
            while let Some(t) = ranged.next_if(|&t| t > k.ts) {
                out.push(deleted(t));
                if t <= oldest {
                    return Ok(out);
                }
            }
            ranged.next_if_eq(&k.ts);
            let (kind, value) = view.load(k.kind, c.value())?;
            out.push(match kind {
                // Loaded values are puts; range deletes are kept apart
                // from the entries.
                ValueKind::Delete | ValueKind::RangeDelete | ValueKind::BlobPointer => Version {
                    ts: Timestamp(k.ts),
                    value: None,
                    expires_at: None,
                },
                ValueKind::PutWithTtl => Version {
                    ts: Timestamp(k.ts),
                    expires_at: ttl_expiry(&value).map(Timestamp),
                    value: Some(value.slice(8.min(value.len())..)),
                },
                ValueKind::Put => Version {
                    ts: Timestamp(k.ts),
                    value: Some(value),
                    expires_at: None,
                },
            });
            if k.ts <= oldest {
                return Ok(out);
            }
        }
        c.next()?;
    }
    for t in ranged {
        out.push(deleted(t));
        if t <= oldest {
            break;
        }
    }
    Ok(out)
}
