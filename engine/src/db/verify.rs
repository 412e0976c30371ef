//! Checking every live file of an open database (see [`crate::verify`]).

use strata_format::log::LogKind;

use crate::error::{Error, Result};
use crate::fs::names;
use crate::verify::{live_tables, Checker, Durable, VerifyReport};

use super::DbInner;

impl DbInner {
    /// Reads and checks CURRENT, the manifest, the live WALs and every live
    /// SST.
    pub(super) fn verify(&self) -> Result<VerifyReport> {
        self.check_open()?;
        let c = Checker::new(
            &*self.fs,
            &self.dir,
            self.opts.sst_reads,
            &self.ciphers,
            Some(self.tables.blobs()),
        );
        let mut report = VerifyReport::default();
        let (tables, sealed, uids) = {
            // CURRENT and the manifest are read under the version lock, so
            // no rotation can replace them meanwhile.
            let vs = self.versions.lock();
            let manifest = vs.manifest_number();
            let current = self.dir.join(names::CURRENT);
            let r = c.current(manifest);
            report.record(current, r);
            if let Some(n) = manifest {
                let path = names::manifest(&self.dir, n);
                let r = c.log(n, LogKind::Manifest, Durable::UpToMarkers, None);
                report.record(path, r);
            }
            (
                live_tables(&vs),
                vs.sealed_wals().clone(),
                vs.wal_uids().clone(),
            )
        };
        // Older WALs were sealed (synced) before the next one started: all
        // of each must be sound. The one in use may end in a write not yet
        // synced, so it is read under the WAL lock with its durable length.
        let wals: Vec<u64> = self.pipeline.logs().live();
        for n in wals {
            let path = names::wal(&self.dir, n);
            let current = self
                .pipeline
                .logs()
                .with_current(|wal| (wal.number() == n).then(|| (wal.synced_len(), wal.uid())));
            if self.read_only && current.is_some() {
                // A read-only open has no WAL file of its own (what the
                // WALs held was checked as it was replayed).
                continue;
            }
            let r = {
                if let Some((synced, uid)) = current {
                    // Read while the WAL may be appended to: only what was
                    // durable when asked is checked.
                    c.log(n, LogKind::Wal, Durable::Len(synced), Some(uid))
                } else {
                    // A WAL retired unsealed by `resume` may end torn.
                    let durable = sealed
                        .get(&n)
                        .map_or(Durable::UpToMarkers, |&l| Durable::Len(l));
                    c.log(n, LogKind::Wal, durable, uids.get(&n).copied())
                }
            };
            match r {
                Err(Error::Io {
                    kind: std::io::ErrorKind::NotFound,
                    ..
                }) => {
                    // Flushed and deleted meanwhile.
                }
                r => report.record(path, r),
            }
        }
        for f in tables {
            let r = c.table(&f, &mut report.tallies());
            report.record(f.path().to_path_buf(), r);
        }
        Ok(report)
    }
}
