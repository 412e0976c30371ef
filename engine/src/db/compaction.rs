//! Leveled compaction: the picker, the merge, and the install.
//!
//! The picker scores each level of each keyspace: L0 by its file count over
//! `l0_compaction_trigger`, level n ≥ 1 by its bytes over its target size
//! (`base_level_size · ratio^(n-1)`). The highest score of at least 1 is
//! compacted: all of L0 with the overlapping L1 files into L1, or one file of
//! level n (round-robin through the key space) with the overlapping files of
//! level n+1 into n+1. A file with nothing to merge with below is moved down
//! without being rewritten.

use std::sync::Arc;

use strata_format::manifest::{FileAdded, FileRemoved, VersionEdit};
use strata_format::range_del::RangeTombstones;

use crate::blob::relocate::Relocation;
use crate::cursor::{Cursor, LevelCursor, MergeCursor, TableCursor};
use crate::error::{Error, Result};
use crate::error_state::Origin;
use crate::gc::copy_live;
use crate::keyspaces::KeyspaceState;
use crate::levels::{FileMeta, LevelFiles, Levels};
use crate::policy::gc::collect_range_tombstones;
use crate::policy::{self, compaction::PickerOptions};
use crate::table_sink::{JobOutputs, TableFactory, TableSink};

use super::DbInner;

/// One compaction job.
struct Job {
    ks: Arc<KeyspaceState>,
    /// The version the job was picked from.
    levels: Arc<Levels>,
    /// Input files by level.
    inputs: Vec<(usize, Arc<FileMeta>)>,
    output_level: usize,
    /// Move the single input down without rewriting it.
    trivial: bool,
    /// Key ranges to merge in parallel, at most (policy::split).
    parts: usize,
    /// A background job, which yields to a full compaction or a
    /// re-encryption waiting for the compaction lock: they would redo its
    /// work.
    yields: bool,
}

/// What merging one key range of a job wrote.
struct RangeOutput {
    files: Vec<FileAdded>,
    /// Blob files relocated values went to.
    blobs: Vec<Arc<crate::blob::BlobFile>>,
    /// Bytes of input read.
    read: u64,
    /// Bytes of tables written.
    written: u64,
}

impl DbInner {
    /// Picks the most urgent compaction over every keyspace (the policy
    /// in [`crate::policy::compaction`]).
    fn pick(&self) -> Option<Job> {
        let vs = self.versions.lock();
        let live: Vec<(u32, Vec<Vec<Arc<FileMeta>>>)> = vs
            .keyspaces()
            .iter()
            .filter(|(id, _)| self.keyspaces.by_id(**id).is_some())
            .map(|(id, (_, l))| (*id, l.iter().map(<[_]>::to_vec).collect()))
            .collect();
        let mut pointers = self.compact_pointers.lock();
        let p = policy::compaction::pick(
            live.iter().map(|(id, l)| (*id, l.as_slice())),
            &PickerOptions::from_options(&self.opts),
            &mut pointers,
        )?;
        Some(Job {
            ks: self.keyspaces.by_id(p.keyspace)?,
            levels: vs.levels_of(p.keyspace)?.clone(),
            inputs: p.inputs,
            output_level: p.output_level,
            trivial: p.trivial,
            parts: 1,
            yields: true,
        })
    }

    /// Runs one job and installs its result.
    fn run(&self, job: Job) -> Result<()> {
        let mut edit = VersionEdit::default();
        for (level, f) in &job.inputs {
            edit.files_removed.push(FileRemoved {
                keyspace: job.ks.id(),
                level: *level as u8,
                file_number: f.number,
            });
        }
        if job.trivial {
            for (_, f) in &job.inputs {
                edit.files_added
                    .push(f.to_edit(job.ks.id(), job.output_level as u8));
            }
            return self.install(&job, edit, false, 0, 0, JobOutputs::new(&*self.fs));
        }
        // The inputs' range tombstones, merged (they are few; tables hold
        // them decoded).
        let mut input_dels = Vec::new();
        for (_, f) in &job.inputs {
            let t = self.tables.get(f)?;
            if !t.range_tombstones().is_empty() {
                input_dels.push(t);
            }
        }
        let dels = RangeTombstones::merge(input_dels.iter().map(|t| t.range_tombstones()));
        let levels = job.levels.clone();
        let output_level = job.output_level;
        // No older data of a key can hide below the output level when no
        // deeper file covers it.
        let bottommost = move |key: &[u8]| {
            levels
                .iter()
                .skip(output_level + 1)
                .all(|files| files.iter().all(|f| !f.overlaps(key, key)))
        };
        let numbers = || self.versions.new_file_number();
        let factory = TableFactory::new(
            &self.dir,
            &*self.fs,
            &numbers,
            self.table_options(job.ks.id(), output_level)?,
        );
        let points = self.gc_points();
        // Blob files mostly dead, or under a retired key: the values the
        // job meets in them move.
        let blob_key = self.ciphers.current()?;
        let victims = self.blob_victims(blob_key.as_ref().map(|k| k.id()));
        let levels = job.levels.clone();
        let range_bottommost = move |start: &[u8], end: &[u8]| {
            levels
                .iter()
                .skip(output_level + 1)
                .all(|files| files.iter().all(|f| !f.overlaps(start, end)))
        };
        let kept_dels = collect_range_tombstones(&points, dels.clone(), &range_bottommost);
        // A full compaction is cut into key ranges merged in parallel
        // (policy::split); any other job is one range.
        let tombstones: Vec<(&[u8], &[u8])> = kept_dels
            .fragments()
            .iter()
            .map(|f| (f.start.as_slice(), f.end.as_slice()))
            .collect();
        let cuts = policy::split::split_points(
            &job.inputs,
            job.parts,
            self.opts.target_file_size,
            &tombstones,
        );
        let mut bounds: Vec<Option<&[u8]>> = vec![None];
        bounds.extend(cuts.iter().map(|c| Some(c.as_slice())));
        bounds.push(None);
        let merge_range = |lo: Option<&[u8]>, hi: Option<&[u8]>| -> Result<RangeOutput> {
            let mut merged = self.merge_inputs(&job)?;
            match lo {
                Some(k) => merged.seek(&strata_format::key::seek_key(k, u64::MAX))?,
                None => merged.seek_to_first()?,
            }
            let mut sink = TableSink::new(
                &factory,
                job.ks.id(),
                output_level,
                self.opts.target_file_size,
            );
            sink.set_range_tombstones(kept_dels.clip(lo, hi));
            if !victims.is_empty() {
                sink.set_relocation(Relocation::new(
                    self.tables.blobs(),
                    victims.clone(),
                    &numbers,
                    blob_key.clone(),
                    self.opts.target_file_size,
                ));
            }
            let read = copy_live(
                &mut merged,
                &mut sink,
                &points,
                &bottommost,
                &dels,
                hi,
                &|| self.is_shutdown() || (job.yields && self.yield_requested()),
            )?;
            let out = sink.finish()?;
            Ok(RangeOutput {
                files: out.files,
                blobs: out.blobs,
                read,
                written: out.bytes,
            })
        };
        let results: Vec<Result<RangeOutput>> = if !self.opts.background_threads {
            // No thread of the engine's own: the ranges one after another,
            // so every run is the same sequence of file operations.
            bounds.windows(2).map(|w| merge_range(w[0], w[1])).collect()
        } else {
            std::thread::scope(|scope| {
                let merge_range = &merge_range;
                let others: Vec<_> = bounds[1..]
                    .windows(2)
                    .map(|w| {
                        let (lo, hi) = (w[0], w[1]);
                        scope.spawn(move || merge_range(lo, hi))
                    })
                    .collect();
                let first = merge_range(bounds[0], bounds[1]);
                std::iter::once(first)
                    .chain(others.into_iter().map(|h| {
                        h.join()
                            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                    }))
                    .collect()
            })
        };
        // Every range's tables are the job's outputs, removed unless the
        // edit installs them: one failed range fails the whole job.
        let mut outputs = JobOutputs::new(&*self.fs);
        let (mut read, mut written) = (0, 0);
        let mut failure = None;
        for r in results {
            match r {
                Ok(out) => {
                    outputs.add(&self.dir, &out.files);
                    edit.files_added.extend(out.files);
                    edit.blob_files_added
                        .extend(out.blobs.iter().map(|b| b.to_edit()));
                    outputs.add_blobs(out.blobs);
                    read += out.read;
                    written += out.written;
                }
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        edit.history_horizon = Some(points.window);
        self.install(&job, edit, true, read, written, outputs)
    }

    /// One cursor merging the job's inputs: L0 files one cursor each (they
    /// overlap), other levels one cursor per level.
    fn merge_inputs(&self, job: &Job) -> Result<MergeCursor> {
        let mut children: Vec<Box<dyn Cursor>> = Vec::new();
        let max_level = job.inputs.iter().map(|(l, _)| *l).max().unwrap_or(0);
        for level in 0..=max_level {
            let files: Vec<_> = job
                .inputs
                .iter()
                .filter(|(l, _)| *l == level)
                .map(|(_, f)| f.clone())
                .collect();
            if files.is_empty() {
                continue;
            }
            if level == 0 {
                for f in files {
                    let t = self.tables.get(&f)?;
                    children.push(Box::new(TableCursor::new(
                        t.iter_without_fill(),
                        f.path().to_path_buf(),
                    )));
                }
            } else {
                let mut files = files;
                files
                    .sort_by(|a, b| strata_format::key::compare_internal(&a.smallest, &b.smallest));
                children.push(Box::new(
                    LevelCursor::new(LevelFiles::Listed(files), self.tables.clone()).without_fill(),
                ));
            }
        }
        Ok(MergeCursor::new(children))
    }

    fn install(
        &self,
        job: &Job,
        edit: VersionEdit,
        obsolete: bool,
        read: u64,
        written: u64,
        outputs: JobOutputs<'_>,
    ) -> Result<()> {
        let mut vs = self.versions.lock();
        if !vs.keyspaces().contains_key(&job.ks.id()) {
            // Dropped while compacting: the outputs are orphans, and go
            // with `outputs`.
            return Ok(());
        }
        // On failure the record may or may not be durable: leave the outputs
        // for the next open to keep or remove, and stop writing.
        outputs.keep();
        let horizon = edit.history_horizon;
        vs.log_and_apply(edit)?;
        if let Some(h) = horizon {
            self.retention.raise_horizon(h);
        }
        if obsolete {
            for (_, f) in &job.inputs {
                f.mark_obsolete();
                self.tables.evict(f.number);
            }
        }
        let retired = self.install_levels(&vs);
        drop(vs);
        // Outside the lock: the last reference to a replaced version
        // deletes the compacted files.
        drop(retired);
        let c = job.ks.counters();
        c.compacted(read, written);
        self.errors.work_succeeded();
        self.flushes.notify_all();
        Ok(())
    }

    /// Runs compactions until nothing scores at least 1. A failure puts
    /// the database in the error state before the compaction lock is let
    /// go, so a `resume` (which takes that lock) never misses it.
    pub(crate) fn compact_until_settled(&self) -> Result<()> {
        loop {
            if self.is_shutdown() || self.errors.is_set() {
                return Ok(());
            }
            let guard = self.compaction_lock.lock();
            if self.yield_requested() {
                // A full compaction or re-encryption waits: it goes first
                // (handed the lock), this loop goes on after it.
                parking_lot::MutexGuard::unlock_fair(guard);
                continue;
            }
            let Some(job) = self.pick() else {
                return Ok(());
            };
            match self.run(job) {
                Ok(()) => {}
                // Stopped for a full compaction or re-encryption (it still
                // waits for the lock this loop holds): it takes the lock
                // now, and this loop picks again after it (a re-encryption
                // leaves the levels' debts as they were).
                Err(Error::Closed) if !self.is_shutdown() && self.yield_requested() => {
                    self.counters.compaction_yielded();
                    parking_lot::MutexGuard::unlock_fair(guard);
                }
                Err(Error::Closed) => return Err(Error::Closed),
                Err(e) => return Err(self.poison(e, Origin::Background)),
            }
        }
    }

    /// Runs foreground jobs in turn (the caller holds the compaction
    /// lock); the first failure puts the database in the error state.
    fn run_all(&self, jobs: Vec<Job>) -> Result<()> {
        for job in jobs {
            match self.run(job) {
                Ok(()) => {}
                Err(Error::Closed) => return Err(Error::Closed),
                Err(e) => return Err(self.poison(e, Origin::Background)),
            }
        }
        Ok(())
    }

    /// Takes the compaction lock for work over every file (a full
    /// compaction, a re-encryption): a background compaction running
    /// meanwhile stops at its next check and removes its outputs, rather
    /// than finish work that would be redone.
    fn lock_preempting(&self) -> parking_lot::MutexGuard<'_, ()> {
        use std::sync::atomic::Ordering;
        self.full_waiting.fetch_add(1, Ordering::AcqRel);
        let guard = self.compaction_lock.lock();
        self.full_waiting.fetch_sub(1, Ordering::AcqRel);
        guard
    }

    /// True while a full compaction or re-encryption waits for the lock.
    fn yield_requested(&self) -> bool {
        self.full_waiting.load(std::sync::atomic::Ordering::Acquire) > 0
    }

    /// Compacts every file of every keyspace into its last level.
    pub(crate) fn compact_all(&self) -> Result<()> {
        self.check_writable()?;
        let _guard = self.lock_preempting();
        // The merge drops pointers, so blob files it found mostly live may
        // be mostly dead after it: the tables still pointing into them are
        // rewritten, which moves what is left in them and lets them go.
        if self.compact_all_pass()? {
            let key = self.ciphers.current()?.map(|k| k.id());
            let victims = self.blob_victims(key);
            if !victims.is_empty() {
                // Only the tables pointing into them, each at its level.
                let jobs = {
                    let vs = self.versions.lock();
                    self.rewrite_jobs(&vs, |_, f| f.blob_refs().any(|(n, _)| victims.contains(&n)))
                };
                self.run_all(jobs)?;
            }
        }
        Ok(())
    }

    /// One full compaction of every keyspace; says whether there was any
    /// file to compact. Callers hold the compaction lock.
    fn compact_all_pass(&self) -> Result<bool> {
        let jobs: Vec<Job> = {
            let vs = self.versions.lock();
            vs.keyspaces()
                .iter()
                .filter_map(|(id, (_, levels))| {
                    let ks = self.keyspaces.by_id(*id)?;
                    let inputs: Vec<_> = levels.all_files().map(|(l, f)| (l, f.clone())).collect();
                    if inputs.is_empty() {
                        return None;
                    }
                    Some(Job {
                        ks,
                        levels: levels.clone(),
                        output_level: levels.num_levels() - 1,
                        trivial: false,
                        inputs,
                        parts: self.opts.full_compaction_parts(),
                        yields: false,
                    })
                })
                .collect()
        };
        let any = !jobs.is_empty();
        self.run_all(jobs)?;
        Ok(any)
    }

    /// The blob files a compaction empties (policy::blob), and those under
    /// another key than `current`.
    fn blob_victims(&self, current: Option<u32>) -> std::collections::BTreeSet<u64> {
        let vs = self.versions.lock();
        let mut victims = policy::blob::victims(
            &vs.blobs().usage(vs.keyspaces()),
            self.opts.blob_garbage_ratio,
        );
        victims.extend(vs.blobs().under_other_key(current));
        victims
    }
}

impl DbInner {
    /// Rewrites every SST not under the key its keyspace now uses (the
    /// provider's current key, or none for a plaintext keyspace), and the
    /// manifest, so an old key can be retired. L0 files are compacted into
    /// L1; deeper files are rewritten in place.
    pub(crate) fn reencrypt(&self) -> Result<()> {
        // A new WAL under the current key; the old ones go once flushed.
        let current = self.ciphers.current()?.map(|k| k.id());
        let stale_wal = self.pipeline.logs().with_current(|w| w.key_id()) != current;
        self.flush_and_switch(stale_wal)?;
        let _guard = self.lock_preempting();
        let jobs: Vec<Job> = {
            let vs = self.versions.lock();
            let stale_blobs: std::collections::HashSet<u64> =
                vs.blobs().under_other_key(current).collect();
            let mut targets = std::collections::HashMap::new();
            for id in vs.keyspaces().keys() {
                targets.insert(*id, self.table_key(*id)?.map(|k| k.id()));
            }
            // A table pointing into a blob file under another key is
            // rewritten too: the compaction moves those values.
            self.rewrite_jobs(&vs, |id, f| {
                f.key_id != targets.get(&id).copied().flatten()
                    || f.blob_refs().any(|(n, _)| stale_blobs.contains(&n))
            })
        };
        self.run_all(jobs)?;
        let mut vs = self.versions.lock();
        if let Some(old) = vs
            .rotate_manifest()
            .map_err(|e| self.poison(e, Origin::Manifest))?
        {
            let _ = self
                .fs
                .remove_file(&crate::fs::names::manifest(&self.dir, old));
        }
        Ok(())
    }

    /// Jobs that rewrite every table `stale` picks (keyspace id, file) at
    /// its own level: L0's merged into L1 with the L1 files they overlap,
    /// deeper ones one at a time in place.
    fn rewrite_jobs(
        &self,
        vs: &crate::version::VersionSet,
        stale: impl Fn(u32, &Arc<FileMeta>) -> bool,
    ) -> Vec<Job> {
        let mut jobs = Vec::new();
        for (id, (_, levels)) in vs.keyspaces() {
            let Some(ks) = self.keyspaces.by_id(*id) else {
                continue;
            };
            // L1 files merged by the L0 job are rewritten by it.
            let mut in_l0_job = std::collections::HashSet::new();
            if levels.level(0).iter().any(|f| stale(*id, f)) {
                let mut inputs: Vec<_> = levels.level(0).iter().map(|f| (0, f.clone())).collect();
                let (lo, hi) = policy::compaction::key_range(&inputs);
                inputs.extend(
                    policy::compaction::overlapping(levels.level(1), &lo, &hi)
                        .into_iter()
                        .map(|f| (1, f)),
                );
                in_l0_job.extend(inputs.iter().map(|(_, f)| f.number));
                jobs.push(Job {
                    ks: ks.clone(),
                    levels: levels.clone(),
                    inputs,
                    output_level: 1,
                    trivial: false,
                    parts: 1,
                    yields: false,
                });
            }
            for (level, files) in levels.iter().enumerate().skip(1) {
                for f in files.iter().filter(|f| stale(*id, f)) {
                    if in_l0_job.contains(&f.number) {
                        continue;
                    }
                    jobs.push(Job {
                        ks: ks.clone(),
                        levels: levels.clone(),
                        inputs: vec![(level, f.clone())],
                        output_level: level,
                        trivial: false,
                        parts: 1,
                        yields: false,
                    });
                }
            }
        }
        jobs
    }
}

/// The compaction thread: waits for a flush (or a stalled writer) to ask,
/// then compacts until the levels are within their targets. It also
/// leaves the error state by itself after an I/O error in any flush or
/// compaction (a caller's too), with the pauses of the retry policy.
pub(super) fn compaction_thread(inner: Arc<DbInner>) {
    loop {
        let woken = inner.flushes.wait_for_compaction(
            || inner.is_shutdown(),
            || inner.errors.auto_retry_pause().is_some(),
        );
        if !woken {
            return;
        }
        if inner.errors.auto_retry_pause().is_some() {
            if !inner.wait_for_resume() {
                return;
            }
            // The compaction that failed is tried again now.
            inner.flushes.request_compaction();
            continue;
        }
        // The outputs of a failed compaction are gone and its inputs
        // intact; `compact_until_settled` put the database in the error
        // state, which the next round waits out.
        let _ = inner.compact_until_settled();
    }
}
