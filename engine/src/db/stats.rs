//! Statistics of an open database, gathered from its parts.

use crate::fs::names;
use crate::stats::{KeyspaceStats, LevelStats, Stats};

use super::DbInner;

impl DbInner {
    /// Statistics: levels, memtables, traffic, caches, filters, the error
    /// state.
    pub(super) fn stats(&self) -> Stats {
        let vs = self.versions.lock();
        let traffic = self.pipeline.traffic();
        let mut out = Stats {
            wal_bytes_written: traffic.wal_bytes,
            wal_syncs: traffic.wal_syncs,
            writes: traffic.writes,
            write_groups: traffic.groups,
            block_cache_hits: self.blocks.hits(),
            block_cache_misses: self.blocks.misses(),
            block_cache_bytes: self.blocks.used(),
            error_state: self.errors.describe(),
            error_remedy: self.errors.remedy(),
            background_errors: self.errors.errors(),
            resumes: self.errors.resumes(),
            ..Stats::default()
        };
        self.counters.fill(&mut out);
        for n in self.pipeline.logs().live() {
            out.wal_bytes_live += self.fs.file_size(&names::wal(&self.dir, n)).unwrap_or(0);
        }
        for (_, levels) in vs.keyspaces().values() {
            for (_, f) in levels.all_files() {
                *out.bytes_by_key_id.entry(f.key_id).or_insert(0) += f.size;
            }
        }
        for b in vs.blobs().files() {
            *out.bytes_by_key_id.entry(b.key_id()).or_insert(0) += b.size();
        }
        for (_, size, live) in vs.blobs().usage(vs.keyspaces()) {
            out.blob_files += 1;
            out.blob_bytes += size;
            out.blob_live_bytes += live;
        }
        for ks in self.keyspaces.all() {
            let sv = ks.super_version();
            let levels = vs
                .levels_of(ks.id())
                .cloned()
                .unwrap_or_else(|| sv.levels().clone());
            let mut k = KeyspaceStats {
                name: ks.name().to_owned(),
                levels: levels
                    .iter()
                    .map(|files| LevelStats {
                        files: files.len(),
                        bytes: files.iter().map(|f| f.size).sum(),
                        key_ranges: files
                            .iter()
                            .map(|f| {
                                (
                                    f.smallest_user_key().to_vec(),
                                    f.largest_user_key().to_vec(),
                                )
                            })
                            .collect(),
                    })
                    .collect(),
                memtable_bytes: sv.mem().size() as u64,
                immutable_memtable_bytes: sv.imm().iter().map(|m| m.size() as u64).sum(),
                ..KeyspaceStats::default()
            };
            ks.counters().fill(&mut k);
            out.keyspaces.push(k);
        }
        out
    }
}
