//! The background threads: flush, compaction, and the periodic WAL sync.

use std::sync::Arc;

use crate::error::Error;
use crate::error_state::Origin;

use super::DbInner;

/// Starts the flush, compaction and (when configured) WAL sync threads.
pub(super) fn start_threads(inner: &Arc<DbInner>) {
    if !inner.opts.background_threads {
        // A replayed L0 may already call for a compaction; it runs on the
        // next switch, or now.
        // A failure puts the database in the error state by itself.
        let _ = inner.compact_until_settled();
        return;
    }
    let mut threads = inner.threads.lock();
    threads.push(spawn(inner, "strata-flush", super::flush::flush_thread));
    threads.push(spawn(
        inner,
        "strata-compaction",
        super::compaction::compaction_thread,
    ));
    if let Some(interval) = inner.opts.wal_sync_interval {
        threads.push(spawn(inner, "strata-wal-sync", move |i| {
            wal_sync_thread(i, interval)
        }));
    }
    // A replayed L0 may already call for a compaction.
    inner.flushes.request_compaction();
}

/// Runs a background thread; a panic in it poisons the database instead of
/// leaving writers waiting for work that will never happen.
fn spawn(
    inner: &Arc<DbInner>,
    name: &str,
    body: impl FnOnce(Arc<DbInner>) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    let i = inner.clone();
    let name = name.to_owned();
    let spawned = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let guard = i.clone();
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || body(i))).is_err() {
                guard.poison_fatal(Error::Poisoned(format!(
                    "background thread {name} panicked"
                )));
            }
        });
    match spawned {
        Ok(h) => h,
        Err(e) => {
            inner.poison_fatal(Error::Poisoned(format!(
                "cannot start a background thread: {e}"
            )));
            std::thread::spawn(|| {})
        }
    }
}

fn wal_sync_thread(inner: Arc<DbInner>, interval: std::time::Duration) {
    loop {
        inner.flushes.pause(interval, || inner.is_shutdown());
        if inner.is_shutdown() {
            return;
        }
        match inner.pipeline.logs().sync() {
            Ok(synced) => {
                if synced {
                    inner.pipeline.count_sync();
                }
            }
            Err(e) => {
                inner.poison(e, Origin::Wal);
                if !inner.wait_until_resumed() {
                    return;
                }
            }
        }
    }
}
