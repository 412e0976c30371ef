//! Manifest records ("version edits"): each one a change to the set of
//! files, keyspaces and counters that make up the database's state. The
//! manifest is a log ([`crate::log`]) of these records; replaying them in
//! order rebuilds the state.
//!
//! A record is a sequence of fields, each `tag (varint) ‖ length (varint) ‖
//! body`. A body must be consumed exactly. Unknown tags are refused: skipping
//! a change to the file set would silently give a wrong state.

use crate::coding::{put_bytes, put_varint64, Cursor};
use crate::error::{Error, Result};
use crate::key::{InternalKeyRef, MAX_RANGE_END_LEN, TRAILER_LEN};

/// The deepest level a record may name (levels are numbered from 0).
pub const MAX_LEVEL: u8 = 63;

/// The longest keyspace name (bytes of UTF-8).
pub const MAX_KEYSPACE_NAME_LEN: usize = 255;

const LOG_NUMBER: u64 = 1;
const NEXT_FILE_NUMBER: u64 = 2;
const LAST_TIMESTAMP: u64 = 3;
const KEYSPACE_CREATED: u64 = 4;
const KEYSPACE_DROPPED: u64 = 5;
const FILE_ADDED: u64 = 6;
const FILE_REMOVED: u64 = 7;
const HISTORY_HORIZON: u64 = 8;
const NEXT_KEYSPACE_ID: u64 = 9;
const WAL_SEALED: u64 = 10;
const WAL_CREATED: u64 = 11;
const NUMBER_SKIPPED: u64 = 12;
const BLOB_FILE_ADDED: u64 = 13;
const BLOB_FILE_REMOVED: u64 = 14;
const BLOB_REFERENCES: u64 = 15;

/// Every field tag a record may hold, with the name SPEC.md gives it, in
/// tag order. Any other tag is refused.
pub const TAGS: [(&str, u64); 15] = [
    ("log number", LOG_NUMBER),
    ("next file number", NEXT_FILE_NUMBER),
    ("last timestamp", LAST_TIMESTAMP),
    ("keyspace created", KEYSPACE_CREATED),
    ("keyspace dropped", KEYSPACE_DROPPED),
    ("file added", FILE_ADDED),
    ("file removed", FILE_REMOVED),
    ("history horizon", HISTORY_HORIZON),
    ("next keyspace id", NEXT_KEYSPACE_ID),
    ("WAL sealed", WAL_SEALED),
    ("WAL created", WAL_CREATED),
    ("number skipped", NUMBER_SKIPPED),
    ("blob file added", BLOB_FILE_ADDED),
    ("blob file removed", BLOB_FILE_REMOVED),
    ("blob references", BLOB_REFERENCES),
];

/// An SST added to a level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileAdded {
    /// The keyspace the file belongs to.
    pub keyspace: u32,
    /// The level it joins.
    pub level: u8,
    /// Its file number.
    pub file_number: u64,
    /// Its size in bytes.
    pub size: u64,
    /// Its random uid (also in its footer).
    pub file_uid: [u8; 16],
    /// The key id it is encrypted with, `None` for plaintext.
    pub key_id: Option<u32>,
    /// Its smallest internal key.
    pub smallest: Vec<u8>,
    /// Its largest internal key.
    pub largest: Vec<u8>,
    /// The smallest timestamp in it.
    pub min_ts: u64,
    /// The largest timestamp in it.
    pub max_ts: u64,
    /// The blob files its pointers name: number and the stored bytes of
    /// the records they point to, by file number. Encoded as a field of
    /// its own (blob references) after the file's, only when not empty.
    pub blob_refs: Vec<(u64, u64)>,
}

/// A blob file joining the database's state (see [`crate::blob`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobFileAdded {
    /// Its file number.
    pub file_number: u64,
    /// Its random uid (also in its header).
    pub file_uid: [u8; 16],
    /// The key id its records are encrypted with, `None` for plaintext.
    pub key_id: Option<u32>,
    /// Its size in bytes, header included.
    pub size: u64,
}

/// An SST removed from a level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRemoved {
    /// The keyspace the file belonged to.
    pub keyspace: u32,
    /// The level it leaves.
    pub level: u8,
    /// Its file number.
    pub file_number: u64,
}

/// One manifest record. Every field is optional; replaying applies what is
/// present.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VersionEdit {
    /// WAL files numbered below this are fully flushed and may be deleted.
    pub log_number: Option<u64>,
    /// The next file number to hand out (never reused).
    pub next_file_number: Option<u64>,
    /// The largest commit timestamp durable in SSTs or the WAL.
    pub last_timestamp: Option<u64>,
    /// Versions older than this may have been collected: reads of the state
    /// before it are refused.
    pub history_horizon: Option<u64>,
    /// The next keyspace id to hand out: ids are never reused, so a WAL
    /// record of a dropped keyspace can never land in a new one.
    pub next_keyspace_id: Option<u32>,
    /// Keyspaces created: id and name.
    pub keyspaces_created: Vec<(u32, String)>,
    /// Keyspaces dropped, by id.
    pub keyspaces_dropped: Vec<u32>,
    /// Files added.
    pub files_added: Vec<FileAdded>,
    /// Files removed.
    pub files_removed: Vec<FileRemoved>,
    /// WALs sealed (synced in full, never written again): number and
    /// length. Recovery holds a sealed WAL to that length: a missing or
    /// shorter file is corruption, not a torn tail.
    pub wals_sealed: Vec<(u64, u64)>,
    /// WALs created: number and file uid. Recovery expects that uid in the
    /// WAL's header and checks its sync markers with it even when the
    /// header is damaged.
    pub wals_created: Vec<(u64, [u8; 16])>,
    /// File numbers the counter stepped over because a file that is not
    /// the database's holds the name: never handed out, and such a file is
    /// never taken for the database's own.
    pub numbers_skipped: Vec<u64>,
    /// Blob files added (applied before the SSTs that point into them).
    pub blob_files_added: Vec<BlobFileAdded>,
    /// Blob files removed: no SST of the state points into them any more.
    pub blob_files_removed: Vec<u64>,
}

fn field(out: &mut Vec<u8>, tag: u64, body: &[u8]) {
    put_varint64(out, tag);
    put_bytes(out, body);
}

fn varint_field(out: &mut Vec<u8>, tag: u64, v: u64) {
    let mut body = Vec::with_capacity(10);
    put_varint64(&mut body, v);
    field(out, tag, &body);
}

impl VersionEdit {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(v) = self.log_number {
            varint_field(&mut out, LOG_NUMBER, v);
        }
        if let Some(v) = self.next_file_number {
            varint_field(&mut out, NEXT_FILE_NUMBER, v);
        }
        if let Some(v) = self.last_timestamp {
            varint_field(&mut out, LAST_TIMESTAMP, v);
        }
        if let Some(v) = self.history_horizon {
            varint_field(&mut out, HISTORY_HORIZON, v);
        }
        if let Some(v) = self.next_keyspace_id {
            varint_field(&mut out, NEXT_KEYSPACE_ID, u64::from(v));
        }
        for (id, name) in &self.keyspaces_created {
            let mut body = Vec::new();
            put_varint64(&mut body, u64::from(*id));
            put_bytes(&mut body, name.as_bytes());
            field(&mut out, KEYSPACE_CREATED, &body);
        }
        for id in &self.keyspaces_dropped {
            varint_field(&mut out, KEYSPACE_DROPPED, u64::from(*id));
        }
        for f in &self.files_added {
            let mut body = Vec::new();
            put_varint64(&mut body, u64::from(f.keyspace));
            body.push(f.level);
            put_varint64(&mut body, f.file_number);
            put_varint64(&mut body, f.size);
            body.extend_from_slice(&f.file_uid);
            match f.key_id {
                None => body.push(0),
                Some(id) => {
                    body.push(1);
                    body.extend_from_slice(&id.to_le_bytes());
                }
            }
            put_bytes(&mut body, &f.smallest);
            put_bytes(&mut body, &f.largest);
            put_varint64(&mut body, f.min_ts);
            put_varint64(&mut body, f.max_ts);
            field(&mut out, FILE_ADDED, &body);
            if !f.blob_refs.is_empty() {
                let mut body = Vec::new();
                put_varint64(&mut body, u64::from(f.keyspace));
                put_varint64(&mut body, f.file_number);
                put_varint64(&mut body, f.blob_refs.len() as u64);
                for &(n, bytes) in &f.blob_refs {
                    put_varint64(&mut body, n);
                    put_varint64(&mut body, bytes);
                }
                field(&mut out, BLOB_REFERENCES, &body);
            }
        }
        for b in &self.blob_files_added {
            let mut body = Vec::new();
            put_varint64(&mut body, b.file_number);
            body.extend_from_slice(&b.file_uid);
            match b.key_id {
                None => body.push(0),
                Some(id) => {
                    body.push(1);
                    body.extend_from_slice(&id.to_le_bytes());
                }
            }
            put_varint64(&mut body, b.size);
            field(&mut out, BLOB_FILE_ADDED, &body);
        }
        for n in &self.blob_files_removed {
            varint_field(&mut out, BLOB_FILE_REMOVED, *n);
        }
        for f in &self.files_removed {
            let mut body = Vec::new();
            put_varint64(&mut body, u64::from(f.keyspace));
            body.push(f.level);
            put_varint64(&mut body, f.file_number);
            field(&mut out, FILE_REMOVED, &body);
        }
        for (number, len) in &self.wals_sealed {
            let mut body = Vec::new();
            put_varint64(&mut body, *number);
            put_varint64(&mut body, *len);
            field(&mut out, WAL_SEALED, &body);
        }
        for (number, uid) in &self.wals_created {
            let mut body = Vec::new();
            put_varint64(&mut body, *number);
            body.extend_from_slice(uid);
            field(&mut out, WAL_CREATED, &body);
        }
        for n in &self.numbers_skipped {
            varint_field(&mut out, NUMBER_SKIPPED, *n);
        }
        out
    }

    /// Decodes a record; `offset` is where the record starts in the
    /// manifest, for errors.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<VersionEdit> {
        let mut e = VersionEdit::default();
        let mut c = Cursor::new(bytes, offset, "manifest record");
        while !c.is_empty() {
            let tag_at = c.offset();
            let tag = c.varint64()?;
            let body_at = c.offset();
            let body = c.length_prefixed()?;
            let mut b = Cursor::new(body, body_at, "manifest field");
            match tag {
                LOG_NUMBER => e.log_number = Some(b.varint64()?),
                NEXT_FILE_NUMBER => e.next_file_number = Some(b.varint64()?),
                LAST_TIMESTAMP => e.last_timestamp = Some(b.varint64()?),
                HISTORY_HORIZON => e.history_horizon = Some(b.varint64()?),
                NEXT_KEYSPACE_ID => e.next_keyspace_id = Some(keyspace_id(&mut b)?),
                KEYSPACE_CREATED => {
                    let id = keyspace_id(&mut b)?;
                    let name = b.length_prefixed()?;
                    if name.len() > MAX_KEYSPACE_NAME_LEN {
                        return Err(b.error("keyspace name too long"));
                    }
                    let name = std::str::from_utf8(name)
                        .map_err(|_| b.error("keyspace name is not UTF-8"))?;
                    e.keyspaces_created.push((id, name.to_owned()));
                }
                KEYSPACE_DROPPED => e.keyspaces_dropped.push(keyspace_id(&mut b)?),
                FILE_ADDED => {
                    let keyspace = keyspace_id(&mut b)?;
                    let level = level(&mut b)?;
                    let file_number = b.varint64()?;
                    let size = b.varint64()?;
                    let file_uid = b.array::<16>()?;
                    let key_id = match b.u8()? {
                        0 => None,
                        1 => Some(b.u32_le()?),
                        _ => return Err(b.error("bad encryption flag")),
                    };
                    let smallest = internal_key(&mut b)?;
                    let largest = internal_key(&mut b)?;
                    let min_ts = b.varint64()?;
                    let max_ts = b.varint64()?;
                    e.files_added.push(FileAdded {
                        keyspace,
                        level,
                        file_number,
                        size,
                        file_uid,
                        key_id,
                        smallest,
                        largest,
                        min_ts,
                        max_ts,
                        blob_refs: Vec::new(),
                    });
                }
                BLOB_REFERENCES => {
                    let keyspace = keyspace_id(&mut b)?;
                    let number = b.varint64()?;
                    // Each reference takes at least two bytes.
                    let count = b.len(body.len() / 2)?;
                    let mut refs = Vec::with_capacity(count);
                    for _ in 0..count {
                        refs.push((b.varint64()?, b.varint64()?));
                    }
                    let Some(f) = e.files_added.iter_mut().rev().find(|f| {
                        f.keyspace == keyspace && f.file_number == number && f.blob_refs.is_empty()
                    }) else {
                        return Err(Error::corruption(
                            "manifest field: blob references of a file the record does not add",
                            tag_at,
                        ));
                    };
                    f.blob_refs = refs;
                }
                BLOB_FILE_ADDED => {
                    let file_number = b.varint64()?;
                    let file_uid = b.array::<16>()?;
                    let key_id = match b.u8()? {
                        0 => None,
                        1 => Some(b.u32_le()?),
                        _ => return Err(b.error("bad encryption flag")),
                    };
                    let size = b.varint64()?;
                    e.blob_files_added.push(BlobFileAdded {
                        file_number,
                        file_uid,
                        key_id,
                        size,
                    });
                }
                BLOB_FILE_REMOVED => e.blob_files_removed.push(b.varint64()?),
                WAL_SEALED => e.wals_sealed.push((b.varint64()?, b.varint64()?)),
                WAL_CREATED => e.wals_created.push((b.varint64()?, b.array::<16>()?)),
                NUMBER_SKIPPED => e.numbers_skipped.push(b.varint64()?),
                FILE_REMOVED => e.files_removed.push(FileRemoved {
                    keyspace: keyspace_id(&mut b)?,
                    level: level(&mut b)?,
                    file_number: b.varint64()?,
                }),
                other => {
                    return Err(Error::corruption(
                        format!("manifest record: unknown field {other}"),
                        tag_at,
                    ));
                }
            }
            if !b.is_empty() {
                return Err(b.error("trailing bytes in field"));
            }
        }
        Ok(e)
    }
}

fn keyspace_id(c: &mut Cursor<'_>) -> Result<u32> {
    let at = c.offset();
    u32::try_from(c.varint64()?)
        .map_err(|_| Error::corruption("manifest field: keyspace id out of range", at))
}

fn level(c: &mut Cursor<'_>) -> Result<u8> {
    let l = c.u8()?;
    if l > MAX_LEVEL {
        return Err(c.error("level out of range"));
    }
    Ok(l)
}

fn internal_key(c: &mut Cursor<'_>) -> Result<Vec<u8>> {
    let at = c.offset();
    let k = c.length_prefixed()?;
    if k.len() > MAX_RANGE_END_LEN + TRAILER_LEN || InternalKeyRef::parse(k).is_err() {
        return Err(Error::corruption(
            "manifest field: malformed internal key",
            at,
        ));
    }
    Ok(k.to_vec())
}
