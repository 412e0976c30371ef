//! The engine's statistics in the Prometheus text format.

use strata_engine::{KeyspaceStats, LevelStats};

use super::{labels, write_header, write_sample, Kind, ENGINE_PREFIX};

/// The engine's statistics in the Prometheus text format: what only grows
/// as counters named `..._total`, the rest as gauges; each family with its
/// HELP and TYPE lines, and keyspace names escaped as label values.
/// Families without a sample (no keyspace, no table) are left out.
pub fn engine_prometheus(s: &strata_engine::Stats) -> String {
    type Samples = Vec<(String, String)>;
    let one = |v: String| -> Samples { vec![(String::new(), v)] };
    let per_keyspace = |f: fn(&KeyspaceStats) -> u64| -> Samples {
        s.keyspaces
            .iter()
            .map(|k| (labels(&[("keyspace", &k.name)]), f(k).to_string()))
            .collect()
    };
    let per_level = |f: fn(&LevelStats) -> u64| -> Samples {
        let mut out = Vec::new();
        for k in &s.keyspaces {
            for (level, l) in k.levels.iter().enumerate().filter(|(_, l)| l.files > 0) {
                let level = level.to_string();
                let l_pairs = labels(&[("keyspace", &k.name), ("level", &level)]);
                out.push((l_pairs, f(l).to_string()));
            }
        }
        out
    };
    let counters: [(&str, &str, Samples); 20] = [
        (
            "writes",
            "Write batches committed.",
            one(s.writes.to_string()),
        ),
        (
            "write_groups",
            "Commit groups, one WAL write each.",
            one(s.write_groups.to_string()),
        ),
        (
            "wal_bytes_written",
            "Bytes appended to the WAL.",
            one(s.wal_bytes_written.to_string()),
        ),
        ("wal_syncs", "WAL syncs.", one(s.wal_syncs.to_string())),
        (
            "write_slowdowns",
            "Writes delayed because L0 was filling up.",
            one(s.write_slowdowns.to_string()),
        ),
        (
            "write_stalls",
            "Writes that waited for a flush or a compaction.",
            one(s.write_stalls.to_string()),
        ),
        (
            "write_stall_seconds",
            "Time writers spent stalled.",
            one((s.write_stall_micros as f64 / 1e6).to_string()),
        ),
        (
            "block_cache_hits",
            "Block cache hits.",
            one(s.block_cache_hits.to_string()),
        ),
        (
            "block_cache_misses",
            "Block cache misses.",
            one(s.block_cache_misses.to_string()),
        ),
        (
            "background_errors",
            "Times the engine entered its error state.",
            one(s.background_errors.to_string()),
        ),
        (
            "resumes",
            "Times the engine left its error state.",
            one(s.resumes.to_string()),
        ),
        (
            "files_removed_at_open",
            "Unreferenced tables and temporary files the last open removed.",
            one(s.files_removed_at_open.to_string()),
        ),
        (
            "user_bytes_written",
            "Bytes of keys and values written by users, per keyspace.",
            per_keyspace(|k| k.user_bytes_written),
        ),
        (
            "flush_bytes_written",
            "Bytes of SSTs written by flushes, per keyspace.",
            per_keyspace(|k| k.flush_bytes_written),
        ),
        (
            "compaction_bytes_written",
            "Bytes of SSTs written by compactions, per keyspace.",
            per_keyspace(|k| k.compaction_bytes_written),
        ),
        (
            "compaction_bytes_read",
            "Bytes of SSTs read by compactions, per keyspace.",
            per_keyspace(|k| k.compaction_bytes_read),
        ),
        (
            "flushes",
            "Flushes run, per keyspace.",
            per_keyspace(|k| k.flushes),
        ),
        (
            "compactions",
            "Compactions run, per keyspace.",
            per_keyspace(|k| k.compactions),
        ),
        (
            "bloom_checks",
            "Point reads that consulted a table's bloom filter, per keyspace.",
            per_keyspace(|k| k.bloom_checks),
        ),
        (
            "bloom_false_positives",
            "Bloom filter probes that passed for a key the table did not have, per keyspace.",
            per_keyspace(|k| k.bloom_false_positives),
        ),
    ];
    let gauges: [(&str, &str, Samples); 9] = [
        (
            "wal_bytes_live",
            "Bytes of WAL files not yet deleted.",
            one(s.wal_bytes_live.to_string()),
        ),
        (
            "block_cache_bytes",
            "Bytes held by the block cache.",
            one(s.block_cache_bytes.to_string()),
        ),
        (
            "error_state",
            "1 while the engine refuses writes in its error state, else 0.",
            one(u64::from(s.error_state.is_some()).to_string()),
        ),
        (
            "foreign_files",
            "Files the last open left alone as not the engine's.",
            one(s.foreign_files.len().to_string()),
        ),
        (
            "memtable_bytes",
            "Bytes in the active memtable, per keyspace.",
            per_keyspace(|k| k.memtable_bytes),
        ),
        (
            "immutable_memtable_bytes",
            "Bytes in immutable memtables waiting for a flush, per keyspace.",
            per_keyspace(|k| k.immutable_memtable_bytes),
        ),
        (
            "sst_bytes",
            "Bytes of SSTs per keyspace and level.",
            per_level(|l| l.bytes),
        ),
        (
            "sst_files",
            "SSTs per keyspace and level.",
            per_level(|l| l.files as u64),
        ),
        (
            "sst_bytes_by_key_id",
            "Bytes of SSTs per encryption key id (plaintext: not encrypted).",
            s.bytes_by_key_id
                .iter()
                .map(|(id, bytes)| {
                    let id = id.map_or("plaintext".to_owned(), |id| id.to_string());
                    (labels(&[("key_id", &id)]), bytes.to_string())
                })
                .collect(),
        ),
    ];
    let mut out = String::new();
    let families = counters
        .into_iter()
        .map(|(n, h, v)| (format!("{ENGINE_PREFIX}{n}_total"), Kind::Counter, h, v))
        .chain(
            gauges
                .into_iter()
                .map(|(n, h, v)| (format!("{ENGINE_PREFIX}{n}"), Kind::Gauge, h, v)),
        );
    for (name, kind, help, samples) in families {
        if samples.is_empty() {
            continue;
        }
        write_header(&mut out, &name, kind, help);
        for (l, v) in &samples {
            write_sample(&mut out, &name, l, v);
        }
    }
    out
}
