//! The properties block: what a table holds, for the engine's planning and
//! for operators.
//!
//! Encoded as a list of fields, each `tag (varint) ‖ length (varint) ‖
//! value`; integers are varints inside their value bytes. A reader skips
//! tags it does not know, so a newer writer may add fields without a
//! version bump; a field a reader knows must decode exactly.

use crate::coding::{get_varint64, put_bytes, put_varint64, Cursor};
use crate::error::{Error, Result};

use super::BlockHandle;

/// Statistics and settings of one table.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Properties {
    /// Number of entries (every version and tombstone counts).
    pub entries: u64,
    /// Number of data blocks.
    pub data_blocks: u64,
    /// Number of tombstone entries.
    pub tombstones: u64,
    /// Number of distinct user keys.
    pub distinct_keys: u64,
    /// The smallest internal key (empty when the table is empty).
    pub smallest_key: Vec<u8>,
    /// The largest internal key (empty when the table is empty).
    pub largest_key: Vec<u8>,
    /// The smallest timestamp of any entry (0 when empty).
    pub min_ts: u64,
    /// The largest timestamp of any entry (0 when empty).
    pub max_ts: u64,
    /// Total bytes of internal keys, before prefix sharing.
    pub raw_key_bytes: u64,
    /// Total bytes of values.
    pub raw_value_bytes: u64,
    /// Stored bytes of all data blocks (trailers included).
    pub data_bytes: u64,
    /// The compression id of the codec settings (0 none, 1 zstd).
    pub compression: u8,
    /// The zstd level, when compressed.
    pub compression_level: i32,
    /// Bloom filter bits per key.
    pub bloom_bits_per_key: u32,
    /// Entries between restart points.
    pub restart_interval: u32,
    /// Target data block size.
    pub block_size: u32,
    /// When the table was written, in microseconds since the Unix epoch (as
    /// the writer's caller supplied it).
    pub created_at_micros: u64,
    /// Number of range-tombstone entries (one per fragment and timestamp)
    /// in the range-deletion block.
    pub range_deletions: u64,
    /// Where the range-deletion block is, when the table has one. Only a
    /// version-2 table may have one (an older reader would skip the field
    /// and miss the deletions, so the version keeps it out).
    pub range_deletions_handle: Option<BlockHandle>,
}

const ENTRIES: u64 = 1;
const DATA_BLOCKS: u64 = 2;
const TOMBSTONES: u64 = 3;
const DISTINCT_KEYS: u64 = 4;
const SMALLEST_KEY: u64 = 5;
const LARGEST_KEY: u64 = 6;
const MIN_TS: u64 = 7;
const MAX_TS: u64 = 8;
const RAW_KEY_BYTES: u64 = 9;
const RAW_VALUE_BYTES: u64 = 10;
const DATA_BYTES: u64 = 11;
const COMPRESSION: u64 = 12;
const COMPRESSION_LEVEL: u64 = 13;
const BLOOM_BITS: u64 = 14;
const RESTART_INTERVAL: u64 = 15;
const BLOCK_SIZE: u64 = 16;
const CREATED_AT: u64 = 17;
const RANGE_DELETIONS: u64 = 18;
const RANGE_DELETIONS_HANDLE: u64 = 19;

/// Every tag with its field's name, as SPEC.md §7 tabulates them.
pub const PROPERTY_TAGS: [(u64, &str); 19] = [
    (ENTRIES, "entries"),
    (DATA_BLOCKS, "data blocks"),
    (TOMBSTONES, "tombstones"),
    (DISTINCT_KEYS, "distinct user keys"),
    (SMALLEST_KEY, "smallest internal key"),
    (LARGEST_KEY, "largest internal key"),
    (MIN_TS, "min timestamp"),
    (MAX_TS, "max timestamp"),
    (RAW_KEY_BYTES, "raw internal-key bytes"),
    (RAW_VALUE_BYTES, "raw value bytes"),
    (DATA_BYTES, "stored data bytes"),
    (COMPRESSION, "compression id"),
    (COMPRESSION_LEVEL, "zstd level"),
    (BLOOM_BITS, "bloom bits per key"),
    (RESTART_INTERVAL, "restart interval"),
    (BLOCK_SIZE, "target block size"),
    (CREATED_AT, "creation time"),
    (RANGE_DELETIONS, "range deletions"),
    (RANGE_DELETIONS_HANDLE, "range-deletion block handle"),
];

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ -((v & 1) as i32)
}

impl Properties {
    /// Encodes the properties.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128 + self.smallest_key.len() + self.largest_key.len());
        let int = |out: &mut Vec<u8>, tag: u64, v: u64| {
            let mut val = Vec::with_capacity(10);
            put_varint64(&mut val, v);
            put_varint64(out, tag);
            put_bytes(out, &val);
        };
        int(&mut out, ENTRIES, self.entries);
        int(&mut out, DATA_BLOCKS, self.data_blocks);
        int(&mut out, TOMBSTONES, self.tombstones);
        int(&mut out, DISTINCT_KEYS, self.distinct_keys);
        int(&mut out, MIN_TS, self.min_ts);
        int(&mut out, MAX_TS, self.max_ts);
        int(&mut out, RAW_KEY_BYTES, self.raw_key_bytes);
        int(&mut out, RAW_VALUE_BYTES, self.raw_value_bytes);
        int(&mut out, DATA_BYTES, self.data_bytes);
        int(&mut out, COMPRESSION, u64::from(self.compression));
        int(&mut out, COMPRESSION_LEVEL, zigzag(self.compression_level));
        int(&mut out, BLOOM_BITS, u64::from(self.bloom_bits_per_key));
        int(&mut out, RESTART_INTERVAL, u64::from(self.restart_interval));
        int(&mut out, BLOCK_SIZE, u64::from(self.block_size));
        int(&mut out, CREATED_AT, self.created_at_micros);
        if self.range_deletions > 0 {
            int(&mut out, RANGE_DELETIONS, self.range_deletions);
        }
        if let Some(h) = self.range_deletions_handle {
            let mut val = Vec::with_capacity(20);
            h.encode_into(&mut val);
            put_varint64(&mut out, RANGE_DELETIONS_HANDLE);
            put_bytes(&mut out, &val);
        }
        put_varint64(&mut out, SMALLEST_KEY);
        put_bytes(&mut out, &self.smallest_key);
        put_varint64(&mut out, LARGEST_KEY);
        put_bytes(&mut out, &self.largest_key);
        out
    }

    /// Decodes properties; `offset` is where the block sits, for errors.
    pub fn decode(bytes: &[u8], offset: u64) -> Result<Properties> {
        let mut p = Properties::default();
        let mut c = Cursor::new(bytes, offset, "sst properties");
        while !c.is_empty() {
            let tag = c.varint64()?;
            let at = c.offset();
            let value = c.length_prefixed()?;
            let int = || -> Result<u64> {
                match get_varint64(value) {
                    Some((v, n)) if n == value.len() => Ok(v),
                    _ => Err(Error::corruption(
                        format!("sst properties: field {tag}"),
                        at,
                    )),
                }
            };
            let narrow = |v: u64| -> Result<u32> {
                u32::try_from(v).map_err(|_| {
                    Error::corruption(format!("sst properties: field {tag} out of range"), at)
                })
            };
            match tag {
                ENTRIES => p.entries = int()?,
                DATA_BLOCKS => p.data_blocks = int()?,
                TOMBSTONES => p.tombstones = int()?,
                DISTINCT_KEYS => p.distinct_keys = int()?,
                SMALLEST_KEY => p.smallest_key = value.to_vec(),
                LARGEST_KEY => p.largest_key = value.to_vec(),
                MIN_TS => p.min_ts = int()?,
                MAX_TS => p.max_ts = int()?,
                RAW_KEY_BYTES => p.raw_key_bytes = int()?,
                RAW_VALUE_BYTES => p.raw_value_bytes = int()?,
                DATA_BYTES => p.data_bytes = int()?,
                COMPRESSION => {
                    p.compression = u8::try_from(int()?)
                        .map_err(|_| Error::corruption("sst properties: compression id", at))?
                }
                COMPRESSION_LEVEL => p.compression_level = unzigzag(int()?),
                BLOOM_BITS => p.bloom_bits_per_key = narrow(int()?)?,
                RESTART_INTERVAL => p.restart_interval = narrow(int()?)?,
                BLOCK_SIZE => p.block_size = narrow(int()?)?,
                CREATED_AT => p.created_at_micros = int()?,
                RANGE_DELETIONS => p.range_deletions = int()?,
                RANGE_DELETIONS_HANDLE => {
                    p.range_deletions_handle = Some(BlockHandle::decode(value, at)?)
                }
                _ => {} // a field from a newer writer
            }
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn properties_round_trip(
            ints in proptest::collection::vec(any::<u64>(), 13),
            small in proptest::collection::vec(any::<u32>(), 3),
            level in any::<i32>(), compression in any::<u8>(),
            smallest in proptest::collection::vec(any::<u8>(), 0..30),
            largest in proptest::collection::vec(any::<u8>(), 0..30),
        ) {
            let p = Properties {
                entries: ints[0], data_blocks: ints[1], tombstones: ints[2], distinct_keys: ints[3],
                min_ts: ints[4], max_ts: ints[5], raw_key_bytes: ints[6], raw_value_bytes: ints[7],
                data_bytes: ints[8], created_at_micros: ints[9],
                compression, compression_level: level,
                bloom_bits_per_key: small[0], restart_interval: small[1], block_size: small[2],
                smallest_key: smallest, largest_key: largest,
                range_deletions: ints[10],
                range_deletions_handle: (ints[11] % 2 == 0).then_some(BlockHandle { offset: ints[11], size: ints[12] }),
            };
            prop_assert_eq!(Properties::decode(&p.encode(), 0).unwrap(), p);
        }

        #[test]
        fn decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Properties::decode(&bytes, 0);
        }
    }

    #[test]
    fn unknown_fields_are_skipped() {
        let mut bytes = Properties {
            entries: 3,
            ..Default::default()
        }
        .encode();
        put_varint64(&mut bytes, 999);
        put_bytes(&mut bytes, b"future");
        assert_eq!(Properties::decode(&bytes, 0).unwrap().entries, 3);
    }
}
